package audit_test

import (
	"testing"
)

// BenchmarkWriter measures the batched writer alone: parallel requests recording one read event
// each, as the REST edge does (go test -bench Writer -cpu 16 ./fhir/audit).
func BenchmarkWriter(b *testing.B) {
	pool := pgtestPool(b)
	tr := newTrailOn(pool)
	w := tr.NewWriter(false)
	defer w.Close()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := w.Record(b.Context(), readEvent(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
