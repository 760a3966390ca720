package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Config is what a run needs.
type Config struct {
	// Base is the FHIR base URL ("https://ehr.example/fhir").
	Base string
	// Token is a bearer token sent with every FHIR request; empty with ClientID/Key, or for an open server.
	Token string
	// ClientID and Key (with KeyID and Alg, ES384 or RS384) are a SMART Backend Services client: the
	// run asks the token endpoint for a token with Scope, and the smart checks use the client.
	ClientID string
	Key      any
	KeyID    string
	Alg      string
	// Scope is asked for with ClientID/Key; default "system/*.cruds" ("system/*.rs" read-only).
	Scope string
	// ReadOnly runs only the checks that send no write, on the resources the server already has.
	ReadOnly bool
	// Only, when set, runs only the checks whose ID it matches; Skip leaves out those it matches
	// (RE2 has no negative lookahead: "everything but bulk" is Skip ^bulk/).
	Only, Skip *regexp.Regexp
	// Workers run checks concurrently (default 4).
	Workers int
	// Progress receives a line per finished check (nil: none).
	Progress io.Writer
	// HTTP is the client for every request (default: one with a 60 s timeout).
	HTTP *http.Client
	// Now is the clock for assertions (default time.Now).
	Now func() time.Time
	// PollInterval is the longest wait between Bulk Data status polls (default 2 s; a shorter
	// Retry-After wins), BulkTimeout the longest an export may take (default 5 min).
	PollInterval, BulkTimeout time.Duration
	// RunID names the run's fixtures (default random).
	RunID string
}

// TagSystem is the system of the tag every fixture carries; its code is the run id.
const TagSystem = "urn:billy:conformance"

// Env is what a check sees: the server, its CapabilityStatement and the run's fixtures.
type Env struct {
	cfg      *Config
	c        *client
	cap      map[string]any
	runID    string
	tag      string // system|code, for _tag searches
	fixtures map[string]map[string]any

	mu      sync.Mutex
	created []string // Type/id, in creation order

	smartOnce sync.Once
	smartConf *Resp
	smartErr  error

	bulkOnce sync.Once
	bulk     bulkResult

	foundMu sync.Mutex
	found   map[string]*found // first resource of a type, for read-only checks
}

// CheckResult is a check with its result, as the reports carry them.
type CheckResult struct {
	Check
	Result Result `json:"result"`
}

