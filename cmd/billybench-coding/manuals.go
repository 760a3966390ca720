package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/kb"
)

// chunksPerManual is how many chunks each synthetic manual is cut into (the last one takes the rest).
const chunksPerManual = 100

// vocabulary is what the synthetic manuals talk about: the imported codes.
type vocabulary struct {
	chapters []string                // ICD-10-CM chapter numbers, sorted
	byChap   map[string][]codes.Code // billable ICD-10-CM codes of a chapter
	cats     map[string][]codes.Code // 3-character categories (headers) of a chapter
	byCat    map[string][]codes.Code // billable codes of a category
	hcpcs    []codes.Code            // active HCPCS codes
}

func loadVocabulary(ctx context.Context, db *pgxpool.Pool) (*vocabulary, error) {
	v := &vocabulary{byChap: map[string][]codes.Code{}, cats: map[string][]codes.Code{}, byCat: map[string][]codes.Code{}}
	st := codes.NewStore(db)
	err := st.Each(ctx, codes.ICD10CM, func(c codes.Code) error {
		switch {
		case c.Chapter == "":
		case c.Billable:
			v.byChap[c.Chapter] = append(v.byChap[c.Chapter], c)
			v.byCat[c.Category] = append(v.byCat[c.Category], c)
		case len(c.Code) == 3:
			v.cats[c.Chapter] = append(v.cats[c.Chapter], c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = st.Each(ctx, codes.HCPCS, func(c codes.Code) error {
		if c.Billable {
			v.hcpcs = append(v.hcpcs, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for ch := range v.byChap {
		if len(v.cats[ch]) > 0 {
			v.chapters = append(v.chapters, ch)
		}
	}
	sort.Slice(v.chapters, func(i, j int) bool { return chapterLess(v.chapters[i], v.chapters[j]) })
	if len(v.chapters) == 0 || len(v.hcpcs) == 0 {
		return nil, fmt.Errorf("no ICD-10-CM chapters (%d) or HCPCS codes (%d) to write about", len(v.chapters), len(v.hcpcs))
	}
	return v, nil
}

func chapterLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// writeManuals writes Markdown coding manuals into dir that kb.Ingest cuts into exactly chunks
// chunks, and returns how many files it wrote. The text reads like payer and coding guidelines:
// assignment, sequencing, Excludes1, specificity, uncertain diagnoses, history, supplies and
// drugs, office E/M levels and payer policies, about the imported codes of one ICD-10-CM chapter
// per file. It is generated from a fixed seed, so every run ingests the same text.
func writeManuals(ctx context.Context, db *pgxpool.Pool, dir string, chunks int) (int, error) {
	v, err := loadVocabulary(ctx, db)
	if err != nil {
		return 0, err
	}
	files := 0
	for left := chunks; left > 0; files++ {
		target := min(chunksPerManual, left)
		path := filepath.Join(dir, fmt.Sprintf("manual-%03d.md", files+1))
		if err := v.writeManual(path, files, target); err != nil {
			return 0, err
		}
		left -= target
	}
	return files, nil
}

// countChunks is how many chunks kb.Ingest will make of the file.
func countChunks(path string) (int, error) {
	_, pages, err := kb.ReadDocument(path)
	if err != nil {
		return 0, err
	}
	return len(kb.ChunkPages(pages, kb.ChunkSize, kb.ChunkOverlap)), nil
}

// writeManual writes manual n so that it is cut into exactly target chunks: paragraphs are added
// until the count is reached; one that overshoots is taken back and the gap closed with short
// sentences, each adding at most one chunk.
func (v *vocabulary) writeManual(path string, n, target int) error {
	rng := rand.New(rand.NewPCG(uint64(n)+1, 0x6b696c6c))
	chapter := v.chapters[n%len(v.chapters)]
	payer := payers[n%len(payers)]
	var paras []string
	paras = append(paras, fmt.Sprintf("# %s coding and documentation guidelines, ICD-10-CM chapter %s (part %d)", payer, chapter, n/len(v.chapters)+1))
	// A chunk advances by at least about ChunkSize*2/3 - ChunkOverlap characters (it ends at a
	// sentence end in its last third): counting starts once the text could be that long.
	step := kb.ChunkSize*2/3 - kb.ChunkOverlap
	length := len(paras[0])
	var cat []codes.Code
	count := func() (int, error) {
		if err := os.WriteFile(path, []byte(strings.Join(paras, "\n\n")+"\n"), 0o644); err != nil {
			return 0, err
		}
		return countChunks(path)
	}
	for range 100_000 {
		if len(paras)%8 == 1 {
			h := pick(rng, v.cats[chapter])
			cat = v.byCat[h.Code]
			paras = append(paras, "## "+h.Code+" "+h.Display)
		}
		pool := cat
		if len(pool) < 2 {
			pool = v.byChap[chapter]
		}
		p := v.paragraph(rng, pool, payer)
		paras = append(paras, p)
		length += len(p) + 2
		if length < (target-1)*step {
			continue
		}
		got, err := count()
		if err != nil {
			return err
		}
		if got < target {
			continue
		}
		for got > target && len(paras) > 1 {
			paras = paras[:len(paras)-1]
			if got, err = count(); err != nil {
				return err
			}
		}
		for i := 0; got < target && i < 1000; i++ {
			paras = append(paras, fillers[i%len(fillers)])
			if got, err = count(); err != nil {
				return err
			}
		}
		if got != target {
			return fmt.Errorf("%s: %d chunks, cannot make exactly %d", path, got, target)
		}
		return nil
	}
	return fmt.Errorf("%s: did not reach %d chunks", path, target)
}

var payers = []string{"Medicare Administrative Contractor", "Demo Health Plan", "Blue Valley Health", "Northwind Medicaid", "Summit Commercial Insurance"}

var fillers = []string{"See also the Alphabetic Index.", "Query the provider when unclear.", "Follow the Tabular List.", "Check the payer bulletin."}

var emLevels = []struct {
	code    string
	minutes int
	patient string
}{
	{"99202", 15, "new"}, {"99203", 30, "new"}, {"99204", 45, "new"}, {"99205", 60, "new"},
	{"99212", 10, "established"}, {"99213", 20, "established"}, {"99214", 30, "established"}, {"99215", 40, "established"},
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func lower(s string) string { return strings.ToLower(s) }

// paragraph is one guideline paragraph about codes drawn from pool.
func (v *vocabulary) paragraph(rng *rand.Rand, pool []codes.Code, payer string) string {
	a, b := pick(rng, pool), pick(rng, pool)
	switch rng.IntN(11) {
	case 0:
		return fmt.Sprintf("Assign %s (%s) when the provider documents %s as a current, treated condition. The assessment and plan must support it; a problem that appears only in the past history is not coded for this encounter.",
			a.Code, a.Display, lower(a.Display))
	case 1:
		return fmt.Sprintf("Code first %s (%s), then use an additional code for %s (%s) when both are documented at the same encounter and both affect care.",
			a.Code, lower(a.Display), lower(b.Display), b.Code)
	case 2:
		return fmt.Sprintf("Excludes1: %s %s and %s %s are not reported together; report the condition the provider confirms. When the note supports both, query the provider before the claim is released.",
			a.Code, lower(a.Display), b.Code, lower(b.Display))
	case 3:
		return fmt.Sprintf("Specificity: the record should state laterality, episode of care and any associated complication. When it does not, %s (%s) may be the most specific code the documentation supports, and %s may return the claim asking for more detail.",
			a.Code, lower(a.Display), payer)
	case 4:
		return fmt.Sprintf("Sequencing: when the visit is chiefly for %s, list %s first. Coexisting conditions that affect management at this encounter, such as %s (%s), are reported as additional diagnoses; conditions that no longer exist are not coded.",
			lower(a.Display), a.Code, lower(b.Display), b.Code)
	case 5:
		return fmt.Sprintf("Uncertain diagnoses: in the outpatient setting do not code a diagnosis documented as probable, suspected, questionable or rule out, such as %s. Code the signs and symptoms that prompted the visit instead.",
			lower(a.Display))
	case 6:
		return fmt.Sprintf("History: a personal or family history of %s that no longer needs treatment is reported with a history or status code, not with %s. Use %s only while the condition is under active care or affects the plan.",
			lower(a.Display), a.Code, a.Code)
	case 7:
		h := pick(rng, v.hcpcs)
		return fmt.Sprintf("Supplies and drugs: %s (%s) is reported in the unit of its descriptor. Bill the number of units given, record the route and site, and point the line to the diagnosis that supports medical necessity, for example %s (%s).",
			h.Code, lower(h.Display), a.Code, lower(a.Display))
	case 8:
		em := pick(rng, emLevels[:])
		return fmt.Sprintf("Office visits, %s patient, %s: choose the level by medical decision making or by total time on the date of the encounter (%d minutes or more). When a minor procedure is billed the same day for %s, append modifier 25 only if a significant, separately identifiable evaluation is documented.",
			em.patient, em.code, em.minutes, lower(a.Display))
	case 9:
		return fmt.Sprintf("%s policy %c-%04d: claims reporting %s (%s) need documentation of the evaluation within the last %d months and of the plan of care. Missing elements lead to a denial with remark code N%d.",
			payer, 'A'+rune(rng.IntN(26)), rng.IntN(10000), a.Code, lower(a.Display), 3+rng.IntN(10), 100+rng.IntN(800))
	default:
		return fmt.Sprintf("Combination codes: when one code describes both %s and its manifestation, such as %s, do not report %s (%s) separately unless the Tabular List directs you to use an additional code.",
			lower(a.Display), a.Code, b.Code, lower(b.Display))
	}
}
