package hl7v2

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/store"
)

// TaskDFT is the job that sends one Claim as a DFT^P03.
const TaskDFT = "hl7:dft"

// DFTPayload names the Claim to send.
type DFTPayload struct {
	Claim string `json:"claim"`
}

// EnqueueFunc records a job in the outbox in the caller's transaction (pipeline.Enqueue).
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, taskType string, payload any, dedupeKey string) error

// DFTHook queues a DFT^P03 when a Claim becomes active, once per Claim, in the writing transaction
// (store.WriteHook). It does nothing unless Enabled.
type DFTHook struct {
	Enabled bool
	Enqueue EnqueueFunc
}

var _ store.WriteHook = DFTHook{}

// AfterWrite is called inside the writing transaction.
func (h DFTHook) AfterWrite(ctx context.Context, tx *store.Tx, c store.Change) ([]fhir.Issue, error) {
	if !h.Enabled || h.Enqueue == nil || c.Type != "Claim" || c.Content == nil {
		return nil, nil
	}
	t, err := jsontree.Parse(c.Content)
	if err != nil {
		return nil, err
	}
	if t.GetString("status") != "active" {
		return nil, nil
	}
	tag, err := tx.PgTx().Exec(ctx, `INSERT INTO hl7_dft (claim_id, queued_at, control_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		c.ID, tx.Now(), dftControlID(c.ID))
	if err != nil || tag.RowsAffected() == 0 {
		return nil, err
	}
	return nil, h.Enqueue(ctx, tx.PgTx(), TaskDFT, DFTPayload{Claim: c.ID}, "hl7-dft:"+c.ID)
}

// dftControlID is the same for every attempt at one Claim, so a receiver that saw a retried message
// treats it as the duplicate it is.
func dftControlID(claim string) string {
	sum := sha256.Sum256([]byte(claim))
	return "D" + hex.EncodeToString(sum[:])[:19]
}

// DFTSender sends DFT^P03 messages over MLLP.
type DFTSender struct {
	Store *store.Store
	Pool  *pgxpool.Pool
	// Addr is the receiver's host:port (BILLY_DFT_ADDR).
	Addr string
	// ReceivingApp and ReceivingFacility go into MSH-5 and MSH-6.
	ReceivingApp, ReceivingFacility string
	Timeout                         time.Duration
	Now                             func() time.Time
}

func (d *DFTSender) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Run is the job handler of TaskDFT.
func (d *DFTSender) Run(ctx context.Context, payload []byte) error {
	var p DFTPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Errorf("payload: %v: %w", err, asynq.SkipRetry)
	}
	return d.Send(ctx, p.Claim)
}

// Send sends the Claim's DFT^P03 unless it was acknowledged already. A network failure is returned
// for a retry; an AE or AR, or a Claim that cannot be expressed, is recorded and not retried.
func (d *DFTSender) Send(ctx context.Context, claimID string) error {
	var sent *time.Time
	var ctrl string
	var failed *string
	err := d.Pool.QueryRow(ctx, `SELECT sent_at, control_id, error FROM hl7_dft WHERE claim_id = $1`, claimID).Scan(&sent, &ctrl, &failed)
	if errors.Is(err, pgx.ErrNoRows) {
		ctrl = dftControlID(claimID)
		if _, err := d.Pool.Exec(ctx, `INSERT INTO hl7_dft (claim_id, queued_at, control_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, claimID, d.now(), ctrl); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if sent != nil || failed != nil {
		return nil
	}
	msg, err := d.Build(ctx, claimID, ctrl)
	if err != nil {
		return d.fail(ctx, claimID, err.Error())
	}
	if d.Addr == "" {
		return errors.New("no DFT receiver configured (BILLY_DFT_ADDR)")
	}
	ack, err := d.exchange(ctx, msg)
	if err != nil {
		return fmt.Errorf("dft %s: %w", claimID, err)
	}
	m, err := Parse(ack)
	if err != nil {
		return fmt.Errorf("dft %s: the acknowledgment is unreadable: %w", claimID, err)
	}
	code := m.Get(m.Seg("MSA"), 1, 0)
	switch code {
	case "AA", "CA":
		_, err := d.Pool.Exec(ctx, `UPDATE hl7_dft SET sent_at = $2 WHERE claim_id = $1`, claimID, d.now())
		return err
	case "AE", "AR", "CE", "CR":
		reason := code
		if e := m.Seg("ERR"); e != nil {
			reason += ": " + m.Get(e, 8, 0)
		}
		return d.fail(ctx, claimID, "the receiver answered "+reason)
	}
	return fmt.Errorf("dft %s: unexpected acknowledgment code %q", claimID, sanitize(code))
}

func (d *DFTSender) fail(ctx context.Context, claimID, reason string) error {
	if _, err := d.Pool.Exec(ctx, `UPDATE hl7_dft SET error = $2 WHERE claim_id = $1`, claimID, reason); err != nil {
		return err
	}
	return fmt.Errorf("dft %s: %s: %w", claimID, reason, asynq.SkipRetry)
}

func (d *DFTSender) exchange(ctx context.Context, msg []byte) ([]byte, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	dl := net.Dialer{Timeout: timeout}
	c, err := dl.DialContext(ctx, "tcp", d.Addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(Frame(msg)); err != nil {
		return nil, err
	}
	return ReadFrame(bufio.NewReader(c))
}

// Build writes the Claim's DFT^P03: PID of its patient, PV1 of its encounter when it has one, a DG1
// per diagnosis and an FT1 per line with the line's diagnosis codes (FT1-19) and procedure (FT1-25).
func (d *DFTSender) Build(ctx context.Context, claimID, ctrl string) ([]byte, error) {
	claim, err := d.read(ctx, "Claim", claimID)
	if err != nil {
		return nil, err
	}
	patRef := claim.Get("patient").GetString("reference")
	typ, pid, ok := strings.Cut(patRef, "/")
	if !ok || typ != "Patient" {
		return nil, errors.New("the Claim has no Patient")
	}
	pat, err := d.read(ctx, "Patient", pid)
	if err != nil {
		return nil, err
	}
	now := d.now().UTC()
	var b strings.Builder
	fmt.Fprintf(&b, "MSH|^~\\&|BILLY|BILLING|%s|%s|%s||DFT^P03^DFT_P03|%s|P|2.5.1\r", esc(d.ReceivingApp), esc(d.ReceivingFacility), now.Format("20060102150405-0700"), ctrl)
	fmt.Fprintf(&b, "EVN|P03|%s\r", now.Format("20060102150405-0700"))
	b.WriteString(pidSegment(pat, pid) + "\r")
	var encID string
	if items := claim.Get("item"); items != nil {
		for _, it := range items.Items {
			if e := firstReference(it.Get("encounter")); strings.HasPrefix(e, "Encounter/") {
				encID = strings.TrimPrefix(e, "Encounter/")
				break
			}
		}
	}
	if encID != "" {
		if enc, err := d.read(ctx, "Encounter", encID); err == nil {
			visit := encID
			if ids := enc.Get("identifier"); ids != nil && len(ids.Items) > 0 {
				visit = ids.Items[0].GetString("value")
			}
			class := map[string]string{"IMP": "I", "AMB": "O", "EMER": "E"}[enc.Get("class").GetString("code")]
			f := make([]string, 20)
			f[0], f[1], f[2], f[19] = "PV1", "1", nonEmpty(class, "O"), esc(visit)
			b.WriteString(strings.Join(f, "|") + "\r")
		}
	}
	dx := map[string]string{} // sequence → ICD-10-CM code
	if ds := claim.Get("diagnosis"); ds != nil {
		for i, dg := range ds.Items {
			code := firstCode(dg.Get("diagnosisCodeableConcept"))
			if code == "" {
				continue
			}
			seq := dg.Get("sequence")
			key := strconv.Itoa(i + 1)
			if seq != nil {
				key = seq.Str
			}
			dx[key] = code
			fmt.Fprintf(&b, "DG1|%d||%s^^I10||||F\r", i+1, esc(code))
		}
	}
	items := claim.Get("item")
	if items == nil || len(items.Items) == 0 {
		return nil, errors.New("the Claim has no line")
	}
	service := claim.GetString("created")
	for i, it := range items.Items {
		code := firstCode(it.Get("productOrService"))
		if code == "" {
			return nil, fmt.Errorf("line %d has no procedure code", i+1)
		}
		date := nonEmpty(it.GetString("servicedDate"), service)
		qty := "1"
		if q := it.Get("quantity"); q != nil && q.Get("value") != nil {
			qty = q.Get("value").Str
		}
		amount := ""
		if n := it.Get("net"); n != nil && n.Get("value") != nil {
			amount = n.Get("value").Str
		}
		var codes []string
		if seqs := it.Get("diagnosisSequence"); seqs != nil {
			for _, s := range seqs.Items {
				if c, ok := dx[s.Str]; ok {
					codes = append(codes, esc(c)+"^^I10")
				}
			}
		}
		f := make([]string, 26)
		f[0], f[1], f[2], f[4], f[6], f[7] = "FT1", strconv.Itoa(i+1), esc(claimID), strings.ReplaceAll(date, "-", ""), "CG", esc(code)+"^^C4"
		f[10], f[11], f[19], f[25] = qty, amount, strings.Join(codes, "~"), esc(code)+"^^C4"
		b.WriteString(strings.Join(f, "|") + "\r")
	}
	return []byte(b.String()), nil
}

func (d *DFTSender) read(ctx context.Context, typ, id string) (*jsontree.Value, error) {
	v, err := d.Store.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if v.Deleted() {
		return nil, fmt.Errorf("%s/%s is deleted", typ, id)
	}
	return jsontree.Parse(v.Content)
}

func pidSegment(pat *jsontree.Value, id string) string {
	value, authority := id, "BILLY"
	if ids := pat.Get("identifier"); ids != nil && len(ids.Items) > 0 {
		value = ids.Items[0].GetString("value")
		authority = strings.TrimPrefix(ids.Items[0].GetString("system"), "urn:billy:hl7:")
	}
	family, given := "", ""
	if ns := pat.Get("name"); ns != nil && len(ns.Items) > 0 {
		family = ns.Items[0].GetString("family")
		if g := ns.Items[0].Get("given"); g != nil && len(g.Items) > 0 {
			given = g.Items[0].Str
		}
	}
	sex := map[string]string{"male": "M", "female": "F", "other": "O", "unknown": "U"}[pat.GetString("gender")]
	f := make([]string, 9)
	f[0], f[1], f[3], f[5], f[7], f[8] = "PID", "1", esc(value)+"^^^"+esc(authority)+"^MR", esc(family)+"^"+esc(given), strings.ReplaceAll(pat.GetString("birthDate"), "-", ""), sex
	return strings.Join(f, "|")
}

func firstReference(v *jsontree.Value) string {
	if v == nil || v.Kind != jsontree.Array || len(v.Items) == 0 {
		return ""
	}
	return v.Items[0].GetString("reference")
}

func firstCode(cc *jsontree.Value) string {
	if cc == nil {
		return ""
	}
	if cs := cc.Get("coding"); cs != nil && len(cs.Items) > 0 {
		return cs.Items[0].GetString("code")
	}
	return ""
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
