package codes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Set is an in-memory, read-only copy of the current versions of code systems, for the coder and
// its guards, which look up thousands of codes per transcript. Build it with LoadSet (or NewSet in
// tests); it is safe for concurrent use. A process reloads it after an import (the data is tens of
// megabytes and loads in well under a second).
type Set struct {
	version map[string]string
	codes   map[string]map[string]*Code
	byDesc  map[string]map[string]*Code
	sorted  map[string][]*Code
}

// LoadSet loads the current version of each of systems (all of Systems when none is given). A
// system never imported is simply empty, except CPT, which then answers from BuiltinCPT.
func LoadSet(ctx context.Context, db *pgxpool.Pool, systems ...string) (*Set, error) {
	if len(systems) == 0 {
		systems = Systems
	}
	st := NewStore(db)
	var all []Code
	for _, sys := range systems {
		if _, err := st.CurrentVersion(ctx, sys); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("load %s: %w", sys, err)
		}
		if err := st.Each(ctx, sys, func(c Code) error { all = append(all, c); return nil }); err != nil {
			return nil, fmt.Errorf("load %s: %w", sys, err)
		}
	}
	return NewSet(all), nil
}

// NewSet builds a Set from codes. When codes has no CPT code, CPT answers from BuiltinCPT.
func NewSet(codes []Code) *Set {
	s := &Set{version: map[string]string{}, codes: map[string]map[string]*Code{},
		byDesc: map[string]map[string]*Code{}, sorted: map[string][]*Code{}}
	add := func(c Code) {
		c.Code = Normalize(c.System, c.Code)
		if s.codes[c.System] == nil {
			s.codes[c.System] = map[string]*Code{}
			s.byDesc[c.System] = map[string]*Code{}
		}
		p := &c
		s.codes[c.System][c.Code] = p
		s.version[c.System] = c.Version
		k := DescKey(c.Display)
		if prev, ok := s.byDesc[c.System][k]; !ok || (!prev.Billable && c.Billable) {
			s.byDesc[c.System][k] = p
		}
		s.sorted[c.System] = append(s.sorted[c.System], p)
	}
	for _, c := range codes {
		add(c)
	}
	if len(s.codes[CPT]) == 0 {
		for code, label := range BuiltinCPT {
			add(Code{System: CPT, Version: BuiltinCPTVersion, Code: code, Display: label, Billable: true,
				Status: "active", Category: cptSection(code), Edit: Edit{MaxAge: NoMaxAge}})
		}
		// Without an imported CPT file, the code numbers of the CMS fee schedule (public data, no AMA
		// descriptors) say which CPT codes exist, so guards still reject an invented one.
		for code := range payments() {
			if _, ok := BuiltinCPT[code]; ok || !validCPT(code) {
				continue
			}
			add(Code{System: CPT, Version: BuiltinCPTVersion, Code: code, Display: "CPT " + code + " (descriptor not imported)", Billable: true,
				Status: "active", Category: cptSection(code), Edit: Edit{MaxAge: NoMaxAge}})
		}
	}
	for _, list := range s.sorted {
		sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
	}
	return s
}

// DescKey normalises a description for exact matching: lower case, single spaces.
func DescKey(d string) string {
	return strings.Join(strings.Fields(strings.ToLower(d)), " ")
}

// Get returns code of system, or false. The code may be undotted or lower case.
func (s *Set) Get(system, code string) (*Code, bool) {
	c, ok := s.codes[system][Normalize(system, code)]
	return c, ok
}

// ByDisplay returns the code of system whose description is display (compared by DescKey),
// preferring a billable code.
func (s *Set) ByDisplay(system, display string) (*Code, bool) {
	c, ok := s.byDesc[system][DescKey(display)]
	return c, ok
}

// Lookup returns code of system; ErrNotFound when it is not in the set.
func (s *Set) Lookup(_ context.Context, system, code string) (Code, error) {
	if !known(system) {
		return Code{}, fmt.Errorf("lookup %s: %w", system, ErrUnknownSystem)
	}
	c, ok := s.Get(system, code)
	if !ok {
		return Code{}, fmt.Errorf("lookup %s|%s: %w", system, code, ErrNotFound)
	}
	return *c, nil
}

// Validate reports whether code exists in system and whether it is billable.
func (s *Set) Validate(_ context.Context, system, code string) (exists, billable bool, err error) {
	c, ok := s.Get(system, code)
	if !ok {
		return false, false, nil
	}
	return true, c.Billable, nil
}

// Version returns the loaded version of system ("" when empty).
func (s *Set) Version(system string) string { return s.version[system] }

// Len returns the number of codes of system in the set.
func (s *Set) Len(system string) int { return len(s.codes[system]) }

// Codes returns the codes of system in code order. The slice is shared: do not modify it.
func (s *Set) Codes(system string) []*Code { return s.sorted[system] }

// Children returns the codes of system that start with prefix (dotted form for ICD-10-CM), in code
// order, the prefix itself included.
func (s *Set) Children(system, prefix string) []*Code {
	p := Normalize(system, prefix)
	list := s.sorted[system]
	i := sort.Search(len(list), func(i int) bool { return list[i].Code >= p })
	var out []*Code
	for ; i < len(list) && strings.HasPrefix(list[i].Code, p); i++ {
		out = append(out, list[i])
	}
	return out
}
