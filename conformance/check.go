package conformance

import (
	"context"
	"net/http"
	"sort"
	"strings"
)

// Level is how strongly the spec asks for what a check verifies.
type Level string

// The levels, strongest first.
const (
	SHALL  Level = "SHALL"
	SHOULD Level = "SHOULD"
	MAY    Level = "MAY"
)

// Levels lists the levels, strongest first.
var Levels = []Level{SHALL, SHOULD, MAY}

// Status is a check's outcome.
type Status string

// The outcomes.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Groups lists the groups in report order.
var Groups = []string{"capability", "crud", "conditional", "bundle", "search", "errors", "smart", "bulk"}

// Check is one scenario check.
type Check struct {
	// ID is "group/name", unique in a run.
	ID    string `json:"id"`
	Group string `json:"group"`
	// Title says in a sentence what the server must do.
	Title string `json:"title"`
	Level Level  `json:"level"`
	// Spec is the URL of the spec section (with its anchor) the check follows.
	Spec string `json:"spec"`
	// ReadOnly is set when the check sends no write: a read-only run runs only these.
	ReadOnly bool `json:"readOnly"`
	// Run performs the check.
	Run func(ctx context.Context, e *Env) Result `json:"-"`
}

// Result is what a check found.
type Result struct {
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Exchange is the request and response that showed a failure (or the last one a check sent).
	Exchange *Exchange `json:"exchange,omitempty"`
}

// Exchange is one HTTP request and its response, bodies truncated to maxBody bytes and the
// Authorization header masked.
type Exchange struct {
	Method          string            `json:"method"`
	URL             string            `json:"url"`
	RequestHeaders  map[string]string `json:"requestHeaders,omitempty"`
	RequestBody     string            `json:"requestBody,omitempty"`
	Status          int               `json:"status"`
	ResponseHeaders map[string]string `json:"responseHeaders,omitempty"`
	ResponseBody    string            `json:"responseBody,omitempty"`
}

const maxBody = 4096

func truncate(b []byte) string {
	if len(b) > maxBody {
		return string(b[:maxBody]) + "\n… (" + itoa(len(b)-maxBody) + " more bytes)"
	}
	return string(b)
}

func headerMap(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, vs := range h {
		v := strings.Join(vs, ", ")
		if k == "Authorization" {
			if i := strings.IndexByte(v, ' '); i > 0 && len(v) > i+9 {
				v = v[:i+9] + "…"
			}
		}
		out[k] = v
	}
	return out
}

func pass() Result { return Result{Status: Pass} }

func skip(reason string, args ...any) Result {
	return Result{Status: Skip, Reason: sprintf(reason, args...)}
}

// fail is a failure shown by r (nil when no response showed it).
func fail(r *Resp, reason string, args ...any) Result {
	res := Result{Status: Fail, Reason: sprintf(reason, args...)}
	if r != nil {
		ex := r.Exchange
		res.Exchange = &ex
	}
	return res
}

// sortChecks orders checks by group (report order), then ID.
func sortChecks(cs []Check) {
	rank := map[string]int{}
	for i, g := range Groups {
		rank[g] = i
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if rank[cs[i].Group] != rank[cs[j].Group] {
			return rank[cs[i].Group] < rank[cs[j].Group]
		}
		return cs[i].ID < cs[j].ID
	})
}
