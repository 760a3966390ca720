package smart

import (
	"testing"
	"time"
)

func TestLoginRecordWait(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	tests := []struct {
		name string
		rec  loginRecord
		want time.Duration
	}{
		{"nothing known", loginRecord{}, 0},
		{"clean address, user under heavy attack", loginRecord{userFailures: 40, userLast: at(0)}, 0},
		{"clean address: its failures are forgotten", loginRecord{addrFailures: 9, addrLast: at(-time.Hour), userFailures: 40, userLast: at(0)}, 0},
		{"failed address, few user failures", loginRecord{addrFailures: 1, addrLast: at(0), userFailures: 4, userLast: at(0)}, 0},
		{"fifth user failure: one second", loginRecord{addrFailures: 1, addrLast: at(0), userFailures: 5, userLast: at(-400 * time.Millisecond)}, 600 * time.Millisecond},
		{"sixth: two seconds", loginRecord{addrFailures: 1, addrLast: at(0), userFailures: 6, userLast: at(0)}, 2 * time.Second},
		{"ninth: sixteen seconds", loginRecord{addrFailures: 1, addrLast: at(0), userFailures: 9, userLast: at(0)}, 16 * time.Second},
		{"capped", loginRecord{addrFailures: 1, addrLast: at(0), userFailures: 5000, userLast: at(0)}, backoffMax},
		{"backoff elapsed", loginRecord{addrFailures: 1, addrLast: at(-time.Minute), userFailures: 6, userLast: at(-3 * time.Second)}, 0},
		{"user failures forgotten", loginRecord{addrFailures: 1, addrLast: at(-time.Minute), userFailures: 30, userLast: at(-time.Hour)}, 0},
		{"address locked", loginRecord{addrFailures: 5, addrLast: at(-time.Minute), addrLocked: at(14 * time.Minute), userFailures: 5, userLast: at(-time.Minute)}, 14 * time.Minute},
		{"lock over", loginRecord{addrFailures: 5, addrLast: at(-16 * time.Minute), addrLocked: at(-time.Minute), userFailures: 5, userLast: at(-16 * time.Minute)}, 0},
	}
	for _, tt := range tests {
		if got := tt.rec.wait(now); got != tt.want {
			t.Errorf("%s: wait %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestLoginRecordFailed(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var l loginRecord
	for i := 1; i <= addressMaxFailures; i++ {
		if l.addrLocked != nil {
			t.Fatalf("locked after %d failures", i-1)
		}
		l = l.failed(now)
	}
	if l.addrLocked == nil || !l.addrLocked.Equal(now.Add(addressLockout)) || l.userFailures != addressMaxFailures {
		t.Errorf("after %d failures: %+v", addressMaxFailures, l)
	}
	// An hour later the counts start again.
	l = l.failed(now.Add(failureMemory))
	if l.addrFailures != 1 || l.userFailures != 1 {
		t.Errorf("after an hour: %+v", l)
	}
}
