package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"
	"golang.org/x/crypto/bcrypt"
)

// Client authentication at the token, introspection and revocation endpoints is Billy's own, plugged
// into fosite as its ClientAuthenticationStrategy. fosite's private_key_jwt path answered 500 to an
// expired assertion, had no bound on exp, ignored jku, keyed jti replay on the jti alone, required
// "use":"sig" on keys (optional in RFC 7517), answered jti_known and invalid_request where RFC 7523
// says invalid_client, and fetched jwks_uri through a retrying client that printed debug lines on
// stderr. Every refusal here is 401 invalid_client with a description (RFC 6749 section 5.2), and
// is logged without the assertion or secret.

// assertionType is the only client_assertion_type (RFC 7523 section 2.2).
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Client assertion time rules: exp at most five minutes after now and after iat (SMART Backend
// Services), and a little slack for clocks that differ.
const (
	assertionMaxLifetime = 5 * time.Minute
	assertionSkew        = 30 * time.Second
	jtiPurgeEvery        = time.Minute
)

// assertionAlgs are the algorithms SMART Backend Services allows for client assertions.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS384, jose.ES384}

// clientError is a refused client authentication: 401 invalid_client with a description.
func clientError(format string, args ...any) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: "invalid_client", DescriptionField: fmt.Sprintf(format, args...), CodeField: http.StatusUnauthorized}
}

// authenticateClient is fosite's ClientAuthenticationStrategy: private_key_jwt for asymmetric
// clients, client_secret_basic or client_secret_post for symmetric ones, client_id alone for public
// ones. The endpoint the request was sent to is a valid assertion audience besides the token URL.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	c, err := s.authenticate(ctx, r, form)
	if err != nil {
		id := form.Get("client_id")
		if c != nil {
			id = c.ID
		}
		var rfc *fosite.RFC6749Error
		reason := err.Error()
		if errors.As(err, &rfc) {
			reason = rfc.DescriptionField
		}
		s.log.WarnContext(ctx, "client authentication refused", "client_id", id, "endpoint", r.URL.Path, "reason", reason)
		return nil, err
	}
	return c, nil
}

func (s *Server) authenticate(ctx context.Context, r *http.Request, form url.Values) (*Client, error) {
	at, a := form.Get("client_assertion_type"), form.Get("client_assertion")
	basicID, basicSecret, basic := r.BasicAuth()
	switch {
	case at != "" && at != assertionType:
		return nil, clientError("client_assertion_type must be %s", assertionType)
	case at != "" && a == "":
		return nil, clientError("client_assertion is missing")
	case at == "" && a != "":
		return nil, clientError("client_assertion_type is missing (want %s)", assertionType)
	case a != "" && (basic || form.Get("client_secret") != ""):
		return nil, clientError("more than one client authentication method in one request")
	case a != "":
		return s.verifyAssertion(ctx, r, form)
	case basic && form.Get("client_secret") != "":
		return nil, clientError("more than one client authentication method in one request")
	}
	id, secret, method := form.Get("client_id"), form.Get("client_secret"), "client_secret_post"
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(basicID) // RFC 6749 section 2.3.1: form-encoded, then Basic
		secret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, clientError("the Basic credentials are not form-encoded")
		}
		method = "client_secret_basic"
		if f := form.Get("client_id"); f != "" && f != id {
			return nil, clientError("client_id differs from the Basic credentials' client id")
		}
	}
	if id == "" {
		return nil, clientError("no client authentication (client_id, client_secret_basic, client_secret_post or private_key_jwt)")
	}
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	switch c.Kind {
	case KindPublic:
		if secret != "" {
			return c, clientError("client %s is public: it has no secret", id)
		}
		return c, nil
	case KindSymmetric:
		if secret == "" {
			return c, clientError("client %s authenticates with its secret (client_secret_basic or client_secret_post)", id)
		}
		if bcrypt.CompareHashAndPassword(c.SecretHash, []byte(secret)) != nil {
			return c, clientError("the client secret is wrong (%s)", method)
		}
		return c, nil
	}
	return c, clientError("client %s authenticates with private_key_jwt", id)
}

