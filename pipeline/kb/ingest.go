package kb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ledongthuc/pdf"

	"github.com/iambilly/billy/internal/pg"
)

// Progress reports ingest progress: Stage is "scan", "read", "embed" or "store"; Done of Total
// counts files (scan, read) or chunks (embed, store) of File.
type Progress struct {
	Stage string
	File  string
	Done  int
	Total int
}

// ProgressFunc receives progress reports, for a terminal progress bar.
type ProgressFunc func(Progress)

// IngestStats summarises an ingest.
type IngestStats struct {
	Files   int      // files stored (new or changed)
	Skipped []string // unchanged files, and files of unsupported types (with the reason)
	Chunks  int      // chunks stored
	Elapsed time.Duration
}

// ErrUnsupported reports a file type Ingest cannot read.
var ErrUnsupported = errors.New("unsupported document type")

// embedBatch is how many chunks are embedded per call.
const embedBatch = 256

// Ingest reads the documents at paths (files, or directories walked recursively) — PDF (.pdf),
// Markdown (.md, .markdown) and text (.txt, .text) — splits them into passages of about ChunkSize
// characters that keep their file and page, embeds them and stores them, one transaction per file. A
// file already stored with the same content (SHA-256) is skipped; a changed file replaces its old
// chunks. Files of other types are reported in IngestStats.Skipped.
func (k *KB) Ingest(ctx context.Context, paths []string, progress ProgressFunc) (IngestStats, error) {
	started := time.Now()
	report := func(p Progress) {
		if progress != nil {
			progress(p)
		}
	}
	var st IngestStats
	files, err := collect(paths)
	if err != nil {
		return st, fmt.Errorf("kb ingest: %w", err)
	}
	report(Progress{Stage: "scan", Done: len(files), Total: len(files)})
	for i, path := range files {
		report(Progress{Stage: "read", File: path, Done: i, Total: len(files)})
		stored, n, err := k.ingestFile(ctx, path, report)
		switch {
		case errors.Is(err, ErrUnsupported):
			st.Skipped = append(st.Skipped, path+": "+err.Error())
		case err != nil:
			return st, fmt.Errorf("kb ingest %s: %w", path, err)
		case !stored:
			st.Skipped = append(st.Skipped, path+": unchanged")
		default:
			st.Files++
			st.Chunks += n
		}
	}
	report(Progress{Stage: "read", Done: len(files), Total: len(files)})
	st.Elapsed = time.Since(started)
	k.log.Info("kb: ingest done", "files", st.Files, "chunks", st.Chunks, "skipped", len(st.Skipped), "elapsed", st.Elapsed)
	return st, nil
}

// collect expands directories into their files, sorted, without duplicates.
func collect(paths []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			if !seen[abs] {
				seen[abs] = true
				out = append(out, abs)
			}
			continue
		}
		err = filepath.WalkDir(abs, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != abs {
				return filepath.SkipDir
			}
			if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") && docType(path) != "" && !seen[path] {
				seen[path] = true
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

func docType(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pdf":
		return "pdf"
	case ".md", ".markdown":
		return "markdown"
	case ".txt", ".text":
		return "text"
	}
	return ""
}

// ReadDocument extracts the pages of a supported document and a title (the first Markdown heading
// or PDF title, else the file name).
func ReadDocument(path string) (title string, pages []Page, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	title = filepath.Base(path)
	switch docType(path) {
	case "pdf":
		pages, err = pdfPages(data)
		return title, pages, err
	case "markdown":
		t, text := markdownText(string(data))
		if t != "" {
			title = t
		}
		return title, []Page{{Text: text}}, nil
	case "text":
		return title, []Page{{Text: string(data)}}, nil
	}
	return "", nil, fmt.Errorf("%s: %w", filepath.Ext(path), ErrUnsupported)
}

var (
	mdHeading = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
	mdLink    = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	mdEmph    = regexp.MustCompile("(\\*\\*|__|\\*|`)")
	mdRule    = regexp.MustCompile(`(?m)^\s*([-*_]\s*){3,}$`)
	mdList    = regexp.MustCompile(`(?m)^\s*(?:[-*+]|\d+[.)])\s+`)
	mdTable   = regexp.MustCompile(`(?m)^\s*\|?\s*:?-{3,}.*$`)
)

