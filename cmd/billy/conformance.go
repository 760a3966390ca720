package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/iambilly/billy/conformance"
	"github.com/iambilly/billy/internal/config"
)

// conformanceFlags declares billy conformance run's flags.
func conformanceFlags(fs *flag.FlagSet) *conformanceOpts {
	o := &conformanceOpts{}
	fs.StringVar(&o.base, "base", "", "the FHIR base URL to check (required)")
	fs.StringVar(&o.token, "token", "", "a bearer token sent with every FHIR request")
	fs.StringVar(&o.clientID, "client-id", "", "a SMART Backend Services client id (with --key): the run gets its token and checks the token flow")
	fs.StringVar(&o.key, "key", "", "the client's private key: PEM (EC or RSA) or a private JWK")
	fs.StringVar(&o.alg, "alg", "", "the client assertion algorithm, ES384 or RS384 (default: the JWK's alg, else ES384 for EC keys and RS384 for RSA)")
	fs.StringVar(&o.scope, "scope", "", `the scope asked for with --client-id (default "system/*.cruds", read-only "system/*.rs")`)
	fs.BoolVar(&o.readOnly, "read-only", false, "never write: check with what the server holds (for production endpoints)")
	fs.StringVar(&o.only, "only", "", "run only the checks whose id matches this regular expression")
	fs.StringVar(&o.skip, "skip", "", "leave out the checks whose id matches this regular expression (e.g. ^bulk/ on a production endpoint)")
	fs.StringVar(&o.report, "report", "", "write the HTML report to this file")
	fs.StringVar(&o.json, "json", "", "write the JSON report to this file")
	fs.IntVar(&o.workers, "workers", 4, "checks run at once")
	return o
}

type conformanceOpts struct {
	base, token, clientID, key, alg, scope, only, skip, report, json string
	readOnly                                                         bool
	workers                                                          int
}

// errSHALLFailed is what billy conformance run returns when a SHALL check failed.
var errSHALLFailed = errors.New("SHALL checks failed")

// conformanceCmd is billy conformance run.
func conformanceCmd(ctx context.Context, args []string, _ config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		return errors.New("usage: billy conformance run --base URL [flags] (billy conformance --help)")
	}
	fs := flag.NewFlagSet("conformance run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := conformanceFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.base == "" {
		return errors.New("--base is required")
	}
	if (o.clientID == "") != (o.key == "") {
		return errors.New("--client-id and --key go together")
	}
	cfg := conformance.Config{Base: o.base, Token: o.token, ClientID: o.clientID, Scope: o.scope, ReadOnly: o.readOnly,
		Workers: o.workers, Progress: stderr, Alg: o.alg}
	if o.key != "" {
		b, err := os.ReadFile(o.key)
		if err != nil {
			return err
		}
		key, kid, alg, err := conformance.LoadKey(b)
		if err != nil {
			return fmt.Errorf("--key %s: %w", o.key, err)
		}
		cfg.Key, cfg.KeyID = key, kid
		if cfg.Alg == "" {
			cfg.Alg = alg
		}
		if cfg.Alg == "" {
			cfg.Alg = conformance.DefaultAlg(key)
		}
	}
	if o.only != "" {
		re, err := regexp.Compile(o.only)
		if err != nil {
			return fmt.Errorf("--only: %w", err)
		}
		cfg.Only = re
	}
	if o.skip != "" {
		re, err := regexp.Compile(o.skip)
		if err != nil {
			return fmt.Errorf("--skip: %w", err)
		}
		cfg.Skip = re
	}
	rep, err := conformance.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := writeReports(rep, o.report, o.json); err != nil {
		return err
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	for _, l := range conformance.Levels {
		c := rep.Counts[l]
		fmt.Fprintf(stdout, "%-6s %4d pass %4d fail %4d skip\n", l, c[conformance.Pass], c[conformance.Fail], c[conformance.Skip])
	}
	if n := rep.Failed(conformance.SHALL); n > 0 {
		return fmt.Errorf("%d %w", n, errSHALLFailed)
	}
	return nil
}

// writeReports writes the HTML and JSON reports where asked.
func writeReports(rep *conformance.Report, htmlPath, jsonPath string) error {
	for _, w := range []struct {
		path  string
		write func(io.Writer) error
	}{{htmlPath, rep.WriteHTML}, {jsonPath, rep.WriteJSON}} {
		if w.path == "" {
			continue
		}
		f, err := os.Create(w.path)
		if err != nil {
			return err
		}
		if err := w.write(f); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", w.path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
