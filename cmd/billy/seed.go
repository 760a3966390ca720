package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/smart"
)

// demoBundle is the demo dataset of make run: a practice, a payer, a practitioner, a patient with
// coverage and one finished encounter. Every entry is a conditional create, so seeding twice
// changes nothing.
//
//go:embed demo.json
var demoBundle []byte

// seedCmd loads transaction Bundles directly, as a trusted local admin command (no HTTP, no token).
func seedCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	cfg, log := a.cfg, a.log
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
	practitioner := ""
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
			loc := r.GetString("location")
			fmt.Fprintf(stdout, "  %-16s %s\n", r.GetString("status"), loc)
			if strings.HasPrefix(loc, "Practitioner/") && practitioner == "" {
				practitioner = strings.Join(strings.Split(loc, "/")[:2], "/")
			}
		}
	}
	if len(args) == 0 && a.smart != nil {
		return seedSMART(ctx, a, practitioner, stdout)
	}
	return nil
}

// The demo SMART client and user of make run (development data, printed in the clear).
const (
	demoClient   = "demo-app"
	demoUser     = "demo"
	demoPassword = "billy-demo-password"
)

func seedSMART(ctx context.Context, a *app, practitioner string, stdout io.Writer) error {
	_, _, err := a.smart.CreateClient(ctx, smart.ClientSpec{ID: demoClient, Name: "Billy demo app", Kind: smart.KindPublic,
		RedirectURIs: []string{"http://localhost:9000/callback", "http://127.0.0.1:9000/callback"},
		Scopes:       strings.Fields("openid fhirUser launch launch/patient offline_access online_access patient/*.rs patient/*.read user/*.rs user/*.read")})
	if err != nil {
		return fmt.Errorf("demo client: %w", err)
	}
	if err := a.smart.SetUser(ctx, demoUser, demoPassword, practitioner); err != nil {
		return fmt.Errorf("demo user: %w", err)
	}
	fmt.Fprintf(stdout, "SMART demo: public client %q (redirect http://localhost:9000/callback), user %q / %q (%s)\n",
		demoClient, demoUser, demoPassword, practitioner)
	return seedReview(ctx, a, stdout)
}

// reindexCmd rebuilds the search index tables.
func reindexCmd(ctx context.Context, _ []string, env config.Lookuper, stdout, stderr io.Writer) error {
	a, err := openApp(ctx, env, stderr)
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
