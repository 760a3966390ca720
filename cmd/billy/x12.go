package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/iambilly/billy/adapters/x12"
	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/internal/config"
)

// x12Service is the app's X12 side (adapters/x12), with the envelope from the configuration.
func (a *app) x12Service(validate func([]byte) error) *x12.Service {
	c := a.cfg
	return &x12.Service{Pool: a.pool, Store: a.store, Validate: validate, Settings: x12.Settings{
		Envelope:      x12.Envelope{SenderQualifier: c.X12SenderQualifier, SenderID: c.X12SenderID, ReceiverQualifier: c.X12ReceiverQualifier, ReceiverID: c.X12ReceiverID, Usage: c.X12Usage},
		SubmitterName: c.X12SubmitterName, ContactName: c.X12ContactName, ContactPhone: c.X12ContactPhone, ReceiverName: c.X12ReceiverName,
		Base: c.FHIRBase()}}
}

// claimsX12Flags declares the flags of billy claims x12.
func claimsX12Flags(fs *flag.FlagSet) (since, payer *string, claims *stringList) {
	since = fs.String("since", "", "send the active Claims last updated at or after this instant (RFC 3339, or a date)")
	payer = fs.String("payer", "", "only Claims whose payer is Organization/ID")
	claims = &stringList{}
	fs.Var(claims, "claim", "a Claim id to send (repeatable; instead of --since)")
	return
}

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// claimsCmd is billy claims x12: an 837P of the chosen Claims on stdout, or, when any lacks what
// an 837P needs, every missing element on stderr and nothing on stdout.
func claimsCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "x12" {
		return errors.New("usage: billy claims x12 --since T [--payer ID] > file.x12 (see billy claims --help)")
	}
	fs := flag.NewFlagSet("claims x12", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since, payer, claims := claimsX12Flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var t time.Time
	if *since != "" {
		var err error
		if t, err = time.Parse(time.RFC3339, *since); err != nil {
			if t, err = time.Parse("2006-01-02", *since); err != nil {
				return fmt.Errorf("--since %q: want an RFC 3339 instant or a date", *since)
			}
		}
	} else if len(*claims) == 0 {
		return errors.New("give --since (all active Claims updated since) or --claim ID")
	}
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	v, err := resource.NewValidator()
	if err != nil {
		return err
	}
	svc := a.x12Service(v.Validate)
	ids := []string(*claims)
	if len(ids) == 0 {
		if ids, err = svc.ClaimsToSend(ctx, t, *payer); err != nil {
			return err
		}
		if len(ids) == 0 {
			return errors.New("no active Claims to send")
		}
	}
	out, b, err := x12.Generate(ctx, a.pool, x12.StoreSource{Store: a.store}, svc.Settings, ids, time.Now())
	if err != nil {
		if fe, ok := fhir.AsError(err); ok && errors.Is(err, fhir.ErrUnprocessable) {
			for _, is := range fe.Issues {
				fmt.Fprintf(stderr, "%s: %s\n", is.Expression, is.Diagnostics)
			}
			return fmt.Errorf("%d problems: no 837P was written", len(fe.Issues))
		}
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "837P interchange %09d: %d claims\n", b.Interchange, len(ids))
	return nil
}

// remitCmd is billy remit import FILE: the 835's ClaimResponses and PaymentReconciliations, and
// what became of each claim on stdout.
func remitCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "import" {
		return errors.New("usage: billy remit import FILE")
	}
	f, err := os.Open(args[1])
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 256<<20+1))
	if err != nil {
		return err
	}
	if len(data) > 256<<20 {
		return errors.New("the 835 is larger than 256 MiB")
	}
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	v, err := resource.NewValidator()
	if err != nil {
		return err
	}
	svc := a.x12Service(v.Validate)
	im := &x12.Importer{Pool: a.pool, Store: a.store, Validate: v.Validate, Base: svc.Settings.Base, Source: x12.StoreSource{Store: a.store}}
	rep, err := im.Import(ctx, data, time.Now())
	if err != nil {
		return err
	}
	for _, is := range rep.Issues() {
		fmt.Fprintf(stdout, "%s: %s\n", is.Severity, is.Diagnostics)
	}
	return nil
}
