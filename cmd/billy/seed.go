package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/internal/config"
)

// demoBundle is the demo dataset of make run: a practice, a payer, a practitioner, a patient with
// coverage and one finished encounter. Every entry is a conditional create, so seeding twice
// changes nothing.
//
//go:embed demo.json
var demoBundle []byte

// seedCmd loads transaction Bundles directly, as a trusted local admin command (no HTTP, no token).
func seedCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	validator, err := resource.NewValidator()
	if err != nil {
		return err
	}
	admin := rest.New(rest.Config{Base: cfg.FHIRBase(), MaxBodyBytes: 1 << 30, MaxBundleEntries: 1 << 20, SoftwareName: "Billy", SoftwareVersion: version},
		a.store, validator, rest.AllowAll{}, log, nil)
	bundles := map[string][]byte{}
	if len(args) == 0 {
		bundles["demo data"] = demoBundle
	}
	for _, f := range args {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		bundles[f] = b
	}
	for name, b := range bundles {
		out, err := admin.Transaction(ctx, b)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		resp, err := jsontree.Parse(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s:\n", name)
		for _, e := range resp.Get("entry").Items {
			r := e.Get("response")
			fmt.Fprintf(stdout, "  %-16s %s\n", r.GetString("status"), r.GetString("location"))
		}
	}
	return nil
}

// reindexCmd rebuilds the search index tables.
func reindexCmd(ctx context.Context, env config.Lookuper, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	last := 0
	err = a.store.Reindex(ctx, 1000, func(done int) {
		if done/50000 != last/50000 {
			fmt.Fprintf(stdout, "reindexed %d resources\n", done)
		}
		last = done
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reindex done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
