package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// The PHI of TestLogsCarryNoPHI: a patient's names, birth date, record number, address, phone and
// e-mail, and the sentences of the encounter's transcript. None may appear in any log line.
const (
	phiGiven     = "Zebulon"
	phiFamily    = "Quixotewicz"
	phiBirthDate = "1961-07-23"
	phiMRN       = "MRN93847561"
	phiStreet    = "4417 Marigold Terrace"
	phiCity      = "Wappingers Falls"
	phiPhone     = "845-555-0147"
	phiEmail     = "zeb.quixotewicz@example.org"
	phiSentence1 = "Mister Quixotewicz reports a stabbing pain in his left knee since the ferry accident."
	phiSentence2 = "He takes warfarin five milligrams daily and lives alone on Marigold Terrace."
)

var phiValues = []string{phiGiven, phiFamily, phiBirthDate, "07/23/1961", phiMRN, phiStreet, "Marigold", phiCity, phiPhone, "8455550147", phiEmail,
	"stabbing pain in his left knee", "ferry accident", "warfarin five milligrams", "lives alone"}

// syncBuffer is a log sink shared by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sineWAV is a 16 kHz mono 16-bit PCM WAV of a tone.
func sineWAV(seconds float64) []byte {
	n := int(16000 * seconds)
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+2*n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(16000), uint32(32000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, le, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(2*n))
	for i := range n {
		_ = binary.Write(&b, le, int16(8000*math.Sin(2*math.Pi*440*float64(i)/16000)))
	}
	return b.Bytes()
}

// phiSTT is a speech-to-text server (OpenAI wire format) whose transcript is full of PHI.
func phiSTT(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"task": "transcribe", "language": "english", "duration": 2.0, "text": phiSentence1 + " " + phiSentence2,
			"segments": []any{
				map[string]any{"id": 0, "start": 0.0, "end": 1.0, "text": " " + phiSentence1},
				map[string]any{"id": 1, "start": 1.0, "end": 2.0, "text": " " + phiSentence2},
			},
		})
	}))
	t.Cleanup(s.Close)
	return s
}

