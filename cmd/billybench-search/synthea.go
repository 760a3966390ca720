package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/iambilly/billy/internal/shareddata"
)

// corpus is the Synthea data set (45 patient Bundles and the 2 population Bundles) cut into
// templates, so that any number of distinct copies can be written without holding them in memory.
type corpus struct {
	bundles   []*bundleTemplate
	resources int // entries in one copy of all the Bundles
	// families are the official family names of the 45 patients, sorted: the second halves of the
	// double-barrelled names some copies get.
	families []string
}

// bundleTemplate is one transaction Bundle cut at every place where a copy differs from the
// original: each occurrence of an entry's urn:uuid id (in its fullUrl, the resource id, every
// reference to it, and identifiers that reuse it), each Patient identifier value, and the Patient's
// official family name.
type bundleTemplate struct {
	file      string
	parts     [][]byte // literal bytes; parts[i] precedes slots[i], and one more part ends the Bundle
	slots     []slot
	ids       int    // distinct entry ids
	resources int    // entries
	family    string // the Patient's official family name; "" in the population Bundles
}

type slot struct {
	kind slotKind
	id   int // which entry id, for slotID
}

type slotKind uint8

const (
	slotID     slotKind = iota // an entry's urn:uuid id
	slotSuffix                 // appended to each Patient identifier value
	slotFamily                 // the Patient's official family name
)

// The markers that stand for slotSuffix and slotFamily in the Patient while a template is cut.
// Synthea text never contains "{{".
const (
	suffixMarker = "{{suffix}}"
	familyMarker = "{{family}}"
)

var slotPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\{\{(?:suffix|family)\}\}`)

// loadCorpus reads and cuts the Synthea Bundles.
func loadCorpus() (*corpus, error) {
	files, err := shareddata.SyntheaBundles()
	if err != nil {
		return nil, err
	}
	c := &corpus{}
	seen := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		t, err := newTemplate(filepath.Base(f), raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		c.bundles = append(c.bundles, t)
		c.resources += t.resources
		if t.family != "" && !seen[t.family] {
			seen[t.family] = true
			c.families = append(c.families, t.family)
		}
	}
	sort.Strings(c.families)
	return c, nil
}

func newTemplate(file string, raw []byte) (*bundleTemplate, error) {
	var b struct {
		Type  string `json:"type"`
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	if b.Type != "transaction" {
		return nil, fmt.Errorf("a %q Bundle, want a transaction", b.Type)
	}
	t := &bundleTemplate{file: file, resources: len(b.Entry)}
	ids := map[string]int{}
	for i, e := range b.Entry {
		id, ok := strings.CutPrefix(e.FullURL, "urn:uuid:")
		if !ok {
			return nil, fmt.Errorf("entry %d: fullUrl %q is not a urn:uuid, so copies could not get fresh ones", i, e.FullURL)
		}
		ids[id] = len(ids)
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if head.ResourceType != "Patient" {
			continue
		}
		if t.family != "" {
			return nil, errors.New("more than one Patient")
		}
		marked, family, err := markPatient(e.Resource)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		at := bytes.Index(raw, e.Resource)
		if at < 0 {
			return nil, fmt.Errorf("entry %d: resource not found in the Bundle", i)
		}
		raw = bytes.Join([][]byte{raw[:at], marked, raw[at+len(e.Resource):]}, nil)
		t.family = family
	}
	t.ids = len(ids)
	last := 0
	for _, m := range slotPattern.FindAllIndex(raw, -1) {
		var s slot
		switch text := string(raw[m[0]:m[1]]); text {
		case suffixMarker:
			s.kind = slotSuffix
		case familyMarker:
			s.kind = slotFamily
		default:
			id, ok := ids[text]
			if !ok {
				continue // a UUID that names no entry (the Patient's Synthea identifier): kept as is
			}
			s = slot{kind: slotID, id: id}
		}
		t.parts = append(t.parts, raw[last:m[0]])
		t.slots = append(t.slots, s)
		last = m[1]
	}
	t.parts = append(t.parts, raw[last:])
	return t, nil
}

// markPatient puts the markers into a Patient: after every identifier value, and in place of the
// official family name, which it returns.
func markPatient(raw []byte) ([]byte, string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // decimals go back out as written
	var p map[string]any
	if err := dec.Decode(&p); err != nil {
		return nil, "", err
	}
	idents, _ := p["identifier"].([]any)
	for _, it := range idents {
		if m, ok := it.(map[string]any); ok {
			if v, ok := m["value"].(string); ok {
				m["value"] = v + suffixMarker
			}
		}
	}
	var official map[string]any
	names, _ := p["name"].([]any)
	for _, it := range names { // the first official name, else the first
		m, _ := it.(map[string]any)
		if m == nil {
			continue
		}
		if official == nil {
			official = m
		}
		if m["use"] == "official" {
			official = m
			break
		}
	}
	family, _ := official["family"].(string)
	if family == "" {
		return nil, "", errors.New("the Patient has no official family name")
	}
	official["family"] = familyMarker
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, "", err
	}
	return bytes.TrimSpace(buf.Bytes()), family, nil
}

// write appends copy n of Bundle b to buf. Every copy has fresh entry ids, drawn from a generator
// seeded by (n, b) so that runs are reproducible. Copy 0 keeps the original identifiers and names;
// later ones append "-<n>" to each Patient identifier value, and every fourth gets a
// double-barrelled family name (the original and another patient's), which makes a quarter of the
// patients' names almost unique while the rest repeat once per copy, as common names do.
func (c *corpus) write(buf *bytes.Buffer, n, b int) {
	t := c.bundles[b]
	r := rand.New(rand.NewPCG(uint64(n), uint64(b)))
	ids := make([][36]byte, t.ids)
	for i := range ids {
		ids[i] = newUUID(r)
	}
	suffix := ""
	if n > 0 {
		suffix = "-" + strconv.Itoa(n)
	}
	family := t.family
	if n%4 == 3 && len(c.families) > 1 {
		other := c.families[(n*7+b)%len(c.families)]
		if other == family {
			other = c.families[(n*7+b+1)%len(c.families)]
		}
		family += "-" + other
	}
	for i, s := range t.slots {
		buf.Write(t.parts[i])
		switch s.kind {
		case slotID:
			buf.Write(ids[s.id][:])
		case slotSuffix:
			buf.WriteString(suffix)
		case slotFamily:
			buf.WriteString(family)
		}
	}
	buf.Write(t.parts[len(t.parts)-1])
}

// newUUID returns a random (version 4) UUID in its text form.
func newUUID(r *rand.Rand) [36]byte {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hex[x>>4], hex[x&0x0f]
		j += 2
	}
	return s
}
