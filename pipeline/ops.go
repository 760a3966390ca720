package pipeline

import (
	"context"
	"net/http"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/fhir/store"
)

// Canonical is the base of the canonical URLs of Billy's own definitions (extensions, operations).
// It does not depend on where a server runs; the definitions are also served by every Billy.
const Canonical = "https://iambilly.github.io/billy/fhir"

// Operations are the FHIR operations the pipeline serves, for rest.Config.Operations.
func (p *Pipeline) Operations() []*rest.Operation {
	return append(p.codeSystemOperations(), p.expandOperation(), &rest.Operation{
		Name: "transcribe", Types: []string{"Media"}, InstanceLevel: true,
		Definition: Canonical + "/OperationDefinition/Media-transcribe",
		// Starting a run acts on the Media like an update would.
		Perm: rest.PermUpdate,
		Run:  p.transcribeOp,
	})
}

// transcribeOp is POST Media/{id}/$transcribe: it starts a transcription run and answers its Task
// (201 with the Task's Location). While a run of the Media is still queued or working, it answers
// that run's Task (200) instead of starting a second one.
func (p *Pipeline) transcribeOp(ctx context.Context, in rest.OperationInput) (*rest.OperationResult, error) {
	var res *rest.OperationResult
	err := p.Store.InTx(ctx, func(tx *store.Tx) error {
		// Lock the Media: two concurrent $transcribe calls start one run.
		v, err := tx.ReadForUpdate(ctx, "Media", in.ID, 0)
		if err != nil {
			return err
		}
		media, err := jsontree.Parse(v.Content)
		if err != nil {
			return err
		}
		if !transcribable(media) {
			return fhir.Errorf(fhir.ErrUnprocessable, "business-rule",
				"Media/%s cannot be transcribed: it needs status completed and audio content in a Binary (content.url Binary/..., content.contentType audio/*)", in.ID)
		}
		runs, err := p.runsFor(ctx, tx, "Media/"+in.ID, "transcribe")
		if err != nil {
			return err
		}
		for _, id := range runs {
			r, err := tx.Read(ctx, "Task", id)
			if err != nil {
				return err
			}
			t, err := jsontree.Parse(r.Content)
			if err != nil {
				return err
			}
			if s := t.GetString("status"); s == "requested" || s == "in-progress" {
				res = &rest.OperationResult{Status: http.StatusOK, Body: r.Content}
				return nil
			}
		}
		id, err := p.StartRun(ctx, tx, "transcribe", "Media/"+in.ID, media)
		if err != nil {
			return err
		}
		t, err := tx.Read(ctx, "Task", id)
		if err != nil {
			return err
		}
		res = &rest.OperationResult{Status: http.StatusCreated, Body: t.Content, Location: "Task/" + id + "/_history/1"}
		return nil
	})
	return res, err
}
