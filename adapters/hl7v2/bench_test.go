package hl7v2

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkApply applies ADT^A04 messages (new patient and encounter each) without the network.
func BenchmarkApply(b *testing.B) {
	s, _ := startServer(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		mrn := fmt.Sprintf("B%d", i)
		msg := message(msh("ADT^A04^ADT_A01", mrn), pid(mrn, "Par", "19900101", "F"), pv1("O", "V"+mrn, "20260301113000", ""))
		if _, res := s.Apply(b.Context(), []byte(msg), "bench"); res.Code != AA {
			b.Fatal(res)
		}
	}
}

// BenchmarkApplyParallel applies ADT^A04 messages from four goroutines through the group commit.
func BenchmarkApplyParallel(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("committers=%d", n), func(b *testing.B) { benchParallel(b, n) })
	}
}

func benchParallel(b *testing.B, committers int) {
	s, _ := startServerWith(b, committers)
	var n atomic.Int64
	b.SetParallelism(2) // 2 × GOMAXPROCS(2) = 4 senders
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mrn := fmt.Sprintf("P%d", n.Add(1))
			msg := message(msh("ADT^A04^ADT_A01", mrn), pid(mrn, "Par", "19900101", "F"), pv1("O", "V"+mrn, "20260301113000", ""))
			if _, res := s.Apply(b.Context(), []byte(msg), "bench"); res.Code != AA {
				b.Error(res)
				return
			}
		}
	})
}
