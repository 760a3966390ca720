package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/blob"
	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/stt"
)

// Stage task types (asynq task names).
const (
	TaskTranscribe = "pipeline:transcribe"
	TaskCode       = "pipeline:code"
)

// Identifier systems of what the pipeline writes.
const (
	runSystem    = "urn:billy:run"    // Task.identifier: the run
	engineSystem = "urn:billy:engine" // Device.identifier: an engine and model
	stageSystem  = "urn:billy:pipeline"
)

// stagePayload is the payload of every stage task: the run.
type stagePayload struct {
	Task string `json:"task"` // Task id
}

// Pipeline runs the stages.
type Pipeline struct {
	Store    *store.Store
	Pool     *pgxpool.Pool
	Validate store.Validate
	Base     string // FHIR base URL
	Blobs    blob.Store
	// STT transcribes; nil when none is configured (runs then fail, saying what to configure).
	STT    stt.Engine
	STTErr error // why STT is nil
	// NewCoder builds the coder over the imported code sets (again after an import changes them);
	// Coder, when set, is used instead (tests). Codes are the code sets.
	NewCoder func(ctx context.Context, set *codes.Set) (coder.Coder, error)
	Coder    coder.Coder
	Codes    *codes.Store
	coders   coderCache
	Log      *slog.Logger
	Now      func() time.Time
	// Jobs are other packages' jobs the worker runs, by task type (Bulk Data exports): enqueued
	// with Enqueue, delivered like the stages, their outbox rows marked done the same way. The
	// handler gets the payload; an error is retried like a stage's.
	Jobs map[string]func(ctx context.Context, payload []byte) error
	// Audit, when set, records every stage attempt in the audit trail (audit.go).
	Audit Auditor
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Hook starts runs from writes: a completed audio Media starts a transcription run, a text
// transcript DocumentReference that the pipeline did not write itself starts a coding run. A
// DocumentReference that cannot start one gets a warning saying why (codingProblem), which the
// HTTP edge passes on to the EMR that wrote it.
type Hook struct{ P *Pipeline }

var _ store.WriteHook = Hook{}

// AfterWrite is called inside the writing transaction.
func (h Hook) AfterWrite(ctx context.Context, tx *store.Tx, c store.Change) ([]fhir.Issue, error) {
	if c.Content == nil {
		return nil, nil
	}
	switch c.Type {
	case "Media":
		tree, err := jsontree.Parse(c.Content)
		if err != nil {
			return nil, err
		}
		if !transcribable(tree) {
			return nil, nil
		}
		// One run per Media unless one is asked for ($transcribe): an update of the Media's other
		// fields does not start another.
		existing, err := h.P.runsFor(ctx, tx, "Media/"+c.ID, "transcribe")
		if err != nil || len(existing) > 0 {
			return nil, err
		}
		_, err = h.P.StartRun(ctx, tx, "transcribe", "Media/"+c.ID, tree)
		return nil, err
	case "DocumentReference":
		tree, err := jsontree.Parse(c.Content)
		if err != nil {
			return nil, err
		}
		// The pipeline's own transcripts start their coding run themselves.
		if hasIdentifier(tree, runSystem) {
			return nil, nil
		}
		if problem := codingProblem(tree); problem != nil {
			return []fhir.Issue{*problem}, nil
		}
		existing, err := h.P.runsFor(ctx, tx, "DocumentReference/"+c.ID, "code")
		if err != nil || len(existing) > 0 {
			return nil, err
		}
		_, err = h.P.StartRun(ctx, tx, "code", "DocumentReference/"+c.ID, tree)
		return nil, err
	case "Coverage":
		tree, err := jsontree.Parse(c.Content)
		if err != nil {
			return nil, err
		}
		patient := tree.Get("beneficiary").GetString("reference")
		if tree.GetString("status") != "active" || !strings.HasPrefix(patient, "Patient/") {
			return nil, nil
		}
		return nil, h.P.resumeAwaitingCoverage(ctx, tx, patient)
	}
	return nil, nil
}

// codingProblem says why a DocumentReference cannot start a coding run, or nil when it can: a
// current document about a Patient with a text/plain attachment that has text, inline or in a
// Binary. The coding stage reads the transcript the same way (transcriptText).
func codingProblem(d *jsontree.Value) *fhir.Issue {
	warn := func(code, expr, format string, args ...any) *fhir.Issue {
		return &fhir.Issue{Severity: fhir.SeverityWarning, Code: code, Expression: []string{expr},
			Diagnostics: "no coding run started: " + fmt.Sprintf(format, args...)}
	}
	if s := d.GetString("status"); s != "current" {
		return warn("business-rule", "DocumentReference.status", "only a current DocumentReference is coded (status is %q)", s)
	}
	if !strings.HasPrefix(d.Get("subject").GetString("reference"), "Patient/") {
		return warn("required", "DocumentReference.subject", "a transcript needs a Patient subject (Patient/{id}), the patient of the Claim")
	}
	var types []string
	var textProblem *fhir.Issue // of the first text/plain attachment without text
	for i, c := range items(d.Get("content")) {
		a := c.Get("attachment")
		ct := a.GetString("contentType")
		if ct == "" {
			continue
		}
		if !strings.HasPrefix(ct, "text/plain") {
			types = append(types, ct)
			continue
		}
		at := fmt.Sprintf("DocumentReference.content[%d].attachment", i)
		var p *fhir.Issue
		if data, ok := attachmentData(a); ok {
			if strings.TrimSpace(data) != "" {
				return nil
			}
			p = warn("value", at+".data", "the text/plain transcript is empty")
		} else if u := a.GetString("url"); strings.HasPrefix(u, "Binary/") {
			return nil
		} else if u != "" {
			p = warn("not-supported", at+".url", "the text/plain attachment's url %q is not a Binary of this server (Binary/{id}); send the text as data or upload it as a Binary", u)
		} else {
			p = warn("required", at, "the text/plain attachment has no text: give it data (base64) or a url Binary/{id}")
		}
		if textProblem == nil {
			textProblem = p
		}
	}
	if textProblem != nil {
		return textProblem
	}
	if len(types) > 0 {
		return warn("not-supported", "DocumentReference.content.attachment.contentType",
			"only text/plain transcripts are coded; this DocumentReference has %s", strings.Join(types, ", "))
	}
	return warn("required", "DocumentReference.content.attachment.contentType",
		"no attachment has a contentType; a transcript is an attachment with contentType text/plain")
}

// attachmentData decodes an attachment's inline data, when it has some.
func attachmentData(a *jsontree.Value) (string, bool) {
	s := a.GetString("data")
	if s == "" {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func hasIdentifier(t *jsontree.Value, system string) bool {
	for _, id := range items(t.Get("identifier")) {
		if id.GetString("system") == system {
			return true
		}
	}
	return false
}

// resumeAwaitingCoverage enqueues again the coding runs of a patient that wait for a Coverage. It
// holds the patient's coverage lock, as the coding stage does when it decides to wait.
func (p *Pipeline) resumeAwaitingCoverage(ctx context.Context, tx *store.Tx, patient string) error {
	if err := tx.Lock(ctx, "coverage:"+patient); err != nil {
		return err
	}
	runs, err := p.match(ctx, tx, "Task", url.Values{"subject": {patient}, "status": {"on-hold"}, "code": {stageSystem + "|code"}}, 100)
	if err != nil {
		return err
	}
	for _, r := range runs {
		id := strings.TrimPrefix(r, "Task/")
		if err := enqueue(ctx, tx.PgTx(), TaskCode, stagePayload{Task: id}, "code:"+id); err != nil {
			return err
		}
	}
	return nil
}

// transcribable reports whether a Media is finished audio with its content in a Binary.
func transcribable(m *jsontree.Value) bool {
	if m.GetString("status") != "completed" {
		return false
	}
	content := m.Get("content")
	if content == nil || !strings.HasPrefix(content.GetString("url"), "Binary/") {
		return false
	}
	if strings.HasPrefix(content.GetString("contentType"), "audio/") {
		return true
	}
	if t := m.Get("type"); t != nil {
		for _, c := range items(t.Get("coding")) {
			if c.GetString("code") == "audio" {
				return true
			}
		}
	}
	return false
}

func items(v *jsontree.Value) []*jsontree.Value {
	if v == nil || v.Kind != jsontree.Array {
		return nil
	}
	return v.Items
}

// runsFor lists the Task ids of the runs of a stage kind focused on a resource.
func (p *Pipeline) runsFor(ctx context.Context, tx *store.Tx, focus, kind string) ([]string, error) {
	refs, err := p.match(ctx, tx, "Task", url.Values{"focus": {focus}, "code": {stageSystem + "|" + kind}}, 10)
	for i, r := range refs {
		refs[i] = strings.TrimPrefix(r, "Task/")
	}
	return refs, err
}

// searchQuery parses the criteria of a search the pipeline runs (strict: a typo is a bug, not a
// wider match).
func searchQuery(typ string, params url.Values, base string) (*search.Query, error) {
	return search.Parse([]string{typ}, params, search.Options{Strict: true, Base: base})
}

var stageText = map[string]string{
	"transcribe": "Transcribe encounter audio",
	"code":       "Code the encounter transcript into a draft Claim",
}

// StartRun creates the Task of a run and enqueues its first stage, in tx. focus is the Media (or
// DocumentReference) it works on, whose subject and encounter the Task records.
func (p *Pipeline) StartRun(ctx context.Context, tx *store.Tx, kind, focus string, focusTree *jsontree.Value) (string, error) {
	id := resource.NewID()
	task := map[string]any{
		"resourceType":   "Task",
		"identifier":     []any{map[string]any{"system": runSystem, "value": id}},
		"status":         "requested",
		"intent":         "order",
		"code":           map[string]any{"coding": []any{map[string]any{"system": stageSystem, "code": kind}}, "text": stageText[kind]},
		"focus":          map[string]any{"reference": focus},
		"authoredOn":     resource.FormatInstant(p.now()),
		"lastModified":   resource.FormatInstant(p.now()),
		"businessStatus": map[string]any{"text": "queued"},
	}
	if s := focusTree.Get("subject"); s != nil && s.GetString("reference") != "" {
		task["for"] = map[string]any{"reference": s.GetString("reference")}
	}
	if e := encounterOf(focusTree); e != "" {
		task["encounter"] = map[string]any{"reference": e}
	}
	if _, err := p.create(ctx, tx, "Task", id, task); err != nil {
		return "", fmt.Errorf("run task: %w", err)
	}
	taskType := TaskTranscribe
	if kind == "code" {
		taskType = TaskCode
	}
	if err := enqueue(ctx, tx.PgTx(), taskType, stagePayload{Task: id}, kind+":"+id); err != nil {
		return "", err
	}
	return id, nil
}

// encounterOf finds the encounter of a Media (encounter) or DocumentReference (context.encounter).
func encounterOf(t *jsontree.Value) string {
	if e := t.Get("encounter"); e != nil {
		return e.GetString("reference")
	}
	if c := t.Get("context"); c != nil {
		for _, e := range items(c.Get("encounter")) {
			return e.GetString("reference")
		}
	}
	return ""
}

// create stores a new resource built by the pipeline, validated and indexed like any other.
func (p *Pipeline) create(ctx context.Context, tx *store.Tx, typ, id string, v map[string]any) (*store.Version, error) {
	w, err := p.prepare(typ, id, v)
	if err != nil {
		return nil, err
	}
	vs, err := tx.Create(ctx, []*store.Write{w})
	if err != nil {
		return nil, err
	}
	return vs[0], nil
}

// put stores a resource under a given id (creating or replacing it).
func (p *Pipeline) put(ctx context.Context, tx *store.Tx, typ, id string, v map[string]any, ifMatch int) (*store.Version, error) {
	w, err := p.prepare(typ, id, v)
	if err != nil {
		return nil, err
	}
	ver, _, err := tx.Update(ctx, w, ifMatch)
	return ver, err
}

func (p *Pipeline) prepare(typ, id string, v map[string]any) (*store.Write, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	tree, err := jsontree.Parse(raw)
	if err != nil {
		return nil, err
	}
	return store.Prepare(p.Validate, p.Base, typ, id, tree)
}

// run is a locked Task and what it is about.
type run struct {
	id      string
	version *store.Version
	task    map[string]any
	focus   string
	subject string
	encount string
}

// lockRun locks a run's Task for the stage's transaction.
func (p *Pipeline) lockRun(ctx context.Context, tx *store.Tx, id string) (*run, error) {
	v, err := tx.ReadForUpdate(ctx, "Task", id, 0)
	if err != nil {
		return nil, err
	}
	var task map[string]any
	if err := json.Unmarshal(v.Content, &task); err != nil {
		return nil, err
	}
	r := &run{id: id, version: v, task: task}
	r.focus = refOf(task["focus"])
	r.subject = refOf(task["for"])
	r.encount = refOf(task["encounter"])
	return r, nil
}

func refOf(v any) string {
	if m, ok := v.(map[string]any); ok {
		s, _ := m["reference"].(string)
		return s
	}
	return ""
}

// finished reports whether the run's Task is in a final state.
func (r *run) finished() bool {
	switch r.task["status"] {
	case "completed", "failed", "cancelled", "rejected":
		return true
	}
	return false
}

// setStatus updates the run's Task: status, business status (the stage), and for failures the
// reason. Server meta is stripped by Prepare.
func (p *Pipeline) setStatus(ctx context.Context, tx *store.Tx, r *run, status, business, reason string) error {
	r.task["status"] = status
	r.task["businessStatus"] = map[string]any{"text": business}
	r.task["lastModified"] = resource.FormatInstant(p.now())
	if reason != "" {
		r.task["statusReason"] = map[string]any{"text": truncate(reason, 1000)}
	} else {
		delete(r.task, "statusReason")
	}
	v, err := p.put(ctx, tx, "Task", r.id, r.task, r.version.Version)
	if err == nil {
		r.version = v
	}
	return err
}

// addOutput records an output of the run on its Task.
func (r *run) addOutput(kind, ref string) {
	outs, _ := r.task["output"].([]any)
	for _, o := range outs {
		if m, ok := o.(map[string]any); ok && refOf(m["valueReference"]) == ref {
			return
		}
	}
	r.task["output"] = append(outs, map[string]any{
		"type":           map[string]any{"coding": []any{map[string]any{"system": stageSystem, "code": kind}}},
		"valueReference": map[string]any{"reference": ref},
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fail marks a run failed for good, with the reason, in its own transaction.
func (p *Pipeline) fail(ctx context.Context, taskID, stage string, cause error) error {
	err := p.Store.InTx(ctx, func(tx *store.Tx) error {
		r, err := p.lockRun(ctx, tx, taskID)
		if err != nil {
			return err
		}
		if r.finished() {
			return nil
		}
		return p.setStatus(ctx, tx, r, "failed", stage+" failed", cause.Error())
	})
	if err != nil {
		return err
	}
	return fmt.Errorf("%s: %w: %w", stage, cause, asynq.SkipRetry)
}

// isPermanent reports whether a stage error will recur on retry.
func isPermanent(err error) bool {
	return errors.Is(err, errPermanent) || errors.Is(err, coder.ErrMalformedAnswer) || errors.Is(err, stt.ErrPermanent) || errors.Is(err, stt.ErrNotConfigured) || errors.Is(err, stt.ErrNoWhisper) ||
		errors.Is(err, fhir.ErrNotFound) || errors.Is(err, fhir.ErrGone) || errors.Is(err, fhir.ErrInvalid)
}

// shortHash is a stable 16-hex-digit name for a string (Device ids of engines).
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}
