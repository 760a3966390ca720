package kb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/pipeline/codes"
)

// CodeSource returns the source URI under which the codes of system/version are indexed.
func CodeSource(system, version string) string { return "codes:" + system + "@" + version }

// IndexCodes indexes the billable codes of the current version of each of systems (all of
// codes.Systems when none is given) for retrieval: one chunk per code, embedding the code, its
// description, its short description and the synonyms of codes.Synonyms. A system version already
// indexed with the same content is skipped; a system never imported is skipped too.
func (k *KB) IndexCodes(ctx context.Context, store *codes.Store, progress ProgressFunc, systems ...string) (IngestStats, error) {
	started := time.Now()
	if len(systems) == 0 {
		systems = codes.Systems
	}
	var st IngestStats
	for _, sys := range systems {
		version, err := store.CurrentVersion(ctx, sys)
		if errors.Is(err, codes.ErrNotFound) {
			st.Skipped = append(st.Skipped, sys+": not imported")
			continue
		}
		if err != nil {
			return st, fmt.Errorf("kb index codes: %w", err)
		}
		var docs []chunkDoc
		h := sha256.New()
		err = store.Each(ctx, sys, func(c codes.Code) error {
			if !c.Billable {
				return nil
			}
			docs = append(docs, codeChunk(c))
			fmt.Fprintf(h, "%s\t%s\t%s\n", c.Code, c.Display, c.ShortDisplay)
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("kb index codes: %w", err)
		}
		// The synonyms table is part of what is embedded: a change to it re-indexes.
		for _, d := range docs {
			if syn := codes.Synonyms[d.code]; len(syn) > 0 && sys == codes.ICD10CM {
				fmt.Fprintf(h, "%s=%s\n", d.code, strings.Join(syn, "|"))
			}
		}
		hash := hex.EncodeToString(h.Sum(nil))
		uri := CodeSource(sys, version)
		var existing string
		err = k.db.QueryRow(ctx, `SELECT sha256 FROM kb_sources WHERE uri = $1::text AND embedder = $2::text`, uri, k.embID).Scan(&existing)
		if err == nil && existing == hash {
			st.Skipped = append(st.Skipped, uri+": unchanged")
			continue
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return st, fmt.Errorf("kb index codes: %w", err)
		}
		// Older versions of the same system leave the index.
		if _, err := k.db.Exec(ctx, `DELETE FROM kb_sources WHERE kind = 'code' AND embedder = $1::text
			AND uri LIKE $2::text AND uri <> $3::text`, k.embID, "codes:"+sys+"@%", uri); err != nil {
			return st, fmt.Errorf("kb index codes: %w", err)
		}
		title := fmt.Sprintf("%s %s", sys, version)
		if err := k.storeSource(ctx, KindCode, uri, title, hash, docs, func(done int, stage string) {
			if progress != nil {
				progress(Progress{Stage: stage, File: uri, Done: done, Total: len(docs)})
			}
		}); err != nil {
			return st, fmt.Errorf("kb index codes: %w", err)
		}
		st.Files++
		st.Chunks += len(docs)
	}
	// Deleting older versions above bypassed applyIngest: make an exact index consistent.
	if st.Files > 0 && k.mode == ModeExact {
		if err := k.reload(ctx); err != nil {
			return st, fmt.Errorf("kb index codes: %w", err)
		}
	}
	st.Elapsed = time.Since(started)
	k.log.Info("kb: codes indexed", "systems", st.Files, "chunks", st.Chunks, "elapsed", st.Elapsed)
	return st, nil
}

// codeChunk is what the knowledge base stores for one code.
func codeChunk(c codes.Code) chunkDoc {
	var b strings.Builder
	b.WriteString(c.Code)
	b.WriteString(" ")
	b.WriteString(c.Display)
	if c.ShortDisplay != "" && !strings.EqualFold(c.ShortDisplay, c.Display) {
		b.WriteString(". ")
		b.WriteString(c.ShortDisplay)
	}
	if syn := codes.Synonyms[c.Code]; len(syn) > 0 && c.System == codes.ICD10CM {
		b.WriteString(". Also: ")
		b.WriteString(strings.Join(syn, "; "))
	}
	return chunkDoc{kind: KindCode, system: c.System, code: c.Code, text: c.Display, embedText: b.String()}
}
