package kb

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
)

// item is the metadata of one vector of an exact index.
type item struct {
	kind   uint8 // 1 code, 2 manual
	page   int32
	system string
	code   string
	text   string
	source int64
}

// flat is an exact index. Vectors are stored dimension-major (cols[d][i] is coordinate d of row
// i), so a search adds one column per non-zero query coordinate into a block of scores: a tight,
// sequential loop, and the built-in embedder's hashed queries (about a third of their coordinates
// non-zero) skip most columns. It is not safe for concurrent mutation; KB swaps whole indexes under
// its lock.
type flat struct {
	dim     int
	ids     []int64
	items   []item
	cols    [][]float32
	sources map[int64]string
}

func newFlat(dim int) *flat {
	return &flat{dim: dim, cols: make([][]float32, dim), sources: map[int64]string{}}
}

func (f *flat) add(id int64, it item, uri string, vec []float32) {
	f.ids = append(f.ids, id)
	f.items = append(f.items, it)
	for d, c := range f.cols {
		f.cols[d] = append(c, vec[d])
	}
	f.sources[it.source] = uri
}

// without returns a copy of f without the vectors of the given sources.
func (f *flat) without(sources []int64) *flat {
	n := newFlat(f.dim)
	drop := map[int64]bool{}
	for _, s := range sources {
		drop[s] = true
	}
	keep := make([]int, 0, len(f.ids))
	for i, it := range f.items {
		if !drop[it.source] {
			keep = append(keep, i)
			n.sources[it.source] = f.sources[it.source]
		}
	}
	n.ids = make([]int64, len(keep))
	n.items = make([]item, len(keep))
	for j, i := range keep {
		n.ids[j], n.items[j] = f.ids[i], f.items[i]
	}
	for d, c := range f.cols {
		nc := make([]float32, len(keep))
		for j, i := range keep {
			nc[j] = c[i]
		}
		n.cols[d] = nc
	}
	return n
}

type scored struct {
	i     int
	score float32
}

// topK is a bounded min-heap of the best k scores seen.
type topK struct {
	k int
	h []scored
}

func (t *topK) push(s scored) {
	if len(t.h) < t.k {
		t.h = append(t.h, s)
		t.up(len(t.h) - 1)
		return
	}
	if s.score <= t.h[0].score {
		return
	}
	t.h[0] = s
	t.down(0)
}

func (t *topK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if t.h[p].score <= t.h[i].score {
			return
		}
		t.h[p], t.h[i] = t.h[i], t.h[p]
		i = p
	}
}

func (t *topK) down(i int) {
	n := len(t.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.h[r].score < t.h[l].score {
			m = r
		}
		if t.h[i].score <= t.h[m].score {
			return
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}

// minParallel is the number of vectors below which one goroutine scans everything; block is the
// number of rows scored at a time (their scores stay in L1 while the columns stream past).
const (
	minParallel = 16384
	block       = 2048
)

// search returns the k best hits for q passing fl.
func (f *flat) search(q []float32, k int, fl Filter) []Hit {
	n := len(f.ids)
	if n == 0 {
		return nil
	}
	var kind uint8
	switch fl.Kind {
	case KindCode:
		kind = 1
	case KindManual:
		kind = 2
	}
	var nz []int
	for d, w := range q {
		if w != 0 {
			nz = append(nz, d)
		}
	}
	scan := func(lo, hi int) []scored {
		t := topK{k: k, h: make([]scored, 0, k)}
		var buf [block]float32
		for b := lo; b < hi; b += block {
			e := min(b+block, hi)
			sc := buf[:e-b]
			clear(sc)
			for _, d := range nz {
				w, c := q[d], f.cols[d][b:e]
				for i := range sc {
					sc[i] += w * c[i]
				}
			}
			for i, s := range sc {
				it := &f.items[b+i]
				if (kind != 0 && it.kind != kind) || (fl.System != "" && it.system != fl.System) {
					continue
				}
				t.push(scored{b + i, s})
			}
		}
		return t.h
	}
	parts := 1
	if n >= minParallel {
		parts = min(runtime.GOMAXPROCS(0), n/(minParallel/2))
	}
	var all []scored
	if parts <= 1 {
		all = scan(0, n)
	} else {
		res := make([][]scored, parts)
		var wg sync.WaitGroup
		step := (n + parts - 1) / parts
		for p := 0; p < parts; p++ {
			lo, hi := p*step, min((p+1)*step, n)
			wg.Go(func() { res[p] = scan(lo, hi) })
		}
		wg.Wait()
		for _, r := range res {
			all = append(all, r...)
		}
	}
	slices.SortFunc(all, func(a, b scored) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return cmp.Compare(f.ids[a.i], f.ids[b.i])
	})
	if len(all) > k {
		all = all[:k]
	}
	out := make([]Hit, len(all))
	for j, s := range all {
		it := f.items[s.i]
		out[j] = Hit{Kind: kindName(it.kind), System: it.system, Code: it.code, Text: it.text,
			Source: f.sources[it.source], Page: int(it.page), Score: s.score, ChunkID: f.ids[s.i]}
	}
	return out
}
