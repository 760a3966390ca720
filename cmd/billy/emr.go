package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/iambilly/billy/adapters/emr"
	"github.com/iambilly/billy/adapters/hl7v2"
	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/internal/pg"
	"github.com/iambilly/billy/pipeline"
	"github.com/iambilly/billy/smart"
	"github.com/iambilly/billy/smart/scope"
)

// taskEMRSync is the periodic sync job of one EMR.
const taskEMRSync = "emr:sync"

type emrSyncPayload struct {
	EMR string `json:"emr"`
}

// newEMRService wires adapters/emr; the store and the keyring are set by newApp once they exist.
func newEMRService(pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger, validate func([]byte) error) *emr.Service {
	return &emr.Service{Registry: &emr.Registry{Pool: pool}, Validate: validate, Base: cfg.FHIRBase(), Log: log, Enqueue: pipeline.Enqueue}
}

// addEMRJobs registers the EMR jobs with the worker.
func (a *app) addEMRJobs() {
	if a.pipe.Jobs == nil {
		a.pipe.Jobs = map[string]func(context.Context, []byte) error{}
	}
	a.pipe.Jobs[emr.TaskWriteback] = a.emr.RunWriteback
	dft := &hl7v2.DFTSender{Store: a.store, Pool: a.pool, Addr: a.cfg.DFTAddr}
	a.pipe.Jobs[hl7v2.TaskDFT] = dft.Run
	a.pipe.Jobs[taskEMRSync] = func(ctx context.Context, payload []byte) error {
		var p emrSyncPayload
		if err := json.Unmarshal(payload, &p); err != nil {
			return err
		}
		n, err := a.emr.Sync(ctx, p.EMR, emr.SyncOptions{})
		a.log.Info("emr sync", "emr", p.EMR, "created", n.Created, "updated", n.Updated, "skipped", n.Skipped, "failed", n.Failed)
		return err
	}
}

// mountEMR serves the Subscription notification endpoint and the admin API.
func (a *app) mountEMR(mux *http.ServeMux) {
	mux.Handle("/emr/", a.emr.NotifyHandler())
	admin := a.emr.AdminHandler()
	mux.Handle("/admin/emr", a.adminOnly(admin))
	mux.Handle("/admin/emr/", a.adminOnly(admin))
}

