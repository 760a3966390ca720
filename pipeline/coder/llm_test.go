package coder_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/kb"
)

// chatServer speaks the OpenAI chat-completions wire format: it checks each request and answers
// with the next scripted reply (an HTTP status and the assistant message content).
type chatServer struct {
	t       *testing.T
	mu      sync.Mutex
	replies []reply
	reqs    []map[string]any
}

type reply struct {
	status  int
	content string
}

func (s *chatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		s.t.Errorf("request %s %s", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer sk-llm-secret" {
		s.t.Errorf("Authorization = %q", got)
	}
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.t.Errorf("body: %v", err)
	}
	s.reqs = append(s.reqs, req)
	rf, _ := req["response_format"].(map[string]any)
	js, _ := rf["json_schema"].(map[string]any)
	if req["model"] != "qwen2.5-7b-instruct" || rf["type"] != "json_schema" || js["strict"] != true || js["schema"] == nil {
		s.t.Errorf("request model %v response_format %v", req["model"], rf)
	}
	if len(s.replies) == 0 {
		s.t.Error("more requests than scripted replies")
		http.Error(w, "no more replies", http.StatusInternalServerError)
		return
	}
	rep := s.replies[0]
	s.replies = s.replies[1:]
	if rep.status != 0 && rep.status != http.StatusOK {
		http.Error(w, `{"error":{"message":"upstream says no (sk-llm-secret)"}}`, rep.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": req["model"],
		"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": rep.content}}},
	})
}

// fakeRetriever stands in for the knowledge base (an interface the coder owns; the kb package has
// its own tests against PostgreSQL).
type fakeRetriever struct{ queries []string }

func (f *fakeRetriever) Search(_ context.Context, q string, k int, fl kb.Filter) ([]kb.Hit, error) {
	f.queries = append(f.queries, q)
	if fl.Kind == kb.KindManual {
		return []kb.Hit{{Kind: kb.KindManual, Text: "Uncontrolled diabetes is coded as diabetes with hyperglycemia.", Source: "guidelines.pdf", Page: 12}}, nil
	}
	return []kb.Hit{{Kind: kb.KindCode, System: codes.ICD10CM, Code: "E11.65", Text: "Type 2 diabetes mellitus with hyperglycemia"}}, nil
}

const goodAnswer = `{"diagnoses":[
 {"code":"E11.65","evidence":["Type 2 diabetes mellitus, poorly controlled"]},
 {"code":"I10","evidence":["Hypertension, well controlled on lisinopril"]},
 {"code":"E11.99","evidence":["Type 2 diabetes mellitus, poorly controlled"]},
 {"code":"E11","evidence":["type 2 diabetes"]},
 {"code":"O80","evidence":["Hypertension, well controlled"]},
 {"code":"R07.9","evidence":["denies chest pain"]},
 {"code":"J45.909","evidence":["wheezing since childhood"]}
],
"procedures":[
 {"code":"83036","units":1,"modifiers":[],"diagnoses":["E11.65"],"evidence":["point of care A1c performed in office today"]},
 {"code":"99999","units":1,"modifiers":[],"diagnoses":["E11.65"],"evidence":["Diet counseling provided"]}
],
"em":{"code":"99214","basis":"mdm","minutes":0,"problems":"moderate","data":"moderate","risk":"moderate",
 "evidence":["Add glipizide 5 mg daily before breakfast"]}}`

func readCase(t *testing.T, name string) (string, coder.Input) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b), coder.Input{Transcript: string(b), Patient: coder.Patient{BirthDate: "1967-05-02", Sex: "male"},
		ServiceDate: time.Date(2025, 11, 4, 0, 0, 0, 0, time.UTC), Established: true}
}

