package plan

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// FuzzProjectToFilter follows a value from where an untrusted user may set
// it (a namespace's project label) to where it could do harm (an LDAP
// filter): only valid project names become projects, and every group name
// built from a template, escaped as the directory source escapes it,
// compiles to one equality match on exactly that name. The directory
// source is shown to apply the escaping by an integration test against the
// real AD (TestHostileGroupNamesMatchNothingElse).
func FuzzProjectToFilter(f *testing.F) {
	for _, seed := range []struct{ label, template string }{
		{"alpha", "runai-{project}-executors"},
		{"*)(cn=*", "runai-{project}-executors"},
		{`\`, "{project}"},
		{"a\x00b", "{project}"},
		{"Alpha_X.1", "runai-{project}"},
		{"team-a", "runai-{project}*)(cn=*"},
		{"team-a", `x\2a{project}(`},
		{"ok", "é{project}ü"},
		{strings.Repeat("a", 64), "{project}"},
	} {
		f.Add(seed.label, seed.template)
	}
	f.Fuzz(func(t *testing.T, label, template string) {
		nss := []model.Namespace{{Name: "ns", Labels: map[string]string{"runai/queue": label}}}
		projects, skipped := FindProjects(nss, config.Projects{NamespaceLabel: "runai/queue"})
		if len(projects)+len(skipped) != 1 {
			t.Fatalf("label %q: %d projects, %d skipped", label, len(projects), len(skipped))
		}
		if len(projects) == 1 {
			p := projects[0].Name
			if !config.ValidProjectName(p) || strings.ContainsAny(p, "*()\\\x00") {
				t.Fatalf("label %q became project %q", label, p)
			}
		} else if skipped[0].Reason != SkipInvalidName {
			t.Fatalf("label %q skipped for %q", label, skipped[0].Reason)
		}
		if len(projects) == 0 || strings.ContainsRune(template, 0) {
			return
		}
		execs, _ := GroupNames(config.Groups{Executors: []string{template}}, projects[0].Name)
		for _, name := range execs {
			filter := "(cn=" + ldap.EscapeFilter(name) + ")"
			compiled, err := ldap.CompileFilter(filter)
			if err != nil {
				t.Fatalf("escaped filter %q does not compile: %v", filter, err)
			}
			if compiled.Tag != ldap.FilterEqualityMatch || len(compiled.Children) != 2 {
				t.Fatalf("group %q became a filter of another kind: %q", name, filter)
			}
			if got := string(compiled.Children[1].Data.Bytes()); got != name {
				t.Fatalf("group %q is matched as %q", name, got)
			}
		}
	})
}
