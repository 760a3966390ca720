package hl7v2

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/store"
	billycrypto "github.com/iambilly/billy/internal/crypto"
)

// Server applies HL7 v2 messages to Billy and acknowledges them.
type Server struct {
	Store    *store.Store
	Pool     *pgxpool.Pool
	Validate store.Validate
	// Base is Billy's FHIR base URL (for the search index of references).
	Base string
	// Keys seals the messages kept in hl7_errors (nil keeps them in clear, with a warning at start).
	Keys *billycrypto.Keyring
	Log  *slog.Logger
	// Location is the time zone of date/times sent without one (default UTC).
	Location *time.Location
	// Now is the clock (default time.Now).
	Now func() time.Time
	// TLS, when set, wraps every connection (ClientAuth as configured: RequireAndVerifyClientCert
	// for client certificates).
	TLS *tls.Config
	// IdleTimeout closes a connection silent for that long (default 10 minutes).
	IdleTimeout time.Duration
	// Committers is how many group-commit loops run (default 4: more transactions in flight hide
	// PostgreSQL's round trips); MaxBatch bounds the messages of one transaction (default 64).
	Committers, MaxBatch int

	jobs chan *job
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) loc() *time.Location {
	if s.Location != nil {
		return s.Location
	}
	return time.UTC
}

// job is one message waiting for a group commit.
type job struct {
	sender string
	hdr    Header
	plan   *plan
	writes []*store.Write
	dup    bool
	done   chan error
}

// Serve accepts MLLP connections on ln until ctx ends; each connection's messages are applied in
// order and acknowledged after their transaction commits.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.TLS != nil {
		ln = tls.NewListener(ln, s.TLS)
	}
	s.jobs = make(chan *job, 1024)
	var committers sync.WaitGroup
	cctx, stopCommitters := context.WithCancel(context.WithoutCancel(ctx))
	n := s.Committers
	if n <= 0 {
		n = 4
	}
	for range n {
		committers.Go(func() { s.commitLoop(cctx) })
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	go func() {
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for c := range open {
			_ = c.SetReadDeadline(time.Now())
		}
		mu.Unlock()
	}()
	var err error
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = aerr
			}
			break
		}
		mu.Lock()
		open[c] = true
		mu.Unlock()
		conns.Go(func() {
			s.serveConn(ctx, c)
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		})
	}
	conns.Wait()
	stopCommitters()
	committers.Wait()
	return err
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	remote := c.RemoteAddr().String()
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = 10 * time.Minute
	}
	r := bufio.NewReaderSize(c, 64<<10)
	for ctx.Err() == nil {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		raw, err := ReadFrame(r)
		var fe *FramingError
		switch {
		case errors.As(err, &fe):
			s.recordError(ctx, remote, Header{}, "framing", fe.Reason, fe.Data)
			nak := BuildAck(Header{}, AR, []FieldError{{Code: "100", Text: "MLLP framing: " + fe.Reason}}, s.now())
			_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write(Frame(nak)); err != nil || fe.Fatal {
				return
			}
			continue
		case errors.Is(err, io.ErrUnexpectedEOF):
			s.logWarn("hl7: connection dropped mid-message; nothing of it was applied", "remote", remote)
			return
		case err != nil:
			return
		}
		ack := s.Handle(ctx, raw, remote)
		if ack == nil {
			continue
		}
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(Frame(ack)); err != nil {
			return
		}
	}
}

func (s *Server) logWarn(msg string, args ...any) {
	if s.Log != nil {
		s.Log.Warn(msg, args...)
	}
}

// Result is what Handle did with a message.
type Result struct {
	Code      string // AA, AE or AR
	Duplicate bool
	Errors    []FieldError
}

// Handle applies one message and returns its acknowledgment (nil when the sender asked for none).
func (s *Server) Handle(ctx context.Context, raw []byte, remote string) []byte {
	h, res := s.Apply(ctx, raw, remote)
	return BuildAck(h, res.Code, res.Errors, s.now())
}

// Apply applies one message: AA when it is committed (or was already, a duplicate control id), AE
// with the fields at fault, AR when it cannot be read or is not supported. Anything but AA leaves
// nothing behind except the message itself, kept in hl7_errors.
func (s *Server) Apply(ctx context.Context, raw []byte, remote string) (Header, Result) {
	return s.apply(ctx, raw, remote, true)
}

