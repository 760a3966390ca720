package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/internal/config"
)

// The pipeline tests run Billy with its worker against real PostgreSQL and Redis. The only fake is
// the speech-to-text server: an httptest server speaking OpenAI's /v1/audio/transcriptions.

const script = "Patient reports chest pain for two days. Denies shortness of breath."

// speech synthesises script with espeak-ng (a 22.05 kHz mono WAV: the worker must resample it).
func speech(t *testing.T, text string) []byte {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("espeak-ng is missing (scripts/pipeline-deps.sh installs it)")
		}
		t.Skip("espeak-ng is missing: run scripts/pipeline-deps.sh")
	}
	out := filepath.Join(t.TempDir(), "speech.wav")
	if b, err := exec.Command("espeak-ng", "-w", out, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sttServer is a fake OpenAI-compatible transcription server. It checks that it receives 16 kHz
// mono 16-bit WAV and answers the script with segments. gate, when set, is called before answering
// (to block a request while a test kills the worker).
type sttServer struct {
	*httptest.Server
	requests atomic.Int32
	mu       sync.Mutex
	problems []string
	seconds  []float64 // audio length of each request
	gate     func(n int32)
}

func newSTTServer(t *testing.T) *sttServer {
	s := &sttServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range s.problems {
			t.Errorf("speech-to-text server: %s", p)
		}
	})
	return s
}

func (s *sttServer) problem(format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *sttServer) handle(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if r.URL.Path != "/v1/audio/transcriptions" {
		s.problem("request to %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		s.problem("content type %q", r.Header.Get("Content-Type"))
		http.Error(w, "bad request", 400)
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var wav []byte
	fields := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			http.Error(w, "bad multipart", 400)
			return
		}
		b, _ := io.ReadAll(part)
		if part.FormName() == "file" {
			wav = b
		} else {
			fields[part.FormName()] = string(b)
		}
	}
	if fields["response_format"] != "verbose_json" {
		s.problem("response_format %q, want verbose_json", fields["response_format"])
	}
	secs, err := wavSeconds16kMono(wav)
	if err != nil {
		s.problem("audio: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	s.seconds = append(s.seconds, secs)
	s.mu.Unlock()
	if s.gate != nil {
		s.gate(n)
	}
	half := secs / 2
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"task": "transcribe", "language": "english", "duration": secs, "text": script,
		"segments": []any{
			map[string]any{"id": 0, "start": 0.0, "end": half, "text": " Patient reports chest pain for two days."},
			map[string]any{"id": 1, "start": half, "end": secs, "text": " Denies shortness of breath."},
		},
	})
}

// wavSeconds16kMono checks a canonical 16 kHz mono 16-bit PCM WAV and returns its length.
func wavSeconds16kMono(b []byte) (float64, error) {
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, errors.New("not a WAV file")
	}
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := b[off+8:]
		switch id {
		case "fmt ":
			format, channels := binary.LittleEndian.Uint16(body[0:]), binary.LittleEndian.Uint16(body[2:])
			rate, bits := binary.LittleEndian.Uint32(body[4:]), binary.LittleEndian.Uint16(body[14:])
			if format != 1 || channels != 1 || rate != 16000 || bits != 16 {
				return 0, fmt.Errorf("format %d, %d channels, %d Hz, %d bits; want PCM mono 16000 Hz 16 bits", format, channels, rate, bits)
			}
		case "data":
			return float64(min(size, len(body))) / 2 / 16000, nil
		}
		off += 8 + size + size%2
	}
	return 0, errors.New("WAV without data")
}

// fhirClient talks to one Billy.
type fhirClient struct {
	t    *testing.T
	base string
}

