package docs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadmeIsShort: the README introduces and links; the rest is in docs/.
func TestReadmeIsShort(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(string(data))); n > 10000 {
		t.Errorf("README.md has %d characters, want at most 10,000: move detail into docs/", n)
	}
	for _, want := range []string{"make demo", "helm install", "docs/configuration.md", "docs/install.md"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("README.md does not mention %s", want)
		}
	}
	if slices.Contains(strings.Split(string(data), "\n"), "## Configuration") {
		t.Error("README.md has a Configuration section again: the reference is docs/configuration.md")
	}
}
