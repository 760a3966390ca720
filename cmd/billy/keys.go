package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/internal/blob"
	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/smart"
)

// Master key rotation (README "Key rotation"). The keyring of a running process follows
// BILLY_MASTER_KEY_FILE (watchKeys), and every process records in key_holders which key it writes
// with; billy keys rotate re-wraps blobs and re-seals SMART's keys and secrets only once every live
// process writes with the new key, so that no process is left unable to read what rotate rewrote
// and none writes under the old key behind rotate's back.

// processID names this process in key_holders.
var processID = func() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano())
}()

// watchKeys re-reads BILLY_MASTER_KEY_FILE every BILLY_MASTER_KEY_RELOAD and swaps the keyring in
// place when it changed, and keeps this process's key_holders row fresh, until ctx ends. A file that
// does not parse is logged and ignored: the process keeps its keys.
func (a *app) watchKeys(ctx context.Context, env config.Lookuper) error {
	if a.keyring == nil {
		return nil
	}
	path, _ := env.Lookup("BILLY_MASTER_KEY_FILE")
	if v, inline := env.Lookup("BILLY_MASTER_KEY"); inline && v != "" {
		path = "" // an inline key cannot change while the process runs
	}
	var last []byte
	if path != "" {
		last, _ = os.ReadFile(path)
	}
	defer func() {
		// The row goes with the process; a killed process's row ages out.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = a.pool.Exec(dctx, `DELETE FROM key_holders WHERE process = $1`, processID)
	}()
	tick := time.NewTicker(a.cfg.MasterKeyReload)
	defer tick.Stop()
	for {
		if path != "" {
			if b, err := os.ReadFile(path); err != nil {
				a.log.Warn("master key file unreadable: keeping the keys loaded", "error", err.Error())
			} else if !bytes.Equal(b, last) {
				if kr, err := crypto.ParseKeyring(string(b)); err != nil {
					a.log.Error("master key file changed but does not parse: keeping the keys loaded", "error", err.Error())
				} else {
					a.keyring.Replace(kr)
					a.log.Info("master keyring reloaded", "keys", a.keyring)
				}
				last = b
			}
		}
		if _, err := a.pool.Exec(ctx, `INSERT INTO key_holders (process, current_key, key_ids, seen_at) VALUES ($1, $2, $3, now())
			ON CONFLICT (process) DO UPDATE SET current_key = excluded.current_key, key_ids = excluded.key_ids, seen_at = now()`,
			processID, a.keyring.Current(), a.keyring.IDs()); err != nil && ctx.Err() == nil {
			a.log.Warn("key_holders heartbeat", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// rotation is what one billy keys rotate did.
type rotation struct {
	Rewrapped, AlreadyCurrent, Vanished int
	Smart                               smart.ResealReport
	Done                                bool // false when --max stopped it early
}

// errLaggingProcesses: some live process still writes with another key than the rotation's.
var errLaggingProcesses = errors.New("processes still write with another master key")

// laggingProcesses lists live processes (heard from within three reload intervals) whose current key
// is not current.
func (a *app) laggingProcesses(ctx context.Context, current string) ([]string, error) {
	rows, err := a.pool.Query(ctx, `SELECT process || ' (writes with ' || current_key || ')' FROM key_holders
		WHERE seen_at > now() - make_interval(secs => $1) AND current_key <> $2 ORDER BY process`, a.liveWindow(), current)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// liveWindow is how recently (in seconds) a process must have written its key_holders row to count
// as running: three reload intervals.
func (a *app) liveWindow() float64 { return (3 * a.cfg.MasterKeyReload).Seconds() }

// rotate re-seals SMART's signing keys and secrets, then re-wraps every blob's data key, under the
// keyring's current key; max > 0 stops after that many blobs re-wrapped (run again to go on).
func (a *app) rotate(ctx context.Context, max int, force bool) (rotation, error) {
	var r rotation
	if a.keyring == nil {
		return r, errors.New("no master key: set BILLY_MASTER_KEY or BILLY_MASTER_KEY_FILE, the new key first")
	}
	lag, err := a.laggingProcesses(ctx, a.keyring.Current())
	if err != nil {
		return r, err
	}
	if len(lag) > 0 && !force {
		return r, fmt.Errorf("%w than %s: %s; give them the new keyring (they re-read BILLY_MASTER_KEY_FILE every %s) or restart them, then run rotate again",
			errLaggingProcesses, a.keyring.Current(), strings.Join(lag, ", "), a.cfg.MasterKeyReload)
	}
	if r.Smart, err = smart.Reseal(ctx, a.pool, a.keyring); err != nil {
		return r, fmt.Errorf("re-seal SMART keys: %w", err)
	}
	rw, ok := a.blobs.(blob.Rewrapper)
	if a.blobs == nil || !ok {
		r.Done = true
		return r, nil
	}
	errStop := errors.New("stop")
	err = rw.Walk(ctx, func(id string) error {
		if max > 0 && r.Rewrapped >= max {
			return errStop
		}
		changed, err := rw.Rewrap(ctx, id)
		switch {
		case err != nil:
			return err
		case changed:
			r.Rewrapped++
		default:
			r.AlreadyCurrent++
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return r, nil
	}
	r.Done = err == nil
	return r, err
}

// keyStatus counts what each master key wraps or seals.
type keyStatus struct {
	Blobs   map[string]int // blobs by the key id wrapping their data key
	Sealed  map[string]int // signing keys and secrets by the key id sealing them ("legacy": derived-key seal)
	Holders map[string]int // live processes by the key they write with
}

func (a *app) keyStatus(ctx context.Context) (keyStatus, error) {
	st := keyStatus{Blobs: map[string]int{}, Sealed: map[string]int{}, Holders: map[string]int{}}
	rows, err := a.pool.Query(ctx, `SELECT private_enc FROM smart_keys UNION ALL SELECT sealed FROM sealed_secrets`)
	if err != nil {
		return st, err
	}
	sealed, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return st, err
	}
	for _, s := range sealed {
		id, err := crypto.SealedKeyID(s)
		if err != nil {
			id = "legacy"
		}
		st.Sealed[id]++
	}
	rows, err = a.pool.Query(ctx, `SELECT current_key, count(*)::int FROM key_holders WHERE seen_at > now() - make_interval(secs => $1) GROUP BY 1`,
		a.liveWindow())
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return st, err
		}
		st.Holders[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	if fs, ok := a.blobs.(*blob.FS); ok {
		err = fs.Walk(ctx, func(id string) error {
			kid, err := fs.KeyID(ctx, id)
			if err != nil {
				return err
			}
			if kid != "" {
				st.Blobs[kid]++
			}
			return nil
		})
	}
	return st, err
}

func printCounts(w io.Writer, what string, m map[string]int) {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s %d", id, m[id]))
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	fmt.Fprintf(w, "%s: %s\n", what, strings.Join(parts, ", "))
}

func keysCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "status") {
		return errors.New("usage: billy keys rotate [--max N] [--force] | billy keys status")
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	max := fs.Int("max", 0, "rotate: stop after re-wrapping this many blobs (0: all); run again to go on")
	force := fs.Bool("force", false, "rotate: go on although live processes write with another key (they may fail to read rewrapped blobs)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if a.keyring == nil {
		return errors.New("no master key: set BILLY_MASTER_KEY or BILLY_MASTER_KEY_FILE")
	}
	fmt.Fprintf(stdout, "keyring: current %s, keys %s\n", a.keyring.Current(), strings.Join(a.keyring.IDs(), ","))
	if args[0] == "rotate" {
		r, err := a.rotate(ctx, *max, *force)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "re-sealed %d signing keys and %d secrets (%d already under %s)\n", r.Smart.SigningKeys, r.Smart.Secrets, r.Smart.Current, a.keyring.Current())
		fmt.Fprintf(stdout, "re-wrapped %d blobs (%d already under %s)\n", r.Rewrapped, r.AlreadyCurrent, a.keyring.Current())
		if !r.Done {
			fmt.Fprintln(stdout, "stopped at --max: run billy keys rotate again to go on")
			return nil
		}
	}
	st, err := a.keyStatus(ctx)
	if err != nil {
		return err
	}
	printCounts(stdout, "blobs by master key", st.Blobs)
	printCounts(stdout, "signing keys and secrets by master key", st.Sealed)
	printCounts(stdout, "live processes by the key they write with", st.Holders)
	var old []string
	for _, id := range a.keyring.IDs()[1:] {
		if st.Blobs[id] == 0 && st.Sealed[id] == 0 {
			old = append(old, id)
		}
	}
	if len(old) > 0 && st.Sealed["legacy"] == 0 {
		fmt.Fprintf(stdout, "nothing is under %s any more: remove it from BILLY_MASTER_KEY(_FILE)\n", strings.Join(old, ", "))
	}
	return nil
}
