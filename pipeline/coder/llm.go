package coder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
	"github.com/iambilly/billy/pipeline/kb"
)

// Environment variables read by LLMConfigFromEnv.
const (
	EnvLLMURL    = "BILLY_LLM_URL"
	EnvLLMModel  = "BILLY_LLM_MODEL"
	EnvLLMAPIKey = "BILLY_LLM_API_KEY" // also BILLY_LLM_API_KEY_FILE
)

// LLMVersion identifies the prompt and schema; bump it when they change.
const LLMVersion = "2026.1"

// ErrMalformedAnswer reports a model answer that is not the JSON the schema asks for, after every
// attempt. It is permanent: retrying the job will not help until the model or prompt changes.
var ErrMalformedAnswer = errors.New("model answer is not valid coding JSON")

// LLMConfig configures the LLM coder.
type LLMConfig struct {
	URL    string // base of an OpenAI-compatible server, or the full .../v1/chat/completions
	Model  string
	APIKey string // sent as a bearer token; never logged or put in errors
	// MaxAttempts bounds tries per transcript, for malformed answers and transient HTTP failures
	// alike (default 3).
	MaxAttempts int
	Backoff     time.Duration // first retry delay (default 1 s), doubled with jitter
	HTTPClient  *http.Client  // default: 5-minute timeout (local models are slow)
	MaxTokens   int           // default 2048
	Candidates  int           // retrieved codes per query (default 8)
	Passages    int           // retrieved manual passages (default 4)
}

// LLMConfigFromEnv reads BILLY_LLM_URL, BILLY_LLM_MODEL and BILLY_LLM_API_KEY (or
// BILLY_LLM_API_KEY_FILE) through getenv. ok is false when BILLY_LLM_URL is unset: the caller then
// uses the built-in coder.
func LLMConfigFromEnv(getenv func(string) string) (cfg LLMConfig, ok bool, err error) {
	cfg.URL = getenv(EnvLLMURL)
	if cfg.URL == "" {
		return cfg, false, nil
	}
	cfg.Model = getenv(EnvLLMModel)
	if cfg.Model == "" {
		return cfg, false, fmt.Errorf("%s is set but %s is not", EnvLLMURL, EnvLLMModel)
	}
	cfg.APIKey = getenv(EnvLLMAPIKey)
	if f := getenv(EnvLLMAPIKey + "_FILE"); f != "" && cfg.APIKey == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, false, fmt.Errorf("%s_FILE: %w", EnvLLMAPIKey, err)
		}
		cfg.APIKey = strings.TrimSpace(string(b))
	}
	return cfg, true, nil
}

// Retriever finds codes and guideline passages for a query; *kb.KB satisfies it.
type Retriever interface {
	Search(ctx context.Context, query string, k int, f kb.Filter) ([]kb.Hit, error)
}

var _ Retriever = (*kb.KB)(nil)

// LLM codes with a language model behind an OpenAI-compatible /v1/chat/completions endpoint. The
// answer is constrained by a JSON schema; the prompt carries the transcript, candidate codes (the
// built-in coder's and retrieved ones) and guideline passages. Evidence quotes are relocated in the
// transcript, then Guard runs. It is safe for concurrent use.
type LLM struct {
	cfg      LLMConfig
	endpoint string
	set      *codes.Set
	retr     Retriever // may be nil
	builtin  *Builtin
}

var _ Coder = (*LLM)(nil)

// NewLLM returns an LLM coder. retr may be nil (no retrieved candidates or passages).
func NewLLM(cfg LLMConfig, set *codes.Set, retr Retriever) (*LLM, error) {
	if cfg.URL == "" || cfg.Model == "" {
		return nil, errors.New("coder: the LLM engine needs a URL and a model")
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Minute}
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 2048
	}
	if cfg.Candidates <= 0 {
		cfg.Candidates = 8
	}
	if cfg.Passages <= 0 {
		cfg.Passages = 4
	}
	var opts []BuiltinOption
	if retr != nil {
		opts = append(opts, WithRetriever(retr))
	}
	return &LLM{cfg: cfg, endpoint: embed.Endpoint(cfg.URL, "chat/completions"), set: set, retr: retr, builtin: NewBuiltin(set, opts...)}, nil
}

// Info names the coder and its model.
func (l *LLM) Info() (name, version, model string) { return "llm", LLMVersion, l.cfg.Model }