// apply is Apply; keep says whether a message not applied is kept (not when it is a replay of a
// kept one).
func (s *Server) apply(ctx context.Context, raw []byte, remote string, keep bool) (Header, Result) {
	m, err := Parse(raw)
	if err != nil {
		if keep {
			s.recordError(ctx, remote, Header{}, AR, err.Error(), raw)
		}
		return Header{}, Result{Code: AR, Errors: []FieldError{{Segment: "MSH", Seq: 1, Code: "100", Text: err.Error()}}}
	}
	h, _ := m.Header()
	reject := func(code string, fe ...FieldError) (Header, Result) {
		reason := ""
		for i, e := range fe {
			if i > 0 {
				reason += "; "
			}
			reason += e.Error()
		}
		if keep {
			s.recordError(ctx, remote, h, code, reason, raw)
		}
		return h, Result{Code: code, Errors: fe}
	}
	if h.ControlID == "" {
		return reject(AR, FieldError{Segment: "MSH", Seq: 1, Field: 10, Code: "101", Text: "MSH-10 (message control id) is required"})
	}
	events, ok := supported[h.Type]
	if !ok {
		return reject(AR, FieldError{Segment: "MSH", Seq: 1, Field: 9, Component: 1, Code: "200", Text: "message type " + sanitize(h.Type) + " is not supported"})
	}
	if !slices.Contains(events, h.Event) {
		return reject(AR, FieldError{Segment: "MSH", Seq: 1, Field: 9, Component: 2, Code: "201", Text: "event " + sanitize(h.Type+"^"+h.Event) + " is not supported"})
	}
	pl, ferrs := build(m, h, s.loc())
	if len(ferrs) > 0 {
		return reject(AE, ferrs...)
	}
	writes := make([]*store.Write, 0, len(pl.steps))
	for _, st := range pl.steps {
		t, err := tree(st.res)
		if err != nil {
			return reject(AE, FieldError{Code: "207", Text: err.Error()})
		}
		w, err := store.Prepare(s.Validate, s.Base, st.typ, st.id, t)
		if err != nil {
			// The validator's message may quote values: it is neither sent nor kept.
			return reject(AE, FieldError{Code: "207", Text: "the " + st.typ + " made of the message is not valid FHIR"})
		}
		writes = append(writes, w)
	}
	j := &job{sender: h.SendingApp + "^" + h.SendingFacility, hdr: h, plan: pl, writes: writes, done: make(chan error, 1)}
	if s.jobs == nil {
		err = s.commit(ctx, []*job{j})
	} else {
		select {
		case s.jobs <- j:
		case <-ctx.Done():
			return h, Result{Code: AE, Errors: []FieldError{{Code: "207", Text: "the server is stopping"}}}
		}
		err = <-j.done
	}
	if err != nil {
		s.logWarn("hl7: message not applied", "type", h.Type+"^"+h.Event, "error", err.Error())
		return reject(AE, FieldError{Code: "207", Text: "the message could not be applied"})
	}
	return h, Result{Code: AA, Duplicate: j.dup}
}

// commitLoop takes the waiting messages, up to MaxBatch, and applies them in one transaction:
// several connections share one commit, and each is acknowledged once it is durable.
func (s *Server) commitLoop(ctx context.Context) {
	maxBatch := s.MaxBatch
	if maxBatch <= 0 {
		maxBatch = 64
	}
	for {
		var batch []*job
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			batch = append(batch, j)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		err := s.commit(ctx, batch)
		if err == nil || len(batch) == 1 {
			for _, j := range batch {
				j.done <- err
			}
			continue
		}
		// One message spoiled the batch (or a deadlock between batches): each alone, so that only
		// the faulty one fails.
		for _, j := range batch {
			j.done <- s.commit(ctx, []*job{j})
		}
	}
}

