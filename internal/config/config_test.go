package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("c2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c *Config)
	}{
		{name: "defaults", env: map[string]string{}, check: func(t *testing.T, c *Config) {
			if c.Addr != ":8080" || c.FHIRBase() != "http://localhost:8080/fhir" || c.AuthDisabled() || c.MaxBodyBytes != 16<<20 {
				t.Errorf("unexpected defaults: %+v", c)
			}
		}},
		{name: "secret from file", env: map[string]string{"BILLY_MASTER_KEY_FILE": keyFile}, check: func(t *testing.T, c *Config) {
			if c.MasterKey != "c2VjcmV0" {
				t.Errorf("MasterKey = %q", c.MasterKey)
			}
		}},
		{name: "unreadable secret file", env: map[string]string{"BILLY_MASTER_KEY_FILE": keyFile + ".missing"}, wantErr: "BILLY_MASTER_KEY_FILE"},
		{name: "auth none refused without dev", env: map[string]string{"BILLY_AUTH": "none"}, wantErr: "BILLY_DEV=1"},
		{name: "auth none with dev", env: map[string]string{"BILLY_AUTH": "none", "BILLY_DEV": "1"}, check: func(t *testing.T, c *Config) {
			if !c.AuthDisabled() {
				t.Error("auth should be disabled")
			}
		}},
		{name: "bad auth", env: map[string]string{"BILLY_AUTH": "basic"}, wantErr: "want smart or none"},
		{name: "audit on by default", env: map[string]string{}, check: func(t *testing.T, c *Config) {
			if c.AuditDisabled() || c.AuditSyncCommit {
				t.Error("the audit trail is on, with asynchronous commit of read batches, by default")
			}
		}},
		{name: "audit off refused without dev", env: map[string]string{"BILLY_AUDIT": "off"}, wantErr: "BILLY_AUDIT=off"},
		{name: "audit off with dev", env: map[string]string{"BILLY_AUDIT": "off", "BILLY_DEV": "1"}, check: func(t *testing.T, c *Config) {
			if !c.AuditDisabled() {
				t.Error("audit should be off")
			}
		}},
		{name: "bad audit", env: map[string]string{"BILLY_AUDIT": "maybe"}, wantErr: "want on or off"},
		{name: "relative base", env: map[string]string{"BILLY_BASE_URL": "/x"}, wantErr: "absolute"},
		{name: "search limits default", env: map[string]string{}, check: func(t *testing.T, c *Config) {
			if c.StatementTimeout != 30*time.Second || c.SearchMaxClauses != 100 || c.SearchMaxValues != 1000 {
				t.Errorf("limits %v %d %d, want 30s 100 1000", c.StatementTimeout, c.SearchMaxClauses, c.SearchMaxValues)
			}
		}},
		{name: "search limits set", env: map[string]string{"BILLY_STATEMENT_TIMEOUT": "2.5s", "BILLY_SEARCH_MAX_CLAUSES": "20", "BILLY_SEARCH_MAX_VALUES": "50"},
			check: func(t *testing.T, c *Config) {
				if c.StatementTimeout != 2500*time.Millisecond || c.SearchMaxClauses != 20 || c.SearchMaxValues != 50 {
					t.Errorf("limits %v %d %d, want 2.5s 20 50", c.StatementTimeout, c.SearchMaxClauses, c.SearchMaxValues)
				}
			}},
		{name: "statement timeout not a duration", env: map[string]string{"BILLY_STATEMENT_TIMEOUT": "30"}, wantErr: "missing unit"},
		{name: "statement timeout too small", env: map[string]string{"BILLY_STATEMENT_TIMEOUT": "1ms"}, wantErr: "BILLY_STATEMENT_TIMEOUT"},
		{name: "no clauses", env: map[string]string{"BILLY_SEARCH_MAX_CLAUSES": "0"}, wantErr: "BILLY_SEARCH_MAX_CLAUSES"},
		{name: "no values", env: map[string]string{"BILLY_SEARCH_MAX_VALUES": "-1"}, wantErr: "BILLY_SEARCH_MAX_VALUES"},
		{name: "trailing slash trimmed", env: map[string]string{"BILLY_BASE_URL": "https://b.example/"}, check: func(t *testing.T, c *Config) {
			if c.FHIRBase() != "https://b.example/fhir" {
				t.Errorf("FHIRBase = %q", c.FHIRBase())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(t.Context(), MapLookuper(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	t.Parallel()
	c, err := Load(t.Context(), MapLookuper(map[string]string{
		"BILLY_DATABASE_URL": "postgres://u:hunter2@db/billy?password=hunter3",
		"BILLY_MASTER_KEY":   "topsecretkey",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.LogValue().String()
	for _, secret := range []string{"hunter2", "hunter3", "topsecretkey"} {
		if strings.Contains(s, secret) {
			t.Errorf("LogValue leaks %q: %s", secret, s)
		}
	}
}
