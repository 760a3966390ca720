package pipeline

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
)

// EvidenceURL is the extension on Claim.diagnosis and Claim.item that quotes the transcript.
const EvidenceURL = Canonical + "/StructureDefinition/evidence"

// ConfidenceURL is the extension on Claim.diagnosis and Claim.item that carries the coder's
// confidence in the code, from 0 to 1.
const ConfidenceURL = Canonical + "/StructureDefinition/coder-confidence"

//go:embed definitions/*.json
var definitions embed.FS

// InstallDefinitions stores Billy's own conformance resources (the evidence extension's
// StructureDefinition, the OperationDefinitions of its operations) under their fixed ids, so every
// server serves what its Claims and CapabilityStatement point at. A definition already stored with
// the same content is left alone; concurrent start-ups are serialised.
func (p *Pipeline) InstallDefinitions(ctx context.Context) error {
	files, err := definitions.ReadDir("definitions")
	if err != nil {
		return err
	}
	return p.Store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Lock(ctx, "billy-definitions"); err != nil {
			return err
		}
		for _, f := range files {
			raw, err := definitions.ReadFile(path.Join("definitions", f.Name()))
			if err != nil {
				return err
			}
			tree, err := jsontree.Parse(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", f.Name(), err)
			}
			typ, id := resource.Type(tree), tree.GetString("id")
			want := tree.Marshal()
			if cur, err := tx.Read(ctx, typ, id); err == nil && !cur.Deleted() {
				if t, err := jsontree.Parse(cur.Content); err == nil {
					resource.StripServerMeta(t)
					if bytes.Equal(t.Marshal(), want) {
						continue
					}
				}
			} else if err != nil && !errors.Is(err, fhir.ErrNotFound) {
				return err
			}
			w, err := store.Prepare(p.Validate, p.Base, typ, id, tree)
			if err != nil {
				return fmt.Errorf("%s: %w", strings.TrimSuffix(f.Name(), ".json"), err)
			}
			if _, _, err := tx.Update(ctx, w, 0); err != nil {
				return err
			}
		}
		return nil
	})
}
