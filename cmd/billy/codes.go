package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
	"github.com/iambilly/billy/pipeline/kb"
)

// getenv adapts a Lookuper to the getenv functions of the engine packages.
func getenv(env config.Lookuper) func(string) string {
	return func(k string) string {
		v, _ := env.Lookup(k)
		return v
	}
}

// openKB opens the knowledge base with the configured embedder: an OpenAI-compatible embeddings
// server when BILLY_EMBED_URL is set, the built-in hashing embedder otherwise.
func openKB(ctx context.Context, a *app, env config.Lookuper) (*kb.KB, error) {
	var emb embed.Embedder = embed.NewHash(0)
	cfg, ok, err := embed.OpenAIConfigFromEnv(getenv(env))
	if err != nil {
		return nil, err
	}
	if ok {
		if emb, err = embed.NewOpenAI(cfg); err != nil {
			return nil, err
		}
	}
	return kb.Open(ctx, a.pool, emb, kb.Options{Logger: a.log})
}

// newCoderFunc chooses the coder from the environment: the LLM coder when BILLY_LLM_URL is set,
// the built-in one otherwise; both retrieve from the knowledge base (codes beyond the built-in
// dictionary, candidates and passages for the model). The knowledge base is opened once.
func newCoderFunc(a *app, env config.Lookuper) (func(context.Context, *codes.Set) (coder.Coder, error), error) {
	cfg, llm, err := coder.LLMConfigFromEnv(getenv(env))
	if err != nil {
		return nil, err
	}
	var k *kb.KB
	return func(ctx context.Context, set *codes.Set) (coder.Coder, error) {
		if k == nil {
			if k, err = openKB(ctx, a, env); err != nil {
				return nil, fmt.Errorf("knowledge base: %w", err)
			}
		}
		if llm {
			return coder.NewLLM(cfg, set, k)
		}
		return coder.NewBuiltin(set, coder.WithRetriever(k)), nil
	}, nil
}

// progressBar reports progress to stderr: on a terminal one rewritten line, elsewhere (make run
// piped to a log, CI) a plain line per stage and every tenth of it, so a long import is never silent.
type progressBar struct {
	w     io.Writer
	tty   bool
	label string
	now   func() time.Time
	last  time.Time
	// Plain-line state: the stage and tenth last reported.
	stage string
	tenth int64
}

func newProgressBar(w io.Writer, label string) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			tty = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressBar{w: w, tty: tty, label: label, now: time.Now}
}

