// Command billy is Billy's one binary: the FHIR server, the pipeline worker and the admin commands.
//
//	billy serve     run the HTTP API (and, unless --worker=false, the pipeline worker)
//	billy worker    run only the pipeline worker
//	billy migrate   apply database migrations (idempotent)
//	billy seed      load transaction Bundles (the demo data when no file is given)
//	billy --help    every command; billy COMMAND --help its usage
//
// Configuration comes from the environment (see internal/config); main only wires things together.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"

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

// runFunc is what a command runs.
type runFunc func(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error

// command is one entry of billy's command table: what billy --help lists, what billy NAME --help
// prints, and what runs.
type command struct {
	name, summary string
	// usage is the synopsis and description billy NAME --help prints.
	usage string
	// flags, when set, declares the command's flags on fs, for its help: the command parses with the
	// same declarations, so its help cannot drift from them.
	flags func(fs *flag.FlagSet)
	// flagHelp, when set, returns the flag defaults from the command itself (dev-token).
	flagHelp func(ctx context.Context) string
	run      runFunc
}

// commands is the command table. Every command answers -h/--help with its usage and exits 0 without
// doing anything: run checks before dispatching.
var commands = []command{
	{name: "serve", summary: "run the FHIR API (and the pipeline worker unless --worker=false)",
		usage: "billy serve [--addr ADDR] [--worker=false]\n\n" +
			"Serves the FHIR API, SMART authorization, /healthz, /readyz and /metrics, relays the pipeline's\n" +
			"outbox and, unless --worker=false, runs the pipeline worker. Migrates the database first.",
		flags: func(fs *flag.FlagSet) { serveFlags(fs) }, run: serveCmd},
	{name: "worker", summary: "run only the pipeline worker",
		usage: "billy worker\n\nRuns the pipeline worker (transcription and coding stages) and an outbox relay until stopped.",
		run:   noArgs(workerCmd)},
	{name: "migrate", summary: "apply database migrations (idempotent)",
		usage: "billy migrate\n\nApplies the database migrations not applied yet; safe from several processes at once.",
		run:   noArgs(migrateCmd)},
	{name: "seed", summary: "load transaction Bundles (the demo data when no file is given)",
		usage: "billy seed [FILE...]\n\n" +
			"Loads transaction Bundles directly into the database, as a trusted local admin command. Without\n" +
			"FILE it loads the demo data of make run (idempotent) and, with authorization on, the SMART client\n" +
			"demo-app and the user demo.",
		run: seedCmd},
	{name: "reindex", summary: "rebuild the search indexes from the stored resources",
		usage: "billy reindex\n\nRebuilds the search index tables from the stored resources (serve does it by itself when the\n" +
			"extraction rules changed).",
		run: noArgs(reindexCmd)},
	{name: "clients", summary: "create|list|delete SMART clients",
		usage: "billy clients create --name N [--type public|confidential-symmetric|confidential-asymmetric]\n" +
			"       [--redirect-uri U1,U2] [--scope \"S1 S2\"] [--jwks FILE | --jwks-uri URL] [--alg ES384|RS384]\n" +
			"billy clients list\n" +
			"billy clients delete CLIENT_ID\n\n" +
			"Manages the SMART client registry (a confidential-symmetric client's secret is printed once).",
		run: clientsCmd},
	{name: "users", summary: "set a user of the SMART login page",
		usage: "billy users set NAME --password PASSWORD [--fhir-user Practitioner/ID]\n\nCreates or updates a user of the login page.",
		run: func(ctx context.Context, args []string, env config.Lookuper, _, stderr io.Writer) error {
			return usersCmd(ctx, args, env, stderr)
		}},
	{name: "dev-token", summary: "sign an access token directly (an administrator's shortcut for curl and scripts)",
		usage: "billy dev-token [flags]\n\n" +
			"billy dev-token --revoke TOKEN\n\n" +
			"Signs an access token with the server's keys and prints it. It reads the server's database and\n" +
			"needs its master key (BILLY_MASTER_KEY or BILLY_MASTER_KEY_FILE); no server needs to run.\n" +
			"The token is recorded like the server's own: --revoke revokes it (or any access or refresh\n" +
			"token of the server), and the API refuses it within 5 s.",
		flagHelp: devTokenFlagHelp, run: devTokenCmd},
	{name: "dev-login", summary: "log in through the real OAuth flow (PKCE) of a running server and print the token",
		usage: "billy dev-login --password PASSWORD [flags]\n\n" +
			"Runs the SMART authorization-code flow with PKCE S256 against a running Billy the way a browser\n" +
			"does: opens /oauth2/authorize, signs in, picks the patient, allows, catches the redirect to the\n" +
			"client's redirect URI, exchanges the code and prints the access token (the rest on stderr).\n" +
			"It speaks HTTP only.",
		flags: func(fs *flag.FlagSet) { devLoginFlags(fs, nil) }, run: devLoginCmd},
	{name: "codes", summary: "import icd10cm|hcpcs|cpt FILE, list: the code sets the coder uses",
		usage: "billy codes import icd10cm|hcpcs|cpt FILE [flags]\n" +
			"billy codes list\n\n" +
			"Imports a code set file, then adds its descriptions to the knowledge base; or lists what is imported.\n" +
			"Progress goes to stderr.",
		flags: func(fs *flag.FlagSet) { codesImportFlags(fs) }, run: codesCmd},
	{name: "kb", summary: "ingest PATH..., list, delete SOURCE: coding manuals for retrieval",
		usage: "billy kb ingest PATH...\n" +
			"billy kb list\n" +
			"billy kb delete SOURCE\n\n" +
			"Manages the knowledge base: coding manuals and payer cheat-sheets (PDF, Markdown, text).",
		run: kbCmd},
	{name: "claims", summary: "x12: write an X12 837P of Claims for payers",
		usage: "billy claims x12 --since T [--payer ID] > file.x12\n" +
			"billy claims x12 --claim ID [--claim ID...] > file.x12\n\n" +
			"Writes an 837P (005010X222A1) of the active Claims updated since T (or the Claims named) to stdout.\n" +
			"When a Claim lacks what an 837P needs, lists every missing element on stderr and writes nothing.",
		flags: func(fs *flag.FlagSet) { claimsX12Flags(fs) }, run: claimsCmd},
	{name: "remit", summary: "import FILE: read an X12 835 into ClaimResponses and a PaymentReconciliation",
		usage: "billy remit import FILE\n\n" +
			"Imports an 835 remittance: a ClaimResponse per claim Billy sent, a PaymentReconciliation per payment,\n" +
			"the Claims tagged paid, partially-paid, denied or reversed. Claims Billy does not know are kept in the\n" +
			"PaymentReconciliation and reported. Importing the same 835 twice changes nothing.",
		run: remitCmd},
	{name: "emr", summary: "add|list|show|remove|sync|calls|jwks: EMRs connected over FHIR R4",
		usage: emrUsage, run: emrCmd},
	{name: "conformance", summary: "run: check a FHIR base (any server) against the spec and its CapabilityStatement",
		usage: "billy conformance run --base URL [--token T | --client-id ID --key FILE] [--read-only] [--only REGEX] [--skip REGEX]\n" +
			"       [--report out.html] [--json out.json]\n\n" +
			"Runs the conformance suite (package conformance) against a FHIR base over HTTP; progress on stderr, counts\n" +
			"on stdout. Without --read-only it creates tagged test data and removes it. Exits non-zero only when a SHALL fails.",
		flags: func(fs *flag.FlagSet) { conformanceFlags(fs) }, run: conformanceCmd},
	{name: "audit", summary: "verify | export --since T: check the audit trail's hash chain, or export it as NDJSON",
		usage: "billy audit verify\n" +
			"billy audit export [--since 2026-01-01T00:00:00Z] [--out FILE]\n\n" +
			"verify walks the hash chain of the audit trail and names the first row that was changed, removed\n" +
			"or inserted (exit status 1), or prints the row count and the head hash to keep elsewhere.\n" +
			"export writes the AuditEvents recorded since T (all by default), oldest first, one JSON per line.",
		run: auditCmd},
	{name: "keys", summary: "rotate|status: re-wrap blobs and re-seal signing keys under a new master key, while Billy runs",
		usage: "billy keys rotate [--max N] [--force]\n" +
			"billy keys status\n\n" +
			"rotate re-wraps every blob's data key (never its data) and re-seals the SMART signing keys and\n" +
			"token secrets under the first key of BILLY_MASTER_KEY(_FILE); what already is under it is skipped,\n" +
			"so it can be interrupted and run again. It refuses while a live process still writes with another\n" +
			"key. status counts blobs, sealed keys and live processes by master key. See README \"Key rotation\".",
		run: keysCmd},
	{name: "hl7", summary: "errors|replay: HL7 v2 messages that were not applied",
		usage: hl7Usage, run: hl7Cmd},
	{name: "version", summary: "print the version", usage: "billy version (also billy --version)",
		run: noArgs(func(_ context.Context, _ []string, _ config.Lookuper, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "billy", version)
			return nil
		})},
}

