package fhir

import (
	"errors"
	"fmt"
	"strings"
)

// The kinds of failure. Every error that reaches a client wraps exactly one of them; the HTTP edge
// maps the kind to a status code (fhir/rest), the Issues to the OperationOutcome body.
var (
	ErrInvalid            = errors.New("invalid")                // 400: unparseable or invalid request or resource
	ErrUnauthorized       = errors.New("unauthorized")           // 401
	ErrForbidden          = errors.New("forbidden")              // 403
	ErrNotFound           = errors.New("not found")              // 404
	ErrMethodNotAllowed   = errors.New("method not allowed")     // 405
	ErrNotAcceptable      = errors.New("not acceptable")         // 406
	ErrConflict           = errors.New("conflict")               // 409
	ErrGone               = errors.New("gone")                   // 410
	ErrPreconditionFailed = errors.New("precondition failed")    // 412
	ErrTooLarge           = errors.New("payload too large")      // 413
	ErrUnsupportedMedia   = errors.New("unsupported media type") // 415
	ErrUnprocessable      = errors.New("unprocessable")          // 422: valid FHIR that breaks a rule
	ErrTooCostly          = errors.New("too costly")             // 403 with issue code too-costly
	ErrNotImplemented     = errors.New("not implemented")        // 501
)

// Issue severities.
const (
	SeverityFatal       = "fatal"
	SeverityError       = "error"
	SeverityWarning     = "warning"
	SeverityInformation = "information"
)

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity    string
	Code        string // IssueType: invalid, structure, required, value, not-found, deleted, conflict ...
	Diagnostics string
	Expression  []string // FHIRPath of the element at fault
}

// Error is a failure with the issues to report. Kind is one of the Err* sentinels.
type Error struct {
	Kind   error
	Issues []Issue
}

// Error returns the diagnostics of the issues.
func (e *Error) Error() string {
	var b strings.Builder
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		if len(is.Expression) > 0 {
			b.WriteString(strings.Join(is.Expression, ","))
			b.WriteString(": ")
		}
		b.WriteString(is.Diagnostics)
	}
	if b.Len() == 0 {
		return e.Kind.Error()
	}
	return b.String()
}

// Unwrap exposes the kind to errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an Error of kind with one error-severity issue of code.
func Errorf(kind error, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Issues: []Issue{{Severity: SeverityError, Code: code, Diagnostics: fmt.Sprintf(format, args...)}}}
}

// At returns e with expr as the expression of its issues that have none.
func (e *Error) At(expr ...string) *Error {
	for i := range e.Issues {
		if len(e.Issues[i].Expression) == 0 {
			e.Issues[i].Expression = expr
		}
	}
	return e
}

// Invalid is shorthand for a 400 with issue code and the element at fault.
func Invalid(code, expr, format string, args ...any) *Error {
	e := Errorf(ErrInvalid, code, format, args...)
	if expr != "" {
		e.At(expr)
	}
	return e
}

// AsError returns err as an *Error when it is one (possibly wrapped).
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
