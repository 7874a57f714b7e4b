// OpenLDAP (slapd) for the tests: starting one, seeding its OUs, and the
// configurations that read it.

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

// slapdEnv is an OpenLDAP directory for the groupOfNames/rfc2307 schemas.
func startSlapd(t *testing.T, opts harness.SlapdOptions) *harness.Slapd {
	t.Helper()
	s, err := harness.StartSlapd(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// slapdOUs adds OUs of these names under s's suffix and returns their DNs.
func slapdOUs(t *testing.T, s *harness.Slapd, names ...string) []string {
	t.Helper()
	dns := make([]string, len(names))
	for i, name := range names {
		var err error
		if dns[i], err = s.AddOU(name); err != nil {
			t.Fatal(err)
		}
	}
	return dns
}

func slapdConfig(t *testing.T, s *harness.Slapd, schema string, mutate func(*config.LDAP)) config.LDAP {
	return ldapConfig(t, s.ReaderPassword, func(c *config.LDAP) {
		c.URLs = []string{s.LDAPSURL}
		c.CAFile = s.CAFile
		c.BindDN = s.ReaderDN
		c.BaseDN = s.Suffix
		c.Schema = schema
		c.UserIDAttribute = "uid"
		if mutate != nil {
			mutate(c)
		}
	})
}

// slapdDaemonConfig writes a daemon configuration for s (schema
// groupOfNames, executors runai-{project}-executors) with more ldap
// settings (indented YAML lines) and extra YAML appended.
func (e *env) slapdDaemonConfig(s *harness.Slapd, ldapExtra, extra string) string {
	e.t.Helper()
	pw := filepath.Join(e.dir, "slapd-pw")
	if err := os.WriteFile(pw, []byte(s.ReaderPassword), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cfg := filepath.Join(e.dir, fmt.Sprintf("slapd-%d.yaml", time.Now().UnixNano()))
	body := fmt.Sprintf(`ldap:
  urls: [%q]
  caFile: %s
  bindDN: %q
  bindPasswordFile: %s
  baseDN: %q
  schema: groupOfNames
  userIDAttribute: uid
%sgroups:
  executors: ["runai-{project}-executors"]
`, s.LDAPSURL, e.inDir(s.CAFile), s.ReaderDN, pw, s.Suffix, ldapExtra) + extra
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return cfg
}
