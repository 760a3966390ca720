// Command billy is Billy's one binary: the FHIR server, the pipeline worker and the admin commands.
//
//	billy serve     run the HTTP API (and, unless --worker=false, the pipeline worker)
//	billy worker    run only the pipeline worker
//	billy migrate   apply database migrations (idempotent)
//	billy seed      load transaction Bundles (the demo data when no file is given)
//	billy reindex   rebuild the search index tables from the stored resources
//
// Configuration comes from the environment (see internal/config); main only wires things together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/iambilly/billy/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Billy allocates mostly short-lived request buffers; with the default GOGC=100 the collector
	// runs several hundred times a second under load. 400 trades memory for CPU. An explicit GOGC
	// (or GOMEMLIMIT, which caps the heap whatever the percentage) still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], config.OSLookuper(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "billy:", err)
		os.Exit(1)
	}
}

const usage = `usage: billy <command> [flags]

commands:
  serve     run the FHIR API (and the pipeline worker unless --worker=false)
  worker    run only the pipeline worker
  migrate   apply database migrations
  seed      load transaction Bundles into the database (the demo data when no file is given)
  reindex   rebuild the search indexes from the stored resources (after an upgrade that changes them)
  clients   create|list|delete SMART clients
  users     set a user of the SMART login page
  dev-token sign an access token directly (an administrator's shortcut for curl and scripts)
  codes     import icd10cm|hcpcs|cpt FILE, list: the code sets the coder uses
  kb        ingest PATH..., list, delete SOURCE: coding manuals for retrieval
  version   print the version`

// errUsage is returned for a bad command line; main prints it like any error.
var errUsage = errors.New(usage)

func run(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serveCmd(ctx, rest, env, stdout, stderr)
	case "worker":
		return workerCmd(ctx, rest, env, stderr)
	case "migrate":
		return migrateCmd(ctx, rest, env, stderr)
	case "seed":
		return seedCmd(ctx, rest, env, stdout, stderr)
	case "reindex":
		return reindexCmd(ctx, env, stdout, stderr)
	case "clients":
		return clientsCmd(ctx, rest, env, stdout, stderr)
	case "users":
		return usersCmd(ctx, rest, env, stderr)
	case "codes":
		return codesCmd(ctx, rest, env, stdout, stderr)
	case "kb":
		return kbCmd(ctx, rest, env, stdout, stderr)
	case "dev-token":
		return devTokenCmd(ctx, rest, env, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "billy", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%w", cmd, errUsage)
}