// noArgs refuses arguments to a command that takes none: "billy migrate now" should not migrate.
func noArgs(fn runFunc) runFunc {
	return func(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
		if len(args) > 0 {
			return fmt.Errorf("unexpected argument %q (see billy --help)", args[0])
		}
		return fn(ctx, args, env, stdout, stderr)
	}
}

func lookupCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// errUsage is returned for a command line without a command; main prints it like any error.
var errUsage = errors.New("usage: billy <command> [arguments]; billy --help lists the commands")

func run(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if c := lookupCommand(rest[0]); c != nil {
				c.help(ctx, stdout)
				return nil
			}
			return fmt.Errorf("unknown command %q; billy --help lists the commands", rest[0])
		}
		overview(stdout)
		return nil
	case "--version", "-version":
		name = "version"
	}
	c := lookupCommand(name)
	if c == nil {
		return fmt.Errorf("unknown command %q; billy --help lists the commands", name)
	}
	if wantsHelp(rest) {
		c.help(ctx, stdout)
		return nil
	}
	err := c.run(ctx, rest, env, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // a flag set printed its usage
	}
	return err
}

// wantsHelp reports whether the arguments ask for help (-h, -help or --help before a "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// help prints a command's usage and flags.
func (c *command) help(ctx context.Context, w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n", c.usage)
	var flags string
	switch {
	case c.flags != nil:
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.flags(fs)
		var b bytes.Buffer
		fs.SetOutput(&b)
		fs.PrintDefaults()
		flags = b.String()
	case c.flagHelp != nil:
		flags = c.flagHelp(ctx)
	}
	if flags != "" {
		fmt.Fprintf(w, "\nflags:\n%s", flags)
	}
	fmt.Fprintln(w, "\nConfiguration comes from the environment: billy --help lists the variables.")
}

