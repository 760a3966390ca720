package smart

import (
	"strings"
	"unicode"

	"github.com/iambilly/billy/smart/scope"
)

// The consent page says what an app asks for in words a clinician reads at a glance; the scope
// strings themselves are one click away.

// contextScopeText describes the scopes that grant no data.
var contextScopeText = map[string]string{
	"openid":           "Confirm who you are (OpenID Connect)",
	"profile":          "Your name and profile",
	"fhirUser":         "Your identity (fhirUser)",
	"offline_access":   "Stay signed in (offline access)",
	"online_access":    "Stay signed in while you use it (online access)",
	"launch":           "Open with the patient and encounter the EHR chose",
	"launch/patient":   "Know which patient you choose",
	"launch/encounter": "Know which encounter you choose",
}

// typeWords names resource types whose plain plural is not the CamelCase split plus "s".
var typeWords = map[string]string{
	"Binary":               "files",
	"Media":                "media",
	"Coverage":             "insurance coverage",
	"Provenance":           "provenance records",
	"Evidence":             "evidence",
	"ExplanationOfBenefit": "explanations of benefit",
	"Basic":                "other records",
}

// describeScopes turns requested scopes into sentences, in order, each once.
func describeScopes(scopes []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range scopes {
		d := describeScope(s)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// describeScope says what one scope lets an app do: "Read this patient's claims".
func describeScope(s string) string {
	if d, ok := contextScopeText[s]; ok {
		return d
	}
	r, ok, err := scope.ParseResource(s)
	if !ok || err != nil {
		return "Another permission: " + s
	}
	var verbs []string
	switch {
	case r.Perms&scope.Read != 0:
		verbs = append(verbs, "read")
	case r.Perms&scope.Search != 0:
		verbs = append(verbs, "search")
	}
	for _, v := range []struct {
		p    scope.Perm
		verb string
	}{{scope.Create, "create"}, {scope.Update, "update"}, {scope.Delete, "delete"}} {
		if r.Perms&v.p != 0 {
			verbs = append(verbs, v.verb)
		}
	}
	text := capitalize(joinWords(verbs)) + " " + scopeObject(r)
	if len(r.Query) > 0 {
		text += " (only those with " + r.Query.Encode() + ")"
	}
	return text
}

// scopeObject names what a resource scope reaches: "this patient's claims".
func scopeObject(r scope.Resource) string {
	switch {
	case r.Level == scope.Patient && r.Type == "*":
		return "all of this patient's records"
	case r.Level == scope.Patient && r.Type == "Patient":
		return "this patient's demographic record"
	case r.Level == scope.Patient:
		return "this patient's " + pluralOf(r.Type)
	case r.Level == scope.User && r.Type == "*":
		return "all records you have access to"
	case r.Level == scope.User:
		return pluralOf(r.Type) + " you have access to"
	case r.Type == "*":
		return "all records"
	}
	return "all " + pluralOf(r.Type)
}

// pluralOf names a resource type in plain lower-case words: AllergyIntolerance → "allergy
// intolerances".
func pluralOf(typ string) string {
	if w, ok := typeWords[typ]; ok {
		return w
	}
	var words []string
	start := 0
	for i, c := range typ {
		if i > 0 && unicode.IsUpper(c) {
			words = append(words, strings.ToLower(typ[start:i]))
			start = i
		}
	}
	words = append(words, strings.ToLower(typ[start:]))
	last := words[len(words)-1]
	switch {
	case strings.HasSuffix(last, "y") && len(last) > 1 && !strings.ContainsRune("aeiou", rune(last[len(last)-2])):
		last = last[:len(last)-1] + "ies"
	case strings.HasSuffix(last, "s"), strings.HasSuffix(last, "x"), strings.HasSuffix(last, "ch"), strings.HasSuffix(last, "sh"):
		last += "es"
	default:
		last += "s"
	}
	words[len(words)-1] = last
	return strings.Join(words, " ")
}

// joinWords joins "a", "b", "c" as "a, b and c".
func joinWords(w []string) string {
	switch len(w) {
	case 0:
		return ""
	case 1:
		return w[0]
	}
	return strings.Join(w[:len(w)-1], ", ") + " and " + w[len(w)-1]
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
