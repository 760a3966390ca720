package httpguard

import (
	"io"
	"net/http"
	"time"
)

// BodyDeadline bounds how long a client may take to send a request body: timeout, plus one second per
// minRate bytes already received. A client sending at least minRate bytes a second is never cut
// (a 1 GiB recording on a slow line is fine); one trickling a few bytes now and then (slowloris) is,
// and its connection is closed. now is the clock (time.Now in production).
//
// It sets the connection's read deadline through http.ResponseController, so it needs a server
// without ReadTimeout (which would bound every body regardless of progress).
func BodyDeadline(timeout time.Duration, minRate int64, now func() time.Time, next http.Handler) http.Handler {
	if now == nil {
		now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		b := &deadlineBody{ReadCloser: r.Body, rc: rc, start: now(), timeout: timeout, minRate: minRate, now: now}
		if err := b.extend(); err != nil {
			// A writer without deadlines (a test recorder): nothing to bound.
			next.ServeHTTP(w, r)
			return
		}
		r.Body = b
		next.ServeHTTP(w, r)
		// A body left unread keeps its deadline: the server drains some of it after the handler.
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	timeout  time.Duration
	minRate  int64
	received int64
	now      func() time.Time
}

func (b *deadlineBody) extend() error {
	allowance := b.timeout + time.Duration(float64(b.received)/float64(b.minRate)*float64(time.Second))
	return b.rc.SetReadDeadline(b.start.Add(allowance))
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		// The whole body is in: the deadline must not outlive it, or the server's background read
		// (which watches for the client going away) would time out and cancel a long request.
		_ = b.rc.SetReadDeadline(time.Time{})
	case n > 0:
		b.received += int64(n)
		_ = b.extend()
	}
	return n, err
}
