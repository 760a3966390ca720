package pipeline

import (
	"context"
	"errors"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/iambilly/billy/fhir/audit"
	"github.com/iambilly/billy/fhir/jsontree"
)

// Auditor records the pipeline's actions in the audit trail (audit.Log).
type Auditor interface {
	Record(ctx context.Context, evs ...*audit.Event) error
}

// PipelineAgent is the client id the pipeline's AuditEvents name: the worker acts as a system
// principal of its own, not for any user.
const PipelineAgent = "billy-pipeline"

// auditStage records one attempt of a stage (or job): what ran, on which run Task and for which
// patient, and whether it succeeded. A transient failure that will be retried is recorded too
// (outcome 4): each attempt read the patient's data. The event carries no error text: errors can
// quote the data they failed on.
func (p *Pipeline) auditStage(ctx context.Context, stage, taskID string, err error) {
	if p.Audit == nil {
		return
	}
	ev := &audit.Event{Kind: audit.KindPipeline, Subtype: stage, Action: audit.ActionExecute, Outcome: audit.OutcomeSuccess,
		Agent: audit.Agent{ClientID: PipelineAgent}}
	if err != nil {
		ev.Outcome, ev.OutcomeDesc = audit.OutcomeMinor, "failed; will be retried"
		if errors.Is(err, asynq.SkipRetry) {
			ev.OutcomeDesc = "failed for good"
		}
	}
	if taskID != "" {
		ev.Entities = append(ev.Entities, audit.Entity{Type: "Task", ID: taskID})
		if v, rerr := p.Store.Read(ctx, "Task", taskID); rerr == nil && !v.Deleted() {
			if t, perr := jsontree.Parse(v.Content); perr == nil {
				for _, key := range []string{"focus", "for"} {
					if ref := t.Get(key); ref != nil {
						typ, id, ok := strings.Cut(ref.GetString("reference"), "/")
						if ok {
							ev.Entities = append(ev.Entities, audit.Entity{Type: typ, ID: id})
						}
					}
				}
				for _, o := range items(t.Get("output")) {
					if typ, id, ok := strings.Cut(o.Get("valueReference").GetString("reference"), "/"); ok {
						ev.Entities = append(ev.Entities, audit.Entity{Type: typ, ID: id})
					}
				}
			}
			audit.PatientsIn("Task", taskID, v.Content, p.Base, ev.AddPatient)
		}
	}
	if aerr := p.Audit.Record(context.WithoutCancel(ctx), ev); aerr != nil {
		p.Log.ErrorContext(ctx, "pipeline: audit event not stored", "stage", stage, "error", aerr.Error())
	}
}