// answer is the JSON the model must produce (see answerSchema).
type answer struct {
	Diagnoses []struct {
		Code     string   `json:"code"`
		Evidence []string `json:"evidence"`
	} `json:"diagnoses"`
	Procedures []struct {
		Code      string   `json:"code"`
		Units     int      `json:"units"`
		Modifiers []string `json:"modifiers"`
		Diagnoses []string `json:"diagnoses"`
		Evidence  []string `json:"evidence"`
	} `json:"procedures"`
	EM *struct {
		Code     string   `json:"code"`
		Basis    string   `json:"basis"`
		Minutes  int      `json:"minutes"`
		Problems string   `json:"problems"`
		Data     string   `json:"data"`
		Risk     string   `json:"risk"`
		Evidence []string `json:"evidence"`
	} `json:"em"`
}

var levelEnum = []string{LevelMinimal, LevelStraightforward, LevelLow, LevelModerate, LevelHigh}

// answerSchema is the JSON schema of answer, for response_format json_schema (strict).
var answerSchema = map[string]any{
	"type": "object", "additionalProperties": false, "required": []string{"diagnoses", "procedures", "em"},
	"properties": map[string]any{
		"diagnoses": map[string]any{"type": "array", "maxItems": 20, "items": map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"code", "evidence"},
			"properties": map[string]any{
				"code":     map[string]any{"type": "string", "description": "ICD-10-CM code with dot, e.g. E11.65"},
				"evidence": map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"type": "string"}, "description": "exact quotes from the transcript"},
			}}},
		"procedures": map[string]any{"type": "array", "maxItems": 20, "items": map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"code", "units", "modifiers", "diagnoses", "evidence"},
			"properties": map[string]any{
				"code":      map[string]any{"type": "string", "description": "CPT or HCPCS Level II code"},
				"units":     map[string]any{"type": "integer", "minimum": 1},
				"modifiers": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				"diagnoses": map[string]any{"type": "array", "maxItems": 4, "items": map[string]any{"type": "string"}, "description": "ICD-10-CM codes this line treats"},
				"evidence":  map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"type": "string"}},
			}}},
		"em": map[string]any{"anyOf": []any{map[string]any{"type": "null"}, map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"code", "basis", "minutes", "problems", "data", "risk", "evidence"},
			"properties": map[string]any{
				"code":     map[string]any{"type": "string", "description": "99202-99205, 99212-99215 or a preventive code 99381-99397"},
				"basis":    map[string]any{"type": "string", "enum": []string{BasisMDM, BasisTime, BasisPreventive}},
				"minutes":  map[string]any{"type": "integer", "minimum": 0},
				"problems": map[string]any{"type": "string", "enum": levelEnum},
				"data":     map[string]any{"type": "string", "enum": levelEnum},
				"risk":     map[string]any{"type": "string", "enum": levelEnum},
				"evidence": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			}}}},
	},
}

const systemPrompt = `You are a certified outpatient medical coder. Code the encounter transcript for a professional claim.
Rules (ICD-10-CM Official Guidelines, section IV for outpatient services, and the 2021 AMA office E/M rules):
- Code only conditions the clinician documents as present and addressed at this visit. Never code what the patient denies, what was ruled out, or what a relative has (use Z80-Z84 family history codes for relatives).
- Do not code uncertain diagnoses (probable, suspected, likely, rule out, consistent with): code the documented signs and symptoms instead.
- Do not code symptoms that are routinely part of a confirmed diagnosis.
- Use the most specific billable code: laterality, 7th character (A for active treatment of an injury), combination codes (diabetes with complications, hypertension with heart failure or chronic kidney disease as I11/I12/I13).
- Resolved past conditions use personal history codes (Z85-Z87) only when relevant.
- Procedures: only services performed at this visit (in-office tests, injections with HCPCS drug units, vaccines with administration codes, minor procedures). Not tests ordered for later.
- E/M: office/outpatient codes by MDM (two of problems, data, risk) or total time on the date, whichever is higher; new patient 99202-99205, established 99212-99215; preventive visits 99381-99397 by age. Use null when no separately identifiable E/M was performed.
- Every code needs evidence: short exact quotes copied character for character from the transcript.
Answer with the JSON object only.`

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model          string         `json:"model"`
	Messages       []chatMessage  `json:"messages"`
	Temperature    float64        `json:"temperature"`
	MaxTokens      int            `json:"max_tokens"`
	ResponseFormat map[string]any `json:"response_format"`
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

