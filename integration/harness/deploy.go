package harness

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DeployWithComponents copies the repository's deploy/ into dir and adds
// the given components (paths relative to deploy/, e.g.
// "components/provisioning") to its kustomization.yaml, the way docs/install.md
// tells operators to enable them. It returns the copy's path.
func DeployWithComponents(dir string, components ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "deploy")
	dst := filepath.Join(dir, "deploy")
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("harness: copy deploy/: %w", err)
	}
	if len(components) > 0 {
		f, err := os.OpenFile(filepath.Join(dst, "kustomization.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return "", fmt.Errorf("harness: %w", err)
		}
		defer f.Close()
		if _, err := fmt.Fprintf(f, "\ncomponents:\n- %s\n", strings.Join(components, "\n- ")); err != nil {
			return "", fmt.Errorf("harness: %w", err)
		}
	}
	return dst, nil
}