// Report is a run's outcome.
type Report struct {
	Base     string    `json:"base"`
	RunID    string    `json:"runId"`
	ReadOnly bool      `json:"readOnly"`
	Software string    `json:"software,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Counts is the number of checks per level and status.
	Counts  map[Level]map[Status]int `json:"counts"`
	Results []CheckResult            `json:"results"`
	// Leftovers lists what the run created and could not remove.
	Leftovers []string `json:"leftovers,omitempty"`
	// Notes are problems of the run itself (not of a check), such as a token that could not be had.
	Notes []string `json:"notes,omitempty"`
}

// Failed is the number of failed checks of a level.
func (r *Report) Failed(l Level) int { return r.Counts[l][Fail] }

// Result is the result of the check with this ID (false when it did not run).
func (r *Report) Result(id string) (CheckResult, bool) {
	for _, c := range r.Results {
		if c.ID == id {
			return c, true
		}
	}
	return CheckResult{}, false
}

// Run runs the suite against cfg.Base and reports. It returns an error only when the server cannot
// be checked at all (no CapabilityStatement); every other problem is a check's failure or a note.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.BulkTimeout <= 0 {
		cfg.BulkTimeout = 5 * time.Minute
	}
	if cfg.RunID == "" {
		b := make([]byte, 5)
		rand.Read(b)
		cfg.RunID = "r" + hex.EncodeToString(b)
	}
	if cfg.Scope == "" {
		cfg.Scope = "system/*.cruds"
		if cfg.ReadOnly {
			cfg.Scope = "system/*.rs"
		}
	}
	if cfg.Alg == "" {
		cfg.Alg = "ES384"
	}
	e := &Env{cfg: &cfg, c: &client{base: strings.TrimSuffix(cfg.Base, "/") + "/", http: cfg.HTTP, token: cfg.Token},
		runID: cfg.RunID, tag: TagSystem + "|" + cfg.RunID, found: map[string]*found{}}
	rep := &Report{Base: cfg.Base, RunID: cfg.RunID, ReadOnly: cfg.ReadOnly, Started: time.Now().UTC()}

	meta, err := e.c.get(ctx, "metadata")
	if err != nil {
		return nil, fmt.Errorf("read the CapabilityStatement: %w", err)
	}
	if meta.Status != 200 || meta.ResourceType() != "CapabilityStatement" {
		return nil, fmt.Errorf("GET %smetadata answered %d, not a CapabilityStatement", e.c.base, meta.Status)
	}
	e.cap = meta.JSON()
	if sw := obj(e.cap["software"]); sw != nil {
		rep.Software = strings.TrimSpace(str(sw["name"]) + " " + str(sw["version"]))
	}
	if cfg.Token == "" && cfg.ClientID != "" && cfg.Key != nil {
		tok, err := e.backendToken(ctx, cfg.Scope)
		if err != nil {
			rep.Notes = append(rep.Notes, "no access token from the Backend Services client: "+err.Error())
		} else {
			e.c.token = tok
		}
	}

	checks := All(e)
	var selected []Check
	for _, c := range checks {
		if (cfg.Only != nil && !cfg.Only.MatchString(c.ID)) || (cfg.Skip != nil && cfg.Skip.MatchString(c.ID)) {
			continue
		}
		selected = append(selected, c)
	}
	if !cfg.ReadOnly && len(selected) > 0 {
		if err := e.createFixtures(ctx); err != nil {
			rep.Notes = append(rep.Notes, "fixtures: "+err.Error())
		}
	}
	results := make([]CheckResult, len(selected))
	var (
		wg   sync.WaitGroup
		next = make(chan int)
		done int
		pmu  sync.Mutex
	)
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c := selected[i]
				res := e.runOne(ctx, c)
				results[i] = CheckResult{Check: c, Result: res}
				pmu.Lock()
				done++
				if cfg.Progress != nil {
					fmt.Fprintf(cfg.Progress, "[%d/%d] %-4s %-6s %s%s\n", done, len(selected), res.Status, c.Level, c.ID, reasonSuffix(res))
				}
				pmu.Unlock()
			}
		}()
	}
	for i := range selected {
		next <- i
	}
	close(next)
	wg.Wait()
	if !cfg.ReadOnly {
		rep.Leftovers = e.cleanup(context.WithoutCancel(ctx))
	}
	rep.Results = results
	rep.Counts = map[Level]map[Status]int{}
	for _, l := range Levels {
		rep.Counts[l] = map[Status]int{Pass: 0, Fail: 0, Skip: 0}
	}
	for _, r := range results {
		rep.Counts[r.Level][r.Result.Status]++
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

func reasonSuffix(r Result) string {
	if r.Status == Pass || r.Reason == "" {
		return ""
	}
	s := r.Reason
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return ": " + s
}

// runOne runs a check, turning a panic into a failure and skipping writes in a read-only run.
func (e *Env) runOne(ctx context.Context, c Check) (res Result) {
	if e.cfg.ReadOnly && !c.ReadOnly {
		return skip("read-only run: this check writes")
	}
	defer func() {
		if p := recover(); p != nil {
			res = Result{Status: Fail, Reason: fmt.Sprintf("the check itself broke: %v", p)}
		}
	}()
	return c.Run(ctx, e)
}

// track records a resource the run created, to remove at the end.
func (e *Env) track(ref string) {
	if ref == "" || strings.HasSuffix(ref, "/") {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !contains(e.created, ref) {
		e.created = append(e.created, ref)
	}
}

// fixtureMeta is the meta element of a fixture: the run's tag.
func (e *Env) fixtureMeta() map[string]any {
	return map[string]any{"tag": []any{map[string]any{"system": TagSystem, "code": e.runID}}}
}

// tagMeta is the meta element of what checks create besides the fixtures: a tag of its own, so
// that searches by the fixtures' tag find the fixtures only.
func (e *Env) tagMeta() map[string]any {
	return map[string]any{"tag": []any{map[string]any{"system": TagSystem, "code": e.runID + "-scratch"}}}
}

// create POSTs a resource tagged as scratch data (or as a fixture) and tracks it. It returns the
// stored resource.
func (e *Env) create(ctx context.Context, res map[string]any, hdr ...string) (map[string]any, *Resp, error) {
	return e.createWith(ctx, res, e.tagMeta(), hdr...)
}

func (e *Env) createWith(ctx context.Context, res, meta map[string]any, hdr ...string) (map[string]any, *Resp, error) {
	res = clone(res)
	res["meta"] = meta
	r, err := e.c.post(ctx, str(res["resourceType"]), res, hdr...)
	if err != nil {
		return nil, nil, err
	}
	if r.Status != 201 && r.Status != 200 {
		return nil, r, fmt.Errorf("create %s answered %d", res["resourceType"], r.Status)
	}
	out := r.JSON()
	id := str(out["id"])
	if id == "" {
		id = idFromLocation(r.Header.Get("Location"))
		if id == "" {
			return nil, r, errors.New("create answered no id")
		}
		if read, err := e.c.get(ctx, str(res["resourceType"])+"/"+id); err == nil && read.Status == 200 {
			out = read.JSON()
		}
	}
	e.track(str(res["resourceType"]) + "/" + id)
	return out, r, nil
}

// idFromLocation is the id in a Location header (…/Type/id[/_history/v]).
func idFromLocation(loc string) string {
	if i := strings.Index(loc, "/_history/"); i >= 0 {
		loc = loc[:i]
	}
	if i := strings.LastIndexByte(loc, '/'); i >= 0 {
		return loc[i+1:]
	}
	return ""
}

// cleanup deletes what the run created (newest first, so references go before their targets) and
// whatever else carries the run's tag; it returns what stayed.
func (e *Env) cleanup(ctx context.Context) []string {
	e.mu.Lock()
	refs := append([]string(nil), e.created...)
	e.mu.Unlock()
	for _, typ := range []string{"Observation", "RiskAssessment", "Encounter", "Patient", "Organization"} {
		for _, tag := range []string{e.tag, e.tag + "-scratch"} {
			if r, err := e.c.get(ctx, typ+"?_tag="+q(tag)+"&_count=100"); err == nil && r.Status == 200 {
				for _, ref := range refsOf(r.JSON(), "") {
					if !contains(refs, ref) {
						refs = append([]string{ref}, refs...)
					}
				}
			}
		}
	}
	var left []string
	for pass := 0; pass < 2; pass++ {
		left = nil
		for i := len(refs) - 1; i >= 0; i-- {
			r, err := e.c.del(ctx, refs[i])
			if err != nil || (r.Status >= 300 && r.Status != 404 && r.Status != 410) {
				left = append([]string{refs[i]}, left...)
			}
		}
		if len(left) == 0 {
			break
		}
		refs = left
	}
	return left
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			out[k] = clone(x)
		case []any:
			out[k] = cloneArr(x)
		default:
			out[k] = v
		}
	}
	return out
}

func cloneArr(a []any) []any {
	out := make([]any, len(a))
	for i, v := range a {
		switch x := v.(type) {
		case map[string]any:
			out[i] = clone(x)
		case []any:
			out[i] = cloneArr(x)
		default:
			out[i] = v
		}
	}
	return out
}
