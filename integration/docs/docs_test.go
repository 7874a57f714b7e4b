// Package docs tests the documentation against the code and itself, without
// servers: the configuration reference lists exactly the keys of
// config.Config, every relative link and anchor in README.md and docs/
// resolves, and the README stays short.
package docs

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// configKeys returns the dotted YAML paths of every key of a configuration
// type: structs are descended (the elements of a list of structs too, as
// `projects.static.name`), anything else is a key of its own.
func configKeys(ty reflect.Type, path string, out map[string]bool) {
	for ty.Kind() == reflect.Pointer {
		ty = ty.Elem()
	}
	if ty.Kind() == reflect.Slice && ty.Elem().Kind() == reflect.Struct {
		ty = ty.Elem()
	}
	if ty.Kind() != reflect.Struct || ty.PkgPath() != reflect.TypeOf(config.Config{}).PkgPath() {
		out[path] = true
		return
	}
	for i := 0; i < ty.NumField(); i++ {
		f := ty.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		p := tag
		if path != "" {
			p = path + "." + tag
		}
		configKeys(f.Type, p, out)
	}
}

// yamlKeys returns the dotted paths of a parsed YAML document the same way:
// maps are descended (the maps of a list too), anything else is a key. A map
// whose struct counterpart is a map (namespaceLabels) is a key: leaves says
// which paths stop.
func yamlKeys(v any, path string, leaves map[string]bool, out map[string]bool) {
	if leaves[path] && path != "" {
		out[path] = true
		return
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			yamlKeys(e, p, leaves, out)
		}
	case []any:
		descended := false
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				yamlKeys(m, path, leaves, out)
				descended = true
			}
		}
		if !descended {
			out[path] = true
		}
	default:
		out[path] = true
	}
}

// referenceBlock is the YAML block of docs/configuration.md that lists every
// key: the first ```yaml block after the heading "## Every key".
func referenceBlock(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(data, []byte("\n## Every key\n"))
	if !ok {
		t.Fatal(`docs/configuration.md has no "## Every key" section`)
	}
	_, after, ok = bytes.Cut(after, []byte("```yaml\n"))
	if !ok {
		t.Fatal(`docs/configuration.md: no yaml block under "## Every key"`)
	}
	block, _, ok := bytes.Cut(after, []byte("\n```"))
	if !ok {
		t.Fatal("docs/configuration.md: the yaml block does not end")
	}
	return block
}

// TestConfigurationReferenceFollowsConfig: the reference's YAML lists every
// key of config.Config and no other, so it cannot drift from the loader.
func TestConfigurationReferenceFollowsConfig(t *testing.T) {
	want := map[string]bool{}
	configKeys(reflect.TypeOf(config.Config{}), "", want)
	var doc any
	if err := yaml.Unmarshal(referenceBlock(t), &doc); err != nil {
		t.Fatalf("docs/configuration.md: the reference block is not YAML: %v", err)
	}
	got := map[string]bool{}
	yamlKeys(doc, "", want, got)
	var missing, unknown []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md (## Every key) lacks keys of config.Config: %v", missing)
	}
	if len(unknown) > 0 {
		t.Errorf("docs/configuration.md (## Every key) lists keys config.Config does not have: %v", unknown)
	}
	if len(want) < 50 {
		t.Errorf("config.Config has only %d keys by reflection: the walk is broken", len(want))
	}
	t.Logf("%d configuration keys documented", len(got))
}

// markdownFiles are the documents whose links are checked.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	files := []string{filepath.Join(root, "README.md"),
		filepath.Join(root, harness.ChartPath, "README.md")}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 5 {
		t.Fatalf("docs/ holds %d documents", len(docs))
	}
	return append(files, docs...)
}

var (
	link    = regexp.MustCompile(`\]\(([^()\s]+)\)`)
	heading = regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*\s*$`)
	fence   = regexp.MustCompile("^\\s*(```|~~~)")
	code    = regexp.MustCompile("`[^`]*`")
)

// anchors returns the anchors GitHub gives the headings of a Markdown file.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, seen := map[string]bool{}, map[string]int{}
	inFence := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		m := heading.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// slug is GitHub's heading anchor: lower case, letters, digits, spaces,
// hyphens and underscores kept, spaces to hyphens.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"What deploy/ installs":                    "what-deploy-installs",
		"`RunaiLdapSyncDown`":                      "runaildapsyncdown",
		"Project provisioning (opt-in components)": "project-provisioning-opt-in-components",
		"Kubernetes 1.30 – 1.36":                   "kubernetes-130--136",
	} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
}

// TestDocLinksResolve: every relative link in README.md, CHANGELOG.md, the
// chart's README and docs/*.md names a file of the repository, and every
// anchor (#...) a heading of its target.
func TestDocLinksResolve(t *testing.T) {
	root := repoRoot(t)
	checked := 0
	for _, file := range markdownFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		inFence := false
		for i, line := range strings.Split(string(data), "\n") {
			if fence.MatchString(line) {
				inFence = !inFence
				continue
			}
			if inFence {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(code.ReplaceAllString(line, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				p, anchor, _ := strings.Cut(target, "#")
				dest := file
				if p != "" {
					dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(p))
					if !strings.HasPrefix(dest, root+string(filepath.Separator)) && dest != root {
						t.Errorf("%s:%d: %s leaves the repository", rel, i+1, target)
						continue
					}
					if _, err := os.Stat(dest); err != nil {
						t.Errorf("%s:%d: %s: no such file", rel, i+1, target)
						continue
					}
				}
				if anchor == "" {
					continue
				}
				if !strings.HasSuffix(dest, ".md") {
					t.Errorf("%s:%d: %s: an anchor into a file that is not Markdown", rel, i+1, target)
					continue
				}
				if !anchors(t, dest)[anchor] {
					t.Errorf("%s:%d: %s: %s has no heading with anchor #%s", rel, i+1, target, filepath.Base(dest), anchor)
				}
			}
		}
	}
	if checked < 30 {
		t.Errorf("only %d relative links found: the link pattern is broken", checked)
	}
	t.Logf("%d relative links resolve", checked)
}
