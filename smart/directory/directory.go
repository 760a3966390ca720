// Package directory is the SMART patient picker's and consent page's view of the FHIR store: it
// implements smart.PatientDirectory with a Patient search and a read. It owns nothing else; the
// authorization server reaches the store only through it.
package directory

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/smart"
)

// Store is the PatientDirectory over a FHIR store.
type Store struct{ St *store.Store }

var _ smart.PatientDirectory = Store{}

// FindPatients lists patients whose name starts with name (all when empty), by family name.
func (d Store) FindPatients(ctx context.Context, name string, limit int) ([]smart.PatientSummary, error) {
	params := url.Values{"_count": {strconv.Itoa(limit)}, "_sort": {"family"}}
	if name != "" {
		params.Set("name", name)
	}
	q, err := search.Parse([]string{"Patient"}, params, search.Options{})
	if err != nil {
		return nil, err
	}
	res, err := d.St.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []smart.PatientSummary
	for _, v := range res.Matches {
		p, err := smart.SummarizePatient(v.ID, v.Content)
		if err != nil {
			continue // a record the picker cannot show is left out, not the whole list
		}
		out = append(out, p)
	}
	return out, nil
}

// Patient returns the summary of Patient/id; found is false when it does not exist or is deleted.
func (d Store) Patient(ctx context.Context, id string) (smart.PatientSummary, bool, error) {
	v, err := d.St.Read(ctx, "Patient", id)
	if errors.Is(err, fhir.ErrNotFound) {
		return smart.PatientSummary{}, false, nil
	}
	if err != nil {
		return smart.PatientSummary{}, false, err
	}
	if v.Deleted() {
		return smart.PatientSummary{}, false, nil
	}
	p, err := smart.SummarizePatient(v.ID, v.Content)
	if err != nil {
		return smart.PatientSummary{}, false, err
	}
	return p, true, nil
}
