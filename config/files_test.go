package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadIn writes a configuration naming the given files into dir and loads it.
func loadIn(t *testing.T, dir, pw, ca, tmpl string) (*Config, error) {
	t.Helper()
	body := `ldap:
  urls: ["ldaps://dc1.example.test:636"]
  bindDN: "svc@EXAMPLE.TEST"
  bindPasswordFile: ` + pw + `
  baseDN: "DC=example,DC=test"
`
	if ca != "" {
		body += "  caFile: " + ca + "\n"
	}
	body += "groups: {executors: [\"runai-{project}-executors\"]}\nprojects:\n  namespaceLabel: runai/queue\n"
	if tmpl != "" {
		body += "  template: " + tmpl + "\n"
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFilesConfinedToConfigDir: whoever may edit the configuration cannot
// have the daemon read a file outside the configuration's directory (the
// ServiceAccount token as the bind password, any CA), as written or
// through a symlink; files inside it, in subdirectories or behind the
// symlinks a projected volume makes, are fine.
func TestFilesConfinedToConfigDir(t *testing.T) {
	t.Setenv(FileRootEnv, "")
	dir, outside := t.TempDir(), t.TempDir()
	pw := writeFile(t, filepath.Join(dir, "bind-password"), "s3cret\n")
	ca := writeFile(t, filepath.Join(dir, "tls", "ca.crt"), "x\n")
	token := writeFile(t, filepath.Join(outside, "token"), "eyJhbGciOi-the-service-account-token")
	tmpl := writeFile(t, filepath.Join(outside, "template.yaml"), "eyJhbGciOi-not-yaml: [")

	// A projected volume: the file is a symlink into a ..data directory.
	data := filepath.Join(dir, "..2026_12_07", "ca.crt")
	writeFile(t, data, "x\n")
	linked := filepath.Join(dir, "linked-ca.crt")
	if err := os.Symlink(data, linked); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIn(t, dir, pw, ca, ""); err != nil {
		t.Fatalf("files inside the configuration directory: %v", err)
	}
	if _, err := loadIn(t, dir, pw, linked, ""); err != nil {
		t.Fatalf("a projected volume's symlink inside the directory: %v", err)
	}

	escape := filepath.Join(dir, "escape")
	if err := os.Symlink(token, escape); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pw, ca, tmpl, field, path string
	}{
		{"password file outside", token, ca, "", "ldap.bindPasswordFile", token},
		{"relative path climbing out", filepath.Join(dir, "..", filepath.Base(outside), "token"), ca, "", "ldap.bindPasswordFile", filepath.Join(dir, "..", filepath.Base(outside), "token")},
		{"symlink inside pointing out", escape, ca, "", "ldap.bindPasswordFile", escape},
		{"CA file outside", pw, token, "", "ldap.caFile", token},
		{"template outside", pw, ca, tmpl, "projects.template", tmpl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadIn(t, dir, tc.pw, tc.ca, tc.tmpl)
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			for _, want := range []string{tc.field, tc.path, "outside " + dir, FileRootEnv} {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not name %q: %v", want, err)
				}
			}
			// The file outside is never read: no parse error quotes it.
			if strings.Contains(msg, "eyJhbGciOi") {
				t.Errorf("the error quotes the file outside: %v", err)
			}
		})
	}

	// The Deployment, not the file, may widen the root ($RUNAI_LDAP_SYNC_FILE_ROOT):
	// t.TempDir puts dir and outside side by side.
	t.Setenv(FileRootEnv, filepath.Dir(outside))
	if _, err := loadIn(t, dir, token, "", ""); err != nil {
		t.Errorf("with %s=%s: %v", FileRootEnv, filepath.Dir(outside), err)
	}
}

// Whoever edits the configuration cannot widen the root from the file:
// FileRoot has no key, and an unknown key is an error.
func TestFileRootIsNotAKey(t *testing.T) {
	t.Setenv(FileRootEnv, "")
	dir := t.TempDir()
	for _, key := range []string{"fileRoot", "FileRoot", "fileroot"} {
		path := writeFile(t, filepath.Join(dir, "config.yaml"), key+": /\n"+strings.TrimPrefix(validYAML(t), "schedule: \"@every 5m\"\n"))
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s in the file: %v", key, err)
		}
	}
}
