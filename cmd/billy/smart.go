package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/iambilly/billy/apps/review"
	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/smart"
	"github.com/iambilly/billy/smart/directory"
)

// masterKey decodes BILLY_MASTER_KEY: base64 of 32 bytes, or the keyring form "id:base64,..." whose
// first key is the current one.
func masterKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("BILLY_MASTER_KEY (or BILLY_MASTER_KEY_FILE) is required with BILLY_AUTH=smart: " +
			"it seals the token signing keys; make one with: head -c32 /dev/urandom | base64")
	}
	first := strings.SplitN(s, ",", 2)[0]
	if _, b64, ok := strings.Cut(first, ":"); ok {
		first = b64
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(first))
	if err != nil || len(k) != 32 {
		return nil, errors.New("BILLY_MASTER_KEY must be base64 of 32 bytes")
	}
	return k, nil
}

// newSMART builds the authorization server of an app.
func (a *app) newSMART(ctx context.Context) (*smart.Server, error) {
	key, err := masterKey(a.cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	var trusted []smart.TrustedIssuer
	if a.cfg.TrustedIssuers != "" {
		if err := json.Unmarshal([]byte(a.cfg.TrustedIssuers), &trusted); err != nil {
			return nil, fmt.Errorf("BILLY_TRUSTED_ISSUERS: want a JSON list of {issuer, jwks_uri?, audience?}: %w", err)
		}
	}
	return smart.New(ctx, smart.Config{BaseURL: a.cfg.BaseURL, FHIRBase: a.cfg.FHIRBase(), MasterKey: key, Keys: a.keyring, Trusted: trusted},
		a.pool, directory.Store{St: a.store}, auditor{a}, a.log)
}

// auditor records the authorization server's security events (logins, tokens, consent) in the
// audit trail (a DICOM User Authentication AuditEvent). A failure is logged, never raised.
type auditor struct{ a *app }

func (au auditor) Audit(ctx context.Context, e smart.AuditEntry) { au.a.recordAuth(ctx, e) }

// clientsCmd is billy clients create|list|delete.
func clientsCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: billy clients create|list|delete ...")
	}
	s, a, err := openSMART(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("clients create", flag.ContinueOnError)
		fs.SetOutput(stderr)
		clientID := fs.String("id", "", "client id (default: a random one); Billy Review expects "+review.ClientID)
		name := fs.String("name", "", "client name")
		kind := fs.String("type", smart.KindPublic, "public | confidential-symmetric | confidential-asymmetric")
		redirects := fs.String("redirect-uri", "", "redirect URIs, comma-separated")
		scopes := fs.String("scope", "", "allowed scopes, space-separated")
		jwks := fs.String("jwks", "", "file with the client's public JWKS (asymmetric)")
		jwksURI := fs.String("jwks-uri", "", "URL of the client's JWKS (asymmetric)")
		alg := fs.String("alg", "ES384", "client assertion algorithm: RS384 or ES384 (asymmetric)")
		native := fs.Bool("native", false, "a native app: its http://127.0.0.1 and http://[::1] redirect URIs match on any port (RFC 8252)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		spec := smart.ClientSpec{ID: *clientID, Name: *name, Kind: *kind, Scopes: strings.Fields(*scopes), JWKSURI: *jwksURI, Native: *native}
		if *redirects != "" {
			spec.RedirectURIs = strings.Split(*redirects, ",")
		}
		if spec.Kind == smart.KindAsymmetric {
			spec.AuthAlg = *alg
		}
		if *jwks != "" {
			b, err := os.ReadFile(*jwks)
			if err != nil {
				return err
			}
			spec.JWKS = b
		}
		id, secret, err := s.CreateClient(ctx, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client_id: %s\n", id)
		if secret != "" {
			fmt.Fprintf(stdout, "client_secret: %s (shown once)\n", secret)
		}
		return nil
	case "list":
		cs, err := s.ListClients(ctx)
		if err != nil {
			return err
		}
		for _, c := range cs {
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", c.ID, c.Kind, c.Name, strings.Join(c.Scopes, " "))
		}
		return nil
	case "delete":
		if len(args) != 2 {
			return errors.New("usage: billy clients delete CLIENT_ID")
		}
		return s.DeleteClient(ctx, args[1])
	}
	return fmt.Errorf("unknown clients command %q", args[0])
}

// usersCmd is billy users set NAME --password P [--fhir-user Practitioner/1].
func usersCmd(ctx context.Context, args []string, env config.Lookuper, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "set" {
		return errors.New("usage: billy users set NAME --password PASSWORD [--fhir-user Practitioner/ID]")
	}
	fs := flag.NewFlagSet("users set", flag.ContinueOnError)
	fs.SetOutput(stderr)
	password := fs.String("password", "", "password (at least 8 characters)")
	fhirUser := fs.String("fhir-user", "", "the FHIR resource the user is, e.g. Practitioner/123")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	s, a, err := openSMART(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	return s.SetUser(ctx, args[1], *password, *fhirUser)
}

func openSMART(ctx context.Context, env config.Lookuper, stderr io.Writer) (*smart.Server, *app, error) {
	a, err := openApp(ctx, env, stderr)
	if err != nil {
		return nil, nil, err
	}
	s, err := a.newSMART(ctx)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return s, a, nil
}

// devTokenCmd prints an access token for the given scopes, signed with the server's keys.
func devTokenCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scopes := fs.String("scope", "user/*.cruds", "scopes, space-separated")
	client := fs.String("client", "demo-app", "client id to put in the token")
	subject := fs.String("sub", "demo", "subject")
	patient := fs.String("patient", "", "launch patient (for patient/ scopes)")
	lifetime := fs.Duration("ttl", time.Hour, "lifetime")
	revoke := fs.String("revoke", "", "revoke this access or refresh token instead (any token of this server, whichever client it was issued to)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, a, err := openSMART(ctx, env, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if *revoke != "" {
		if err := s.RevokeToken(ctx, *revoke); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked (the API stops accepting it within 5 s)")
		return nil
	}
	tok, err := s.MintToken(ctx, *client, *subject, *scopes, smart.LaunchContext{Patient: *patient}, *lifetime)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
