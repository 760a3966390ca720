package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/pipeline/audio"
	"github.com/iambilly/billy/pipeline/stt"
)

// handleTranscribe is the transcription stage: the Media's audio, decoded to 16 kHz mono and
// transcribed, becomes a DocumentReference (text and segment timings), with a Provenance and the
// engine as a Device; the Task completes with the DocumentReference as output and the coding stage
// is enqueued, all in one transaction.
func (p *Pipeline) handleTranscribe(ctx context.Context, t *asynq.Task) error {
	var pl stagePayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil {
		return fmt.Errorf("payload: %v: %w", err, asynq.SkipRetry)
	}
	// Look at the run; mark it in progress (its own short transaction).
	var media *jsontree.Value
	var mediaRef string
	done := false
	err := p.Store.InTx(ctx, func(tx *store.Tx) error {
		r, err := p.lockRun(ctx, tx, pl.Task)
		if err != nil {
			return err
		}
		if r.finished() {
			done = true
			return nil
		}
		mediaRef = r.focus
		typ, id, ok := resource.ParseReference(mediaRef)
		if !ok || typ != "Media" {
			return fhir.Errorf(fhir.ErrInvalid, "invalid", "the run's focus %q is not a Media", mediaRef)
		}
		v, err := tx.Read(ctx, "Media", id)
		if err != nil {
			return err
		}
		if v.Deleted() {
			return fhir.Errorf(fhir.ErrGone, "deleted", "Media/%s was deleted", id)
		}
		if media, err = jsontree.Parse(v.Content); err != nil {
			return err
		}
		return p.setStatus(ctx, tx, r, "in-progress", "transcribing", "")
	})
	if done {
		return nil
	}
	if err != nil {
		if isPermanent(err) {
			return p.fail(ctx, pl.Task, "transcription", err)
		}
		return err
	}
	if p.STT == nil {
		return p.fail(ctx, pl.Task, "transcription", p.STTErr)
	}
	pcm, err := p.decodeMedia(ctx, media)
	if err != nil {
		var de *audio.DecodeError
		if errors.As(err, &de) || isPermanent(err) {
			return p.fail(ctx, pl.Task, "transcription", err)
		}
		return err
	}
	tr, err := p.STT.Transcribe(ctx, pcm)
	if err != nil {
		if isPermanent(err) {
			return p.fail(ctx, pl.Task, "transcription", err)
		}
		return err // transient: asynq retries with backoff
	}
	return p.Store.InTx(ctx, func(tx *store.Tx) error {
		r, err := p.lockRun(ctx, tx, pl.Task)
		if err != nil {
			return err
		}
		if r.finished() {
			return nil // another delivery finished it meanwhile
		}
		doc, err := p.recordTranscript(ctx, tx, r, media, mediaRef, tr, pcm.Duration().Seconds())
		if err != nil {
			return err
		}
		r.addOutput("transcript", doc)
		if err := p.setStatus(ctx, tx, r, "completed", "transcribed", ""); err != nil {
			return err
		}
		// Part 2 codes the transcript; its run is the next Task.
		_, err = p.StartRun(ctx, tx, "code", doc, mustParse(map[string]any{"subject": map[string]any{"reference": r.subject},
			"context": map[string]any{"encounter": []any{map[string]any{"reference": r.encount}}}}))
		return err
	})
}

func mustParse(v map[string]any) *jsontree.Value {
	b, _ := json.Marshal(v)
	t, _ := jsontree.Parse(b)
	return t
}

// decodeMedia opens the Media's Binary and decodes it.
func (p *Pipeline) decodeMedia(ctx context.Context, media *jsontree.Value) (*audio.PCM, error) {
	content := media.Get("content")
	_, binID, ok := resource.ParseReference(content.GetString("url"))
	if !ok {
		return nil, fhir.Errorf(fhir.ErrInvalid, "invalid", "Media.content.url %q is not a Binary reference", content.GetString("url"))
	}
	bv, err := p.Store.Read(ctx, "Binary", binID)
	if err != nil {
		return nil, err
	}
	if bv.Deleted() {
		return nil, fhir.Errorf(fhir.ErrGone, "deleted", "Binary/%s was deleted", binID)
	}
	b, err := p.Store.BlobOf(ctx, bv)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fhir.Errorf(fhir.ErrInvalid, "invalid", "Binary/%s has no content", binID)
	}
	if p.Blobs == nil {
		return nil, fmt.Errorf("%w: the worker cannot read audio without BILLY_MASTER_KEY", errPermanent)
	}
	obj, err := p.Blobs.Open(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	ct := content.GetString("contentType")
	if bt, err := jsontree.Parse(bv.Content); err == nil && bt.GetString("contentType") != "" {
		ct = bt.GetString("contentType")
	}
	return audio.Decode(ctx, obj, ct)
}

