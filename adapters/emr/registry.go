package emr

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir"
	billycrypto "github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/internal/pg"
)

// System is a registered EMR (its private key stays sealed until a client needs it).
type System struct {
	Name      string `json:"name"`
	Base      string `json:"base"`
	ClientID  string `json:"client_id"`
	Profile   string `json:"profile"`
	Scope     string `json:"scope"`
	KeyID     string `json:"kid"`
	Alg       string `json:"alg"`
	Writeback bool   `json:"writeback"`
	// WritebackClaims: Claims that become active are written back too.
	WritebackClaims bool      `json:"writeback_claims"`
	CreatedAt       time.Time `json:"created_at"`
	keySealed       []byte
	notifySHA       string
}

// Registry keeps the registered EMRs in emr_systems.
type Registry struct {
	Pool *pgxpool.Pool
	// Keys seals the private keys (the master keyring); nil refuses to add or use an EMR.
	Keys *billycrypto.Keyring
	Now  func() time.Time
}

// AddRequest registers an EMR.
type AddRequest struct {
	Name, Base, ClientID, Profile, Scope string
	// KeyPEM is the private key (PKCS#8, SEC 1 or PKCS#1 PEM); empty generates an ES384 key.
	KeyPEM    []byte
	Writeback bool
	// WritebackClaims writes Claims back when they become active.
	WritebackClaims bool
}

// DefaultScope is what Billy asks for when no scope is given.
const DefaultScope = "system/Patient.rs system/Encounter.rs system/Coverage.rs system/Practitioner.rs system/PractitionerRole.rs system/Organization.rs system/Location.rs system/DocumentReference.crs"

// ClaimScope is added to the default scope of an EMR that takes Claims.
const ClaimScope = "system/Claim.crs"

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Add registers an EMR and returns it with the bearer token the EMR must present to the
// notification endpoint (shown once; only its hash is kept).
func (r *Registry) Add(ctx context.Context, req AddRequest) (*System, string, error) {
	if r.Keys == nil {
		return nil, "", errors.New("a master key (BILLY_MASTER_KEY) is needed to seal the EMR's private key")
	}
	if !nameRE.MatchString(req.Name) {
		return nil, "", fhir.Errorf(fhir.ErrInvalid, "value", "name %q: 1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit", req.Name)
	}
	if req.Profile == "" {
		req.Profile = "generic"
	}
	prof, err := LoadProfile(req.Profile)
	if err != nil {
		return nil, "", fhir.Errorf(fhir.ErrInvalid, "value", "%v", err)
	}
	u, err := url.Parse(req.Base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		return nil, "", fhir.Errorf(fhir.ErrInvalid, "value", "base %q is not an http(s) URL without a query", req.Base)
	}
	if err := prof.checkBase(u.Path); err != nil {
		return nil, "", fhir.Errorf(fhir.ErrInvalid, "value", "%v", err)
	}
	if req.ClientID == "" {
		return nil, "", fhir.Errorf(fhir.ErrInvalid, "required", "a client id is required")
	}
	if req.Scope == "" {
		req.Scope = DefaultScope
		if req.WritebackClaims {
			req.Scope += " " + ClaimScope
		}
	}
	var key crypto.Signer
	if len(req.KeyPEM) == 0 {
		if key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			return nil, "", err
		}
	} else if key, err = parseKey(req.KeyPEM); err != nil {
		return nil, "", fhir.Errorf(fhir.ErrInvalid, "value", "key: %v", err)
	}
	alg, err := algOf(key)
	if err != nil {
		return nil, "", fhir.Errorf(fhir.ErrInvalid, "value", "key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", err
	}
	sealed, err := r.seal(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		return nil, "", err
	}
	kid, err := thumbprint(key.Public(), alg)
	if err != nil {
		return nil, "", err
	}
	tok := make([]byte, 32)
	_, _ = rand.Read(tok)
	token := base64.RawURLEncoding.EncodeToString(tok)
	sum := sha256.Sum256([]byte(token))
	s := &System{Name: req.Name, Base: strings.TrimRight(req.Base, "/"), ClientID: req.ClientID, Profile: prof.Name, Scope: req.Scope,
		KeyID: kid, Alg: alg, Writeback: req.Writeback, WritebackClaims: req.WritebackClaims, CreatedAt: r.now(), keySealed: sealed, notifySHA: hex.EncodeToString(sum[:])}
	_, err = r.Pool.Exec(ctx, `INSERT INTO emr_systems (name, base_url, client_id, profile, scope, key_sealed, key_id, alg, notify_token_sha256, writeback, writeback_claims, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`, s.Name, s.Base, s.ClientID, s.Profile, s.Scope, s.keySealed, s.KeyID, s.Alg, s.notifySHA, s.Writeback, s.WritebackClaims, s.CreatedAt)
	if err != nil {
		if pg.IsUniqueViolation(err) {
			return nil, "", fhir.Errorf(fhir.ErrConflict, "duplicate", "an EMR named %q exists", req.Name)
		}
		return nil, "", fmt.Errorf("add emr: %w", err)
	}
	return s, token, nil
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

const systemCols = `name, base_url, client_id, profile, scope, key_id, alg, writeback, writeback_claims, created_at, key_sealed, notify_token_sha256`

func scanSystem(row pgx.Row) (*System, error) {
	var s System
	err := row.Scan(&s.Name, &s.Base, &s.ClientID, &s.Profile, &s.Scope, &s.KeyID, &s.Alg, &s.Writeback, &s.WritebackClaims, &s.CreatedAt, &s.keySealed, &s.notifySHA)
	return &s, err
}

// Get returns the named EMR (fhir.ErrNotFound when there is none).
func (r *Registry) Get(ctx context.Context, name string) (*System, error) {
	s, err := scanSystem(r.Pool.QueryRow(ctx, `SELECT `+systemCols+` FROM emr_systems WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "no EMR named %q", name)
	}
	return s, err
}

// List returns every registered EMR by name.
func (r *Registry) List(ctx context.Context) ([]*System, error) {
	rows, err := r.Pool.Query(ctx, `SELECT `+systemCols+` FROM emr_systems ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*System, error) { return scanSystem(row) })
}

// Remove forgets an EMR, its sync state and its call record (the resources synced stay in Billy).
func (r *Registry) Remove(ctx context.Context, name string) error {
	tag, err := r.Pool.Exec(ctx, `DELETE FROM emr_systems WHERE name = $1`, name)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fhir.Errorf(fhir.ErrNotFound, "not-found", "no EMR named %q", name)
	}
	_, err = r.Pool.Exec(ctx, `DELETE FROM emr_calls WHERE emr = $1`, name)
	return err
}