// markdownText strips Markdown markup that carries no words (emphasis, link targets, rules, table
// separators) and keeps headings as lines of their own.
func markdownText(s string) (title, text string) {
	if m := mdHeading.FindStringSubmatch(s); m != nil {
		title = m[1]
	}
	s = mdHeading.ReplaceAllString(s, "$1.")
	s = mdLink.ReplaceAllString(s, "$1")
	s = mdRule.ReplaceAllString(s, "")
	s = mdTable.ReplaceAllString(s, "")
	s = mdList.ReplaceAllString(s, "")
	s = mdEmph.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "|", " ")
	return title, s
}

// pdfPages extracts the text of each page. Glyphs are regrouped into lines by position, with a space
// where the gap between glyphs shows one, because many PDFs position words without space glyphs.
func pdfPages(data []byte) (pages []Page, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed PDF: %v", r)
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("open PDF: %w", err)
	}
	for i := 1; i <= r.NumPage(); i++ {
		p := r.Page(i)
		if p.V.IsNull() {
			continue
		}
		text := pageText(p)
		if strings.TrimSpace(text) != "" {
			pages = append(pages, Page{Number: i, Text: text})
		}
	}
	return pages, nil
}

func pageText(p pdf.Page) (out string) {
	defer func() {
		if r := recover(); r != nil {
			out, _ = p.GetPlainText(nil)
		}
	}()
	glyphs := p.Content().Text
	if len(glyphs) == 0 {
		t, _ := p.GetPlainText(nil)
		return t
	}
	// Group into lines: glyphs whose baseline is within half a font size, top to bottom; within a
	// line by x (stable, so content order breaks ties when a font lacks widths).
	type line struct {
		y  float64
		gs []pdf.Text
	}
	var lines []*line
	for _, g := range glyphs {
		tol := max(g.FontSize/2, 1)
		var ln *line
		for _, l := range lines {
			if abs(l.y-g.Y) <= tol {
				ln = l
				break
			}
		}
		if ln == nil {
			ln = &line{y: g.Y}
			lines = append(lines, ln)
		}
		ln.gs = append(ln.gs, g)
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].y > lines[j].y })
	var b strings.Builder
	for _, l := range lines {
		sort.SliceStable(l.gs, func(i, j int) bool { return l.gs[i].X < l.gs[j].X })
		var prevEnd float64
		for j, g := range l.gs {
			if j > 0 && g.W > 0 && g.X-prevEnd > g.FontSize*0.15 && !strings.HasSuffix(b.String(), " ") && !strings.HasPrefix(g.S, " ") {
				b.WriteByte(' ')
			}
			b.WriteString(g.S)
			prevEnd = g.X + g.W
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// ingestFile stores one file; stored is false when it was unchanged.
func (k *KB) ingestFile(ctx context.Context, path string, report func(Progress)) (stored bool, chunks int, err error) {
	if docType(path) == "" {
		return false, 0, fmt.Errorf("%s: %w", filepath.Ext(path), ErrUnsupported)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false, 0, err
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	var existing string
	err = k.db.QueryRow(ctx, `SELECT sha256 FROM kb_sources WHERE uri = $1::text AND embedder = $2::text`, path, k.embID).Scan(&existing)
	if err == nil && existing == hash {
		return false, 0, nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, 0, err
	}
	title, pages, err := ReadDocument(path)
	if err != nil {
		return false, 0, err
	}
	cs := ChunkPages(pages, ChunkSize, ChunkOverlap)
	docs := make([]chunkDoc, len(cs))
	for i, c := range cs {
		docs[i] = chunkDoc{kind: KindManual, page: c.Page, text: c.Text, embedText: title + ". " + c.Text}
	}
	if err := k.storeSource(ctx, KindManual, path, title, hash, docs, func(done int, stage string) {
		report(Progress{Stage: stage, File: path, Done: done, Total: len(docs)})
	}); err != nil {
		return false, 0, err
	}
	return true, len(docs), nil
}

// chunkDoc is one chunk to store: embedText is what is embedded (it may add context, such as the
// document title or a code's synonyms), text is what a hit shows.
type chunkDoc struct {
	kind, system, code string
	page               int
	text, embedText    string
}

// storeSource embeds docs and replaces the source uri with them in one transaction.
func (k *KB) storeSource(ctx context.Context, kind, uri, title, hash string, docs []chunkDoc, progress func(done int, stage string)) error {
	vecs := make([][]float32, 0, len(docs))
	for i := 0; i < len(docs); i += embedBatch {
		part := docs[i:min(i+embedBatch, len(docs))]
		texts := make([]string, len(part))
		for j, d := range part {
			texts[j] = d.embedText
		}
		v, err := k.emb.Embed(ctx, texts)
		if err != nil {
			return fmt.Errorf("embed: %w", err)
		}
		if len(v) != len(part) {
			return fmt.Errorf("embed: %d vectors for %d texts", len(v), len(part))
		}
		vecs = append(vecs, v...)
		progress(len(vecs), "embed")
	}
	var removed []int64
	var added int64
	err := pg.InTx(ctx, k.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM kb_sources WHERE uri = $1::text AND embedder = $2::text RETURNING id`, uri, k.embID)
		if err != nil {
			return err
		}
		removed, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO kb_sources (kind, uri, title, sha256, embedder, chunk_count)
			VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::int) RETURNING id`,
			kind, uri, trimText(title, 500), hash, k.embID, len(docs)).Scan(&added); err != nil {
			return err
		}
		ids, err := k.insertChunks(ctx, tx, added, docs, vecs, progress)
		if err != nil {
			return err
		}
		if k.mode == ModePGVector {
			vr := make([]vecRow, len(docs))
			for i, d := range docs {
				vr[i] = vecRow{id: ids[i], kind: d.kind, system: d.system, vec: vecs[i]}
			}
			return k.insertVectors(ctx, tx, vr)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: %w", uri, err)
	}
	return k.applyIngest(ctx, removed, []int64{added})
}

// insertChunks writes chunks with multi-row INSERTs from arrays (works over every protocol mode,
// PGlite included) and returns their ids in order.
func (k *KB) insertChunks(ctx context.Context, tx pgx.Tx, source int64, docs []chunkDoc, vecs [][]float32, progress func(int, string)) ([]int64, error) {
	const per = 1000
	ids := make([]int64, 0, len(docs))
	for i := 0; i < len(docs); i += per {
		part := docs[i:min(i+per, len(docs))]
		n := len(part)
		kinds, systems, codes, texts := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		pages, ords := make([]int32, n), make([]int32, n)
		embs := make([][]byte, n)
		for j, d := range part {
			kinds[j], systems[j], codes[j], texts[j] = d.kind, d.system, d.code, d.text
			pages[j], ords[j] = int32(d.page), int32(i+j)
			embs[j] = encodeVec(vecs[i+j])
		}
		rows, err := tx.Query(ctx, `INSERT INTO kb_chunks (source_id, kind, system, code, page, ord, text, embedder, dim, embedding)
			SELECT $1::bigint, kind, system, code, page, ord, text, $2::text, $3::int, emb
			FROM unnest($4::text[], $5::text[], $6::text[], $7::int[], $8::int[], $9::text[], $10::bytea[])
			     AS t(kind, system, code, page, ord, text, emb)
			ORDER BY ord
			RETURNING id`, source, k.embID, k.dim, kinds, systems, codes, pages, ords, texts, embs)
		if err != nil {
			return nil, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, err
		}
		if len(got) != n {
			return nil, fmt.Errorf("inserted %d of %d chunks", len(got), n)
		}
		ids = append(ids, got...)
		progress(len(ids), "store")
	}
	// RETURNING order follows insertion order here (one INSERT ... SELECT ... ORDER BY), and ids are
	// increasing, so sorting restores chunk order even if a server returned them otherwise.
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids, nil
}