func TestLLMCoder(t *testing.T) {
	t.Parallel()
	set := loadSet(t)
	text, in := readCase(t, "01-dm2-uncontrolled-htn-hld")
	tests := []struct {
		name      string
		replies   []reply
		wantErr   string // a fragment of the error; "" for success
		wantCalls int
	}{
		{"well-formed answer", []reply{{content: goodAnswer}}, "", 1},
		{"fenced answer", []reply{{content: "```json\n" + goodAnswer + "\n```"}}, "", 1},
		{"malformed then well-formed", []reply{{content: `{"diagnoses": [ {"code": "E11.65", `}, {content: goodAnswer}}, "", 2},
		{"transient 503 then well-formed", []reply{{status: 503}, {content: goodAnswer}}, "", 2},
		{"malformed every time", []reply{{content: "Sure! The codes are E11.65 and I10."}, {content: `{"diagnoses":"E11.65"}`}, {content: `{"unknown":1}`}},
			coder.ErrMalformedAnswer.Error(), 3},
		{"permanent 401", []reply{{status: 401}}, "HTTP 401", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := &chatServer{t: t, replies: tc.replies}
			hs := httptest.NewServer(srv)
			t.Cleanup(hs.Close)
			retr := &fakeRetriever{}
			l, err := coder.NewLLM(coder.LLMConfig{URL: hs.URL, Model: "qwen2.5-7b-instruct", APIKey: "sk-llm-secret",
				MaxAttempts: 3, Backoff: time.Millisecond}, set, retr)
			if err != nil {
				t.Fatal(err)
			}
			res, err := l.Code(t.Context(), in)
			if len(srv.reqs) != tc.wantCalls {
				t.Errorf("%d requests, want %d", len(srv.reqs), tc.wantCalls)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.wantErr == coder.ErrMalformedAnswer.Error() && !errors.Is(err, coder.ErrMalformedAnswer) {
					t.Errorf("err = %v does not wrap ErrMalformedAnswer", err)
				}
				if strings.Contains(err.Error(), "sk-llm-secret") {
					t.Errorf("error leaks the API key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([]string{"E11.65", "I10"}, dxCodes(res)); d != "" {
				t.Errorf("diagnoses (-want +got)\n%s\ndropped %+v", d, res.Dropped)
			}
			for code, frag := range map[string]string{"E11.99": "not an ICD-10-CM code", "E11": "not billable", "O80": "sex edit",
				"R07.9": "negated", "J45.909": "not found in the transcript", "99999": "not a CPT code"} {
				if r := droppedReason(res, code); !strings.Contains(r, frag) {
					t.Errorf("%s dropped with %q, want %q", code, r, frag)
				}
			}
			if len(res.Lines) != 1 || res.Lines[0].Code != "83036" || cmp.Diff([]int{1}, res.Lines[0].DiagnosisPointers) != "" {
				t.Errorf("lines = %+v", res.Lines)
			}
			if res.EM == nil || res.EM.Code != "99214" || res.EM.MDM == nil || res.EM.MDM.Level != coder.LevelModerate {
				t.Errorf("E/M = %+v", res.EM)
			}
			// Evidence is relocated: case-insensitive quotes map to the transcript's own text.
			for _, d := range res.Diagnoses {
				for _, sp := range d.Evidence {
					if text[sp.Start:sp.End] != sp.Text {
						t.Errorf("%s evidence %+v does not quote the transcript", d.Code, sp)
					}
				}
			}
			a1c := res.Lines[0].Evidence[0]
			if a1c.Text != "Point of care A1c performed in office today" {
				t.Errorf("relocated quote = %q", a1c.Text)
			}
			// The prompt carries the transcript, candidates and the retrieved passage.
			first := srv.reqs[0]["messages"].([]any)
			user := first[1].(map[string]any)["content"].(string)
			for _, want := range []string{"Type 2 diabetes mellitus, poorly controlled", "- E11.65 ", "[guidelines.pdf p.12]", "established patient", "age 58"} {
				if !strings.Contains(user, want) {
					t.Errorf("prompt lacks %q", want)
				}
			}
			if len(retr.queries) == 0 {
				t.Error("no retrieval queries")
			}
			if tc.name == "malformed then well-formed" {
				second := srv.reqs[1]["messages"].([]any)
				if len(second) != 4 || !strings.Contains(second[3].(map[string]any)["content"].(string), "not valid JSON") {
					t.Errorf("retry does not tell the model its mistake: %v", second)
				}
			}
			if name, version, model := l.Info(); name != "llm" || version == "" || model != "qwen2.5-7b-instruct" {
				t.Errorf("Info = %s %s %s", name, version, model)
			}
		})
	}
}

func TestLLMConfigFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"BILLY_LLM_URL": "http://127.0.0.1:8081", "BILLY_LLM_MODEL": "m", "BILLY_LLM_API_KEY": "k"}
	cfg, ok, err := coder.LLMConfigFromEnv(func(k string) string { return env[k] })
	if err != nil || !ok || cfg.URL != env["BILLY_LLM_URL"] || cfg.Model != "m" || cfg.APIKey != "k" {
		t.Errorf("cfg %+v ok %v err %v", cfg, ok, err)
	}
	if _, ok, err := coder.LLMConfigFromEnv(func(string) string { return "" }); ok || err != nil {
		t.Errorf("unset: ok %v err %v", ok, err)
	}
	if _, _, err := coder.LLMConfigFromEnv(func(k string) string {
		if k == "BILLY_LLM_URL" {
			return "http://x"
		}
		return ""
	}); err == nil {
		t.Error("URL without model accepted")
	}
}

// TestLLMCoderJudgesQuotesOfAnyCode: the LLM coder checks each quote of the model's answer with the
// guard's assertion rules, also for a code whose quote has no dictionary concept in it (the guard
// then judges the quote at the words of the code's description).
func TestLLMCoderJudgesQuotesOfAnyCode(t *testing.T) {
	t.Parallel()
	set := loadSet(t)
	_, in := readCase(t, "07-knee-oa-injection-htn-mod25")
	answer := `{"diagnoses":[{"code":"M17.12","evidence":["Primary osteoarthritis of the left knee"]},{"code":"Q99.999","evidence":["left knee"]}],
 "procedures":[],"em":{"code":"99213","basis":"mdm","minutes":0,"problems":"low","data":"minimal","risk":"low","evidence":["left knee"]}}`
	srv := &chatServer{t: t, replies: []reply{{content: answer}}}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	l, err := coder.NewLLM(coder.LLMConfig{URL: hs.URL, Model: "qwen2.5-7b-instruct", APIKey: "sk-llm-secret", MaxAttempts: 1, Backoff: time.Millisecond}, set, &fakeRetriever{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Code(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got := dxCodes(res); !slices.Contains(got, "M17.12") || slices.Contains(got, "Q99.999") {
		t.Errorf("diagnoses %v; want M17.12 and not the invented Q99.999", got)
	}
}
