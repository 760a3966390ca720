package jsontree

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"order kept", `{"b":1,"a":2}`, `{"b":1,"a":2}`},
		{"decimal precision kept", `{"v":1.50,"w":-0.0e+10}`, `{"v":1.50,"w":-0.0e+10}`},
		{"whitespace dropped", " {\n \"a\" : [ 1 , true , null ] }\t", `{"a":[1,true,null]}`},
		{"empty containers", `{"a":{},"b":[]}`, `{"a":{},"b":[]}`},
		{"escapes normalised", `"a\/b\u00e9\n\"\\\u0001"`, `"a/bé\n\"\\\u0001"`},
		{"surrogate pair", `"\ud83d\ude00"`, `"😀"`},
		{"DEL and unicode raw", "\"\x7f\u2028é\"", "\"\x7f\u2028é\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := string(v.Marshal()); got != tt.want {
				t.Errorf("Marshal = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, msg string
	}{
		{"empty", ``, "unexpected end"},
		{"trailing data", `{} {}`, "after the top-level value"},
		{"duplicate member", `{"a":1,"a":2}`, `duplicate member "a"`},
		{"trailing comma", `[1,]`, "unexpected character"},
		{"leading zero", `01`, "after the top-level"},
		{"bare dot", `1.`, "no digits after"},
		{"bad exponent", `1e`, "no digits in exponent"},
		{"control char", "\"a\x01\"", "control character"},
		{"bad escape", `"\x"`, "invalid escape"},
		{"lone surrogate", `"\ud800"`, "surrogate"},
		{"invalid utf8", "\"\xff\"", "UTF-8"},
		{"unterminated", `"abc`, "unterminated"},
		{"single quotes", `{'a':1}`, "member name"},
		{"too deep", strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2), "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error = %v, want a *SyntaxError", tt.in, err)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("Parse(%q) = %q, want it to mention %q", tt.in, se.Msg, tt.msg)
			}
		})
	}
}

func TestEditing(t *testing.T) {
	t.Parallel()
	v, err := Parse([]byte(`{"resourceType":"Patient","id":"x","active":true}`))
	if err != nil {
		t.Fatal(err)
	}
	v.SetAfter("meta", NewObject(), "id", "resourceType")
	v.Get("meta").Set("versionId", NewString("1"))
	v.Set("id", NewString("y"))
	if !v.Delete("active") || v.Delete("active") {
		t.Error("Delete should report presence once")
	}
	want := `{"resourceType":"Patient","id":"y","meta":{"versionId":"1"}}`
	if got := string(v.Marshal()); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	c := v.Clone()
	c.Get("meta").Set("versionId", NewString("2"))
	if Equal(c, v) || v.Get("meta").GetString("versionId") != "1" {
		t.Error("Clone must be deep")
	}
}

// FuzzParse checks the parser against encoding/json: both accept the same documents (apart from
// duplicates, which only we reject) and mean the same thing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.50,"x\u00e9"],"b":null}`, `"\ud83d\ude00"`, `[true,false]`, `-0.1e-3`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		stdOK := json.Valid(data)
		if err != nil {
			if stdOK && !strings.Contains(err.Error(), "duplicate") && !strings.Contains(err.Error(), "UTF-8") &&
				!strings.Contains(err.Error(), "surrogate") && !strings.Contains(err.Error(), "nested") {
				t.Fatalf("we reject %q (%v), encoding/json accepts it", data, err)
			}
			return
		}
		if !stdOK {
			t.Fatalf("we accept %q, encoding/json rejects it", data)
		}
		out := v.Marshal()
		a, err := decodeStd(data)
		if err != nil {
			t.Fatal(err)
		}
		b, err := decodeStd(out)
		if err != nil {
			t.Fatalf("our output %q is not JSON: %v", out, err)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("meaning changed: %s -> %s", data, out)
		}
		v2, err := Parse(out)
		if err != nil || !Equal(v, v2) {
			t.Fatalf("output does not parse back equal: %s (%v)", out, err)
		}
	})
}

func decodeStd(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

func BenchmarkParseMarshal(b *testing.B) {
	doc := []byte(`{"resourceType":"Observation","id":"1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body Height"},"subject":{"reference":"urn:uuid:8c7271df-e8d9-4baa-8762-8f0a585297cc"},"effectiveDateTime":"2019-05-14T08:09:10-04:00","valueQuantity":{"value":165.10,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}`)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		v, err := Parse(doc)
		if err != nil {
			b.Fatal(err)
		}
		v.Marshal()
	}
}
