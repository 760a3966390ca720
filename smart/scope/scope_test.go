package scope

import (
	"testing"
)

func TestParseResource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		perms   string
		v1      bool
		wantErr bool
		notRes  bool
	}{
		{in: "patient/Observation.read", perms: "rs", v1: true},
		{in: "user/Claim.write", perms: "cud", v1: true},
		{in: "system/*.*", perms: "cruds", v1: true},
		{in: "patient/Observation.rs", perms: "rs"},
		{in: "system/*.cruds", perms: "cruds"},
		{in: "patient/Observation.rs?category=laboratory", perms: "rs"},
		{in: "patient/Observation.sr", wantErr: true},
		{in: "patient/Observation.rr", wantErr: true},
		{in: "patient/Observation.x", wantErr: true},
		{in: "patient/Nope.read", wantErr: true},
		{in: "patient/Observation", wantErr: true},
		{in: "patient/Observation.read?category=x", wantErr: true},
		{in: "launch/patient", notRes: true},
		{in: "openid", notRes: true},
	}
	for _, tt := range tests {
		r, isRes, err := ParseResource(tt.in)
		switch {
		case tt.notRes:
			if isRes {
				t.Errorf("%s parsed as a resource scope", tt.in)
			}
		case tt.wantErr:
			if err == nil {
				t.Errorf("%s: accepted", tt.in)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.in, err)
		case r.Perms.String() != tt.perms || r.V1 != tt.v1:
			t.Errorf("%s: perms %s v1 %v, want %s %v", tt.in, r.Perms, r.V1, tt.perms, tt.v1)
		}
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		granted, requested string
		want               bool
	}{
		{"patient/*.rs", "patient/Observation.r", true},
		{"patient/*.read", "patient/Observation.rs", true},
		{"patient/Observation.rs", "patient/Observation.cruds", false},
		{"patient/*.rs", "user/Observation.rs", false},
		{"patient/Observation.rs", "patient/Condition.rs", false},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs", false},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.r?category=laboratory", true},
		{"patient/Observation.rs", "patient/Observation.rs?category=laboratory", true},
		{"launch", "launch", true},
		{"launch", "launch/patient", false},
	}
	for _, tt := range tests {
		if got := Covers(tt.granted, tt.requested); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.granted, tt.requested, got, tt.want)
		}
	}
}

func TestGrant(t *testing.T) {
	t.Parallel()
	set, err := Parse("launch/patient openid patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs user/Practitioner.read patient/Patient.r system/Claim.cruds something-else")
	if err != nil {
		t.Fatal(err)
	}
	if !set.Context["launch/patient"] || !set.Context["openid"] || len(set.Other) != 1 {
		t.Errorf("context %v other %v", set.Context, set.Other)
	}
	obs := set.Grant("Observation", Search)
	if !obs.Allowed || !obs.PatientOnly || len(obs.Constraints) != 2 {
		t.Errorf("Observation search: %+v", obs)
	}
	if g := set.Grant("Observation", Create); g.Allowed {
		t.Errorf("Observation create: %+v", g)
	}
	if g := set.Grant("Practitioner", Read); !g.Allowed || g.PatientOnly || g.Constraints != nil {
		t.Errorf("Practitioner read: %+v", g)
	}
	if g := set.Grant("Patient", Search); g.Allowed {
		t.Errorf("v2 r does not grant s: %+v", g)
	}
	if g := set.Grant("Claim", Delete); !g.Allowed || g.PatientOnly {
		t.Errorf("Claim delete: %+v", g)
	}
}
