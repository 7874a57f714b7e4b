package harness_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

// TestServersStartOnThisMachine is what hack/fresh-machine-check.sh runs inside a Debian root that
// has only the packages of hack/deps.txt: a Samba AD DC provisions and answers, slapd starts with
// its schemas and answers, and Debian's ldapsearch (ldap-utils) reads both.
func TestServersStartOnThisMachine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ldapsearch, err := exec.LookPath("ldapsearch")
	if err != nil {
		t.Fatalf("ldapsearch not found: apt-get install ldap-utils (run make deps): %v", err)
	}
	// read runs ldapsearch for the base entry, the password in a file (never on the command line).
	read := func(url, caFile, bindDN, password, base string) string {
		t.Helper()
		pw := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, ldapsearch, "-LLL", "-x", "-H", url, "-D", bindDN, "-y", pw, "-b", base, "-s", "base", "dn")
		cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+caFile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ldapsearch %s: %v\n%s", url, err, out)
		}
		return string(out)
	}

	s, err := harness.StartSamba(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("start Samba: %v", err)
	}
	// 127.0.0.1, not localhost: libldap checks the certificate against the canonical host name,
	// which for localhost is this machine's name.
	out := read("ldaps://127.0.0.1:636", s.CAFile, s.AdminDN, s.AdminPassword, s.BaseDN)
	s.Stop()
	if !strings.Contains(strings.ToLower(out), strings.ToLower("dn: "+s.BaseDN)) {
		t.Fatalf("Samba's base entry not read: %q", out)
	}

	d, err := harness.StartSlapd(ctx, t.TempDir(), harness.SlapdOptions{})
	if err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	defer d.Stop()
	if out := read(d.URL, d.CAFile, d.AdminDN, d.AdminPassword, d.Suffix); !strings.Contains(out, "dn: "+d.Suffix) {
		t.Fatalf("slapd's base entry not read: %q", out)
	}
}