// Code codes one transcript with the model, then relocates evidence and runs Guard.
func (l *LLM) Code(ctx context.Context, in Input) (*Result, error) {
	if strings.TrimSpace(in.Transcript) == "" {
		return nil, errors.New("coder: empty transcript")
	}
	prompt, draft, err := l.prompt(ctx, in)
	if err != nil {
		return nil, err
	}
	ans, err := l.ask(ctx, prompt)
	if err != nil {
		return nil, err
	}
	res := l.toResult(in, ans)
	agree(res, draft)
	if err := Guard(ctx, l.set, in, res); err != nil {
		return nil, err
	}
	return res, nil
}

// agree rates the model's codes by the rule-based draft: a code both found is likely, a code only
// the model found is flagged for review.
func agree(res, draft *Result) {
	has := map[string]bool{}
	for _, d := range draft.Diagnoses {
		has[d.Code] = true
	}
	for _, l := range draft.Lines {
		has[l.Code] = true
	}
	rate := func(code string) (float64, string) {
		if has[codes.Normalize(codes.ICD10CM, code)] || has[strings.ToUpper(strings.TrimSpace(code))] {
			return 0.9, ""
		}
		return 0.6, "found by the model only; the rule-based coder did not find it"
	}
	for i := range res.Diagnoses {
		res.Diagnoses[i].Confidence, res.Diagnoses[i].Note = rate(res.Diagnoses[i].Code)
	}
	for i := range res.Lines {
		res.Lines[i].Confidence, res.Lines[i].Note = rate(res.Lines[i].Code)
	}
	if em := res.EM; em != nil {
		em.Confidence = 0.8
		if draft.EM == nil || draft.EM.Code != em.Code {
			em.Confidence, em.Note = 0.6, "the model's E/M level differs from the rule-based one"
		}
	}
}

