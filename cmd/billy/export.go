package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir/bulk"
	"github.com/iambilly/billy/pipeline"
	"github.com/iambilly/billy/smart"
)

// Bulk Data exports (fhir/bulk) run as jobs of the pipeline's worker: queued through its outbox
// (so a kick-off's job is queued exactly when its row commits) and delivered by asynq. fhir/bulk
// knows neither: it declares the Queue it needs and this file plugs the pipeline in.

// taskExport is the asynq task type of an export job.
const taskExport = "bulk:export"

// exportMaintenance is how often every process deletes expired exports and queues again those
// whose worker died.
const exportMaintenance = 5 * time.Second

type exportPayload struct {
	Export string `json:"export"`
}

// exportQueue queues export jobs in the pipeline's outbox.
type exportQueue struct{}

var _ bulk.Queue = exportQueue{}

func (exportQueue) Enqueue(ctx context.Context, tx pgx.Tx, id, dedupeKey string) error {
	return pipeline.Enqueue(ctx, tx, taskExport, exportPayload{Export: id}, dedupeKey)
}

// newExports wires the export service, when there is a blob store to keep its files in.
func (a *app) newExports() *bulk.Service {
	if a.blobs == nil {
		return nil
	}
	return bulk.New(bulk.Config{Pool: a.pool, Store: a.store, Blobs: a.blobs, Queue: exportQueue{}, Base: a.cfg.FHIRBase(),
		Expiry: a.cfg.ExportExpiry, FileResources: a.cfg.ExportFileResources, Log: a.log})
}

// runExport is the worker's handler of export jobs. A job still failing on its last attempt is
// marked failed, so that its status says why instead of staying in progress.
func (a *app) runExport(ctx context.Context, payload []byte) error {
	var p exportPayload
	if err := json.Unmarshal(payload, &p); err != nil || p.Export == "" {
		return fmt.Errorf("export job payload %q: %w", payload, asynq.SkipRetry)
	}
	err := a.exports.Run(ctx, p.Export)
	if err == nil || ctx.Err() != nil {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if retried >= maxRetry {
		return a.exports.Fail(context.WithoutCancel(ctx), p.Export, err)
	}
	return err
}

// requester names the principal of a SMART request for binding exports to it: the issuer and
// client, and the user (subject) and launch patient when there are, so that neither another client
// nor another user or patient of the same client reaches them.
func requester(ctx context.Context) string {
	p := smart.PrincipalFrom(ctx)
	if p == nil {
		return ""
	}
	b, _ := json.Marshal([]string{p.Issuer, p.ClientID, p.Subject, p.Patient})
	return string(b)
}
