package httpguard

import (
	"net/http"
	"strings"
)

// HeaderPolicy is what Headers adds to every answer.
type HeaderPolicy struct {
	// HSTS sends Strict-Transport-Security: set it only when clients reach Billy over TLS (Billy's own
	// listener, or a proxy in front that terminates TLS), since browsers ignore it over plain HTTP and
	// it would pin a development host to HTTPS.
	HSTS bool
	// FrameAncestors is the CSP frame-ancestors source list of HTML pages ('none', 'self', EMR
	// origins): the EMRs that may embed the login, consent and launch pages.
	FrameAncestors string
}

// hstsValue keeps browsers on HTTPS for a year, subdomains included.
const hstsValue = "max-age=31536000; includeSubDomains"

// defaultPageCSP is the policy of an HTML page whose handler set none: nothing loads but its own
// inline styles, and forms post only to Billy.
const defaultPageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"

// Headers adds the security headers to every answer: X-Content-Type-Options nosniff everywhere,
// Referrer-Policy no-referrer (OAuth pages carry codes and state in their URLs), HSTS when p.HSTS,
// and on HTML pages a Content-Security-Policy whose frame-ancestors is p.FrameAncestors, replacing
// X-Frame-Options (which cannot name several origins) unless framing is forbidden altogether.
func Headers(p HeaderPolicy, next http.Handler) http.Handler {
	fa := strings.TrimSpace(p.FrameAncestors)
	if fa == "" {
		fa = "'none'"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if p.HSTS {
			h.Set("Strict-Transport-Security", hstsValue)
		}
		next.ServeHTTP(&headerWriter{ResponseWriter: w, frameAncestors: fa}, r)
	})
}

// headerWriter fixes the page headers just before they are sent, when the content type is known.
type headerWriter struct {
	http.ResponseWriter
	frameAncestors string
	wrote          bool
}

func (hw *headerWriter) WriteHeader(code int) {
	if !hw.wrote {
		hw.wrote = true
		hw.pageHeaders()
	}
	hw.ResponseWriter.WriteHeader(code)
}

func (hw *headerWriter) Write(b []byte) (int, error) {
	if !hw.wrote {
		hw.WriteHeader(http.StatusOK)
	}
	return hw.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines, flush).
func (hw *headerWriter) Unwrap() http.ResponseWriter { return hw.ResponseWriter }

// Flush passes flushes through for streamed answers.
func (hw *headerWriter) Flush() {
	if !hw.wrote {
		hw.WriteHeader(http.StatusOK)
	}
	if f, ok := hw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (hw *headerWriter) pageHeaders() {
	h := hw.Header()
	if !strings.HasPrefix(strings.ToLower(h.Get("Content-Type")), "text/html") {
		return
	}
	csp := h.Get("Content-Security-Policy")
	if csp == "" {
		csp = defaultPageCSP
	}
	h.Set("Content-Security-Policy", withFrameAncestors(csp, hw.frameAncestors))
	if hw.frameAncestors == "'none'" {
		h.Set("X-Frame-Options", "DENY")
	} else {
		h.Del("X-Frame-Options")
	}
}

// withFrameAncestors replaces the frame-ancestors directive of a CSP, or appends one.
func withFrameAncestors(csp, sources string) string {
	var out []string
	for _, d := range strings.Split(csp, ";") {
		d = strings.TrimSpace(d)
		if d == "" || strings.HasPrefix(strings.ToLower(d), "frame-ancestors") {
			continue
		}
		out = append(out, d)
	}
	return strings.Join(append(out, "frame-ancestors "+sources), "; ")
}
