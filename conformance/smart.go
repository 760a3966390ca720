package conformance

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

const (
	smartSpec   = "https://hl7.org/fhir/smart-app-launch/conformance.html"
	backendSpec = "https://hl7.org/fhir/smart-app-launch/backend-services.html"
	asymSpec    = "https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html"
)

// LoadKey reads a Backend Services client's private key: a PEM file (PKCS#8, SEC 1 or PKCS#1) or a
// private JWK (whose kid and alg are used when set). It returns the key, its kid and its alg.
func LoadKey(b []byte) (key any, kid, alg string, err error) {
	if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "{") {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(b); err != nil {
			return nil, "", "", fmt.Errorf("read the JWK: %w", err)
		}
		if jwk.IsPublic() {
			return nil, "", "", errors.New("the JWK is a public key; the client's private key is needed")
		}
		return jwk.Key, jwk.KeyID, jwk.Algorithm, nil
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, "", "", errors.New("neither a PEM file nor a JWK")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		return k, "", "", nil
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, "", "", nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, "", "", nil
	}
	return nil, "", "", errors.New("the PEM block is not a private key this suite reads (EC or RSA)")
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// smartConfiguration is .well-known/smart-configuration, fetched once.
func (e *Env) smartConfiguration(ctx context.Context) (*Resp, error) {
	e.smartOnce.Do(func() {
		e.smartConf, e.smartErr = e.c.do(ctx, req{method: http.MethodGet, path: ".well-known/smart-configuration", noAuth: true,
			header: http.Header{"Accept": {"application/json"}}})
	})
	return e.smartConf, e.smartErr
}

// tokenURL is the token endpoint from the SMART configuration ("" when there is none).
func (e *Env) tokenURL(ctx context.Context) string {
	r, err := e.smartConfiguration(ctx)
	if err != nil || r.Status != 200 {
		return ""
	}
	return str(r.JSON()["token_endpoint"])
}

// smartDeclared reports whether the CapabilityStatement declares SMART (or any security service).
func (e *Env) smartDeclared() bool {
	return e.restOf()["security"] != nil
}

// assertionOpts shape one client assertion.
type assertionOpts struct {
	aud     string
	exp     time.Time
	jti     string
	algNone bool
}

// assertion signs a client assertion for the configured client.
func (e *Env) assertion(o assertionOpts) (string, error) {
	now := e.cfg.Now()
	claims := josejwt.Claims{Issuer: e.cfg.ClientID, Subject: e.cfg.ClientID, Audience: josejwt.Audience{o.aud}, ID: o.jti,
		Expiry: josejwt.NewNumericDate(o.exp), IssuedAt: josejwt.NewNumericDate(now)}
	if o.algNone {
		hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": e.cfg.KeyID})
		body, _ := json.Marshal(claims)
		return base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body) + ".", nil
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if e.cfg.KeyID != "" {
		opts = opts.WithHeader("kid", e.cfg.KeyID)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(e.cfg.Alg), Key: e.cfg.Key}, opts)
	if err != nil {
		return "", fmt.Errorf("signer: %w", err)
	}
	return josejwt.Signed(sig).Claims(claims).Serialize()
}

// askToken posts a client_credentials request with an assertion to the token endpoint.
func (e *Env) askToken(ctx context.Context, tokenURL, assertion, scope string) (*Resp, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	return e.c.do(ctx, req{method: http.MethodPost, path: tokenURL, body: form.Encode(), noAuth: true,
		header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}}})
}

// backendToken gets an access token with the configured client.
func (e *Env) backendToken(ctx context.Context, scope string) (string, error) {
	tu := e.tokenURL(ctx)
	if tu == "" {
		return "", errors.New("no token_endpoint in .well-known/smart-configuration")
	}
	a, err := e.assertion(assertionOpts{aud: tu, exp: e.cfg.Now().Add(4 * time.Minute), jti: randomID()})
	if err != nil {
		return "", err
	}
	r, err := e.askToken(ctx, tu, a, scope)
	if err != nil {
		return "", err
	}
	tok := str(r.JSON()["access_token"])
	if r.Status != 200 || tok == "" {
		return "", fmt.Errorf("the token endpoint answered %d: %s", r.Status, truncate(r.Body))
	}
	return tok, nil
}

// refused checks that a token request was refused the way Backend Services says: invalid_client
// (RFC 6749 §5.2 allows 400 or 401).
func refused(r *Resp) Result {
	if r.Status != 400 && r.Status != 401 {
		return fail(r, "answered %d, want 400 or 401 with error invalid_client", r.Status)
	}
	if got := str(r.JSON()["error"]); got != "invalid_client" {
		return fail(r, "error %q, want invalid_client", got)
	}
	return pass()
}