// CheckNotifyToken reports whether token is the notification token of the EMR (constant time).
func (s *System) CheckNotifyToken(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(s.notifySHA)) == 1
}

// JWKS returns the public key set to register at the EMR.
func (r *Registry) JWKS(s *System) ([]byte, error) {
	key, err := r.signer(s)
	if err != nil {
		return nil, err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: s.KeyID, Algorithm: s.Alg, Use: "sig"}}}
	return json.MarshalIndent(set, "", "  ")
}

// signer opens the sealed private key.
func (r *Registry) signer(s *System) (crypto.Signer, error) {
	if r.Keys == nil {
		return nil, errors.New("a master key (BILLY_MASTER_KEY) is needed to open the EMR's private key")
	}
	rd, err := billycrypto.NewReader(bytes.NewReader(s.keySealed), int64(len(s.keySealed)), r.Keys)
	if err != nil {
		return nil, fmt.Errorf("open the private key of EMR %s: %w", s.Name, err)
	}
	p, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("open the private key of EMR %s: %w", s.Name, err)
	}
	return parseKey(p)
}

func (r *Registry) seal(plain []byte) ([]byte, error) {
	var buf bytes.Buffer
	w := billycrypto.NewWriter(&buf, r.Keys)
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func parseKey(p []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("not a PEM private key")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", b.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported key type")
	}
	return s, nil
}

// algOf is the JWS algorithm SMART Backend Services allows for key: ES384 (P-384) or RS384 (RSA ≥ 2048).
func algOf(key crypto.Signer) (string, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P384() {
			return "", errors.New("an EC key must be on P-384 (ES384)")
		}
		return "ES384", nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", errors.New("an RSA key must have at least 2048 bits")
		}
		return "RS384", nil
	}
	return "", errors.New("the key must be EC P-384 or RSA")
}

func thumbprint(pub crypto.PublicKey, alg string) (string, error) {
	jwk := jose.JSONWebKey{Key: pub, Algorithm: alg}
	t, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}
