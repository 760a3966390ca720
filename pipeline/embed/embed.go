// Package embed turns text into vectors for the knowledge base (pipeline/kb): a built-in,
// deterministic hashing embedder that needs no model, and an engine that calls any
// OpenAI-compatible /v1/embeddings server (llama.cpp, Ollama, vLLM, OpenAI).
//
// It owns the medical abbreviation table both engines' callers share (Expand). It must not touch the
// database or the code sets; storing and searching vectors is pipeline/kb's job.
//
// The built-in embedder is written by hand because no Go library does feature hashing with medical
// abbreviation expansion; it is a bag of hashed word unigrams, bigrams and character trigrams (the
// "hashing trick"), so its quality is lexical, not semantic: good at matching a note's wording to code
// descriptions, blind to paraphrase that shares no words. Use a real embedding model through the
// OpenAI engine for semantic retrieval.
package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Embedder turns texts into L2-normalised vectors of Dim() dimensions, one per text, in order.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Dim is the vector length; 0 until known for an engine that learns it from its first answer.
	Dim() int
	// Info names the engine and its model, for logs and for recording which embedder built an index.
	Info() (name, model string)
}

// ErrTransient marks a failure worth retrying later (server overloaded, network down): test with
// errors.Is.
var ErrTransient = errors.New("embedding engine unavailable")

// ErrPermanent marks a failure that retrying will not fix (bad request, bad key, malformed answer).
var ErrPermanent = errors.New("embedding request failed")

// ID returns the identity an index records for e: "name/model/dim". Vectors of different IDs are
// never compared.
func ID(e Embedder) string {
	name, model := e.Info()
	return fmt.Sprintf("%s/%s/%d", name, model, e.Dim())
}

// Normalize scales v to unit length in place (a zero vector stays zero) and returns it. The
// explicit conversions keep the compiler from fusing multiply-adds (Go spec, "Arithmetic
// operators"), so results are bit-identical on every platform.
func Normalize(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(float64(x) * float64(x))
	}
	if s == 0 {
		return v
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
	return v
}

// Dot returns the dot product of a and b (cosine similarity for unit vectors). The loop is unrolled
// by four, which lets the compiler keep four independent accumulators in registers.
func Dot(a, b []float32) float32 {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