// backendCase runs a token request shaped by mod and checks it is refused.
func backendCase(mod func(e *Env, tu string, o *assertionOpts)) func(ctx context.Context, e *Env) Result {
	return func(ctx context.Context, e *Env) Result {
		if e.cfg.ClientID == "" || e.cfg.Key == nil {
			return skip("no Backend Services client given (--client-id and --key)")
		}
		tu := e.tokenURL(ctx)
		if tu == "" {
			return skip("no token_endpoint in .well-known/smart-configuration")
		}
		o := assertionOpts{aud: tu, exp: e.cfg.Now().Add(4 * time.Minute), jti: randomID()}
		mod(e, tu, &o)
		a, err := e.assertion(o)
		if err != nil {
			return fail(nil, "%v", err)
		}
		r, err := e.askToken(ctx, tu, a, e.cfg.Scope)
		if err != nil {
			return errResult(err)
		}
		return refused(r)
	}
}

func smartChecks() []Check {
	return []Check{
		chk("smart/configuration", SHALL, smartSpec+"#metadata", ".well-known/smart-configuration is JSON with token_endpoint, grant_types_supported, capabilities and code_challenge_methods_supported including S256 (not plain)", true, func(ctx context.Context, e *Env) Result {
			r, err := e.smartConfiguration(ctx)
			if err != nil {
				return errResult(err)
			}
			if r.Status == 404 && !e.smartDeclared() {
				return skip("the server declares no security and serves no SMART configuration")
			}
			m := r.JSON()
			if r.Status != 200 || m == nil {
				return fail(r, "answered %d, want 200 with a JSON object", r.Status)
			}
			tu, _ := url.Parse(str(m["token_endpoint"]))
			if tu == nil || !tu.IsAbs() {
				return fail(r, "token_endpoint %q is not an absolute URL", str(m["token_endpoint"]))
			}
			for _, f := range []string{"grant_types_supported", "capabilities", "code_challenge_methods_supported"} {
				if len(arr(m[f])) == 0 {
					return fail(r, "%s is missing or empty", f)
				}
			}
			var methods []string
			for _, x := range arr(m["code_challenge_methods_supported"]) {
				methods = append(methods, str(x))
			}
			if !contains(methods, "S256") || contains(methods, "plain") {
				return fail(r, "code_challenge_methods_supported %v: want S256 and not plain", methods)
			}
			return pass()
		}),
		chk("smart/backend-discovery", SHALL, backendSpec+"#discovery-requirements", "A server offering client_credentials lists private_key_jwt and RS384 or ES384 in its SMART configuration", true, func(ctx context.Context, e *Env) Result {
			r, err := e.smartConfiguration(ctx)
			if err != nil {
				return errResult(err)
			}
			m := r.JSON()
			grants := fmt.Sprint(m["grant_types_supported"])
			if r.Status != 200 || !strings.Contains(grants, "client_credentials") {
				return skip("the server does not offer client_credentials")
			}
			if !strings.Contains(fmt.Sprint(m["token_endpoint_auth_methods_supported"]), "private_key_jwt") {
				return fail(r, "token_endpoint_auth_methods_supported lacks private_key_jwt")
			}
			algs := fmt.Sprint(m["token_endpoint_auth_signing_alg_values_supported"])
			if !strings.Contains(algs, "RS384") && !strings.Contains(algs, "ES384") {
				return fail(r, "token_endpoint_auth_signing_alg_values_supported %s lacks RS384 and ES384", algs)
			}
			return pass()
		}),
		chk("smart/capability-security", SHOULD, smartSpec+"#metadata", "The CapabilityStatement's rest.security names the SMART-on-FHIR service and the token URL of the SMART configuration (oauth-uris)", true, func(ctx context.Context, e *Env) Result {
			tu := e.tokenURL(ctx)
			if tu == "" {
				return skip("no SMART configuration")
			}
			sec := obj(e.restOf()["security"])
			b, _ := json.Marshal(sec)
			if !strings.Contains(string(b), `"SMART-on-FHIR"`) {
				return fail(nil, "rest.security does not name the SMART-on-FHIR service: %s", b)
			}
			for _, ext := range arr(sec["extension"]) {
				if str(obj(ext)["url"]) != "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
					continue
				}
				for _, sub := range arr(obj(ext)["extension"]) {
					if str(obj(sub)["url"]) == "token" && str(obj(sub)["valueUri"]) == tu {
						return pass()
					}
				}
			}
			return fail(nil, "rest.security has no oauth-uris extension with token %s", tu)
		}),
		chk("smart/unauthenticated", SHALL, backendSpec+"#accessing-fhir-resources", "A server declaring security refuses a FHIR request without a token (401)", true, func(ctx context.Context, e *Env) Result {
			if !e.smartDeclared() {
				return skip("the server declares no security")
			}
			r, err := e.c.do(ctx, req{method: http.MethodGet, path: "Patient?_count=1", noAuth: true})
			if err != nil {
				return errResult(err)
			}
			if r.Status != 401 {
				return fail(r, "answered %d, want 401", r.Status)
			}
			return pass()
		}),
		chk("smart/forged-token", SHALL, asymSpec+"#signature-verification", "A server declaring security refuses an access token with alg none (401)", true, func(ctx context.Context, e *Env) Result {
			if !e.smartDeclared() {
				return skip("the server declares no security")
			}
			claims := map[string]any{"iss": e.c.base, "sub": "conformance", "scope": "system/*.rs", "exp": e.cfg.Now().Add(time.Hour).Unix()}
			if parts := strings.Split(e.c.token, "."); len(parts) == 3 {
				if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
					json.Unmarshal(raw, &claims)
				}
			}
			hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
			body, _ := json.Marshal(claims)
			forged := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body) + "."
			r, err := e.c.do(ctx, req{method: http.MethodGet, path: "Patient?_count=1", token: forged})
			if err != nil {
				return errResult(err)
			}
			if r.Status != 401 {
				return fail(r, "answered %d, want 401", r.Status)
			}
			return pass()
		}),
		chk("smart/backend-token", SHALL, backendSpec+"#issue-access-token", "A valid client assertion gets an access token (token_type bearer, expires_in, scope) that reads FHIR", true, func(ctx context.Context, e *Env) Result {
			if e.cfg.ClientID == "" || e.cfg.Key == nil {
				return skip("no Backend Services client given (--client-id and --key)")
			}
			tu := e.tokenURL(ctx)
			if tu == "" {
				return skip("no token_endpoint in .well-known/smart-configuration")
			}
			a, err := e.assertion(assertionOpts{aud: tu, exp: e.cfg.Now().Add(4 * time.Minute), jti: randomID()})
			if err != nil {
				return fail(nil, "%v", err)
			}
			r, err := e.askToken(ctx, tu, a, e.cfg.Scope)
			if err != nil {
				return errResult(err)
			}
			m := r.JSON()
			if r.Status != 200 || str(m["access_token"]) == "" || !strings.EqualFold(str(m["token_type"]), "bearer") || m["expires_in"] == nil || str(m["scope"]) == "" {
				return fail(r, "answered %d without access_token, token_type bearer, expires_in and scope", r.Status)
			}
			fr, err := e.c.do(ctx, req{method: http.MethodGet, path: "Patient?_count=1", token: str(m["access_token"])})
			if err != nil {
				return errResult(err)
			}
			if fr.Status != 200 {
				return fail(fr, "a search with the token answered %d", fr.Status)
			}
			return pass()
		}),
		chk("smart/backend-replay", SHALL, backendSpec+"#authenticating-to-the-token-endpoint", "A client assertion used twice (same jti) is refused with invalid_client", true, func(ctx context.Context, e *Env) Result {
			if e.cfg.ClientID == "" || e.cfg.Key == nil {
				return skip("no Backend Services client given (--client-id and --key)")
			}
			tu := e.tokenURL(ctx)
			if tu == "" {
				return skip("no token_endpoint in .well-known/smart-configuration")
			}
			a, err := e.assertion(assertionOpts{aud: tu, exp: e.cfg.Now().Add(4 * time.Minute), jti: randomID()})
			if err != nil {
				return fail(nil, "%v", err)
			}
			r, err := e.askToken(ctx, tu, a, e.cfg.Scope)
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 {
				return fail(r, "the first use answered %d", r.Status)
			}
			r, err = e.askToken(ctx, tu, a, e.cfg.Scope)
			if err != nil {
				return errResult(err)
			}
			return refused(r)
		}),
		chk("smart/backend-expired", SHALL, backendSpec+"#authenticating-to-the-token-endpoint", "An expired client assertion is refused with invalid_client", true,
			backendCase(func(e *Env, _ string, o *assertionOpts) { o.exp = e.cfg.Now().Add(-time.Minute) })),
		chk("smart/backend-alg-none", SHALL, asymSpec+"#signature-verification", "An unsigned client assertion (alg none) is refused with invalid_client", true,
			backendCase(func(_ *Env, _ string, o *assertionOpts) { o.algNone = true })),
		chk("smart/backend-wrong-audience", SHALL, asymSpec+"#authenticating-to-the-token-endpoint", "A client assertion whose aud is not the token endpoint is refused with invalid_client", true,
			backendCase(func(_ *Env, tu string, o *assertionOpts) { o.aud = tu + "/elsewhere" })),
	}
}

// DefaultAlg is the assertion algorithm for a key: ES384 for EC keys, RS384 for RSA keys.
func DefaultAlg(key any) string {
	switch key.(type) {
	case *rsa.PrivateKey:
		return "RS384"
	}
	return "ES384"
}