// devTokenFlagHelp asks dev-token itself for its flags (it parses them before anything else), with
// a database URL nothing listens on, so that asking for help can never touch a database.
func devTokenFlagHelp(ctx context.Context) string {
	var b bytes.Buffer
	env := config.MapLookuper(map[string]string{"BILLY_DATABASE_URL": "postgres://127.0.0.1:1/none?connect_timeout=1"})
	if err := devTokenCmd(ctx, []string{"-h"}, env, io.Discard, &b); !errors.Is(err, flag.ErrHelp) {
		return ""
	}
	_, flags, _ := strings.Cut(b.String(), "\n") // drop the flag package's "Usage of dev-token:"
	return flags
}

// overview is billy --help: the commands and the environment variables.
func overview(w io.Writer) {
	fmt.Fprintf(w, "billy %s: a FHIR R4 server for medical billing\n\nusage: billy <command> [arguments]\n       billy <command> --help\n\ncommands:\n", version)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nenvironment (flags override; every secret also accepts NAME_FILE with the path of a file):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range configVariables() {
		fmt.Fprintf(tw, "  %s\t%s\n", v.name, v.def)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "  BILLY_STT_*, BILLY_WHISPER_*, BILLY_LLM_*, BILLY_EMBED_*  the engines (see README.md, \"Configuration\")")
}

// configVariable is one environment variable of config.Config and its default.
type configVariable struct{ name, def string }

// configVariables lists the variables of config.Config from its env tags, so the list cannot drift
// from what is read.
func configVariables() []configVariable {
	var out []configVariable
	t := reflect.TypeFor[config.Config]()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("env")
		if tag == "" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		v := configVariable{name: strings.TrimSpace(name), def: "unset by default"}
		if _, d, ok := strings.Cut(opts, "default="); ok {
			v.def = "default " + d
		}
		out = append(out, v)
	}
	return out
}
