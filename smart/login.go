package smart

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/fosite"
	"golang.org/x/crypto/bcrypt"

	"github.com/iambilly/billy/internal/pg"
)

// ticketLifetime bounds how long a sign-in carries through the picker and consent steps.
const ticketLifetime = 10 * time.Minute

// Login throttling. Failures are counted per (user name, client address) and per user name:
//
//   - an address with addressMaxFailures failures for a user is refused for that user for
//     addressLockout after the last of them;
//   - once a user has userFreeFailures failures (from any addresses), every address that has
//     failed for that user waits before its next attempt: backoffBase after the user's last
//     failure, doubling with each further failure, up to backoffMax;
//   - an address that has not failed for the user is never refused or delayed, so no one can lock
//     the real user out from elsewhere; a successful sign-in clears its address;
//   - failures are forgotten failureMemory after the last one.
//
// An attempt is counted as a failure before the password is checked (and uncounted when it is
// right), so concurrent attempts cannot slip past the limits. The client address is the TCP
// peer, never a header the client writes; an IPv6 address counts by its /64 network.
const (
	addressMaxFailures = 5
	addressLockout     = 15 * time.Minute
	userFreeFailures   = 5
	backoffBase        = time.Second
	backoffMax         = 15 * time.Minute
	failureMemory      = time.Hour
)

// user is a logged-in user of the authorize pages.
type user struct {
	name, fhirUser string
}

// loginStep returns the user of a valid login ticket or of a correct username and password. When
// there is neither it renders the login page (with the reason) and returns false.
func (s *Server) loginStep(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester) (user, bool) {
	ctx := r.Context()
	if t := r.PostFormValue("ticket"); t != "" {
		if name, ok := s.checkTicket(t, ar.GetClient().GetID()); ok {
			var fu *string
			if err := s.pool.QueryRow(ctx, `SELECT fhir_user FROM smart_users WHERE username = $1`, name).Scan(&fu); err == nil {
				u := user{name: name}
				if fu != nil {
					u.fhirUser = *fu
				}
				return u, true
			}
		}
	}
	name, password := r.PostFormValue("username"), r.PostFormValue("password")
	if name == "" {
		s.renderLogin(w, ar, "", http.StatusOK)
		return user{}, false
	}
	u, err := s.checkPassword(ctx, name, password, clientAddress(r))
	if err != nil {
		status := http.StatusUnauthorized
		var th *throttledError
		switch {
		case errors.As(err, &th):
			status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(th.wait.Seconds()))))
		case !errors.Is(err, errBadLogin):
			s.log.ErrorContext(ctx, "login", "error", err.Error())
			status, err = http.StatusServiceUnavailable, errLoginUnavailable
		}
		s.auditf(r, "login", "failure", ar.GetClient().GetID(), name, err.Error())
		s.renderLogin(w, ar, err.Error(), status)
		return user{}, false
	}
	s.auditf(r, "login", "success", ar.GetClient().GetID(), name, "")
	// Later steps carry a ticket instead of the password.
	r.PostForm.Set("ticket", s.makeTicket(name, ar.GetClient().GetID()))
	return u, true
}

var (
	errBadLogin         = errors.New("unknown user or wrong password")
	errLoginUnavailable = errors.New("sign-in is unavailable; try again later")
)

// throttledError refuses an attempt the throttle does not allow yet.
type throttledError struct{ wait time.Duration }

func (e *throttledError) Error() string {
	return "too many failed sign-ins from this address; try again in " + roughly(e.wait)
}

// roughly says a wait in words, rounded up.
func roughly(d time.Duration) string {
	if d <= time.Minute {
		n := int(math.Ceil(d.Seconds()))
		if n == 1 {
			return "1 second"
		}
		return strconv.Itoa(n) + " seconds"
	}
	return strconv.Itoa(int(math.Ceil(d.Minutes()))) + " minutes"
}

// clientAddress is what login failures are counted by: the TCP peer's IP address, or for IPv6 its
// /64 network (what one host or home usually gets).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return host
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// checkPassword verifies a user's password from addr, within the throttle. The same answer is
// given for unknown users and wrong passwords, after comparable work, and both are throttled.
func (s *Server) checkPassword(ctx context.Context, name, password, addr string) (user, error) {
	wait, err := s.reserveLogin(ctx, name, addr)
	if err != nil {
		return user{}, err
	}
	if wait > 0 {
		return user{}, &throttledError{wait: wait}
	}
	var hash []byte
	var fu *string
	err = s.pool.QueryRow(ctx, `SELECT password_hash, fhir_user FROM smart_users WHERE username = $1`, name).Scan(&hash, &fu)
	known := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		hash = dummyHash // same work as a real comparison
	} else if err != nil {
		return user{}, fmt.Errorf("read user: %w", err)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		return user{}, errBadLogin // already counted by reserveLogin
	}
	if err := s.loginSucceeded(ctx, name, addr); err != nil {
		return user{}, err
	}
	u := user{name: name}
	if fu != nil {
		u.fhirUser = *fu
	}
	return u, nil
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a real password"), 10)

