package rest_test

import (
	"net/http"
	"testing"
)

func TestValidateOperation(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.create(patientJSON)
	tests := []struct {
		name     string
		path     string
		body     string
		status   int
		wantCode string
		wantExpr string
	}{
		{"valid create", "Patient/$validate", patientJSON, 200, "informational", ""},
		{"invalid create", "Patient/$validate", `{"resourceType":"Patient","birthDate":"x"}`, 200, "value", "Patient.birthDate"},
		{"structural problem", "Patient/$validate", `{"resourceType":"Patient","name":[]}`, 200, "structure", "Patient.name"},
		{"wrong type", "Patient/$validate", `{"resourceType":"Organization"}`, 200, "invalid", "resourceType"},
		{"Parameters form, update mode", "Patient/" + id + "/$validate", `{"resourceType":"Parameters","parameter":[{"name":"mode","valueCode":"update"},{"name":"resource","resource":{"resourceType":"Patient","id":"` + id + `"}}]}`, 200, "informational", ""},
		{"update mode, id mismatch", "Patient/" + id + "/$validate?mode=update", `{"resourceType":"Patient","id":"other"}`, 200, "invalid", "id"},
		{"delete mode, exists", "Patient/" + id + "/$validate?mode=delete", "", 200, "informational", ""},
		{"delete mode, absent", "Patient/absent/$validate?mode=delete", "", 200, "not-found", ""},
		{"not JSON", "Patient/$validate", `{`, 400, "structure", ""},
		{"bad mode", "Patient/$validate?mode=weird", patientJSON, 400, "value", "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			code, expr, diag := issue(t, s.do(http.MethodPost, tt.path, body).must(t, tt.status))
			if code != tt.wantCode || expr != tt.wantExpr {
				t.Errorf("got %q %q, want %q %q (%s)", code, expr, tt.wantCode, tt.wantExpr, diag)
			}
		})
	}
	var n int
	if err := s.store.Pool().QueryRow(t.Context(), "SELECT count(*) FROM resources").Scan(&n); err != nil || n != 1 {
		t.Errorf("$validate stored something: %d resources", n)
	}
}

func TestMetaOperations(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.create(`{"resourceType":"Patient","meta":{"tag":[{"system":"http://t","code":"a"}]}}`)
	add := `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"system":"http://t","code":"a"},{"system":"http://t","code":"b"}],"profile":["http://p/x"]}}]}`
	out := s.do(http.MethodPost, "Patient/"+id+"/$meta-add", add).must(t, http.StatusOK)
	meta := out.Get("parameter").Items[0].Get("valueMeta")
	if n := len(meta.Get("tag").Items); n != 2 {
		t.Errorf("tags after $meta-add: %s (duplicates must not be created)", meta.Marshal())
	}
	got := s.do(http.MethodGet, "Patient/"+id, nil).must(t, http.StatusOK)
	if metaVersion(got) != "1" || len(got.Get("meta").Get("tag").Items) != 2 || got.Get("meta").Get("profile") == nil {
		t.Errorf("$meta-add must change meta without a new version: %s", got.Marshal())
	}
	del := `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"system":"http://t","code":"a"}],"profile":["http://p/x"]}}]}`
	s.do(http.MethodPost, "Patient/"+id+"/$meta-delete", del).must(t, http.StatusOK)
	m := s.do(http.MethodGet, "Patient/"+id+"/$meta", nil).must(t, http.StatusOK).Get("parameter").Items[0].Get("valueMeta")
	if tags := m.Get("tag"); tags == nil || len(tags.Items) != 1 || tags.Items[0].GetString("code") != "b" || m.Get("profile") != nil {
		t.Errorf("after $meta-delete: %s", m.Marshal())
	}
	s.do(http.MethodPost, "Patient/"+id+"/$meta-add", `{"resourceType":"Parameters","parameter":[{"name":"other","valueString":"x"}]}`).must(t, http.StatusBadRequest)
	// On a historical version.
	s.do(http.MethodPut, "Patient/"+id, `{"resourceType":"Patient","id":"`+id+`"}`).must(t, http.StatusOK)
	s.do(http.MethodPost, "Patient/"+id+"/_history/1/$meta-add", add).must(t, http.StatusOK)
	v1 := s.do(http.MethodGet, "Patient/"+id+"/_history/1", nil).must(t, http.StatusOK)
	if len(v1.Get("meta").Get("tag").Items) != 2 {
		t.Errorf("version 1 after $meta-add: %s", v1.Marshal())
	}
}