// commit applies jobs in one transaction: their control ids in one statement (duplicates are
// marked, not applied), the resources none of them has seen created together in one statement,
// the others updated one by one in message order.
func (s *Server) commit(ctx context.Context, jobs []*job) error {
	return s.Store.InTx(ctx, func(tx *store.Tx) error {
		senders, ctrls, types := make([]string, len(jobs)), make([]string, len(jobs)), make([]string, len(jobs))
		for i, j := range jobs {
			senders[i], ctrls[i], types[i] = j.sender, j.hdr.ControlID, j.hdr.Type+"^"+j.hdr.Event
		}
		rows, err := tx.PgTx().Query(ctx, `INSERT INTO hl7_messages (sender, control_id, type, received_at)
			SELECT s, c, t, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(s, c, t)
			ON CONFLICT DO NOTHING RETURNING sender, control_id`, senders, ctrls, types, s.now())
		if err != nil {
			return err
		}
		fresh := map[[2]string]bool{}
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				rows.Close()
				return err
			}
			fresh[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var apply []*job
		merges := false
		for _, j := range jobs {
			k := [2]string{j.sender, j.hdr.ControlID}
			j.dup = !fresh[k]
			delete(fresh, k) // a second message with the same id in this batch is a duplicate
			if !j.dup {
				apply = append(apply, j)
				merges = merges || j.plan.merge != nil
			}
		}
		if merges {
			// A merge reads and rewrites patients: the batch goes in message order.
			for _, j := range apply {
				if err := s.applyJob(ctx, tx, j, 0); err != nil {
					return err
				}
			}
			return nil
		}
		var keys []store.Key
		for _, j := range apply {
			for _, w := range j.writes {
				keys = append(keys, store.Key{Type: w.Type, ID: w.ID})
			}
		}
		existing, err := tx.ReadMany(ctx, keys)
		if err != nil {
			return err
		}
		seen := map[store.Key]bool{}
		var creates []*store.Write
		type later struct {
			j *job
			i int
		}
		var updates []later
		for _, j := range apply {
			for i, w := range j.writes {
				k := store.Key{Type: w.Type, ID: w.ID}
				if existing[k] == nil && !seen[k] {
					creates = append(creates, w)
				} else {
					updates = append(updates, later{j, i})
				}
				seen[k] = true
			}
		}
		if _, err := tx.Create(ctx, creates); err != nil {
			return err
		}
		for _, u := range updates {
			if err := s.applyWrite(ctx, tx, u.j, u.i); err != nil {
				return err
			}
		}
		return nil
	})
}

// applyJob applies a job's writes from the from-th on, then its merge, in tx.
func (s *Server) applyJob(ctx context.Context, tx *store.Tx, j *job, from int) error {
	for i := from; i < len(j.writes); i++ {
		if err := s.applyWrite(ctx, tx, j, i); err != nil {
			return err
		}
	}
	if mg := j.plan.merge; mg != nil {
		return s.merge(ctx, tx, mg)
	}
	return nil
}

// applyWrite upserts the i-th resource of a job: nothing when the stored version says the same.
func (s *Server) applyWrite(ctx context.Context, tx *store.Tx, j *job, i int) error {
	w, st := j.writes[i], j.plan.steps[i]
	cur, err := tx.Read(ctx, w.Type, w.ID)
	if err != nil && !isNotFound(err) {
		return err
	}
	if err == nil && !cur.Deleted() {
		old, err := jsontree.Parse(cur.Content)
		if err != nil {
			return err
		}
		if st.keepPatient {
			if w, err = s.keepPatient(w, old); err != nil {
				return err
			}
		}
		if sameContent(old, w.Tree) {
			return nil
		}
	}
	if _, _, err := tx.Update(ctx, w, 0); err != nil {
		return fmt.Errorf("%s: %w", w.Type, err)
	}
	return nil
}

// sameContent compares two resources without their server meta.
func sameContent(a, b *jsontree.Value) bool {
	a, b = a.Clone(), b.Clone()
	a.Delete("meta")
	b.Delete("meta")
	return jsontree.Equal(a, b)
}

// keepPatient carries the stored Patient's identifiers, links and active flag over to a new
// version made of a PID segment (which knows nothing of earlier merges).
func (s *Server) keepPatient(w *store.Write, old *jsontree.Value) (*store.Write, error) {
	t := w.Tree.Clone()
	changed := false
	if oi := old.Get("identifier"); oi != nil {
		ni := t.Get("identifier")
		if ni == nil {
			ni = jsontree.NewArray()
			t.Set("identifier", ni)
		}
		for _, it := range oi.Items {
			if !hasIdentifier(ni, it.GetString("system"), it.GetString("value")) {
				ni.Items = append(ni.Items, it.Clone())
				changed = true
			}
		}
	}
	if l := old.Get("link"); l != nil {
		t.Set("link", l.Clone())
		changed = true
		if a := old.Get("active"); a != nil {
			t.Set("active", a.Clone())
		}
	}
	if !changed {
		return w, nil
	}
	return store.Prepare(s.Validate, s.Base, w.Type, w.ID, t)
}