// loginRecord is what the throttle knows of a user's failures and of one address's.
type loginRecord struct {
	addrFailures         int
	addrLast, addrLocked *time.Time
	userFailures         int
	userLast             *time.Time
}

// recentFailures is n if the last of them is within failureMemory, else 0.
func recentFailures(n int, last *time.Time, now time.Time) int {
	if last == nil || now.Sub(*last) >= failureMemory {
		return 0
	}
	return n
}

// backoff is how long after a user's last failure an address that failed waits, when the user
// has n failures.
func backoff(n int) time.Duration {
	if n < userFreeFailures {
		return 0
	}
	shift := n - userFreeFailures
	if shift > 20 {
		return backoffMax
	}
	return min(backoffBase<<shift, backoffMax)
}

// wait is how long the address must wait before it may try the user's password: 0 for now.
func (l loginRecord) wait(now time.Time) time.Duration {
	if recentFailures(l.addrFailures, l.addrLast, now) == 0 {
		return 0 // an address that has not failed is never held back
	}
	var w time.Duration
	if l.addrLocked != nil && l.addrLocked.After(now) {
		w = l.addrLocked.Sub(now)
	}
	if n := recentFailures(l.userFailures, l.userLast, now); n > 0 {
		if until := l.userLast.Add(backoff(n)); until.After(now) {
			w = max(w, until.Sub(now))
		}
	}
	return w
}

// failed is the record after one more failure at now.
func (l loginRecord) failed(now time.Time) loginRecord {
	l.addrFailures = recentFailures(l.addrFailures, l.addrLast, now) + 1
	l.addrLast = &now
	if l.addrFailures >= addressMaxFailures {
		until := now.Add(addressLockout)
		l.addrLocked = &until
	}
	l.userFailures = recentFailures(l.userFailures, l.userLast, now) + 1
	l.userLast = &now
	return l
}

// reserveLogin returns how long addr must wait before trying name's password, or, when it may try
// now, counts the attempt as a failure (loginSucceeded takes it back). A user's attempts serialise
// on the user's row, briefly: the password is checked after the commit.
func (s *Server) reserveLogin(ctx context.Context, name, addr string) (time.Duration, error) {
	now := s.cfg.Now()
	var wait time.Duration
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var l loginRecord
		if _, err := tx.Exec(ctx, `INSERT INTO smart_login_backoff (username) VALUES ($1) ON CONFLICT DO NOTHING`, name); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT failures, last_failure FROM smart_login_backoff WHERE username = $1 FOR UPDATE`, name).
			Scan(&l.userFailures, &l.userLast); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO smart_login_throttle (username, remote) VALUES ($1, $2) ON CONFLICT DO NOTHING`, name, addr); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT failures, last_failure, locked_until FROM smart_login_throttle WHERE username = $1 AND remote = $2 FOR UPDATE`,
			name, addr).Scan(&l.addrFailures, &l.addrLast, &l.addrLocked); err != nil {
			return err
		}
		if wait = l.wait(now); wait > 0 {
			return nil
		}
		l = l.failed(now)
		if _, err := tx.Exec(ctx, `UPDATE smart_login_backoff SET failures = $2, last_failure = $3 WHERE username = $1`,
			name, l.userFailures, l.userLast); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE smart_login_throttle SET failures = $3, last_failure = $4, locked_until = $5 WHERE username = $1 AND remote = $2`,
			name, addr, l.addrFailures, l.addrLast, l.addrLocked)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("login throttle: %w", err)
	}
	// Forget old failures (of anyone), so the tables hold only the last hour's.
	old := now.Add(-failureMemory)
	_, _ = s.pool.Exec(ctx, `DELETE FROM smart_login_throttle WHERE last_failure < $1`, old)
	_, _ = s.pool.Exec(ctx, `DELETE FROM smart_login_backoff WHERE last_failure < $1`, old)
	return wait, nil
}

// loginSucceeded takes back the failure reserveLogin counted, and clears the address.
func (s *Server) loginSucceeded(ctx context.Context, name, addr string) error {
	return pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE smart_login_backoff SET failures = greatest(failures - 1, 0) WHERE username = $1`, name); err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM smart_login_throttle WHERE username = $1 AND remote = $2`, name, addr); err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
		return nil
	})
}

// A login ticket is "user|client|expiry|mac": proof, for ten minutes and one client, that the user
// logged in, so the picker and consent steps need not carry the password.
func (s *Server) makeTicket(name, client string) string {
	payload := name + "|" + client + "|" + strconv.FormatInt(s.cfg.Now().Add(ticketLifetime).Unix(), 10)
	m := hmac.New(sha256.New, s.ticket)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) checkTicket(t, client string) (string, bool) {
	p64, mac64, ok := strings.Cut(t, ".")
	if !ok {
		return "", false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(mac64)
	if err1 != nil || err2 != nil {
		return "", false
	}
	m := hmac.New(sha256.New, s.ticket)
	m.Write(payload)
	if !hmac.Equal(mac, m.Sum(nil)) {
		return "", false
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 3 || parts[1] != client {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || s.cfg.Now().Unix() > exp {
		return "", false
	}
	return parts[0], true
}