// recordTranscript writes the DocumentReference, the engine's Device and the Provenance of a run.
// Their ids derive from the run, so a repeated stage finds them instead of adding more.
func (p *Pipeline) recordTranscript(ctx context.Context, tx *store.Tx, r *run, media *jsontree.Value, mediaRef string, tr *stt.Transcript, seconds float64) (string, error) {
	info := p.STT.Info()
	device, err := p.engineDevice(ctx, tx, "speech-to-text", engineInfo{Name: info.Name, Version: info.Version, Model: info.Model})
	if err != nil {
		return "", err
	}
	docID := r.id
	if _, err := tx.Read(ctx, "DocumentReference", docID); err == nil {
		return "DocumentReference/" + docID, nil
	} else if !errors.Is(err, fhir.ErrNotFound) {
		return "", err
	}
	segments, err := json.Marshal(map[string]any{"duration": seconds, "language": tr.Language, "segments": segmentsJSON(tr.Segments)})
	if err != nil {
		return "", err
	}
	text := tr.Text
	if strings.TrimSpace(text) == "" {
		text = "[no speech recognised]"
	}
	doc := map[string]any{
		"resourceType": "DocumentReference",
		"identifier":   []any{map[string]any{"system": runSystem, "value": r.id}},
		"status":       "current",
		"docStatus":    "preliminary",
		"type":         map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "34109-9", "display": "Note"}}, "text": "Encounter transcript"},
		"date":         resource.FormatInstant(p.now()),
		"author":       []any{map[string]any{"reference": device}},
		"description":  "Transcript of " + mediaRef + " by " + info.Name,
		"content": []any{
			map[string]any{"attachment": map[string]any{"contentType": "text/plain; charset=utf-8", "data": base64.StdEncoding.EncodeToString([]byte(text)), "title": "Transcript"}},
			map[string]any{"attachment": map[string]any{"contentType": "application/json", "data": base64.StdEncoding.EncodeToString(segments), "title": "Segment timings"}},
		},
		"context": map[string]any{"related": []any{map[string]any{"reference": mediaRef}}},
	}
	if r.subject != "" {
		doc["subject"] = map[string]any{"reference": r.subject}
	}
	if r.encount != "" {
		doc["context"].(map[string]any)["encounter"] = []any{map[string]any{"reference": r.encount}}
	}
	if _, err := p.create(ctx, tx, "DocumentReference", docID, doc); err != nil {
		return "", fmt.Errorf("transcript: %w", err)
	}
	prov := map[string]any{
		"resourceType": "Provenance",
		"target":       []any{map[string]any{"reference": "DocumentReference/" + docID}},
		"recorded":     resource.FormatInstant(p.now()),
		"activity":     map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE"}}},
		"agent": []any{map[string]any{
			"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "assembler"}}},
			"who":  map[string]any{"reference": device},
		}},
		"entity": []any{map[string]any{"role": "source", "what": map[string]any{"reference": mediaRef}}},
	}
	if _, err := p.create(ctx, tx, "Provenance", docID, prov); err != nil {
		return "", fmt.Errorf("provenance: %w", err)
	}
	return "DocumentReference/" + docID, nil
}

func segmentsJSON(ss []stt.Segment) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = map[string]any{"start": s.Start.Seconds(), "end": s.End.Seconds(), "text": s.Text}
	}
	return out
}

// engineInfo names an engine (speech-to-text, coder) and its model.
type engineInfo struct{ Name, Version, Model string }

// engineDevice finds or creates the Device describing an engine and model (one per combination).
func (p *Pipeline) engineDevice(ctx context.Context, tx *store.Tx, role string, info engineInfo) (string, error) {
	key := role + "/" + info.Name + "/" + info.Model + "/" + info.Version
	id := "engine-" + shortHash(key)
	if _, err := tx.Read(ctx, "Device", id); err == nil {
		return "Device/" + id, nil
	} else if !errors.Is(err, fhir.ErrNotFound) {
		return "", err
	}
	dev := map[string]any{
		"resourceType": "Device",
		"identifier":   []any{map[string]any{"system": engineSystem, "value": key}},
		"status":       "active",
		"deviceName": []any{map[string]any{"name": "Billy " + role + ": " + info.Name, "type": "user-friendly-name"},
			map[string]any{"name": nonEmpty(info.Model, "no model"), "type": "model-name"}},
		"type": map[string]any{"text": "Billy " + role + " engine"},
	}
	if info.Model != "" {
		dev["modelNumber"] = info.Model
	}
	if info.Version != "" {
		dev["version"] = []any{map[string]any{"value": info.Version}}
	}
	if _, err := p.put(ctx, tx, "Device", id, dev, 0); err != nil {
		return "", fmt.Errorf("engine device: %w", err)
	}
	return "Device/" + id, nil
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
