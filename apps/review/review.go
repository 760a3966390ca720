// Package review serves Billy Review, the SMART app in which a human coder checks the draft Claim
// the pipeline made from an encounter's transcript against the transcript itself, corrects it and
// approves it (the Claim becomes active as a new version, with a Provenance naming the coder).
//
// It owns the app's static assets (static/, plain HTML, CSS and JavaScript with no build step and
// no third-party code, embedded in the binary) and the handler that serves them under
// /apps/review/ with a strict Content-Security-Policy, plus config.json, which tells the app its
// SMART client id and FHIR base. The app is an ordinary public SMART client: it authorizes with
// PKCE S256 against Billy's /oauth2/ endpoints (EHR launch with iss+launch, or standalone with the
// patient picker), keeps its tokens in memory only, and reads and writes through the FHIR API like
// any other client, so everything it does is checked by the token's scopes.
//
// It must not touch the store, the pipeline or the authorization server: it has no server-side
// logic beyond serving files. Registering the app as a SMART client is billy seed's (make run) or
// the operator's (billy clients create, see the README).
package review

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// Path is where the app is served; its SMART redirect URI and launch URL are BaseURL + Path.
const Path = "/apps/review/"

// ClientID is the app's SMART client id as billy seed registers it.
const ClientID = "billy-review"

// Scopes are what the app asks for: read the encounter's Claim, pipeline Tasks, transcript and code
// sets, update the Claim, and record the approval's Provenance. EHR launches add "launch",
// standalone ones "launch/patient".
const Scopes = "openid fhirUser user/Claim.rus user/Task.rs user/DocumentReference.r user/Binary.r user/Provenance.c " +
	"user/Patient.r user/Encounter.r user/ValueSet.r user/CodeSystem.r user/ChargeItemDefinition.rs"

//go:embed static
var static embed.FS

// Config is what the app is told about its server.
type Config struct {
	ClientID string // default ClientID
	FHIRBase string // the FHIR base URL the app talks to (standalone launches use it as iss)
}

// Handler serves the app under Path (mount it at Path).
func Handler(cfg Config) http.Handler {
	if cfg.ClientID == "" {
		cfg.ClientID = ClientID
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed is part of the binary
	}
	conf, err := json.Marshal(map[string]string{"clientId": cfg.ClientID, "fhirBase": cfg.FHIRBase, "scope": Scopes})
	if err != nil {
		panic(err)
	}
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, Path)
		if r.URL.Path+"/" == Path {
			http.Redirect(w, r, Path, http.StatusMovedPermanently)
			return
		}
		if name == "" {
			name = "index.html"
		}
		h := w.Header()
		// The app runs only its own files and talks only to its own server; the authorization
		// code arrives in the URL, so nothing is sent as a Referrer.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'none'; base-uri 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if name == "config.json" {
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(conf)
			return
		}
		b, err := fs.ReadFile(files, name)
		if err != nil || strings.Contains(name, "..") {
			http.NotFound(w, r)
			return
		}
		if ct, ok := types[path.Ext(name)]; ok {
			h.Set("Content-Type", ct)
		}
		_, _ = w.Write(b)
	})
}
