package smart

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/iambilly/billy/smart/scope"
)

// acceptedAlgs are the only signature algorithms a token may use: never none, never HMAC (a public
// key must not double as an HMAC secret).
var acceptedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES384}

// clockSkew bounds how far apart clocks may be when checking exp, nbf and iat.
const clockSkew = time.Minute

// revocationRefresh is how often each process reloads the list of revoked access tokens.
const revocationRefresh = 5 * time.Second

// TrustedIssuer is an external identity provider whose access tokens Billy accepts (an EMR's IdP).
type TrustedIssuer struct {
	// Issuer is the iss claim and the discovery base (Issuer/.well-known/openid-configuration).
	Issuer string `json:"issuer"`
	// JWKSURL, when set, is used instead of discovery (issuers that publish only a SMART
	// configuration).
	JWKSURL string `json:"jwks_uri,omitempty"`
	// Audience the tokens must carry; the FHIR base when empty.
	Audience string `json:"audience,omitempty"`
}

// Principal is who a request acts for, and with what.
type Principal struct {
	Issuer   string
	Subject  string
	ClientID string
	Scopes   *scope.Set
	// Launch context.
	Patient, Encounter, FHIRUser string
	Expiry                       time.Time
	External                     bool
	// TokenID is the jti of a Billy token: what revocation is keyed on.
	TokenID string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal of ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

type authErrKey struct{}

// Verifier checks bearer tokens: Billy's own (signature by a current key, audience, expiry,
// revocation) and those of trusted issuers.
type Verifier struct {
	cfg     Config
	keys    *keyring
	store   *storage
	log     *slog.Logger
	trusted map[string]*trusted

	mu          sync.Mutex
	revoked     *revocationList
	revokedAt   time.Time
	revokedErr  error
	refreshOnce sync.Mutex
}

type trusted struct {
	cfg      TrustedIssuer
	once     sync.Once
	verifier *oidc.IDTokenVerifier
	err      error
}

func newVerifier(cfg Config, keys *keyring, st *storage, log *slog.Logger) *Verifier {
	v := &Verifier{cfg: cfg, keys: keys, store: st, log: log, trusted: map[string]*trusted{}}
	for _, t := range cfg.Trusted {
		v.trusted[t.Issuer] = &trusted{cfg: t}
	}
	return v
}

// Middleware authenticates requests that carry a bearer token: a valid token puts its Principal in
// the context; a bad one puts the reason, which the Authorizer turns into a 401. Requests without a
// token pass through unauthenticated.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			tok, ok = strings.CutPrefix(h, "bearer ")
		}
		ctx := r.Context()
		if !ok {
			ctx = context.WithValue(ctx, authErrKey{}, errors.New("the Authorization header is not a Bearer token"))
			w = &challengeWriter{ResponseWriter: w, challenge: `Bearer realm="billy", error="invalid_request"`}
		} else if p, err := v.Verify(ctx, strings.TrimSpace(tok)); err != nil {
			ctx = context.WithValue(ctx, authErrKey{}, err)
			w = &challengeWriter{ResponseWriter: w, challenge: `Bearer realm="billy", error="invalid_token"`}
		} else {
			ctx = WithPrincipal(ctx, p)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// challengeWriter gives a 401 the RFC 6750 section 3 challenge of a refused token
// (error="invalid_token"): the FHIR API, which knows nothing of SMART, answers 401 with a bare
// Bearer challenge.
type challengeWriter struct {
	http.ResponseWriter
	challenge string
}

func (c *challengeWriter) WriteHeader(status int) {
	if status == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", c.challenge)
	}
	c.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the underlying writer (flushes, deadlines).
func (c *challengeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Flush passes flushes on to a streaming response.
func (c *challengeWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// authError returns why the request's token was refused, if it was.
func authError(ctx context.Context) error {
	err, _ := ctx.Value(authErrKey{}).(error)
	return err
}

// errNotCanonical refuses a JWS spelled in a way other than the one its bytes have.
var errNotCanonical = errors.New("the token is not a compact JWS in canonical base64url (no padding, no stray bits or characters)")

// checkCanonicalJWS refuses a compact JWS unless each of its three segments is exactly the
// base64url (unpadded) encoding of what it decodes to. Go's decoders, and so go-jose's, ignore the
// padding bits of the last character, trailing "=" and line breaks, so one token has many
// spellings that verify; anything keyed on a token's text (a revocation list, a replay cache)
// would see them as different tokens.
func checkCanonicalJWS(tok string) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errNotCanonical
	}
	for _, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != p {
			return errNotCanonical
		}
	}
	return nil
}