func hasIdentifier(ids *jsontree.Value, system, value string) bool {
	for _, it := range ids.Items {
		if it.GetString("system") == system && it.GetString("value") == value {
			return true
		}
	}
	return false
}

// merge applies an A40: the survivor gains the merged patient's identifiers and a "replaces" link;
// the merged one becomes inactive with a "replaced-by" link.
func (s *Server) merge(ctx context.Context, tx *store.Tx, mg *mergeStep) error {
	surv, err := tx.ReadForUpdate(ctx, "Patient", mg.survivor, 0)
	if err != nil {
		return err
	}
	st, err := jsontree.Parse(surv.Content)
	if err != nil {
		return err
	}
	var mt *jsontree.Value
	if cur, err := tx.ReadForUpdate(ctx, "Patient", mg.merged, 0); err == nil && !cur.Deleted() {
		if mt, err = jsontree.Parse(cur.Content); err != nil {
			return err
		}
	} else if err != nil && !isNotFound(err) {
		return err
	}
	if mt == nil {
		mt, err = tree(map[string]any{"resourceType": "Patient", "identifier": []any{mg.mergedIdent}})
		if err != nil {
			return err
		}
	}
	ids := st.Get("identifier")
	if ids == nil {
		ids = jsontree.NewArray()
		st.Set("identifier", ids)
	}
	if mi := mt.Get("identifier"); mi != nil {
		for _, it := range mi.Items {
			if !hasIdentifier(ids, it.GetString("system"), it.GetString("value")) {
				c := it.Clone()
				c.Set("use", jsontree.NewString("old"))
				ids.Items = append(ids.Items, c)
			}
		}
	}
	addLink(st, "Patient/"+mg.merged, "replaces")
	mt.Set("active", jsontree.NewBool(false))
	addLink(mt, "Patient/"+mg.survivor, "replaced-by")
	for id, t := range map[string]*jsontree.Value{mg.survivor: st, mg.merged: mt} {
		w, err := store.Prepare(s.Validate, s.Base, "Patient", id, t)
		if err != nil {
			return err
		}
		if _, _, err := tx.Update(ctx, w, 0); err != nil {
			return err
		}
	}
	return nil
}

func addLink(p *jsontree.Value, ref, typ string) {
	links := p.Get("link")
	if links == nil {
		links = jsontree.NewArray()
	}
	for _, l := range links.Items {
		if o := l.Get("other"); o != nil && o.GetString("reference") == ref && l.GetString("type") == typ {
			return
		}
	}
	other := jsontree.NewObject()
	other.Set("reference", jsontree.NewString(ref))
	l := jsontree.NewObject()
	l.Set("other", other)
	l.Set("type", jsontree.NewString(typ))
	links.Items = append(links.Items, l)
	p.Set("link", links)
}

// recordError keeps a message that was not applied (sealed with the master key when there is one).
func (s *Server) recordError(ctx context.Context, remote string, h Header, code, reason string, raw []byte) {
	if s.Pool == nil {
		return
	}
	body := raw
	if s.Keys != nil {
		var buf bytes.Buffer
		w := billycrypto.NewWriter(&buf, s.Keys)
		_, _ = w.Write(raw)
		if err := w.Close(); err == nil {
			body = buf.Bytes()
		}
	}
	var ctrl, typ *string
	if h.ControlID != "" {
		ctrl = &h.ControlID
	}
	if h.Type != "" {
		t := h.Type + "^" + h.Event
		typ = &t
	}
	if _, err := s.Pool.Exec(context.WithoutCancel(ctx), `INSERT INTO hl7_errors (received_at, remote_addr, control_id, type, code, reason, message) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		s.now(), remote, ctrl, typ, code, reason, body); err != nil {
		s.logWarn("hl7: the rejected message could not be kept", "error", err.Error())
	}
}
