// Package logging sets up Billy's structured JSON logs and keeps protected health information out of
// them.
//
// It owns the slog handler (JSON, level, request id taken from the context) and the masking rules:
// query values and anything marked PHI are replaced before a record is written. It must not decide
// what to log; callers do, and pass anything patient-derived as PHI or through MaskQuery.
package logging

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
)

type requestIDKey struct{}

// WithRequestID returns a context carrying the request id that every log record made with it shows.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id of ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// PHI marks a value that may identify a patient. It is logged as a fixed mask, so it can be passed
// to a logger without thought.
type PHI string

// LogValue hides the value.
func (PHI) LogValue() slog.Value { return slog.StringValue("[phi]") }

// ParseLevel maps debug|info|warn|error to a level (info for anything else).
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// New returns a JSON logger writing to w at level.
func New(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(contextHandler{h})
}

// contextHandler adds the request id from the record's context.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestIDFrom(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// MaskQuery keeps the parameter names of a raw query string and replaces every value, since search
// values (names, birth dates, identifiers) are PHI. Names are sorted so logs group well.
func MaskQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "[unparseable]"
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteString("=*")
	}
	return b.String()
}
