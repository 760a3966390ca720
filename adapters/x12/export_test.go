package x12

// Segments splits an interchange into its segments' elements, for tests that check Billy's 837P
// segment by segment where moov-io/x12 cannot (see TestGenerate837PRoundTrip).
func Segments(data []byte) ([][]string, error) {
	segs, _, err := tokenize(data)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(segs))
	for i, s := range segs {
		out[i] = s.elems
	}
	return out, nil
}
