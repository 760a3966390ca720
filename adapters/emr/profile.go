package emr

import (
	"embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

//go:embed profiles/*.json
var profileFiles embed.FS

// Profile is a vendor's configuration: what differs between EMRs, as data.
type Profile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// PageSize is the _count asked for.
	PageSize int `json:"page_size"`
	// SortLastUpdated: the EMR honours _sort=_lastUpdated, so the high-water mark can advance with
	// every page; otherwise it advances only when a type's sync completes.
	SortLastUpdated bool `json:"sort_last_updated"`
	// BasePathPattern, when set, is what the base URL's path must match (Oracle's tenant-scoped bases).
	BasePathPattern string `json:"base_path_pattern"`
	// Include lists the _include values asked for with each type.
	Include   map[string][]string `json:"include"`
	Writeback WritebackRules      `json:"writeback"`
}

// WritebackRules say how a document must look for the EMR to accept it.
type WritebackRules struct {
	ContentTypes     []string `json:"content_types"`
	SingleAttachment bool     `json:"single_attachment"`
	RequireEncounter bool     `json:"require_encounter"`
	NoteType         *Coding  `json:"note_type"`
	// ConditionalCreate: the EMR honours If-None-Exist, so a retried POST cannot duplicate.
	ConditionalCreate bool `json:"conditional_create"`
}

// Coding is a FHIR Coding.
type Coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// Profiles returns the embedded profiles by name.
func Profiles() (map[string]*Profile, error) {
	ents, err := profileFiles.ReadDir("profiles")
	if err != nil {
		return nil, err
	}
	out := map[string]*Profile{}
	for _, e := range ents {
		b, err := profileFiles.ReadFile("profiles/" + e.Name())
		if err != nil {
			return nil, err
		}
		var p Profile
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("profile %s: %w", e.Name(), err)
		}
		if p.PageSize <= 0 {
			p.PageSize = 100
		}
		out[p.Name] = &p
	}
	return out, nil
}

// LoadProfile returns the named profile.
func LoadProfile(name string) (*Profile, error) {
	all, err := Profiles()
	if err != nil {
		return nil, err
	}
	p, ok := all[name]
	if !ok {
		names := make([]string, 0, len(all))
		for n := range all {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown profile %q (one of %s)", name, strings.Join(names, ", "))
	}
	return p, nil
}

// checkBase applies the profile's rule on the base URL's path.
func (p *Profile) checkBase(path string) error {
	if p.BasePathPattern == "" {
		return nil
	}
	re, err := regexp.Compile(p.BasePathPattern)
	if err != nil {
		return fmt.Errorf("profile %s: %w", p.Name, err)
	}
	if !re.MatchString(path) {
		return fmt.Errorf("profile %s wants a base URL whose path matches %s (a tenant-scoped base)", p.Name, p.BasePathPattern)
	}
	return nil
}

func (w *WritebackRules) allows(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	return slices.Contains(w.ContentTypes, strings.TrimSpace(ct))
}
