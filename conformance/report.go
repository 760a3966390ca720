package conformance

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"io"
)

//go:embed report.html.tmpl
var reportHTML string

var reportTmpl = template.Must(template.New("report").Parse(reportHTML))

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteHTML writes the report as one self-contained HTML page: results grouped by group, counts
// per level and status, filters by status, level, group and text (kept in the URL's hash), and
// each failure's request, response and spec link.
func (r *Report) WriteHTML(w io.Writer) error {
	type group struct {
		Name    string
		Results []CheckResult
		Counts  map[string]int
	}
	var groups []group
	for _, g := range Groups {
		gr := group{Name: g, Counts: map[string]int{}}
		for _, c := range r.Results {
			if c.Group == g {
				gr.Results = append(gr.Results, c)
				gr.Counts[string(c.Result.Status)]++
			}
		}
		if len(gr.Results) > 0 {
			groups = append(groups, gr)
		}
	}
	return reportTmpl.Execute(w, map[string]any{"R": r, "Groups": groups, "Levels": Levels, "Statuses": []Status{Pass, Fail, Skip}})
}
