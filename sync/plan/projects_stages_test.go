package plan

import (
	"reflect"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Each stage of FindProjectsWith, on its own.

func TestStageIndexLabelled(t *testing.T) {
	fd := finder{cfg: config.Projects{NamespaceLabel: "runai/queue"}}
	fd.indexLabelled([]model.Namespace{
		{Name: "runai-a", Labels: queue("a")}, {Name: "team", Labels: queue("a")},
		{Name: "kube-system", Labels: queue("b")}, {Name: "bad", Labels: queue("Not_Valid")}, {Name: "plain"},
	})
	if len(fd.exists) != 5 || !reflect.DeepEqual(fd.labelled, map[string][]string{"a": {"runai-a", "team"}}) {
		t.Errorf("exists %d, labelled %v", len(fd.exists), fd.labelled)
	}
	want := []SkippedProject{{"b", "kube-system", SkipFenced}, {"Not_Valid", "bad", SkipInvalidName}}
	if !reflect.DeepEqual(fd.f.Skipped, want) {
		t.Errorf("skipped %v, want %v", fd.f.Skipped, want)
	}
}

func TestStageHomeNamespace(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ns := func(name string, age time.Duration, holds bool) model.Namespace {
		return model.Namespace{Name: name, Created: t0.Add(-age), HoldsExecutor: holds}
	}
	for _, tc := range []struct {
		name string
		nss  []model.Namespace
		want string
	}{
		{"the one holding the binding, though younger and not the default name", []model.Namespace{ns("runai-p", 2*time.Hour, false), ns("ml-p", time.Hour, true), ns("old", 9*time.Hour, false)}, "ml-p"},
		{"two holding it: the default name among them", []model.Namespace{ns("runai-p", time.Hour, true), ns("monitoring", 9*time.Hour, true)}, "runai-p"},
		{"two holding it, neither the default: the oldest", []model.Namespace{ns("a-p", time.Hour, true), ns("b-p", 2*time.Hour, true), ns("runai-p", 3*time.Hour, false)}, "b-p"},
		{"none holding it: the default name, though younger", []model.Namespace{ns("monitoring", 9*time.Hour, false), ns("runai-p", time.Hour, false)}, "runai-p"},
		{"none, no default: the oldest", []model.Namespace{ns("monitoring", 9*time.Hour, false), ns("ml-p", time.Hour, false)}, "monitoring"},
		{"a tie in age: nothing", []model.Namespace{ns("x-p", time.Hour, false), ns("y-p", time.Hour, false)}, ""},
		{"an unknown age: nothing", []model.Namespace{ns("x-p", time.Hour, false), {Name: "y-p"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exists := map[string]model.Namespace{}
			var names []string
			for _, n := range tc.nss {
				exists[n.Name] = n
				names = append(names, n.Name)
			}
			if got := homeNamespace("p", names, exists); got != tc.want {
				t.Errorf("home = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStageKeepOneNamespace(t *testing.T) {
	fd := finder{projects: map[string]Project{},
		exists:   map[string]model.Namespace{"runai-p": {Name: "runai-p", HoldsExecutor: true}, "monitoring": {Name: "monitoring"}, "x": {Name: "x"}, "y": {Name: "y"}},
		labelled: map[string][]string{"p": {"monitoring", "runai-p"}, "q": {"x", "y"}, "r": {"x"}}}
	fd.keepOneNamespace()
	if !reflect.DeepEqual(fd.projects, map[string]Project{"p": {"p", "runai-p"}, "r": {"r", "x"}}) {
		t.Errorf("projects %v", fd.projects)
	}
	fd.finish(Discovered{})
	want := []SkippedProject{{"p", "monitoring", SkipCopiedLabel}, {"q", "x", SkipDuplicate}, {"q", "y", SkipDuplicate}}
	if !reflect.DeepEqual(fd.f.Skipped, want) {
		t.Errorf("skipped %v, want %v", fd.f.Skipped, want)
	}
}

func TestStageNamed(t *testing.T) {
	fd := finder{cfg: config.Projects{Static: []config.StaticProject{{Name: "s"}, {Name: "t", Namespace: "ml-t"}}},
		labelled: map[string][]string{"l": {"ml-l"}}}
	got := fd.named(Discovered{Names: []string{"s", "l", "d", "d"}})
	want := []namedProject{{Project{"s", "runai-s"}, true}, {Project{"t", "ml-t"}, true}, {Project{"d", "runai-d"}, false}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("named %v, want %v", got, want)
	}
	if !fd.isStatic["s"] || fd.isStatic["d"] || !fd.isDiscovered["l"] || !fd.isDiscovered["d"] || !fd.isDiscovered["s"] {
		t.Errorf("static %v discovered %v", fd.isStatic, fd.isDiscovered)
	}
}

func TestStagePlace(t *testing.T) {
	cfg := config.Projects{NamespaceLabel: "runai/queue", CreateNamespaces: true, LabelExistingNamespaces: true}
	newFinder := func() *finder {
		return &finder{cfg: cfg, projects: map[string]Project{},
			exists: map[string]model.Namespace{
				"runai-free":  {Name: "runai-free", ResourceVersion: "7"},
				"runai-taken": {Name: "runai-taken", Labels: queue("other")},
				"kube-system": {Name: "kube-system"},
			},
			labelled: map[string][]string{"elsewhere": {"ml-elsewhere"}}}
	}
	for _, tc := range []struct {
		name    string
		w       namedProject
		project bool
		action  bool
		skip    string
	}{
		{"missing: created", namedProject{Project{"new", "runai-new"}, false}, true, true, ""},
		{"missing, labelled elsewhere: not made twice", namedProject{Project{"elsewhere", "runai-elsewhere"}, true}, false, false, SkipNamespaceMissing},
		{"existing, unlabelled: labelled", namedProject{Project{"free", "runai-free"}, false}, true, true, ""},
		{"existing, another project's: conflict", namedProject{Project{"taken", "runai-taken"}, true}, false, false, SkipConflict},
		{"fenced", namedProject{Project{"sys", "kube-system"}, true}, false, false, SkipFenced},
		{"invalid namespace name", namedProject{Project{"x", "runai-" + strings63()}, true}, false, false, SkipInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd := newFinder()
			fd.place(tc.w)
			_, isProject := fd.projects[tc.w.Name]
			var skip string
			if len(fd.f.Skipped) > 0 {
				skip = fd.f.Skipped[0].Reason
			}
			if isProject != tc.project || (len(fd.f.Actions) > 0) != tc.action || skip != tc.skip {
				t.Errorf("project %v actions %v skipped %v", isProject, fd.f.Actions, fd.f.Skipped)
			}
		})
	}
}

func TestStageFinish(t *testing.T) {
	fd := finder{cfg: config.Projects{MaxNewPerCycle: 1},
		exists: map[string]model.Namespace{
			"runai-dying": {Name: "runai-dying", Terminating: true},
			"runai-old":   {Name: "runai-old", Labels: map[string]string{prov: "true"}},
		},
		projects:     map[string]Project{"dying": {"dying", "runai-dying"}, "old": {"old", "runai-old"}, "a": {"a", "runai-a"}, "b": {"b", "runai-b"}},
		isStatic:     map[string]bool{},
		isDiscovered: map[string]bool{"a": true, "b": true},
	}
	fd.f.Actions = []NamespaceAction{{Project: "b", Namespace: "runai-b", Create: true}, {Project: "a", Namespace: "runai-a", Create: true}}
	fd.finish(Discovered{})
	if !reflect.DeepEqual(fd.f.Projects, []Project{{"a", "runai-a"}, {"old", "runai-old"}}) {
		t.Errorf("projects %v", fd.f.Projects)
	}
	if !reflect.DeepEqual(fd.f.Orphaned, []Project{{"old", "runai-old"}}) {
		t.Errorf("orphaned %v", fd.f.Orphaned)
	}
	want := []SkippedProject{{"b", "runai-b", SkipDeferred}, {"dying", "runai-dying", SkipTerminating}}
	if !reflect.DeepEqual(fd.f.Skipped, want) {
		t.Errorf("skipped %v, want %v", fd.f.Skipped, want)
	}
}

func TestInScope(t *testing.T) {
	cfg := config.Projects{NamespaceLabel: "runai/queue", Static: []config.StaticProject{{Name: "s"}, {Name: "t", Namespace: "ml-t"}}}
	for ns, want := range map[string]bool{"runai": true, "runai-s": true, "ml-t": true, "team": false, "runai-x": false} {
		if got := InScope(cfg, "runai", ns, nil); got != want {
			t.Errorf("%s: %v", ns, got)
		}
	}
	if !InScope(cfg, "runai", "team", queue("p")) || InScope(cfg, "runai", "kube-system", queue("p")) {
		t.Error("a labelled namespace is in the scope, a fenced one never")
	}
	if got := ScopeLabels(config.Projects{NamespaceLabel: "q", NamespaceLabels: map[string]string{"team": "x"}}); !reflect.DeepEqual(got, []string{"q", config.ProvisionedLabel, "team"}) {
		t.Errorf("labels %v", got)
	}
}
