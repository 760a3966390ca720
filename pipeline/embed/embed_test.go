package embed_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/iambilly/billy/pipeline/embed"
)

func vecHash(v []float32) string {
	h := sha256.New()
	for _, x := range v {
		_ = binary.Write(h, binary.LittleEndian, math.Float32bits(x))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// TestHashDeterministic pins the built-in vectors: a change of features or weights must bump the
// model name (the index records it) and update these hashes.
func TestHashDeterministic(t *testing.T) {
	t.Parallel()
	h := embed.NewHash(0)
	if h.Dim() != embed.DefaultDim {
		t.Fatalf("Dim = %d", h.Dim())
	}
	if name, model := h.Info(); name != "builtin" || model != "hash-ngram-v1" {
		t.Errorf("Info = %s, %s", name, model)
	}
	texts := []string{"Type 2 diabetes mellitus with diabetic chronic kidney disease", "HTN, SOB and CP since Monday"}
	a, err := h.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := embed.NewHash(0).Embed(t.Context(), texts)
	if d := cmp.Diff(a, b); d != "" {
		t.Fatalf("two embedders disagree:\n%s", d)
	}
	got := []string{vecHash(a[0]), vecHash(a[1])}
	want := goldenHashes
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("built-in vectors changed (-want +got); bump builtinModel if intended:\n%s", d)
	}
	for i, v := range a {
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-5 {
			t.Errorf("vector %d has squared norm %v", i, n)
		}
	}
}

var goldenHashes = []string{"ae0f9594d150dbd9", "fdc9b1ca03454cbe"}

func TestHashRanksLexicalNeighbours(t *testing.T) {
	t.Parallel()
	h := embed.NewHash(0)
	docs := []string{
		"Essential (primary) hypertension",
		"Type 2 diabetes mellitus with diabetic chronic kidney disease",
		"Type 2 diabetes mellitus without complications",
		"Shortness of breath",
		"Chest pain, unspecified",
		"Sprain of unspecified ligament of right ankle, initial encounter",
		"Acute upper respiratory infection, unspecified",
		"Low back pain, unspecified",
	}
	tests := []struct {
		query string
		want  int
	}{
		{"HTN", 0},
		{"DM2 with CKD stage 3", 1},
		{"T2DM, no complications", 2},
		{"SOB", 3},
		{"CP", 4},
		{"right ankle sprain", 5},
		{"URI", 6},
		{"LBP", 7},
	}
	dv, _ := h.Embed(t.Context(), docs)
	for _, tc := range tests {
		q := h.Vector(tc.query)
		best, bestScore := -1, float32(-2)
		for i, d := range dv {
			if s := embed.Dot(q, d); s > bestScore {
				best, bestScore = i, s
			}
		}
		if best != tc.want {
			t.Errorf("%q: nearest %q (%.3f), want %q", tc.query, docs[best], bestScore, docs[tc.want])
		}
	}
}

func TestTokenizeAndAbbreviations(t *testing.T) {
	t.Parallel()
	text := "Pt c/o left-sided CP, a-fib s/p ablation; cp"
	var got []string
	for _, tok := range embed.Tokenize(text) {
		if text[tok.Start:tok.End] != tok.Text {
			t.Errorf("offsets of %q wrong", tok.Text)
		}
		got = append(got, tok.Text)
	}
	want := []string{"Pt", "c/o", "left", "sided", "CP", "a-fib", "s/p", "ablation", "cp"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Tokenize (-want +got)\n%s", d)
	}
	tests := []struct {
		tok  string
		exp  string
		want bool
	}{
		{"HTN", "hypertension", true}, {"htn", "hypertension", true}, {"CP", "chest pain", true},
		{"cp", "", false}, {"pad", "", false}, {"PAD", "peripheral arterial disease", true}, {"flu", "influenza", true},
		{"T2DM", "type 2 diabetes mellitus", true}, {"walk", "", false},
	}
	for _, tc := range tests {
		exp, ok := embed.Abbreviation(tc.tok)
		if ok != tc.want || exp != tc.exp {
			t.Errorf("Abbreviation(%q) = %q, %v", tc.tok, exp, ok)
		}
	}
	if got := embed.Expand("HTN and DM2."); got != "HTN (hypertension) and DM2 (type 2 diabetes mellitus)." {
		t.Errorf("Expand = %q", got)
	}
	if got := embed.Stem("ankles"); got != "ankle" {
		t.Errorf("Stem(ankles) = %q", got)
	}
	if got := embed.Stem("diabetes"); got != "diabetes" {
		t.Errorf("Stem(diabetes) = %q", got)
	}
}

// fakeServer speaks the OpenAI embeddings wire format and checks each request.
type fakeServer struct {
	t       *testing.T
	mu      sync.Mutex
	calls   int
	inputs  [][]string
	failFor int // answer failStatus to this many calls first
	failSt  int
	body    func(in []string) any // answer body; default: deterministic vectors
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		f.t.Errorf("request %s %s", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer sk-test-secret" {
		f.t.Errorf("Authorization = %q", got)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("Content-Type = %q", ct)
	}
	var req struct {
		Model          string   `json:"model"`
		Input          []string `json:"input"`
		EncodingFormat string   `json:"encoding_format"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		f.t.Errorf("request body: %v", err)
	}
	if req.Model != "nomic-embed-text" || req.EncodingFormat != "float" || len(req.Input) == 0 {
		f.t.Errorf("request = %+v", req)
	}
	if call <= f.failFor {
		if f.failSt == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		http.Error(w, `{"error":{"message":"busy; key sk-test-secret"}}`, f.failSt)
		return
	}
	f.mu.Lock()
	f.inputs = append(f.inputs, req.Input)
	f.mu.Unlock()
	var body any
	if f.body != nil {
		body = f.body(req.Input)
	} else {
		type item struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		items := make([]item, len(req.Input))
		for i, s := range req.Input {
			// reversed order on the wire: the client must sort by index
			items[len(items)-1-i] = item{"embedding", i, []float32{float32(len(s)), 1, 0, 0}}
		}
		body = map[string]any{"object": "list", "data": items, "model": req.Model,
			"usage": map[string]int{"prompt_tokens": 1, "total_tokens": 1}}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func newEngine(t *testing.T, f *fakeServer, batch int) *embed.OpenAI {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	e, err := embed.NewOpenAI(embed.OpenAIConfig{URL: srv.URL + "/v1", Model: "nomic-embed-text", APIKey: "sk-test-secret",
		BatchSize: batch, MaxAttempts: 3, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestOpenAIEmbedBatchesAndOrders(t *testing.T) {
	t.Parallel()
	f := &fakeServer{t: t}
	e := newEngine(t, f, 2)
	if e.Dim() != 0 {
		t.Errorf("Dim before the first answer = %d", e.Dim())
	}
	texts := []string{"a", "bb", "ccc", "dddd", "eeeee"}
	vecs, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if f.calls != 3 || len(vecs) != 5 || e.Dim() != 4 {
		t.Fatalf("calls %d, vectors %d, dim %d", f.calls, len(vecs), e.Dim())
	}
	for i, v := range vecs {
		n := float32(len(texts[i]))
		want := []float32{n / float32(math.Sqrt(float64(n*n+1))), 1 / float32(math.Sqrt(float64(n*n+1))), 0, 0}
		if d := cmp.Diff(want, v, cmpopts.EquateApprox(0, 1e-6)); d != "" {
			t.Errorf("vector %d (-want +got)\n%s", i, d)
		}
	}
	if d := cmp.Diff([][]string{{"a", "bb"}, {"ccc", "dddd"}, {"eeeee"}}, f.inputs); d != "" {
		t.Errorf("batches (-want +got)\n%s", d)
	}
	if id := embed.ID(e); id != "openai/nomic-embed-text/4" {
		t.Errorf("ID = %q", id)
	}
}

func TestOpenAIErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		server    *fakeServer
		wantErr   error // nil: success
		wantCalls int
	}{
		{"500 then success", &fakeServer{failFor: 2, failSt: 500}, nil, 3},
		{"429 then success", &fakeServer{failFor: 1, failSt: 429}, nil, 2},
		{"503 every time", &fakeServer{failFor: 99, failSt: 503}, embed.ErrTransient, 3},
		{"400 is permanent, no retry", &fakeServer{failFor: 99, failSt: 400}, embed.ErrPermanent, 1},
		{"401 is permanent", &fakeServer{failFor: 99, failSt: 401}, embed.ErrPermanent, 1},
		{"malformed JSON", &fakeServer{body: func([]string) any { return "not an object" }}, embed.ErrPermanent, 1},
		{"too few vectors", &fakeServer{body: func([]string) any {
			return map[string]any{"data": []map[string]any{{"index": 0, "embedding": []float32{1, 0}}}}
		}}, embed.ErrPermanent, 1},
		{"ragged dimensions", &fakeServer{body: func([]string) any {
			return map[string]any{"data": []map[string]any{{"index": 0, "embedding": []float32{1, 0}}, {"index": 1, "embedding": []float32{1, 0, 0}}}}
		}}, embed.ErrPermanent, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.server.t = t
			e := newEngine(t, tc.server, 8)
			_, err := e.Embed(t.Context(), []string{"x", "y"})
			if tc.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "sk-test-secret") {
				t.Errorf("error leaks the API key: %v", err)
			}
			if tc.server.calls != tc.wantCalls {
				t.Errorf("calls = %d, want %d", tc.server.calls, tc.wantCalls)
			}
		})
	}
}

func TestOpenAIRespectsContext(t *testing.T) {
	t.Parallel()
	f := &fakeServer{t: t, failFor: 99, failSt: 503}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	e, _ := embed.NewOpenAI(embed.OpenAIConfig{URL: srv.URL, Model: "nomic-embed-text", APIKey: "sk-test-secret", MaxAttempts: 5, Backoff: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for {
			f.mu.Lock()
			n := f.calls
			f.mu.Unlock()
			if n > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := e.Embed(ctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestOpenAIConfigFromEnv(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("sk-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		ok      bool
		wantErr bool
		want    embed.OpenAIConfig
	}{
		{"unset: built-in", map[string]string{}, false, false, embed.OpenAIConfig{}},
		{"url without model", map[string]string{"BILLY_EMBED_URL": "http://x"}, false, true, embed.OpenAIConfig{URL: "http://x"}},
		{"full", map[string]string{"BILLY_EMBED_URL": "http://x", "BILLY_EMBED_MODEL": "m", "BILLY_EMBED_API_KEY": "k", "BILLY_EMBED_DIM": "768"},
			true, false, embed.OpenAIConfig{URL: "http://x", Model: "m", APIKey: "k", Dim: 768}},
		{"key file", map[string]string{"BILLY_EMBED_URL": "http://x", "BILLY_EMBED_MODEL": "m", "BILLY_EMBED_API_KEY_FILE": keyFile},
			true, false, embed.OpenAIConfig{URL: "http://x", Model: "m", APIKey: "sk-from-file"}},
		{"bad dim", map[string]string{"BILLY_EMBED_URL": "http://x", "BILLY_EMBED_MODEL": "m", "BILLY_EMBED_DIM": "-1"},
			false, true, embed.OpenAIConfig{URL: "http://x", Model: "m"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, ok, err := embed.OpenAIConfigFromEnv(func(k string) string { return tc.env[k] })
			if ok != tc.ok || (err != nil) != tc.wantErr {
				t.Fatalf("ok %v err %v", ok, err)
			}
			if d := cmp.Diff(tc.want, cfg); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://h:8080":                 "http://h:8080/v1/embeddings",
		"http://h:8080/":                "http://h:8080/v1/embeddings",
		"http://h:8080/v1":              "http://h:8080/v1/embeddings",
		"http://h:8080/v1/embeddings":   "http://h:8080/v1/embeddings",
		"https://api.example/openai/v1": "https://api.example/openai/v1/embeddings",
	} {
		if got := embed.Endpoint(in, "embeddings"); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func ExampleExpand() {
	fmt.Println(embed.Expand("Follow-up of HTN and T2DM; denies SOB."))
	// Output: Follow-up of HTN (hypertension) and T2DM (type 2 diabetes mellitus); denies SOB (shortness of breath).
}