// TestLogsCarryNoPHI runs the REST API (reads, searches, writes, conditional and failing
// requests, Bundles), the SMART browser flow (dev-login: authorize, login page, patient picker,
// consent, token) and the pipeline (audio upload, transcription, coding) with debug logging, and
// scans every log line for the PHI the requests carried: zero hits. Error answers to clients name
// the element at fault without echoing its value.
func TestLogsCarryNoPHI(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	stt := phiSTT(t)
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	env := testEnv(t, "BILLY_BASE_URL", base, "BILLY_LOG_LEVEL", "debug", "BILLY_STT_URL", stt.URL, "BILLY_STT_MODEL", "whisper-phi")
	if err := run(t.Context(), []string{"seed"}, env, &logs, &logs); err != nil {
		t.Fatal(err)
	}
	serveAppWith(t, env, ln, testServe{worker: true, logs: &logs})
	w := &boundaryWorld{t: t, env: env, base: base}
	admin := w.mint("user/*.cruds", "")
	do := func(method, path, body string, h http.Header) answer {
		t.Helper()
		var b []byte
		if body != "" {
			b = []byte(body)
		}
		return w.do(admin, method, path, b, h)
	}
	patient := `{"resourceType":"Patient","id":"zq","identifier":[{"system":"urn:mrn","value":"` + phiMRN + `"}],` +
		`"name":[{"family":"` + phiFamily + `","given":["` + phiGiven + `"]}],"birthDate":"` + phiBirthDate + `",` +
		`"telecom":[{"system":"phone","value":"` + phiPhone + `"},{"system":"email","value":"` + phiEmail + `"}],` +
		`"address":[{"line":["` + phiStreet + `"],"city":"` + phiCity + `"}]}`
	if a := do(http.MethodPut, "Patient/zq", patient, nil); a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	// Reads and searches by every identifying value.
	for _, q := range []string{"Patient/zq", "Patient?name=" + phiFamily, "Patient?given=" + phiGiven, "Patient?birthdate=" + phiBirthDate,
		"Patient?identifier=urn:mrn|" + phiMRN, "Patient?phone=" + phiPhone, "Patient?email=" + url.QueryEscape(phiEmail),
		"Patient?address=" + url.QueryEscape(phiStreet), "Patient?address-city=" + url.QueryEscape(phiCity), "Patient/zq/_history",
		"Patient/zq/$everything", "Patient?name:bogus=" + phiFamily, "Patient?birthdate=" + url.QueryEscape("07/23/1961"),
		"Observation?subject.name=" + phiFamily, "Patient?_has:Observation:subject:code:text=" + url.QueryEscape("ferry accident")} {
		a := do(http.MethodGet, q, "", nil)
		if a.status >= 400 && bytes.Contains(a.body, []byte("07/23/1961")) {
			t.Errorf("GET %s: the error echoes the value: %s", q, a.body)
		}
	}
	// Writes that fail validation: the answer names the element, not its value.
	for _, tc := range []struct{ body, value, path string }{
		{strings.Replace(patient, `"birthDate":"`+phiBirthDate+`"`, `"birthDate":"07/23/1961"`, 1), "07/23/1961", "birthDate"},
		{strings.Replace(patient, `"city":"`+phiCity+`"`, `"city":"`+phiCity+`","bogus":"`+phiStreet+`"`, 1), phiStreet, "bogus"},
		{strings.Replace(patient, `"system":"phone"`, `"system":"`+phiPhone+`"`, 1), phiPhone, "system"},
	} {
		a := do(http.MethodPut, "Patient/zq", tc.body, nil)
		if a.status != 400 || !bytes.Contains(a.body, []byte(tc.path)) {
			t.Errorf("invalid %s: %d %s", tc.path, a.status, a.body)
		}
		if bytes.Contains(a.body, []byte(tc.value)) {
			t.Errorf("invalid %s: the error echoes the value: %s", tc.path, a.body)
		}
	}
	do(http.MethodPost, "Patient", patient, http.Header{"If-None-Exist": {"identifier=urn:mrn|" + phiMRN}})
	do(http.MethodPut, "Patient?identifier=urn:mrn|"+phiMRN, strings.Replace(patient, `"id":"zq",`, ``, 1), nil)
	do(http.MethodPatch, "Patient/zq", `[{"op":"replace","path":"/birthDate","value":"`+phiBirthDate+`"},{"op":"test","path":"/gender","value":"`+phiGiven+`"}]`,
		http.Header{"Content-Type": {"application/json-patch+json"}})
	do(http.MethodPost, "", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient/zq"},"resource":`+patient+`},`+
		`{"request":{"method":"GET","url":"Patient?name=`+phiFamily+`"}}]}`, nil)
	do(http.MethodPost, "", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"PUT","url":"Patient/zq"},"resource":{"resourceType":"Patient","id":"zq","birthDate":"07/23/1961"}}]}`, nil)

	// The SMART browser flow, and a refused login.
	var out, clientLog bytes.Buffer
	if err := run(t.Context(), []string{"dev-login", "--base", base, "--password", demoPassword}, env, &out, &clientLog); err != nil {
		t.Fatalf("dev-login: %v\n%s", err, clientLog.String())
	}
	_ = run(t.Context(), []string{"dev-login", "--base", base, "--password", phiFamily}, env, io.Discard, io.Discard)

	// The pipeline: audio for the patient, transcribed (the transcript is PHI) and coded.
	enc := `{"resourceType":"Encounter","id":"zq-enc","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/zq"}}`
	if a := do(http.MethodPut, "Encounter/zq-enc", enc, nil); a.status != 201 {
		t.Fatalf("encounter: %d %s", a.status, a.body)
	}
	up := w.do(admin, http.MethodPost, "Binary", sineWAV(2), http.Header{"Content-Type": {"audio/wav"}, "X-Security-Context": {"Patient/zq"}})
	var bin struct{ ID string }
	if err := json.Unmarshal(up.body, &bin); err != nil || up.status != 201 {
		t.Fatalf("upload: %d %s", up.status, up.body)
	}
	media := `{"resourceType":"Media","id":"zq-media","status":"completed","subject":{"reference":"Patient/zq"},"encounter":{"reference":"Encounter/zq-enc"},` +
		`"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/media-type","code":"audio"}]},"content":{"contentType":"audio/wav","url":"Binary/` + bin.ID + `"}}`
	if a := do(http.MethodPut, "Media/zq-media", media, nil); a.status != 201 {
		t.Fatalf("media: %d %s", a.status, a.body)
	}
	finished := func(focus, kind string) map[string]any {
		var task map[string]any
		waitFor(t, kind+" run of "+focus, func() bool {
			a := do(http.MethodGet, "Task?focus="+url.QueryEscape(focus)+"&code="+url.QueryEscape("urn:billy:pipeline|"+kind), "", nil)
			var b struct {
				Entry []struct{ Resource map[string]any }
			}
			_ = json.Unmarshal(a.body, &b)
			if len(b.Entry) == 0 {
				return false
			}
			task = b.Entry[0].Resource
			return task["status"] == "completed" || task["status"] == "failed"
		})
		return task
	}
	task := finished("Media/zq-media", "transcribe")
	doc := outputOf(task, "transcript")
	if doc == "" {
		t.Fatalf("no transcript: %v", task)
	}
	finished(doc, "code")
	if a := do(http.MethodGet, doc, "", nil); !bytes.Contains(a.body, []byte("DocumentReference")) {
		t.Fatalf("transcript: %d", a.status)
	}

	text := logs.String()
	lines := strings.Split(text, "\n")
	// Billy logs little at debug level itself; what matters is that nothing is filtered out.
	if len(lines) < 40 || strings.Count(text, `"msg":"request"`) < 30 {
		t.Fatalf("the logs are too thin to prove anything (%d lines)", len(lines))
	}
	t.Logf("%d log lines scanned for %d PHI values", len(lines), len(phiValues))
	hits := 0
	for i, line := range lines {
		low := strings.ToLower(line)
		for _, v := range phiValues {
			if strings.Contains(low, strings.ToLower(v)) {
				hits++
				if hits <= 20 {
					t.Errorf("log line %d carries PHI %q: %.400s", i+1, v, line)
				}
			}
		}
	}
	if hits > 0 {
		t.Errorf("%d PHI hits in %d log lines", hits, len(lines))
	}
}