func (s *Server) client(ctx context.Context, id string) (*Client, error) {
	fc, err := s.store.GetClient(ctx, id)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, clientError("unknown client")
	}
	if err != nil {
		return nil, fmt.Errorf("load client: %w", err)
	}
	return fc.(*Client), nil
}

// assertionClaims are the claims of a client assertion (RFC 7523 section 3).
type assertionClaims struct {
	josejwt.Claims
}

// verifyAssertion checks a private_key_jwt client assertion (RFC 7523, SMART Backend Services).
func (s *Server) verifyAssertion(ctx context.Context, r *http.Request, form url.Values) (*Client, error) {
	raw := form.Get("client_assertion")
	if checkCanonicalJWS(raw) != nil {
		return nil, clientError("the client assertion: %s", errNotCanonical)
	}
	jws, err := jose.ParseSigned(raw, assertionAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, clientError("the client assertion is not a compact JWS signed with RS384 or ES384")
	}
	hdr := jws.Signatures[0].Protected
	var unverified assertionClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, clientError("the client assertion's claims are not a JSON object of JWT claims")
	}
	id := form.Get("client_id")
	if id == "" {
		id = unverified.Subject
	}
	if id == "" || unverified.Issuer != id || unverified.Subject != id {
		return nil, clientError("the client assertion's iss and sub must both be the client_id")
	}
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Kind != KindAsymmetric {
		return c, clientError("client %s does not authenticate with private_key_jwt", id)
	}
	if hdr.Algorithm != c.AuthAlg {
		return c, clientError("the client assertion is signed with %s; client %s is registered for %s", hdr.Algorithm, id, c.AuthAlg)
	}
	if jku, ok := hdr.ExtraHeaders["jku"]; ok {
		if u, _ := jku.(string); c.JWKSURI == "" || u != c.JWKSURI {
			return c, clientError("the client assertion's jku is not the client's registered jwks_uri")
		}
	}
	if _, ok := hdr.ExtraHeaders["x5u"]; ok {
		return c, clientError("the client assertion's x5u header is not supported: use the registered keys")
	}
	set, err := s.clientKeys(ctx, c, hdr.KeyID)
	if err != nil {
		return c, clientError("%s", err.Error())
	}
	key, err := assertionKey(set, hdr.KeyID, hdr.Algorithm)
	if err != nil {
		return c, clientError("%s", err.Error())
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return c, clientError("the client assertion's signature does not verify with the client's key")
	}
	var cl assertionClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return c, clientError("the client assertion's claims are not a JSON object of JWT claims")
	}
	if cl.Issuer != id || cl.Subject != id {
		return c, clientError("the client assertion's iss and sub must both be the client_id")
	}
	if err := s.checkAssertionTimes(cl.Claims); err != nil {
		return c, err
	}
	if !cl.Audience.Contains(s.cfg.BaseURL+"/oauth2/token") && !(r.URL.Path != "/oauth2/token" && cl.Audience.Contains(s.cfg.BaseURL+r.URL.Path)) {
		return c, clientError("the client assertion's aud must be the token URL, %s/oauth2/token", s.cfg.BaseURL)
	}
	if cl.ID == "" || len(cl.ID) > 256 {
		return c, clientError("the client assertion needs a jti (at most 256 characters)")
	}
	fresh, err := s.store.useJTI(ctx, id, cl.ID, cl.Expiry.Time().Add(assertionSkew))
	if err != nil {
		return c, fmt.Errorf("record the assertion's jti: %w", err)
	}
	if !fresh {
		return c, clientError("the client assertion's jti was used already")
	}
	return c, nil
}