func (c fhirClient) do(method, path string, body io.Reader, contentType string) (int, http.Header, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+"/fhir/"+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			c.t.Fatalf("%s %s: %d, not JSON: %.200s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func (c fhirClient) create(typ string, res map[string]any) string {
	c.t.Helper()
	b, _ := json.Marshal(res)
	code, _, out := c.do(http.MethodPost, typ, bytes.NewReader(b), "application/fhir+json")
	if code != http.StatusCreated {
		c.t.Fatalf("create %s: %d %v", typ, code, out)
	}
	return out["id"].(string)
}

func (c fhirClient) read(ref string) map[string]any {
	c.t.Helper()
	code, _, out := c.do(http.MethodGet, ref, nil, "")
	if code != http.StatusOK {
		c.t.Fatalf("read %s: %d %v", ref, code, out)
	}
	return out
}

// search returns the resources of a search (match entries only).
func (c fhirClient) search(query string) []map[string]any {
	c.t.Helper()
	code, _, b := c.do(http.MethodGet, query, nil, "")
	if code != http.StatusOK {
		c.t.Fatalf("search %s: %d %v", query, code, b)
	}
	var out []map[string]any
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		e := e.(map[string]any)
		if s, _ := e["search"].(map[string]any); s != nil && s["mode"] != "match" {
			continue
		}
		out = append(out, e["resource"].(map[string]any))
	}
	return out
}

