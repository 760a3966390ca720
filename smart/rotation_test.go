package smart_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/smart"
	"github.com/iambilly/billy/smart/directory"
)

// TestRefreshTokenSurvivesRotation: a refresh token issued under the first master key is redeemed
// by a server that holds only the new key, after Reseal; the new access token verifies there; a
// second Reseal changes nothing.
func TestRefreshTokenSurvivesRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, redirect := e.registerPublic(appScopes)
	verifier, challenge := pkce()
	q := e.authorizeFlow(client, redirect, "openid fhirUser launch/patient offline_access patient/*.rs", challenge, nil)
	r := e.form("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirect},
		"client_id": {client}, "code_verifier": {verifier}}, "", "")
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	refresh, _ := r.json(t)["refresh_token"].(string)
	if refresh == "" {
		t.Fatalf("no refresh token: %s", r.body)
	}

	old := []byte("0123456789abcdef0123456789abcdef") // newEnv's master key
	oldRing, err := crypto.KeyringFromKey(old)
	if err != nil {
		t.Fatal(err)
	}
	newKey := base64.StdEncoding.EncodeToString([]byte("a new master key of 32 bytes....."[:32]))
	both, err := crypto.ParseKeyring("k2:" + newKey + "," + oldRing.Current() + ":" + base64.StdEncoding.EncodeToString(old))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := smart.Reseal(t.Context(), e.pool, both)
	if err != nil || rep.SigningKeys != 1 || rep.Secrets != 2 || rep.Current != 0 {
		t.Fatalf("reseal: %+v %v", rep, err)
	}
	if rep, err := smart.Reseal(t.Context(), e.pool, both); err != nil || rep != (smart.ResealReport{Current: 3}) {
		t.Errorf("second reseal: %+v %v, want nothing done", rep, err)
	}

	onlyNew, err := crypto.ParseKeyring("k2:" + newKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := smart.New(t.Context(), smart.Config{BaseURL: e.base, FHIRBase: e.fhir, Keys: onlyNew, Now: e.clock.now},
		e.pool, directory.Store{St: e.st}, e.audits, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("a server with only the new key: %v", err)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {client}}
	req := httptest.NewRequest(http.MethodPost, e.base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh after rotation: %d %s", rec.Code, rec.Body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &tok)
	if _, err := srv.Verifier().Verify(t.Context(), tok.AccessToken); err != nil {
		t.Errorf("the refreshed access token: %v", err)
	}
}
