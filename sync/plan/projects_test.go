package plan

import (
	"reflect"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

const prov = config.ProvisionedLabel

func TestFindProjectsWithProvisioning(t *testing.T) {
	q := func(p string) map[string]string { return map[string]string{"runai/queue": p} }
	nss := []model.Namespace{
		{Name: "runai-alpha", Labels: q("alpha")},
		{Name: "runai-bare", ResourceVersion: "11", Labels: map[string]string{"team": "keep-me"}},
		{Name: "runai-taken", Labels: q("someone-else")},
		{Name: "ml-vision", Labels: q("vision")},
		{Name: "runai-old", Labels: map[string]string{"runai/queue": "old", prov: "true"}},
		{Name: "runai-stat", Labels: map[string]string{"runai/queue": "stat", prov: "true"}},
		{Name: "runai-dying", Terminating: true},
	}
	static := []config.StaticProject{{Name: "stat"}, {Name: "bare"}, {Name: "taken"}, {Name: "newstat"}, {Name: "dying"}}
	disc := Discovered{Names: []string{"alpha", "vision", "newdir", "newstat", "taken", strings63()}}

	tests := []struct {
		name     string
		cfg      config.Projects
		disc     Discovered
		projects []Project
		actions  []NamespaceAction
		skipped  []SkippedProject
		orphaned []Project
	}{
		{
			name: "features off: nothing to do, as before",
			cfg:  config.Projects{NamespaceLabel: "runai/queue", Static: static},
			projects: []Project{{"alpha", "runai-alpha"}, {"bare", "runai-bare"}, {"old", "runai-old"},
				{"someone-else", "runai-taken"}, {"stat", "runai-stat"}, {"vision", "ml-vision"}},
			skipped: []SkippedProject{{"dying", "runai-dying", SkipTerminating}, {"newstat", "runai-newstat", SkipNamespaceMissing},
				{"taken", "runai-taken", SkipConflict}},
			// old was provisioned by us and is neither static nor discovered
			// (discovery is off): reported, still a project.
			orphaned: []Project{{"old", "runai-old"}},
		},
		{
			name: "create and discover, existing namespaces not labelled",
			cfg:  config.Projects{NamespaceLabel: "runai/queue", Static: static, CreateNamespaces: true, NamespaceLabels: map[string]string{"team": "ml"}},
			disc: disc,
			projects: []Project{{"alpha", "runai-alpha"}, {"bare", "runai-bare"}, {"newdir", "runai-newdir"}, {"newstat", "runai-newstat"},
				{"old", "runai-old"}, {"someone-else", "runai-taken"}, {"stat", "runai-stat"}, {"vision", "ml-vision"}},
			actions: []NamespaceAction{
				{Project: "newdir", Namespace: "runai-newdir", Create: true, Labels: map[string]string{"runai/queue": "newdir", "team": "ml", prov: "true"}},
				{Project: "newstat", Namespace: "runai-newstat", Create: true, Labels: map[string]string{"runai/queue": "newstat", "team": "ml", prov: "true"}},
			},
			skipped: []SkippedProject{{"dying", "runai-dying", SkipTerminating}, {"taken", "runai-taken", SkipConflict},
				// A discovered name whose default namespace is too long.
				{strings63(), "runai-" + strings63(), SkipInvalidName}},
			orphaned: []Project{{"old", "runai-old"}},
		},
		{
			name: "label existing: only the unlabelled one, keeping its labels; never the terminating or the taken one",
			cfg:  config.Projects{NamespaceLabel: "runai/queue", Static: static, LabelExistingNamespaces: true, NamespaceLabels: map[string]string{"team": "ml", "tier": "gpu"}},
			disc: Discovered{Failed: true},
			projects: []Project{{"alpha", "runai-alpha"}, {"bare", "runai-bare"}, {"old", "runai-old"},
				{"someone-else", "runai-taken"}, {"stat", "runai-stat"}, {"vision", "ml-vision"}},
			actions: []NamespaceAction{{Project: "bare", Namespace: "runai-bare", ResourceVersion: "11",
				Labels: map[string]string{"runai/queue": "bare", "tier": "gpu", prov: "true"}}},
			skipped: []SkippedProject{{"dying", "runai-dying", SkipTerminating}, {"newstat", "runai-newstat", SkipNamespaceMissing},
				{"taken", "runai-taken", SkipConflict}},
			// Discovery failed: whether old is still a project is unknown.
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := FindProjectsWith(nss, tc.cfg, tc.disc)
			if !reflect.DeepEqual(f.Projects, tc.projects) {
				t.Errorf("projects = %+v\nwant %+v", f.Projects, tc.projects)
			}
			if !reflect.DeepEqual(f.Actions, tc.actions) {
				t.Errorf("actions = %+v\nwant %+v", f.Actions, tc.actions)
			}
			if !reflect.DeepEqual(f.Skipped, tc.skipped) {
				t.Errorf("skipped = %+v\nwant %+v", f.Skipped, tc.skipped)
			}
			if !reflect.DeepEqual(f.Orphaned, tc.orphaned) {
				t.Errorf("orphaned = %+v\nwant %+v", f.Orphaned, tc.orphaned)
			}
		})
	}
}

// strings63 is a valid project name whose default namespace is too long.
func strings63() string {
	b := make([]byte, 60)
	for i := range b {
		b[i] = 'x'
	}
	return string(b)
}

func TestFindProjectsWithNeverMakesASecondNamespace(t *testing.T) {
	// Project p already has a labelled namespace elsewhere: neither the
	// static entry's namespace nor the discovered default is created or
	// labelled.
	nss := []model.Namespace{{Name: "ml-p", Labels: map[string]string{"runai/queue": "p"}}, {Name: "runai-q"}}
	cfg := config.Projects{NamespaceLabel: "runai/queue", CreateNamespaces: true, LabelExistingNamespaces: true,
		Static: []config.StaticProject{{Name: "q"}}}
	f := FindProjectsWith(nss, cfg, Discovered{Names: []string{"p"}})
	if len(f.Actions) != 1 || f.Actions[0].Namespace != "runai-q" || f.Actions[0].Create {
		t.Errorf("actions = %+v, want only the label of runai-q", f.Actions)
	}
	if !reflect.DeepEqual(f.Projects, []Project{{"p", "ml-p"}, {"q", "runai-q"}}) {
		t.Errorf("projects = %+v", f.Projects)
	}

	cfg.Static = []config.StaticProject{{Name: "p", Namespace: "other-p"}}
	f = FindProjectsWith(nss, cfg, Discovered{})
	if len(f.Actions) != 0 {
		t.Errorf("a second namespace for p is planned: %+v", f.Actions)
	}
}