// Verify checks a bearer token and returns its principal.
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if err := checkCanonicalJWS(token); err != nil {
		return nil, err
	}
	parsed, err := josejwt.ParseSigned(token, acceptedAlgs)
	if err != nil {
		return nil, fmt.Errorf("the token is not a signed JWT with an accepted algorithm (RS256, RS384, ES384)")
	}
	var unverified josejwt.Claims
	if err := parsed.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, errors.New("the token's claims cannot be read")
	}
	if unverified.Issuer != v.cfg.BaseURL {
		return v.verifyExternal(ctx, token)
	}
	if len(parsed.Headers) != 1 || parsed.Headers[0].KeyID == "" {
		return nil, errors.New("the token names no signing key")
	}
	key, ok := v.keys.verifyKey(ctx, parsed.Headers[0].KeyID)
	if !ok {
		return nil, errors.New("the token was signed by an unknown key")
	}
	var std josejwt.Claims
	var claims ownClaims
	if err := parsed.Claims(key, &std, &claims); err != nil {
		return nil, errors.New("the token's signature does not verify")
	}
	if err := std.ValidateWithLeeway(josejwt.Expected{Issuer: v.cfg.BaseURL, AnyAudience: josejwt.Audience{v.cfg.FHIRBase}, Time: v.cfg.Now()}, clockSkew); err != nil {
		return nil, fmt.Errorf("the token is not valid here: %w", err)
	}
	if std.Expiry == nil {
		return nil, errors.New("the token has no expiry")
	}
	if std.ID == "" {
		return nil, errors.New("the token has no jti")
	}
	revoked, err := v.isRevoked(ctx, std.ID, signatureOf(token))
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, errors.New("the token was revoked")
	}
	set, err := scope.Parse(claims.Scope)
	if err != nil {
		return nil, fmt.Errorf("the token's scopes: %w", err)
	}
	return &Principal{Issuer: std.Issuer, Subject: std.Subject, ClientID: claims.ClientID, Scopes: set,
		Patient: claims.Patient, Encounter: claims.Encounter, FHIRUser: claims.FHIRUser, Expiry: std.Expiry.Time(), TokenID: std.ID}, nil
}

// signatureOf is the last segment of a compact JWS: how fosite names an access token in storage.
func signatureOf(token string) string { return token[strings.LastIndexByte(token, '.')+1:] }

// ownClaims are the SMART claims of Billy's access tokens.
type ownClaims struct {
	Scope     string `json:"scope"`
	ClientID  string `json:"client_id"`
	Patient   string `json:"patient"`
	Encounter string `json:"encounter"`
	FHIRUser  string `json:"fhirUser"`
}

