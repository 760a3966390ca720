package emr

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	t.Parallel()
	o := Options{BreakerThreshold: 3, BreakerCooldown: 30 * time.Second}.withDefaults()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var b breaker
	for i := range 2 {
		b.record(false, now, o)
		if !b.allow(now) {
			t.Fatalf("open after %d failures", i+1)
		}
	}
	b.record(false, now, o)
	if b.allow(now.Add(29 * time.Second)) {
		t.Error("closed during the cool-down after 3 failures")
	}
	if !b.allow(now.Add(30 * time.Second)) {
		t.Error("still open after the cool-down")
	}
	// Half-open: one more failure opens it again at once.
	b.record(false, now.Add(30*time.Second), o)
	if b.allow(now.Add(31 * time.Second)) {
		t.Error("a failed trial call did not re-open the breaker")
	}
	b.record(true, now.Add(61*time.Second), o)
	b.record(false, now.Add(61*time.Second), o)
	if !b.allow(now.Add(61 * time.Second)) {
		t.Error("a success did not reset the count")
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {"-1", 0}, {"soon", 0},
		{"Sun, 01 Mar 2026 12:00:05 GMT", 5 * time.Second}, {"Sun, 01 Mar 2026 11:00:00 GMT", 0},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestRedactKeepsNoValues(t *testing.T) {
	t.Parallel()
	got := redact("https://ehr.example/fhir/Patient?name=Doe&birthdate=1980-01-01&_count=10")
	if got != "/fhir/Patient?_count&birthdate&name" {
		t.Errorf("redact: %q", got)
	}
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	all, err := Profiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"generic", "epic", "oracle"} {
		p, ok := all[name]
		if !ok || p.PageSize <= 0 || len(p.Writeback.ContentTypes) == 0 {
			t.Errorf("profile %s: %+v", name, p)
		}
	}
	if _, err := LoadProfile("meditech"); err == nil {
		t.Error("an unknown profile loaded")
	}
	oracle := all["oracle"]
	if err := oracle.checkBase("/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d"); err != nil {
		t.Errorf("tenant-scoped base refused: %v", err)
	}
	if err := oracle.checkBase("/r4"); err == nil {
		t.Error("oracle accepted a base without a tenant")
	}
	if !all["epic"].Writeback.allows("text/plain; charset=utf-8") || all["epic"].Writeback.allows("application/pdf") {
		t.Error("epic's attachment rule")
	}
}

func TestRelativeRef(t *testing.T) {
	t.Parallel()
	base := "https://ehr.example/fhir"
	for _, tc := range []struct{ ref, typ, id string }{
		{"Patient/1", "Patient", "1"}, {"Patient/1/_history/2", "Patient", "1"}, {base + "/Encounter/e", "Encounter", "e"},
		{"https://other.example/fhir/Patient/1", "", ""}, {"#c1", "", ""}, {"urn:uuid:x", "", ""}, {"Patient", "", ""},
	} {
		typ, id, _ := relativeRef(tc.ref, base)
		if typ != tc.typ || id != tc.id {
			t.Errorf("relativeRef(%q) = %q %q", tc.ref, typ, id)
		}
	}
}
