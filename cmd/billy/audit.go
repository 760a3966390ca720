package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir/audit"
	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/internal/pg"
	"github.com/iambilly/billy/smart"
)

// startAudit opens the audit trail and its batched writer, unless BILLY_AUDIT=off (dev only).
func (a *app) startAudit() {
	if a.cfg.AuditDisabled() {
		a.log.Warn("THE AUDIT TRAIL IS OFF (BILLY_AUDIT=off, BILLY_DEV=1): accesses leave no AuditEvent; never run like this with real data")
		return
	}
	t := audit.New(a.pool, nil)
	a.audit = &audit.Log{Trail: t, W: t.NewWriter(a.cfg.AuditSyncCommit)}
}

// agentOf is who a FHIR request acts for, for its AuditEvent: the SMART principal's client, user
// and subject (nothing with authorization off).
func agentOf(ctx context.Context) audit.Agent {
	p := smart.PrincipalFrom(ctx)
	if p == nil {
		return audit.Agent{}
	}
	ag := audit.Agent{ClientID: p.ClientID, Subject: p.Subject, User: p.FHIRUser}
	if i := strings.Index(ag.User, "/fhir/"); i >= 0 {
		ag.User = ag.User[i+len("/fhir/"):] // fhirUser is an absolute URL; the trail keeps Type/id
	}
	if p.External && p.Issuer != "" {
		ag.Subject = p.Issuer + "#" + p.Subject
	}
	return ag
}

// recordAuth records an event of the authorization server (login, token, consent...).
func (a *app) recordAuth(ctx context.Context, e smart.AuditEntry) {
	if a.audit == nil {
		return
	}
	ev := &audit.Event{Kind: audit.KindAuth, Subtype: e.Action, Action: audit.ActionExecute, Outcome: audit.OutcomeSuccess,
		Agent: audit.Agent{ClientID: e.ClientID, Subject: e.Subject, Address: e.Remote}}
	if e.Outcome != "success" {
		ev.Outcome = audit.OutcomeMinor
		ev.OutcomeDesc = e.Detail
	}
	if err := a.audit.Record(context.WithoutCancel(ctx), ev); err != nil {
		a.log.ErrorContext(ctx, "audit event not stored", "action", e.Action, "error", err.Error())
	}
}

// auditCmd is billy audit verify | export --since T.
func auditCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: billy audit verify | billy audit export [--since 2026-01-01T00:00:00Z] [--out FILE]")
	}
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		return err
	}
	pool, err := pg.Connect(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return fmt.Errorf("database (BILLY_DATABASE_URL): %w", err)
	}
	defer pool.Close()
	trail := audit.New(pool, nil)
	switch args[0] {
	case "verify":
		rep, err := trail.Verify(ctx)
		if err != nil {
			return err
		}
		if rep.Problem != nil {
			fmt.Fprintf(stdout, "audit trail BROKEN at %s (%d rows read)\n", rep.Problem, rep.Rows)
			return fmt.Errorf("audit trail does not verify: %s", rep.Problem)
		}
		fmt.Fprintf(stdout, "audit trail verified: %d rows, head %d, head hash %s\n", rep.Rows, rep.HeadSeq, rep.HeadHash)
		return nil
	case "export":
		fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
		fs.SetOutput(stderr)
		since := fs.String("since", "", "export events recorded at or after this instant or date (default: all)")
		out := fs.String("out", "", "write to this file instead of standard output")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var from time.Time
		if *since != "" {
			q, err := audit.ParseQuery(map[string][]string{"date": {"ge" + *since}})
			if err != nil {
				return fmt.Errorf("--since %q: want a date or an instant with a time zone (2026-01-01, 2026-01-01T00:00:00Z)", *since)
			}
			from = q.From
		}
		w := stdout
		if *out != "" {
			f, err := os.Create(*out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		n, err := trail.Export(ctx, from, w)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "exported %d AuditEvents\n", n)
		return nil
	}
	return fmt.Errorf("unknown audit command %q (verify, export)", args[0])
}