func (p *progressBar) update(stage string, done, total int64) {
	if !p.tty {
		p.line(stage, done, total)
		return
	}
	if p.now().Sub(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = p.now()
	if total > 0 {
		const width = 30
		n := int(min(done, total) * width / total)
		fmt.Fprintf(p.w, "\r%s %-8s [%s%s] %3d%%", p.label, stage, strings.Repeat("=", n), strings.Repeat(" ", width-n), done*100/total)
	} else {
		fmt.Fprintf(p.w, "\r%s %-8s %d", p.label, stage, done)
	}
}

// line writes a plain progress line at the start of a stage, at each tenth of it, and at its end;
// without a total, at most every ten seconds.
func (p *progressBar) line(stage string, done, total int64) {
	tenth := int64(-1)
	if total > 0 {
		tenth = min(done, total) * 10 / total
	}
	switch {
	case stage != p.stage:
	case total > 0 && tenth != p.tenth:
	case total <= 0 && p.now().Sub(p.last) >= 10*time.Second:
	default:
		return
	}
	p.stage, p.tenth, p.last = stage, tenth, p.now()
	if total > 0 {
		fmt.Fprintf(p.w, "%s %s: %d%% (%d of %d)\n", p.label, stage, min(done, total)*100/total, done, total)
	} else {
		fmt.Fprintf(p.w, "%s %s: %d\n", p.label, stage, done)
	}
}

func (p *progressBar) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

var yearPattern = regexp.MustCompile(`(19|20)\d\d`)

// codesImportOptions are the flags of billy codes import.
type codesImportOptions struct {
	version            string
	noIndex, ifMissing bool
}

func codesImportFlags(fs *flag.FlagSet) *codesImportOptions {
	o := &codesImportOptions{}
	fs.StringVar(&o.version, "version", "", "version name (default: the year in the file name)")
	fs.BoolVar(&o.noIndex, "no-index", false, "do not add the codes to the knowledge base")
	fs.BoolVar(&o.ifMissing, "if-missing", false, "do nothing when this version is already imported")
	return o
}

// codesCmd is billy codes import|list. The command line is checked before anything is opened.
func codesCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	const usage = "usage: billy codes import icd10cm|hcpcs|cpt FILE [--version V] [--no-index] [--if-missing]\n       billy codes list"
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch {
	case args[0] == "list" && len(args) == 1:
		a, err := openApp(ctx, env, stderr)
		if err != nil {
			return err
		}
		defer a.Close()
		vs, err := a.pipe.Codes.Versions(ctx)
		if err != nil {
			return err
		}
		for _, v := range vs {
			cur := ""
			if v.Current {
				cur = "current"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%d codes\t%s\t%s\t%s\n", v.System, v.Version, v.Codes, v.ImportedAt.Format(time.DateTime), cur, v.Source)
		}
		return nil
	case args[0] == "import" && len(args) >= 3:
	default:
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("codes import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := codesImportFlags(fs)
	system, file := args[1], args[2]
	if err := fs.Parse(args[3:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n%s", fs.Arg(0), usage)
	}
	switch system {
	case codes.ICD10CM, codes.HCPCS, codes.CPT:
	default:
		return fmt.Errorf("unknown code system %q: icd10cm, hcpcs or cpt", system)
	}
	ver := &opts.version
	if *ver == "" {
		*ver = yearPattern.FindString(filepath.Base(file))
		if *ver == "" {
			return fmt.Errorf("%s has no year in its name: give --version", file)
		}
	}
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if opts.ifMissing {
		vs, err := a.pipe.Codes.Versions(ctx)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if v.System == system && v.Version == *ver {
				fmt.Fprintf(stdout, "%s %s is already imported (%d codes)\n", system, *ver, v.Codes)
				return nil
			}
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(stderr, "%s: importing version %s from %s\n", system, *ver, file)
	bar := newProgressBar(stderr, system)
	opt := codes.ImportOptions{Version: *ver, Source: filepath.Base(file), Progress: func(p codes.Progress) { bar.update(p.Stage, p.Done, p.Total) }}
	var st codes.ImportStats
	switch system {
	case codes.ICD10CM:
		o := codes.ICD10CMOptions{ImportOptions: opt}
		// The category, section and chapter tables next to the codes file, when there.
		for pattern, dst := range map[string]*io.Reader{"icd10cm-categories-*.csv": &o.Categories, "icd10cm-sections-*.csv": &o.Sections, "icd10cm-chapters-*.csv": &o.Chapters} {
			if m, _ := filepath.Glob(filepath.Join(filepath.Dir(file), pattern)); len(m) > 0 {
				tf, err := os.Open(m[len(m)-1])
				if err != nil {
					return err
				}
				defer tf.Close()
				*dst = tf
			}
		}
		st, err = codes.ImportICD10CM(ctx, a.pool, f, o)
	case codes.HCPCS:
		st, err = codes.ImportHCPCS(ctx, a.pool, f, opt)
	case codes.CPT:
		st, err = codes.ImportCPT(ctx, a.pool, f, opt)
	default:
		return fmt.Errorf("unknown code system %q: icd10cm, hcpcs or cpt", system)
	}
	bar.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s: %d codes (%d billable) from %s (%s) in %s\n", st.System, st.Version, st.Codes, st.Billable,
		filepath.Base(file), st.Format, st.Elapsed.Round(time.Millisecond))
	if err := a.pipe.InstallCodeSystems(ctx); err != nil {
		return err
	}
	if opts.noIndex {
		return nil
	}
	k, err := openKB(ctx, a, env)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "index: adding the %s code descriptions to the knowledge base (--no-index skips this)\n", system)
	kbar := newProgressBar(stderr, "index")
	is, err := k.IndexCodes(ctx, a.pipe.Codes, func(p kb.Progress) { kbar.update(p.Stage, int64(p.Done), int64(p.Total)) }, system)
	kbar.done()
	if err != nil {
		return fmt.Errorf("knowledge base: %w", err)
	}
	fmt.Fprintf(stdout, "knowledge base: %d code descriptions indexed in %s\n", is.Chunks, is.Elapsed.Round(time.Millisecond))
	return nil
}

// kbCmd is billy kb ingest PATH... | list | delete URI.
func kbCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	const usage = "usage: billy kb ingest PATH... | billy kb list | billy kb delete SOURCE"
	if len(args) == 0 || !(args[0] == "ingest" && len(args) > 1 || args[0] == "list" && len(args) == 1 || args[0] == "delete" && len(args) == 2) {
		return errors.New(usage)
	}
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	k, err := openKB(ctx, a, env)
	if err != nil {
		return err
	}
	switch {
	case args[0] == "ingest" && len(args) > 1:
		bar := newProgressBar(stderr, "kb")
		st, err := k.Ingest(ctx, args[1:], func(p kb.Progress) { bar.update(p.Stage, int64(p.Done), int64(p.Total)) })
		bar.done()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d files stored, %d chunks, in %s\n", st.Files, st.Chunks, st.Elapsed.Round(time.Millisecond))
		for _, s := range st.Skipped {
			fmt.Fprintf(stdout, "skipped %s\n", s)
		}
		return nil
	case args[0] == "list":
		srcs, err := k.Sources(ctx)
		if err != nil {
			return err
		}
		for _, s := range srcs {
			fmt.Fprintf(stdout, "%s\t%s\t%d chunks\t%s\t%s\n", s.Kind, s.URI, s.Chunks, s.IngestedAt.Format(time.DateTime), s.Title)
		}
		return nil
	case args[0] == "delete" && len(args) == 2:
		return k.DeleteSource(ctx, args[1])
	}
	return errors.New(usage)
}