// isRevoked consults the revocation list, reloading it when older than revocationRefresh. Tokens
// are revoked by jti; access tokens recorded before jtis were (migration 013) by their signature,
// which checkCanonicalJWS has made a single spelling.
func (v *Verifier) isRevoked(ctx context.Context, jti, signature string) (bool, error) {
	v.mu.Lock()
	fresh := v.cfg.Now().Sub(v.revokedAt) < revocationRefresh && v.revoked != nil
	revoked := v.revoked.has(jti, signature)
	v.mu.Unlock()
	if fresh {
		return revoked, nil
	}
	// One reload at a time; the others use the list they have (or wait for the first one).
	v.refreshOnce.Lock()
	defer v.refreshOnce.Unlock()
	v.mu.Lock()
	fresh = v.cfg.Now().Sub(v.revokedAt) < revocationRefresh && v.revoked != nil
	v.mu.Unlock()
	if !fresh {
		list, err := v.store.revoked(ctx)
		if err != nil {
			return false, fmt.Errorf("revocation list: %w", err)
		}
		v.mu.Lock()
		v.revoked, v.revokedAt = list, v.cfg.Now()
		v.mu.Unlock()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.revoked.has(jti, signature), nil
}

// verifyExternal checks a token from a trusted issuer with go-oidc (discovery or its JWKS URL),
// then the audience, and maps its claims to a principal.
func (v *Verifier) verifyExternal(ctx context.Context, token string) (*Principal, error) {
	if err := checkCanonicalJWS(token); err != nil {
		return nil, err
	}
	parsed, err := josejwt.ParseSigned(token, acceptedAlgs)
	if err != nil {
		return nil, errors.New("the token is not a signed JWT with an accepted algorithm (RS256, RS384, ES384)")
	}
	var unverified josejwt.Claims
	if err := parsed.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, errors.New("the token's claims cannot be read")
	}
	t := v.trusted[unverified.Issuer]
	if t == nil {
		return nil, fmt.Errorf("the token's issuer is not trusted")
	}
	t.once.Do(func() {
		cfg := &oidc.Config{SkipClientIDCheck: true, SupportedSigningAlgs: []string{"RS256", "RS384", "ES384"}, Now: v.cfg.Now}
		if t.cfg.JWKSURL != "" {
			t.verifier = oidc.NewVerifier(t.cfg.Issuer, oidc.NewRemoteKeySet(context.WithoutCancel(ctx), t.cfg.JWKSURL), cfg)
			return
		}
		p, err := oidc.NewProvider(context.WithoutCancel(ctx), t.cfg.Issuer)
		if err != nil {
			t.err = err
			return
		}
		t.verifier = p.Verifier(cfg)
	})
	if t.err != nil {
		t.once = sync.Once{} // try discovery again next time
		return nil, fmt.Errorf("the issuer's keys are unavailable: %w", t.err)
	}
	idt, err := t.verifier.Verify(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("the token does not verify: %w", err)
	}
	aud := t.cfg.Audience
	if aud == "" {
		aud = v.cfg.FHIRBase
	}
	found := false
	for _, a := range idt.Audience {
		if a == aud {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("the token is not meant for %s", aud)
	}
	var c struct {
		Scope     json.RawMessage `json:"scope"`
		Scp       []string        `json:"scp"`
		Patient   string          `json:"patient"`
		Encounter string          `json:"encounter"`
		FHIRUser  string          `json:"fhirUser"`
		ClientID  string          `json:"client_id"`
		AZP       string          `json:"azp"`
	}
	if err := idt.Claims(&c); err != nil {
		return nil, fmt.Errorf("the token's claims: %w", err)
	}
	scopes := strings.Join(c.Scp, " ")
	var str string
	if json.Unmarshal(c.Scope, &str) == nil && str != "" {
		scopes = str
	}
	set, err := scope.Parse(scopes)
	if err != nil {
		return nil, fmt.Errorf("the token's scopes: %w", err)
	}
	client := c.ClientID
	if client == "" {
		client = c.AZP
	}
	return &Principal{Issuer: idt.Issuer, Subject: idt.Subject, ClientID: client, Scopes: set, Patient: c.Patient,
		Encounter: c.Encounter, FHIRUser: c.FHIRUser, Expiry: idt.Expiry, External: true}, nil
}

// mintRequest is a token Billy signs outside fosite's flows (token exchange, MintToken).
type mintRequest struct {
	Subject, ClientID, Scope string
	Launch                   LaunchContext
	Lifetime                 time.Duration
}

// mint signs an access token in the same form as fosite's.
func (v *Verifier) mint(ctx context.Context, m mintRequest) (string, time.Time, error) {
	k, err := v.keys.signer(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.private},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", k.kid))
	if err != nil {
		return "", time.Time{}, err
	}
	now := v.cfg.Now()
	exp := now.Add(m.Lifetime)
	std := josejwt.Claims{Issuer: v.cfg.BaseURL, Subject: m.Subject, Audience: josejwt.Audience{v.cfg.FHIRBase},
		IssuedAt: josejwt.NewNumericDate(now), NotBefore: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(exp), ID: randomToken(16)}
	own := ownClaims{Scope: m.Scope, ClientID: m.ClientID, Patient: m.Launch.Patient, Encounter: m.Launch.Encounter, FHIRUser: m.Launch.FHIRUser}
	tok, err := josejwt.Signed(sig).Claims(std).Claims(own).Serialize()
	if err != nil {
		return "", time.Time{}, err
	}
	// Recorded like fosite's tokens, so that introspection and revocation find it.
	if err := v.store.recordToken(ctx, tok, std.ID, m.ClientID, m.Subject, exp, true); err != nil {
		return "", time.Time{}, fmt.Errorf("record the token: %w", err)
	}
	return tok, exp, nil
}

// MintToken signs an access token directly, without an OAuth flow: the administrator's tool behind
// "billy dev-token" (whoever runs it already holds the database and the master key). The token is
// recorded, so RevokeToken (and its client, at /oauth2/revoke) can revoke it.
func (s *Server) MintToken(ctx context.Context, clientID, subject, scopes string, launch LaunchContext, lifetime time.Duration) (string, error) {
	if _, err := scope.Parse(scopes); err != nil {
		return "", err
	}
	tok, _, err := s.verifier.mint(ctx, mintRequest{Subject: subject, ClientID: clientID, Scope: scopes, Launch: launch, Lifetime: lifetime})
	return tok, err
}
