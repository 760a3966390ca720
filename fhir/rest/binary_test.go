package rest_test

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinaryContent(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	audio := bytes.Repeat([]byte("RIFF-pretend-audio-0123456789-"), 20000) // 600 KB with a findable pattern
	r := s.do(http.MethodPost, "Binary", audio, "Content-Type", "audio/wav", "X-Security-Context", "Patient/p1")
	created := r.must(t, http.StatusCreated)
	id := created.GetString("id")
	if created.GetString("contentType") != "audio/wav" || created.Get("data") != nil || created.Get("securityContext").GetString("reference") != "Patient/p1" {
		t.Fatalf("created Binary: %s", created.Marshal())
	}
	// Raw read (no FHIR Accept), with Range.
	raw := s.do(http.MethodGet, "Binary/"+id, nil, "Accept", "audio/*")
	if raw.status != 200 || !bytes.Equal(raw.body, audio) || raw.header.Get("Content-Type") != "audio/wav" {
		t.Fatalf("raw read: %d %q %d bytes", raw.status, raw.header.Get("Content-Type"), len(raw.body))
	}
	part := s.do(http.MethodGet, "Binary/"+id, nil, "Range", "bytes=100-199")
	if part.status != http.StatusPartialContent || !bytes.Equal(part.body, audio[100:200]) {
		t.Errorf("range read: %d %d bytes", part.status, len(part.body))
	}
	// FHIR JSON read carries the data, encoded on the fly.
	js := s.do(http.MethodGet, "Binary/"+id, nil, "Accept", "application/fhir+json").must(t, http.StatusOK)
	got, err := base64.StdEncoding.DecodeString(js.GetString("data"))
	if err != nil || !bytes.Equal(got, audio) || js.GetString("contentType") != "audio/wav" {
		t.Errorf("JSON read: %v, %d bytes", err, len(got))
	}
	if err := validator.Validate(js.Marshal()); err != nil {
		t.Errorf("the JSON form is not valid FHIR: %v", err)
	}
	// Nothing on disk holds the plaintext.
	probe := []byte("RIFF-pretend-audio-0123456789-")
	err = filepath.WalkDir(s.blobDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, probe) {
			t.Errorf("%s holds plaintext", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// An update makes a new blob; the old version still reads the old bytes.
	s.do(http.MethodPut, "Binary/"+id, []byte("second version"), "Content-Type", "text/plain").must(t, http.StatusOK)
	if v1 := s.do(http.MethodGet, "Binary/"+id+"/_history/1", nil); !bytes.Equal(v1.body, audio) {
		t.Errorf("vread of version 1: %d bytes", len(v1.body))
	}
	if v2 := s.do(http.MethodGet, "Binary/"+id, nil); string(v2.body) != "second version" || v2.header.Get("Content-Type") != "text/plain" {
		t.Errorf("current version: %q %q", v2.body, v2.header.Get("Content-Type"))
	}
	// A FHIR JSON Binary with base64 data.
	id2 := s.create(`{"resourceType":"Binary","contentType":"text/plain","data":"` + base64.StdEncoding.EncodeToString([]byte("hello")) + `"}`)
	if b := s.do(http.MethodGet, "Binary/"+id2, nil); string(b.body) != "hello" {
		t.Errorf("JSON-created Binary: %q", b.body)
	}
	// Over the limit (8 MiB here): 413 and nothing created.
	big := s.do(http.MethodPost, "Binary", bytes.Repeat([]byte{1}, 9<<20), "Content-Type", "audio/wav")
	if big.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized upload: %d", big.status)
	}
	s.do(http.MethodPost, "Binary", `{"resourceType":"Binary","contentType":"text/plain","data":"%%%"}`).must(t, http.StatusBadRequest)
	if r := s.do(http.MethodGet, "Patient", nil, "Accept", "audio/wav"); r.status != http.StatusNotAcceptable {
		t.Errorf("non-Binary reads still negotiate: %d", r.status)
	}
}

func TestMediaInlineContentMovesToBinary(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	pid := s.create(patientJSON)
	data := base64.StdEncoding.EncodeToString([]byte("pretend ogg bytes"))
	media := s.do(http.MethodPost, "Media", `{"resourceType":"Media","status":"completed","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/media-type","code":"audio"}]},`+
		`"subject":{"reference":"Patient/`+pid+`"},"content":{"contentType":"audio/ogg","data":"`+data+`"}}`).must(t, http.StatusCreated)
	c := media.Get("content")
	url := c.GetString("url")
	if c.Get("data") != nil || !strings.HasPrefix(url, "Binary/") || c.Get("size").Str != "17" {
		t.Fatalf("Media content: %s", c.Marshal())
	}
	bin := s.do(http.MethodGet, url, nil)
	if string(bin.body) != "pretend ogg bytes" || bin.header.Get("Content-Type") != "audio/ogg" {
		t.Errorf("moved content: %q", bin.body)
	}
	meta := s.do(http.MethodGet, url, nil, "Accept", "application/fhir+json").must(t, http.StatusOK)
	if meta.Get("securityContext").GetString("reference") != "Patient/"+pid {
		t.Errorf("the Binary's securityContext follows the Media's subject: %s", meta.Marshal())
	}
}
