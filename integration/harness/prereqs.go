package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// prereq is one line of hack/deps.txt: a Debian package and the files the harness uses from it.
type prereq struct {
	pkg   string
	files []string
}

// parseDeps reads hack/deps.txt: "package file..." per line, # comments.
func parseDeps(data []byte) []prereq {
	var out []prereq
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		out = append(out, prereq{pkg: fields[0], files: fields[1:]})
	}
	return out
}

// missingPrereqs names each file of deps that is absent (a glob matching nothing) and the
// package that provides it, in one line; "" when all are there.
func missingPrereqs(deps []prereq, exists func(pattern string) bool) string {
	var missing []string
	var pkgs []string
	for _, d := range deps {
		pkgMissing := false
		for _, f := range d.files {
			if !exists(f) {
				missing = append(missing, f)
				pkgMissing = true
			}
		}
		if pkgMissing {
			pkgs = append(pkgs, d.pkg)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("harness: this machine lacks %s: apt-get install --no-install-recommends %s (or run make deps)",
		strings.Join(missing, ", "), strings.Join(pkgs, " "))
}

func globExists(pattern string) bool {
	m, err := filepath.Glob(pattern)
	return err == nil && len(m) > 0
}

// withPrereqs puts, above a failure to start a server, one line naming what the machine lacks
// and the package that provides it: the trace below it is then rarely needed. The list is the
// one make deps installs and verifies (hack/deps.txt), so the two cannot disagree.
func withPrereqs(err error) error {
	root, rerr := RepoRoot()
	if rerr != nil {
		return err
	}
	data, rerr := os.ReadFile(filepath.Join(root, "hack", "deps.txt"))
	if rerr != nil {
		return err
	}
	line := missingPrereqs(parseDeps(data), globExists)
	if line == "" {
		return err
	}
	return fmt.Errorf("%s\n%w", line, err)
}
