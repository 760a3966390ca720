package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/iambilly/billy/adapters/hl7v2"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/internal/crypto"
)

// hl7Server wires adapters/hl7v2 to the app's store.
func (a *app) hl7Server() (*hl7v2.Server, error) {
	v, err := resource.NewValidator()
	if err != nil {
		return nil, err
	}
	s := &hl7v2.Server{Store: a.store, Pool: a.pool, Validate: v.Validate, Base: a.cfg.FHIRBase(), Log: a.log}
	if a.cfg.MasterKey != "" {
		if s.Keys, err = crypto.ParseKeyring(a.cfg.MasterKey); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// runMLLP starts the HL7 v2 listener in g when BILLY_MLLP_ADDR is set.
func (a *app) runMLLP(ctx context.Context, g *errgroup.Group) error {
	if a.cfg.MLLPAddr == "" {
		return nil
	}
	s, err := a.hl7Server()
	if err != nil {
		return err
	}
	if s.Keys == nil {
		a.log.Warn("hl7: no BILLY_MASTER_KEY: rejected messages are kept in clear in hl7_errors")
	}
	if a.cfg.MLLPTLSCert != "" || a.cfg.MLLPTLSKey != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.MLLPTLSCert, a.cfg.MLLPTLSKey)
		if err != nil {
			return fmt.Errorf("BILLY_MLLP_TLS_CERT/KEY: %w", err)
		}
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if a.cfg.MLLPTLSClientCA != "" {
			pem, err := os.ReadFile(a.cfg.MLLPTLSClientCA)
			if err != nil {
				return fmt.Errorf("BILLY_MLLP_TLS_CLIENT_CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return errors.New("BILLY_MLLP_TLS_CLIENT_CA holds no certificate")
			}
			s.TLS.ClientCAs, s.TLS.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
	} else if a.cfg.MLLPTLSClientCA != "" {
		return errors.New("BILLY_MLLP_TLS_CLIENT_CA needs BILLY_MLLP_TLS_CERT and BILLY_MLLP_TLS_KEY")
	}
	ln, err := net.Listen("tcp", a.cfg.MLLPAddr)
	if err != nil {
		return fmt.Errorf("BILLY_MLLP_ADDR: %w", err)
	}
	a.log.Info("hl7 v2 MLLP listening", "addr", ln.Addr().String(), "tls", s.TLS != nil)
	g.Go(func() error { return s.Serve(ctx, ln) })
	return nil
}

const hl7Usage = "billy hl7 errors [--limit N]\n" +
	"billy hl7 replay ID\n\n" +
	"Lists the HL7 v2 messages that were not applied (NAKed: AE, AR or broken framing), newest first, or\n" +
	"applies one again once its cause is fixed (prints the acknowledgment code)."

func hl7Cmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: " + hl7Usage)
	}
	fs := flag.NewFlagSet("hl7 "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	limit := fs.Int("limit", 50, "how many, newest first")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var id int64
	switch args[0] {
	case "errors":
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
	case "replay":
		if fs.NArg() != 1 {
			return errors.New("usage: billy hl7 replay ID")
		}
		var err error
		if id, err = strconv.ParseInt(fs.Arg(0), 10, 64); err != nil {
			return fmt.Errorf("%q is not a message id (see billy hl7 errors)", fs.Arg(0))
		}
	default:
		return fmt.Errorf("unknown hl7 command %q; usage: %s", args[0], hl7Usage)
	}
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	s, err := a.hl7Server()
	if err != nil {
		return err
	}
	if args[0] == "replay" {
		res, err := s.Replay(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, res.Code)
		for _, e := range res.Errors {
			fmt.Fprintf(stdout, "  %s (%s)\n", e.Error(), e.Code)
		}
		if res.Code != hl7v2.AA {
			return fmt.Errorf("message %d was not applied", id)
		}
		return nil
	}
	list, err := s.Errors(ctx, *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED\tFROM\tTYPE\tCONTROL ID\tCODE\tREASON\tREPLAYED")
	for _, e := range list {
		replayed := ""
		if e.ReplayedAt != nil {
			replayed = e.ReplayedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.ReceivedAt.UTC().Format(time.RFC3339), e.Remote, e.Type, e.ControlID, e.Code, e.Reason, replayed)
	}
	return tw.Flush()
}