// prompt builds the user message: patient context, candidates, passages and the transcript. It
// also returns the rule-based draft it drew the candidates from.
func (l *LLM) prompt(ctx context.Context, in Input) (string, *Result, error) {
	draft, c, err := l.builtin.code(ctx, in)
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	age := codes.AgeAt(in.Patient.BirthDate, in.ServiceDate)
	status := "new"
	if in.Established {
		status = "established"
	}
	fmt.Fprintf(&b, "Patient: sex %s, age %s, %s patient. Date of service: %s. Place of service: %s.\n\n",
		orUnknown(in.Patient.Sex), ageText(age), status, dateText(in.ServiceDate), orUnknown(in.PlaceOfService))

	cands := map[string]string{}
	for _, d := range draft.Diagnoses {
		cands[d.Code] = d.Display
	}
	for _, ln := range draft.Lines {
		cands[ln.Code] = ln.Display
	}
	var passages []kb.Hit
	if l.retr != nil {
		for _, q := range retrievalQueries(c) {
			hits, err := l.retr.Search(ctx, q, l.cfg.Candidates, kb.Filter{Kind: kb.KindCode})
			if err != nil {
				return "", nil, fmt.Errorf("coder: retrieve candidates: %w", err)
			}
			for _, h := range hits {
				if _, ok := cands[h.Code]; !ok {
					cands[h.Code] = h.Text
				}
			}
		}
		summary := strings.Join(retrievalQueries(c), " ")
		hits, err := l.retr.Search(ctx, summary, l.cfg.Passages, kb.Filter{Kind: kb.KindManual})
		if err != nil {
			return "", nil, fmt.Errorf("coder: retrieve passages: %w", err)
		}
		passages = hits
	}
	keys := make([]string, 0, len(cands))
	for k := range cands {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("Candidate codes (verify each against the transcript; you may use others):\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "- %s %s\n", k, cands[k])
	}
	if draft.EM != nil {
		fmt.Fprintf(&b, "Rule-based E/M suggestion: %s (%s).\n", draft.EM.Code, draft.EM.Basis)
	}
	if len(passages) > 0 {
		b.WriteString("\nGuideline passages:\n")
		for _, p := range passages {
			src := p.Source
			if p.Page > 0 {
				src = fmt.Sprintf("%s p.%d", src, p.Page)
			}
			fmt.Fprintf(&b, "[%s] %s\n", src, p.Text)
		}
	}
	b.WriteString("\nTranscript:\n<<<\n")
	b.WriteString(in.Transcript)
	b.WriteString("\n>>>\n")
	return b.String(), draft, nil
}

// retrievalQueries are the assessment sentences (or, without an assessment, the complaint and
// history), which name what was diagnosed.
func retrievalQueries(c *coding) []string {
	var qs []string
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if s.inAP() || s.section == secCC || s.section == secProcedure || (!c.n.hasAssessment && s.section == secNone) {
			qs = append(qs, s.raw)
		}
		if len(qs) == 16 {
			break
		}
	}
	return qs
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func ageText(a int) string {
	if a < 0 {
		return "unknown"
	}
	return fmt.Sprint(a)
}

func dateText(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Format(time.DateOnly)
}

// ask sends the prompt, retrying transient failures and malformed answers.
func (l *LLM) ask(ctx context.Context, prompt string) (*answer, error) {
	msgs := []chatMessage{{Role: "system", Content: systemPrompt}, {Role: "user", Content: prompt}}
	var lastErr error
	for attempt := 1; attempt <= l.cfg.MaxAttempts; attempt++ {
		if attempt > 1 {
			d := l.cfg.Backoff << (attempt - 2)
			if err := embed.Sleep(ctx, d); err != nil {
				return nil, err
			}
		}
		body, err := json.Marshal(chatRequest{Model: l.cfg.Model, Messages: msgs, Temperature: 0, MaxTokens: l.cfg.MaxTokens,
			ResponseFormat: map[string]any{"type": "json_schema", "json_schema": map[string]any{
				"name": "encounter_coding", "strict": true, "schema": answerSchema}}})
		if err != nil {
			return nil, fmt.Errorf("coder: %w", err)
		}
		raw, _, err := embed.Post(ctx, l.cfg.HTTPClient, l.endpoint, l.cfg.APIKey, body)
		if err != nil {
			if errors.Is(err, embed.ErrTransient) {
				lastErr = fmt.Errorf("coder: model call: %w", err)
				continue
			}
			return nil, fmt.Errorf("coder: model call: %w", err)
		}
		ans, content, err := parseAnswer(raw)
		if err != nil {
			lastErr = fmt.Errorf("coder: attempt %d: %w: %v", attempt, ErrMalformedAnswer, err)
			// Show the model its mistake on the next attempt.
			msgs = []chatMessage{msgs[0], msgs[1], {Role: "assistant", Content: trimText(content, 2000)},
				{Role: "user", Content: "That answer was not valid JSON for the required schema (" + err.Error() + "). Answer again with only the JSON object."}}
			continue
		}
		return ans, nil
	}
	return nil, lastErr
}

func trimText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// parseAnswer extracts and decodes the model's JSON (tolerating a Markdown code fence).
func parseAnswer(raw []byte) (*answer, string, error) {
	var cr chatResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, "", fmt.Errorf("response is not a chat completion: %v", err)
	}
	if len(cr.Choices) == 0 {
		return nil, "", errors.New("no choices in the response")
	}
	content := strings.TrimSpace(cr.Choices[0].Message.Content)
	if after, ok := strings.CutPrefix(content, "```"); ok {
		after = strings.TrimPrefix(after, "json")
		content = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(after), "```"))
	}
	dec := json.NewDecoder(strings.NewReader(content))
	dec.DisallowUnknownFields()
	var a answer
	if err := dec.Decode(&a); err != nil {
		return nil, content, err
	}
	if dec.More() {
		return nil, content, errors.New("trailing data after the JSON object")
	}
	if a.Diagnoses == nil && a.Procedures == nil && a.EM == nil {
		return nil, content, errors.New("empty answer")
	}
	for i, d := range a.Diagnoses {
		if strings.TrimSpace(d.Code) == "" {
			return nil, content, fmt.Errorf("diagnosis %d has no code", i)
		}
	}
	return &a, content, nil
}