// checkAssertionTimes applies the time rules: exp present and not past, at most five minutes
// after now and after iat; nbf and iat not in the future.
func (s *Server) checkAssertionTimes(cl josejwt.Claims) error {
	now := s.cfg.Now()
	if cl.Expiry == nil {
		return clientError("the client assertion has no exp")
	}
	exp := cl.Expiry.Time()
	switch {
	case !now.Before(exp.Add(assertionSkew)):
		return clientError("the client assertion has expired (exp is in the past)")
	case exp.Sub(now) > assertionMaxLifetime+assertionSkew:
		return clientError("the client assertion's exp is more than five minutes in the future")
	case cl.IssuedAt != nil && exp.Sub(cl.IssuedAt.Time()) > assertionMaxLifetime:
		return clientError("the client assertion's exp is more than five minutes after its iat")
	case cl.IssuedAt != nil && cl.IssuedAt.Time().After(now.Add(assertionSkew)):
		return clientError("the client assertion's iat is in the future")
	case cl.NotBefore != nil && cl.NotBefore.Time().After(now.Add(assertionSkew)):
		return clientError("the client assertion is not valid yet (nbf is in the future)")
	}
	return nil
}

// clientKeys returns an asymmetric client's registered keys: inline, or from its jwks_uri.
func (s *Server) clientKeys(ctx context.Context, c *Client, kid string) (*jose.JSONWebKeySet, error) {
	if c.JWKS != nil {
		b, err := json.Marshal(c.JWKS)
		if err != nil {
			return nil, err
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(b, &set); err != nil {
			return nil, errors.New("the client's registered JWKS cannot be read")
		}
		return &set, nil
	}
	if c.JWKSURI == "" {
		return nil, errors.New("the client has no registered keys")
	}
	return s.clientJWKS.keys(ctx, c.ID, c.JWKSURI, kid)
}

// assertionKey picks the key an assertion is verified with: the one its kid names or, without a
// kid, the client's only key. The key must be for signatures (use "sig" or no use), of alg's
// type, and for alg when it names one.
func assertionKey(set *jose.JSONWebKeySet, kid, alg string) (any, error) {
	var candidates []jose.JSONWebKey
	switch {
	case kid != "":
		candidates = set.Key(kid)
		if len(candidates) == 0 {
			return nil, fmt.Errorf("the client has no key with kid %q", kid)
		}
	case len(set.Keys) == 1:
		candidates = set.Keys
	default:
		return nil, errors.New("the client assertion names no kid, and the client has more than one key")
	}
	for _, k := range candidates {
		if (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != alg) || !k.Valid() || !k.IsPublic() {
			continue
		}
		switch key := k.Key.(type) {
		case *rsa.PublicKey:
			if alg == string(jose.RS384) {
				return key, nil
			}
		case *ecdsa.PublicKey:
			if alg == string(jose.ES384) && key.Curve == elliptic.P384() {
				return key, nil
			}
		}
	}
	return nil, fmt.Errorf("the client has no signature key for %s with kid %q", alg, kid)
}

// useJTI records a client assertion's jti for its client until expires, and reports false when the
// client has used it already (and it has not expired). The primary key makes concurrent replays
// fail all but one.
func (st *storage) useJTI(ctx context.Context, clientID, jti string, expires time.Time) (bool, error) {
	now := st.now()
	st.jtiMu.Lock()
	purge := now.Sub(st.jtiPurged) >= jtiPurgeEvery || now.Before(st.jtiPurged)
	if purge {
		st.jtiPurged = now
	}
	st.jtiMu.Unlock()
	if purge {
		if _, err := st.pool.Exec(ctx, `DELETE FROM oauth_client_jti WHERE expires_at < $1`, now); err != nil {
			return false, err
		}
	} else if _, err := st.pool.Exec(ctx, `DELETE FROM oauth_client_jti WHERE client_id = $1 AND jti = $2 AND expires_at < $3`, clientID, jti, now); err != nil {
		return false, err
	}
	tag, err := st.pool.Exec(ctx, `INSERT INTO oauth_client_jti (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, clientID, jti, expires)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}
