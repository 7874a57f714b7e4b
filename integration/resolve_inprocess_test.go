// Resolving groups in the test's own process with ldapsrc, as the daemon would,
// without running it.

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
)

func ldapConfig(t *testing.T, password string, mutate func(*config.LDAP)) config.LDAP {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().LDAP
	cfg.BindPasswordFile = pw
	cfg.Timeout = 10 * time.Second
	mutate(&cfg)
	return cfg
}

// resolve resolves names with a full read and, to prove the two agree on
// every case these tests build, with the targeted read incremental syncs
// use.
func resolve(t *testing.T, cfg config.LDAP, names ...string) *ldapsrc.Result {
	t.Helper()
	res, err := ldapsrc.New(cfg, zap.NewNop()).Resolve(context.Background(), names)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	sameAsTargeted(t, cfg, names, res)
	return res
}

func wantMembers(t *testing.T, res *ldapsrc.Result, group string, want ...string) {
	t.Helper()
	g := res.Groups[group]
	if g == nil || g.Err != nil || !g.Found {
		t.Fatalf("group %s: %+v", group, g)
	}
	if strings.Join(g.Members, ",") != strings.Join(want, ",") {
		t.Errorf("group %s members = %v, want %v", group, g.Members, want)
	}
}

// adConfig binds as the env's service account over LDAPS.
func (e *env) adConfig(mutate func(*config.LDAP)) config.LDAP {
	return ldapConfig(e.t, e.password, func(c *config.LDAP) {
		c.URLs = []string{e.samba.LDAPSURL}
		c.CAFile = e.samba.CAFile
		c.BindDN = e.bindUPN
		c.BaseDN = e.ou
		if mutate != nil {
			mutate(c)
		}
	})
}