// adminOnly lets through requests bearing a Billy token with system/*.cruds (every interaction on
// every type), as the other management endpoints; with authorization disabled (development) all.
func (a *app) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.smart != nil {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			var p *smart.Principal
			var err error
			if ok {
				p, err = a.smart.Verifier().Verify(r.Context(), tok)
			}
			if !ok || err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="billy"`)
				http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
				return
			}
			if !isAdmin(p) {
				http.Error(w, `{"error":"insufficient_scope","error_description":"this needs system/*.cruds"}`, http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func isAdmin(p *smart.Principal) bool {
	all := scope.Create | scope.Read | scope.Update | scope.Delete | scope.Search
	for _, res := range p.Scopes.Resources {
		if res.Level == scope.System && res.Type == "*" && res.Perms&all == all && res.Query == nil {
			return true
		}
	}
	return false
}

// runEMR queues a sync of every connected EMR every BILLY_EMR_SYNC_INTERVAL, through the outbox
// (one pending sync per EMR, whichever process queues it).
func (a *app) runEMR(ctx context.Context, g *errgroup.Group) {
	if a.cfg.EMRSyncInterval <= 0 {
		return
	}
	g.Go(func() error {
		t := time.NewTicker(a.cfg.EMRSyncInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			systems, err := a.emr.Registry.List(ctx)
			if err != nil {
				a.log.Warn("emr: periodic sync", "error", err.Error())
				continue
			}
			for _, s := range systems {
				err := pg.InTx(ctx, a.pool, func(tx pgx.Tx) error {
					return pipeline.Enqueue(ctx, tx, taskEMRSync, emrSyncPayload{EMR: s.Name}, "emr-sync:"+s.Name)
				})
				if err != nil && ctx.Err() == nil {
					a.log.Warn("emr: periodic sync", "emr", s.Name, "error", err.Error())
				}
			}
		}
	})
}

const emrUsage = "billy emr add NAME --base URL --client-id ID [--key FILE] [--profile generic|epic|oracle] [--scope S] [--writeback=false] [--writeback-claims]\n" +
	"billy emr list\n" +
	"billy emr show NAME\n" +
	"billy emr remove NAME\n" +
	"billy emr sync NAME [--since T]\n" +
	"billy emr calls NAME [--limit N]\n" +
	"billy emr jwks NAME\n\n" +
	"Connects EMRs over FHIR R4 with SMART Backend Services. add seals the private key (PEM, EC P-384 or\n" +
	"RSA; a new ES384 key without --key) with the master key and prints the notification token once;\n" +
	"jwks prints the public keys to register at the EMR; sync runs in the foreground and ends with the\n" +
	"counts it created, updated, skipped and failed; calls lists what was sent to the EMR and when."

// emrCmd is billy emr.
func emrCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: " + emrUsage)
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("emr "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var base, clientID, keyFile, profile, scopes, since *string
	var writeback, writebackClaims *bool
	var limit *int
	switch sub {
	case "add":
		base = fs.String("base", "", "the EMR's FHIR R4 base URL")
		clientID = fs.String("client-id", "", "Billy's client id at the EMR")
		keyFile = fs.String("key", "", "PEM private key file (EC P-384 or RSA); a new ES384 key when empty")
		profile = fs.String("profile", "generic", "vendor profile: generic, epic or oracle")
		scopes = fs.String("scope", "", "scopes to ask for (default: read the synced types, create DocumentReference, and Claim with --writeback-claims)")
		writeback = fs.Bool("writeback", true, "write transcripts back to the EMR")
		writebackClaims = fs.Bool("writeback-claims", false, "also write Claims back when they become active")
	case "sync":
		since = fs.String("since", "", "sync resources updated at or after this instant (RFC 3339), instead of the stored high-water marks")
	case "calls":
		limit = fs.Int("limit", 50, "how many calls, newest first")
	case "list", "show", "remove", "jwks":
	default:
		return fmt.Errorf("unknown emr command %q; usage: %s", sub, emrUsage)
	}
	var name string
	if sub != "list" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return fmt.Errorf("billy emr %s needs the EMR's NAME first", sub)
		}
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var sinceT *time.Time
	if since != nil && *since != "" {
		t, err := time.Parse(time.RFC3339Nano, *since)
		if err != nil {
			return fmt.Errorf("--since %q: want an RFC 3339 instant", *since)
		}
		sinceT = &t
	}
	var keyPEM []byte
	if keyFile != nil && *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("--key: %w", err)
		}
		keyPEM = b
	}
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	svc := a.emr
	switch sub {
	case "add":
		sys, token, err := svc.Registry.Add(ctx, emr.AddRequest{Name: name, Base: *base, ClientID: *clientID, Profile: *profile, Scope: *scopes, KeyPEM: keyPEM, Writeback: *writeback, WritebackClaims: *writebackClaims})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added EMR %s (%s, profile %s, key %s %s)\n", sys.Name, sys.Base, sys.Profile, sys.Alg, sys.KeyID)
		fmt.Fprintf(stdout, "register the public keys of `billy emr jwks %s` at the EMR for client %s\n", sys.Name, sys.ClientID)
		fmt.Fprintf(stdout, "Subscription endpoint: %s/emr/%s/notify  header: Authorization: Bearer %s  (shown once)\n", a.cfg.BaseURL, sys.Name, token)
	case "list":
		l, err := svc.Registry.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPROFILE\tBASE\tCLIENT\tWRITEBACK")
		for _, s := range l {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", s.Name, s.Profile, s.Base, s.ClientID, s.Writeback)
		}
		return tw.Flush()
	case "show":
		st, err := svc.Status(ctx, name)
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(stdout, string(b))
	case "remove":
		if err := svc.Registry.Remove(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed EMR %s (the resources synced stay)\n", name)
	case "jwks":
		sys, err := svc.Registry.Get(ctx, name)
		if err != nil {
			return err
		}
		b, err := svc.Registry.JWKS(sys)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
	case "calls":
		if _, err := svc.Registry.Get(ctx, name); err != nil {
			return err
		}
		calls, err := svc.Calls(ctx, name, *limit)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "AT\tPURPOSE\tMETHOD\tTARGET\tSTATUS\tMS\tOUTCOME\tATTEMPT")
		for _, c := range calls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\n", c.At, c.Purpose, c.Method, c.Target, c.Status, c.DurationMS, c.Outcome, c.Attempt)
		}
		return tw.Flush()
	case "sync":
		n, err := svc.Sync(ctx, name, emr.SyncOptions{Since: sinceT, Progress: func(typ string, t emr.Counts) {
			fmt.Fprintf(stderr, "%-16s created %d, updated %d, skipped %d, failed %d\n", typ, t.Created, t.Updated, t.Skipped, t.Failed)
		}})
		fmt.Fprintf(stdout, "created %d, updated %d, skipped %d, failed %d\n", n.Created, n.Updated, n.Skipped, n.Failed)
		return err
	}
	return nil
}
