package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadConfig reports, as the configuration's own errors, what config, the
// LDAP syntax check and the project template find, each naming the file
// and the field.
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(dir, "template.yaml")
	if err := os.WriteFile(tmpl, []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: runner, namespace: <NAMESPACE>}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := `schedule: "@every 5m"
mode: enforce
ldap:
  urls: ["ldaps://dc1.example.test:636"]
  bindDN: "svc@EXAMPLE.TEST"
  bindPasswordFile: ` + pw + `
  baseDN: "DC=example,DC=test"
groups:
  executors: ["runai-{project}-executors"]
projects:
  namespaceLabel: runai/queue
  template: ` + tmpl + "\n"
	write := func(body string) string {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, tm, err := loadConfig(write(valid))
	if err != nil || cfg == nil || tm == nil || len(tm.Objects) != 1 {
		t.Fatalf("valid configuration: %v, template %+v", err, tm)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"bad base DN", `"DC=example,DC=test"`, `"example.test"`, "ldap.baseDN: "},
		{"bad template", "template: " + tmpl, "template: " + filepath.Join(dir, "missing.yaml"), "projects.template: "},
		{"bad schema value", "mode: enforce", "mode: enforcing", "mode: "},
	} {
		path := write(strings.Replace(valid, tc.from, tc.to, 1))
		_, _, err := loadConfig(path)
		if err == nil || !strings.Contains(err.Error(), "config file "+path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %s naming %s", tc.name, err, tc.want, path)
		}
	}
}