// toResult relocates every quote in the transcript and builds the Result Guard checks. A code
// whose quotes are all absent from the transcript is dropped.
func (l *LLM) toResult(in Input, a *answer) *Result {
	g := newGuard(in)
	g.ctx, g.cs = context.Background(), l.set // the set answers lookups from memory
	res := &Result{}
	index := map[string]int{}
	for _, d := range a.Diagnoses {
		code := codes.Normalize(codes.ICD10CM, d.Code)
		ev, missing := relocate(in.Transcript, d.Evidence, func(sp Span) bool { return g.asserts(code, sp) })
		if len(ev) == 0 {
			res.Dropped = append(res.Dropped, Dropped{Code: code, Reason: fmt.Sprintf("evidence not found in the transcript: %q", strings.Join(missing, `", "`))})
			continue
		}
		if _, dup := index[code]; dup {
			res.Diagnoses[index[code]].Evidence = append(res.Diagnoses[index[code]].Evidence, ev...)
			continue
		}
		index[code] = len(res.Diagnoses)
		res.Diagnoses = append(res.Diagnoses, Dx{Code: code, Evidence: ev})
	}
	for _, p := range a.Procedures {
		ev, missing := relocate(in.Transcript, p.Evidence, nil)
		if len(ev) == 0 {
			res.Dropped = append(res.Dropped, Dropped{Code: p.Code, Reason: fmt.Sprintf("evidence not found in the transcript: %q", strings.Join(missing, `", "`))})
			continue
		}
		var ptrs []int
		for _, dc := range p.Diagnoses {
			if i, ok := index[codes.Normalize(codes.ICD10CM, dc)]; ok && !containsInt(ptrs, i+1) {
				ptrs = append(ptrs, i+1)
			}
		}
		res.Lines = append(res.Lines, Line{Code: strings.ToUpper(strings.TrimSpace(p.Code)), System: lineSystem(p.Code), Units: p.Units,
			Modifiers: p.Modifiers, DiagnosisPointers: ptrs, Evidence: ev})
	}
	if a.EM != nil && strings.TrimSpace(a.EM.Code) != "" {
		ev, _ := relocate(in.Transcript, a.EM.Evidence, nil)
		em := &EMLevel{Code: strings.TrimSpace(a.EM.Code), Basis: a.EM.Basis, Minutes: a.EM.Minutes, Evidence: ev}
		if a.EM.Basis == BasisMDM {
			em.MDM = &MDM{Problems: a.EM.Problems, Data: a.EM.Data, Risk: a.EM.Risk, Level: mdmLevel(a.EM.Problems, a.EM.Data, a.EM.Risk)}
		}
		res.EM = em
	}
	return res
}

// relocate finds each quote in the transcript: exactly, else ignoring case and runs of spaces. For
// a quote that occurs more than once it prefers an occurrence that prefer accepts (the guard's
// assertion check), so "chest pain" is found in the assessment rather than in "denies chest pain".
// It returns the spans found and the quotes that were not.
func relocate(text string, quotes []string, prefer func(Span) bool) (spans []Span, missing []string) {
	for _, q := range quotes {
		q = strings.TrimSpace(q)
		if q == "" {
			continue
		}
		occ := occurrences(text, q)
		if len(occ) == 0 {
			missing = append(missing, q)
			continue
		}
		pick := occ[0]
		if prefer != nil {
			for _, o := range occ {
				if prefer(o) {
					pick = o
					break
				}
			}
		}
		spans = append(spans, pick)
	}
	return spans, missing
}

// occurrences returns every span of text matching q exactly, or, failing that, case-insensitively
// with any run of whitespace matching any other.
func occurrences(text, q string) []Span {
	var out []Span
	for i := 0; ; {
		j := strings.Index(text[i:], q)
		if j < 0 {
			break
		}
		out = append(out, Span{Text: q, Start: i + j, End: i + j + len(q)})
		i += j + len(q)
	}
	if len(out) > 0 {
		return out
	}
	// Fold case and whitespace, keeping a map back to byte offsets.
	fold := func(s string) (string, []int) {
		var b strings.Builder
		var pos []int
		space := false
		for i, r := range s {
			if unicode.IsSpace(r) {
				if !space && b.Len() > 0 {
					b.WriteByte(' ')
					pos = append(pos, i)
				}
				space = true
				continue
			}
			space = false
			lr := unicode.ToLower(r)
			n := b.Len()
			b.WriteRune(lr)
			for k := n; k < b.Len(); k++ {
				pos = append(pos, i)
			}
		}
		return b.String(), pos
	}
	ft, pos := fold(text)
	fq, _ := fold(strings.TrimSpace(q))
	if fq == "" {
		return nil
	}
	for i := 0; ; {
		j := strings.Index(ft[i:], fq)
		if j < 0 {
			break
		}
		start := pos[i+j]
		endIdx := i + j + len(fq) - 1
		end := pos[endIdx]
		_, size := utf8.DecodeRuneInString(text[end:])
		out = append(out, Span{Text: text[start : end+size], Start: start, End: end + size})
		i += j + len(fq)
	}
	return out
}
