package config

import (
	"path/filepath"
	"strings"
)

// checkFiles refuses every file path of the configuration that is outside
// c.FileRoot (the directory mounted for the configuration), as written or
// once symlinks are resolved, and returns whether a path may be read. A
// file outside would let whoever edits the configuration have the daemon
// send any file of its container (the ServiceAccount token) as the bind
// password, or trust any CA.
func (c *Config) checkFiles(add func(field, format string, args ...any)) func(string) bool {
	if c.FileRoot == "" {
		return func(string) bool { return true }
	}
	root, err := filepath.Abs(c.FileRoot)
	if err != nil {
		add("configuration directory", "cannot resolve %q: %v", c.FileRoot, err)
		return func(string) bool { return false }
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		realRoot = root
	}
	inside := func(p string) bool {
		abs, err := filepath.Abs(p)
		if err != nil || !within(root, abs) {
			return false
		}
		// A missing file is reported by the field's own check.
		if real, err := filepath.EvalSymlinks(abs); err == nil && !within(realRoot, real) {
			return false
		}
		return true
	}
	for _, f := range []struct{ field, path string }{
		{"ldap.caFile", c.LDAP.CAFile},
		{"ldap.bindPasswordFile", c.LDAP.BindPasswordFile},
		{"projects.template", c.Projects.Template},
	} {
		if f.path != "" && !inside(f.path) {
			add(f.field, "%q is outside %s: every file the configuration names must be in the directory mounted for it (that of the configuration file, or $%s)",
				f.path, root, FileRootEnv)
		}
	}
	return inside
}

// within reports whether path is dir or below it (both absolute, clean).
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
