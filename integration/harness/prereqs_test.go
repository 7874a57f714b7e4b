package harness

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMissingPrereqsNamesFileAndPackage(t *testing.T) {
	deps := parseDeps([]byte(`# comment
samba-ad-provision   /usr/share/samba/setup/provision.ldif /usr/share/samba/setup/ad-schema/x.ldf
samba-ad-dc
slapd                /usr/sbin/slapd
`))
	if len(deps) != 3 || deps[1].pkg != "samba-ad-dc" || len(deps[1].files) != 0 {
		t.Fatalf("parsed %+v", deps)
	}
	have := map[string]bool{"/usr/share/samba/setup/provision.ldif": true, "/usr/sbin/slapd": true}
	line := missingPrereqs(deps, func(p string) bool { return have[p] })
	want := "harness: this machine lacks /usr/share/samba/setup/ad-schema/x.ldf: apt-get install --no-install-recommends samba-ad-provision (or run make deps)"
	if line != want {
		t.Fatalf("line\n got %q\nwant %q", line, want)
	}
	have["/usr/share/samba/setup/ad-schema/x.ldf"] = true
	if line := missingPrereqs(deps, func(p string) bool { return have[p] }); line != "" {
		t.Fatalf("nothing missing, got %q", line)
	}
}

// The repository's own list must name what the harness looks for, and everything in it must be
// installed on a machine that ran make deps (CI runs make deps before the tests).
func TestDepsListIsInstalled(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "hack", "deps.txt"))
	if err != nil {
		t.Fatal(err)
	}
	deps := parseDeps(data)
	var pkgs []string
	for _, d := range deps {
		pkgs = append(pkgs, d.pkg)
	}
	for _, need := range []string{"samba-ad-provision", "samba-ad-dc", "slapd", "ldap-utils"} {
		if !strings.Contains(" "+strings.Join(pkgs, " ")+" ", " "+need+" ") {
			t.Errorf("hack/deps.txt does not name %s", need)
		}
	}
	if line := missingPrereqs(deps, globExists); line != "" {
		t.Fatalf("make deps ran but: %s", line)
	}
	base := errors.New("samba-tool domain provision failed")
	if err := withPrereqs(base); err != base {
		t.Fatalf("nothing missing, but withPrereqs changed the error: %v", err)
	}
}