// runOf waits for the single run of a kind focused on focus to be in a final state and returns
// its Task.
func (c fhirClient) runOf(focus, kind string, timeout time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]any
	for time.Now().Before(deadline) {
		tasks := c.search("Task?focus=" + url.QueryEscape(focus) + "&code=" + url.QueryEscape("urn:billy:pipeline|"+kind))
		if len(tasks) > 1 {
			c.t.Fatalf("%d %s runs for %s, want 1", len(tasks), kind, focus)
		}
		if len(tasks) == 1 {
			last = tasks[0]
			switch last["status"] {
			case "completed", "failed":
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("the %s run of %s did not finish in %s; last seen: %v", kind, focus, timeout, last)
	return nil
}

func ref(s string) map[string]any { return map[string]any{"reference": s} }

// uploadAudio posts raw audio as a Binary and a completed Media pointing at it.
func (c fhirClient) uploadAudio(audio []byte, contentType, patient, encounter string) string {
	c.t.Helper()
	code, h, out := c.do(http.MethodPost, "Binary", bytes.NewReader(audio), contentType)
	if code != http.StatusCreated {
		c.t.Fatalf("upload: %d %v", code, out)
	}
	if !strings.Contains(h.Get("Location"), "Binary/") {
		c.t.Fatalf("upload Location %q", h.Get("Location"))
	}
	return c.create("Media", map[string]any{
		"resourceType": "Media", "status": "completed",
		"type":    map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/media-type", "code": "audio"}}},
		"subject": ref(patient), "encounter": ref(encounter),
		"content": map[string]any{"contentType": contentType, "url": "Binary/" + out["id"].(string)},
	})
}

func (c fhirClient) patientAndEncounter() (string, string) {
	p := "Patient/" + c.create("Patient", map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Doe"}}})
	e := "Encounter/" + c.create("Encounter", map[string]any{"resourceType": "Encounter", "status": "finished",
		"class": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}, "subject": ref(p)})
	return p, e
}

// outputOf returns the reference of a run's output of a kind.
func outputOf(task map[string]any, kind string) string {
	outs, _ := task["output"].([]any)
	for _, o := range outs {
		o := o.(map[string]any)
		if fmt.Sprint(o["type"]) != "" && strings.Contains(fmt.Sprint(o["type"]), kind) {
			return o["valueReference"].(map[string]any)["reference"].(string)
		}
	}
	return ""
}

func attachment(t *testing.T, doc map[string]any, i int) (string, []byte) {
	t.Helper()
	content := doc["content"].([]any)
	a := content[i].(map[string]any)["attachment"].(map[string]any)
	b, err := base64.StdEncoding.DecodeString(a["data"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return a["contentType"].(string), b
}

func TestPipelineTranscribesUploadedAudio(t *testing.T) {
	t.Parallel()
	wav := speech(t, script)
	stt := newSTTServer(t)
	c := fhirClient{t, startAppWith(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_STT_URL", stt.URL, "BILLY_STT_MODEL", "whisper-large-v3"), true)}
	patient, encounter := c.patientAndEncounter()
	media := c.uploadAudio(wav, "audio/wav", patient, encounter)

	task := c.runOf("Media/"+media, "transcribe", time.Minute)
	if task["status"] != "completed" {
		t.Fatalf("run: %v", task)
	}
	if refOf(task["for"]) != patient || refOf(task["encounter"]) != encounter || refOf(task["focus"]) != "Media/"+media {
		t.Errorf("run Task context: %v", task)
	}
	docRef := outputOf(task, "transcript")
	if docRef == "" {
		t.Fatalf("run Task has no transcript output: %v", task)
	}
	doc := c.read(docRef)
	if doc["status"] != "current" || doc["docStatus"] != "preliminary" || refOf(doc["subject"]) != patient {
		t.Errorf("DocumentReference: %v", doc)
	}
	if !strings.Contains(fmt.Sprint(doc["type"]), "http://loinc.org") {
		t.Errorf("DocumentReference type is not LOINC: %v", doc["type"])
	}
	ctx := doc["context"].(map[string]any)
	if refOf(ctx["encounter"].([]any)[0]) != encounter || refOf(ctx["related"].([]any)[0]) != "Media/"+media {
		t.Errorf("DocumentReference context: %v", ctx)
	}
	if ct, text := attachment(t, doc, 0); !strings.HasPrefix(ct, "text/plain") || string(text) != script {
		t.Errorf("transcript attachment %q: %q", ct, text)
	}
	ct, raw := attachment(t, doc, 1)
	var timings struct {
		Duration float64
		Segments []struct {
			Start, End float64
			Text       string
		}
	}
	if err := json.Unmarshal(raw, &timings); err != nil || ct != "application/json" || len(timings.Segments) != 2 || timings.Segments[1].End <= timings.Segments[0].Start {
		t.Errorf("segment timings %q: %s (%v)", ct, raw, err)
	}
	// The fake server saw the whole recording, resampled to 16 kHz (checked in its handler).
	if stt.requests.Load() != 1 || timings.Duration < 2 || stt.seconds[0] < timings.Duration-0.1 {
		t.Errorf("%d requests, %v seconds of audio sent, duration recorded %v", stt.requests.Load(), stt.seconds, timings.Duration)
	}
	// The engine is the author, as a Device with its model.
	author := refOf(doc["author"].([]any)[0])
	device := c.read(author)
	if !strings.Contains(fmt.Sprint(device["deviceName"]), "whisper-large-v3") {
		t.Errorf("engine Device: %v", device)
	}
	provs := c.search("Provenance?target=" + docRef)
	if len(provs) != 1 {
		t.Fatalf("%d Provenance for the transcript, want 1", len(provs))
	}
	prov := provs[0]
	if refOf(prov["agent"].([]any)[0].(map[string]any)["who"]) != author ||
		refOf(prov["entity"].([]any)[0].(map[string]any)["what"]) != "Media/"+media {
		t.Errorf("Provenance: %v", prov)
	}
	// The transcript starts the coding run.
	code := c.search("Task?focus=" + docRef)
	if len(code) != 1 {
		t.Errorf("%d coding runs for the transcript, want 1", len(code))
	}

	// One call: a Media with inline audio data moves it into an encrypted Binary and runs too.
	inline := c.create("Media", map[string]any{
		"resourceType": "Media", "status": "completed", "subject": ref(patient),
		"content": map[string]any{"contentType": "audio/wav", "data": base64.StdEncoding.EncodeToString(wav)},
	})
	if task := c.runOf("Media/"+inline, "transcribe", time.Minute); task["status"] != "completed" {
		t.Errorf("inline Media run: %v", task)
	}

	// $transcribe starts another run of the same Media.
	code2, h, again := c.do(http.MethodPost, "Media/"+media+"/$transcribe", nil, "")
	if code2 != http.StatusCreated || again["resourceType"] != "Task" || !strings.HasPrefix(h.Get("Location"), c.base+"/fhir/Task/") {
		t.Fatalf("$transcribe: %d %q %v", code2, h.Get("Location"), again)
	}
	deadline := time.Now().Add(time.Minute)
	for c.read("Task/" + again["id"].(string))["status"] != "completed" {
		if time.Now().After(deadline) {
			t.Fatal("the $transcribe run did not complete")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if docs := c.search("DocumentReference?subject=" + patient); len(docs) != 3 {
		t.Errorf("%d transcripts for the patient, want 3 (two runs of one Media, one of another)", len(docs))
	}
}

func refOf(v any) string {
	if m, ok := v.(map[string]any); ok {
		s, _ := m["reference"].(string)
		return s
	}
	return ""
}

func TestPipelineFailures(t *testing.T) {
	t.Parallel()
	wav := speech(t, "hello")
	stt := newSTTServer(t)
	c := fhirClient{t, startAppWith(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_STT_URL", stt.URL), true)}
	patient, encounter := c.patientAndEncounter()

	// Audio that cannot be decoded fails its run with the reason; the STT server never sees it.
	bad := c.uploadAudio([]byte("RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"), "audio/wav", patient, encounter)
	task := c.runOf("Media/"+bad, "transcribe", time.Minute)
	if task["status"] != "failed" || !strings.Contains(fmt.Sprint(task["statusReason"]), "cannot decode audio") {
		t.Errorf("undecodable audio: %v", task)
	}
	if stt.requests.Load() != 0 {
		t.Errorf("the STT server got %d requests for undecodable audio", stt.requests.Load())
	}

	// Non-audio content starts nothing, and $transcribe says why.
	code, _, img := c.do(http.MethodPost, "Binary", strings.NewReader("\x89PNG not really"), "image/png")
	if code != http.StatusCreated {
		t.Fatalf("png upload: %d", code)
	}
	photo := c.create("Media", map[string]any{"resourceType": "Media", "status": "completed", "subject": ref(patient),
		"content": map[string]any{"contentType": "image/png", "url": "Binary/" + img["id"].(string)}})
	code, _, oo := c.do(http.MethodPost, "Media/"+photo+"/$transcribe", nil, "")
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(oo), "audio") {
		t.Errorf("$transcribe of a photo: %d %v", code, oo)
	}
	if tasks := c.search("Task?focus=Media/" + photo); len(tasks) != 0 {
		t.Errorf("a photo started %d runs", len(tasks))
	}
	if code, _, _ := c.do(http.MethodPost, "Media/nope/$transcribe", nil, ""); code != http.StatusNotFound {
		t.Errorf("$transcribe of a missing Media: %d", code)
	}
	if code, _, _ := c.do(http.MethodGet, "Media/"+photo+"/$transcribe", nil, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET $transcribe: %d", code)
	}
	// A Media still in preparation starts nothing until it is completed.
	code, _, bin := c.do(http.MethodPost, "Binary", bytes.NewReader(wav), "audio/wav")
	if code != http.StatusCreated {
		t.Fatal(code)
	}
	m := map[string]any{"resourceType": "Media", "status": "preparation", "subject": ref(patient),
		"content": map[string]any{"contentType": "audio/wav", "url": "Binary/" + bin["id"].(string)}}
	pending := c.create("Media", m)
	if tasks := c.search("Task?focus=Media/" + pending); len(tasks) != 0 {
		t.Errorf("a Media in preparation started %d runs", len(tasks))
	}
	m["status"], m["id"] = "completed", pending
	b, _ := json.Marshal(m)
	if code, _, out := c.do(http.MethodPut, "Media/"+pending, bytes.NewReader(b), "application/fhir+json"); code != http.StatusOK {
		t.Fatalf("complete the Media: %d %v", code, out)
	}
	if task := c.runOf("Media/"+pending, "transcribe", time.Minute); task["status"] != "completed" {
		t.Errorf("run after completion: %v", task)
	}
	// Updating the Media again does not start a second run.
	b, _ = json.Marshal(m)
	c.do(http.MethodPut, "Media/"+pending, bytes.NewReader(b), "application/fhir+json")
	c.runOf("Media/"+pending, "transcribe", time.Minute) // fails the test on 2 runs
}

func TestPipelineWithoutEngineSaysWhatToConfigure(t *testing.T) {
	t.Parallel()
	wav := speech(t, "hello")
	c := fhirClient{t, startAppWith(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1"), true)}
	patient, encounter := c.patientAndEncounter()
	media := c.uploadAudio(wav, "audio/wav", patient, encounter)
	task := c.runOf("Media/"+media, "transcribe", time.Minute)
	reason := fmt.Sprint(task["statusReason"])
	if task["status"] != "failed" || !strings.Contains(reason, "BILLY_STT_URL") || !strings.Contains(reason, "BILLY_WHISPER_MODEL") {
		t.Errorf("run without an engine: %v", task)
	}
}

// TestMain lets a test start Billy as a separate process (the test binary re-executed), so that a
// test can kill it.
func TestMain(m *testing.M) {
	if cmd := os.Getenv("BILLY_TEST_SUBPROCESS"); cmd != "" {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		if err := run(ctx, strings.Fields(cmd), config.OSLookuper(), os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "billy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startProcess runs `billy <cmd>` as a separate process with env until it is killed or the test ends.
func startProcess(t *testing.T, cmd string, env map[string]string) *exec.Cmd {
	t.Helper()
	p := exec.Command(os.Args[0], "-test.run=^$")
	p.Env = append(os.Environ(), "BILLY_TEST_SUBPROCESS="+cmd)
	for k, v := range env {
		p.Env = append(p.Env, k+"="+v)
	}
	var out bytes.Buffer
	p.Stdout, p.Stderr = &out, &out
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Process.Kill()
		_ = p.Wait()
		if t.Failed() {
			t.Logf("billy %s output:\n%s", cmd, out.String())
		}
	})
	return p
}

// envMap turns testEnv's settings into a map, for a subprocess.
func envMap(t *testing.T, extra ...string) map[string]string {
	env := testEnv(t, extra...)
	m := map[string]string{}
	for _, k := range []string{"BILLY_DATABASE_URL", "BILLY_REDIS_URL", "BILLY_LOG_LEVEL", "BILLY_MASTER_KEY", "BILLY_DATA_DIR",
		"BILLY_PIPELINE_QUEUE", "BILLY_AUTH", "BILLY_DEV", "BILLY_STT_URL", "BILLY_PIPELINE_REPLAY_AFTER"} {
		if v, ok := env.Lookup(k); ok {
			m[k] = v
		}
	}
	return m
}

func lookuper(m map[string]string) config.Lookuper { return config.MapLookuper(m) }

// TestWorkerKilledMidStage kills the worker process with SIGKILL while the speech-to-text request
// of a run is in flight, starts another worker, and checks the run completes with exactly one
// DocumentReference. asynq recovers the killed worker's task when its lease expires (about a minute).
func TestWorkerKilledMidStage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease recovery (about a minute)")
	}
	t.Parallel()
	wav := speech(t, script)
	stt := newSTTServer(t)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	stt.gate = func(n int32) {
		if n == 1 {
			close(inFlight)
			<-release
		}
	}
	env := envMap(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_STT_URL", stt.URL)
	c := fhirClient{t, startAppWith(t, lookuper(env), false)} // API and relay only
	worker := startProcess(t, "worker", env)
	patient, encounter := c.patientAndEncounter()
	media := c.uploadAudio(wav, "audio/wav", patient, encounter)
	select {
	case <-inFlight:
	case <-time.After(time.Minute):
		t.Fatal("the worker never called the STT server")
	}
	if err := worker.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = worker.Wait()
	close(release)
	if tasks := c.search("Task?focus=Media/" + media); len(tasks) != 1 || tasks[0]["status"] != "in-progress" {
		t.Fatalf("after the kill: %v", tasks)
	}
	startProcess(t, "worker", env)
	task := c.runOf("Media/"+media, "transcribe", 3*time.Minute)
	if task["status"] != "completed" {
		t.Fatalf("run after the restart: %v", task)
	}
	if docs := c.search("DocumentReference?subject=" + patient); len(docs) != 1 {
		t.Errorf("%d DocumentReferences, want exactly 1", len(docs))
	}
	if provs := c.search("Provenance?target=" + outputOf(task, "transcript")); len(provs) != 1 {
		t.Errorf("%d Provenances, want exactly 1", len(provs))
	}
	if n := stt.requests.Load(); n != 2 {
		t.Errorf("%d STT requests, want 2 (the killed one and the retry)", n)
	}
}

// TestRedisLossReplaysOutbox loses the queue in Redis (as a flush or a failover would) while a stage
// is queued and checks that the outbox delivers it again, and that duplicate deliveries change
// nothing. It deletes only its own queue, so it shares BILLY_TEST_REDIS_URL with the other tests.
func TestRedisLossReplaysOutbox(t *testing.T) {
	t.Parallel()
	wav := speech(t, script)
	stt := newSTTServer(t)
	redisURL := testRedisURL()
	env := envMap(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_STT_URL", stt.URL, "BILLY_REDIS_URL", redisURL,
		"BILLY_PIPELINE_REPLAY_AFTER", "2s")
	ropt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c := fhirClient{t, startAppWith(t, lookuper(env), false)} // relay only: the job waits in Redis
	patient, encounter := c.patientAndEncounter()
	media := c.uploadAudio(wav, "audio/wav", patient, encounter)

	db, err := pgx.Connect(t.Context(), env["BILLY_DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	waitFor(t, "the outbox row to be relayed", func() bool {
		var n int
		err := db.QueryRow(t.Context(), `SELECT count(*) FROM outbox WHERE relayed_at IS NOT NULL`).Scan(&n)
		return err == nil && n == 1
	})
	insp := asynq.NewInspector(ropt)
	defer insp.Close()
	if q, err := insp.GetQueueInfo(env["BILLY_PIPELINE_QUEUE"]); err != nil || q.Pending != 1 {
		t.Fatalf("queue before the flush: %+v %v", q, err)
	}
	if err := insp.DeleteQueue(env["BILLY_PIPELINE_QUEUE"], true); err != nil {
		t.Fatal(err)
	}
	if _, err := insp.GetQueueInfo(env["BILLY_PIPELINE_QUEUE"]); err == nil {
		t.Fatal("the queue is still there")
	}
	// A worker started now finds nothing in Redis; the relay puts the job back.
	startProcess(t, "worker", env)
	task := c.runOf("Media/"+media, "transcribe", time.Minute)
	if task["status"] != "completed" {
		t.Fatalf("run after the flush: %v", task)
	}
	// Deliver the same stage twice more, as a duplicate would: nothing changes.
	var payload []byte
	if err := db.QueryRow(t.Context(), `SELECT payload FROM outbox WHERE task_type = 'pipeline:transcribe'`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(ropt)
	defer client.Close()
	for range 2 {
		if _, err := client.Enqueue(asynq.NewTask("pipeline:transcribe", payload), asynq.Queue(env["BILLY_PIPELINE_QUEUE"])); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the duplicates to be processed", func() bool {
		q, err := insp.GetQueueInfo(env["BILLY_PIPELINE_QUEUE"])
		return err == nil && q.Pending == 0 && q.Active == 0 && q.Retry == 0
	})
	if docs := c.search("DocumentReference?subject=" + patient); len(docs) != 1 {
		t.Errorf("%d DocumentReferences, want exactly 1", len(docs))
	}
	if n := stt.requests.Load(); n != 1 {
		t.Errorf("%d STT requests, want 1", n)
	}
	var open int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM outbox WHERE task_type = 'pipeline:transcribe' AND done_at IS NULL`).Scan(&open); err != nil || open != 0 {
		t.Errorf("%d transcription jobs still open in the outbox (%v)", open, err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
