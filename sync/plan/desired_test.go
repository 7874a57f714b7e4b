package plan

import (
	"errors"
	"reflect"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

var testGroups = config.Groups{
	Executors:     []string{"runai-{project}-executors"},
	Viewers:       []string{"runai-{project}-viewers"},
	GlobalViewers: []string{"runai-viewers"},
}

func found(name string, members ...string) *model.Group {
	return &model.Group{Name: name, Found: true, DN: "CN=" + name, Members: members}
}

func byRef(ds []Desired) map[model.Ref]Desired {
	m := map[model.Ref]Desired{}
	for _, d := range ds {
		m[d.Ref] = d
	}
	return m
}

func TestDesiredState(t *testing.T) {
	projects := []Project{{"alpha", "runai-alpha"}, {"beta", "ml-beta"}}
	groups := map[string]*model.Group{
		"runai-alpha-executors": found("runai-alpha-executors", "alice", "bob"),
		"runai-alpha-viewers":   found("runai-alpha-viewers", "vera"),
		"runai-beta-executors":  found("runai-beta-executors", "bob", "carol"),
		"runai-beta-viewers":    {Name: "runai-beta-viewers"}, // does not exist
		"runai-viewers":         found("runai-viewers", "gina"),
	}
	got := byRef(DesiredState(projects, testGroups, "runai", groups, nil))
	want := map[model.Ref][]string{
		model.ExecutorRef("runai-alpha"): {"alice", "bob"},
		model.ExecutorRef("ml-beta"):     {"bob", "carol"},
		model.ViewerRef():                {"gina", "vera"},
		model.IndexMapRef("runai"):       {"alice", "bob", "carol"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d bindings, want %d: %+v", len(got), len(want), got)
	}
	for ref, users := range want {
		d := got[ref]
		if !reflect.DeepEqual(d.Users, users) || d.Incomplete || d.Err != nil {
			t.Errorf("%s: %+v, want users %v, complete, no error", ref, d, users)
		}
	}
}

func TestDesiredStateFailedGroup(t *testing.T) {
	projects := []Project{{"alpha", "runai-alpha"}, {"beta", "runai-beta"}}
	fail := errors.New("connection reset")
	groups := map[string]*model.Group{
		"runai-alpha-executors": {Name: "runai-alpha-executors", Err: fail},
		"runai-alpha-viewers":   {Name: "runai-alpha-viewers", Err: fail},
		"runai-beta-executors":  found("runai-beta-executors", "carol"),
		"runai-beta-viewers":    found("runai-beta-viewers", "vic"),
		"runai-viewers":         found("runai-viewers"),
	}

	t.Run("without last known members", func(t *testing.T) {
		got := byRef(DesiredState(projects, testGroups, "runai", groups, nil))
		if d := got[model.ExecutorRef("runai-alpha")]; d.Err == nil || d.Users != nil {
			t.Errorf("alpha executors must be left untouched: %+v", d)
		}
		if d := got[model.ExecutorRef("runai-beta")]; d.Err != nil || !reflect.DeepEqual(d.Users, []string{"carol"}) {
			t.Errorf("beta must still sync: %+v", d)
		}
		for _, ref := range []model.Ref{model.ViewerRef(), model.IndexMapRef("runai")} {
			if d := got[ref]; !d.Incomplete {
				t.Errorf("%s must be incomplete (add-only): %+v", ref, d)
			}
		}
	})
	t.Run("with last known members", func(t *testing.T) {
		last := map[string][]string{"runai-alpha-executors": {"alice"}, "runai-alpha-viewers": {"val"}}
		got := byRef(DesiredState(projects, testGroups, "runai", groups, last))
		if d := got[model.ExecutorRef("runai-alpha")]; d.Err == nil {
			t.Errorf("alpha executors must still be left untouched: %+v", d)
		}
		// Kept, not granted: they are not removed while the group fails,
		// and not added for it either.
		if d := got[model.IndexMapRef("runai")]; d.Incomplete || !reflect.DeepEqual(d.Users, []string{"carol"}) || !reflect.DeepEqual(d.Keep, []string{"alice"}) {
			t.Errorf("index map keeps alpha's last known executors: %+v", d)
		}
		if d := got[model.ViewerRef()]; d.Incomplete || !reflect.DeepEqual(d.Users, []string{"vic"}) || !reflect.DeepEqual(d.Keep, []string{"val"}) {
			t.Errorf("viewer keeps alpha's last known viewers: %+v", d)
		}
	})
}

func TestDesiredStateOnlyConfiguredBindings(t *testing.T) {
	g := config.Groups{Executors: []string{"x-{project}"}}
	got := byRef(DesiredState([]Project{{"a", "runai-a"}}, g, "runai", map[string]*model.Group{"x-a": found("x-a", "u")}, nil))
	if _, ok := got[model.ViewerRef()]; ok {
		t.Error("viewer binding managed without viewer groups")
	}
	if _, ok := got[model.IndexMapRef("runai")]; !ok {
		t.Error("index map not managed")
	}
	// No executors groups: neither the executor bindings nor the index map
	// are managed (created empty, or emptied).
	g = config.Groups{Viewers: []string{"v-{project}"}}
	got = byRef(DesiredState([]Project{{"a", "runai-a"}}, g, "runai", map[string]*model.Group{"v-a": found("v-a", "u")}, nil))
	if len(got) != 1 || got[model.ViewerRef()].Users == nil {
		t.Errorf("without executors groups only the viewer binding is managed, got %v", got)
	}
}

func TestFindProjects(t *testing.T) {
	nss := []model.Namespace{
		{Name: "runai-alpha", Labels: map[string]string{"runai/queue": "alpha"}},
		{Name: "ml-beta", Labels: map[string]string{"runai/queue": "beta"}},
		{Name: "dup-1", Labels: map[string]string{"runai/queue": "dup"}},
		{Name: "dup-2", Labels: map[string]string{"runai/queue": "dup"}},
		{Name: "weird", Labels: map[string]string{"runai/queue": "Not_Valid"}},
		{Name: "ml-team-a"},
		{Name: "other", Labels: map[string]string{"runai/queue": "other"}},
		{Name: "gone", Labels: map[string]string{"runai/queue": "gone"}, Terminating: true},
		{Name: "kube-system"},
	}
	cfg := config.Projects{NamespaceLabel: "runai/queue", Static: []config.StaticProject{
		{Name: "team-a", Namespace: "ml-team-a"},
		{Name: "team-b"},                     // runai-team-b does not exist
		{Name: "team-c", Namespace: "other"}, // labelled for another project
	}}
	projects, skipped := FindProjects(nss, cfg)
	wantP := []Project{{"alpha", "runai-alpha"}, {"beta", "ml-beta"}, {"other", "other"}, {"team-a", "ml-team-a"}}
	if !reflect.DeepEqual(projects, wantP) {
		t.Errorf("projects = %+v\nwant %+v", projects, wantP)
	}
	wantS := []SkippedProject{
		{"Not_Valid", "weird", SkipInvalidName},
		{"dup", "dup-1", SkipDuplicate}, {"dup", "dup-2", SkipDuplicate},
		{"gone", "gone", SkipTerminating},
		{"team-b", "runai-team-b", SkipNamespaceMissing},
		{"team-c", "other", SkipConflict},
	}
	if !reflect.DeepEqual(skipped, wantS) {
		t.Errorf("skipped = %+v\nwant %+v", skipped, wantS)
	}
}

func TestFindProjectsCustomLabel(t *testing.T) {
	nss := []model.Namespace{
		{Name: "a", Labels: map[string]string{"kai.scheduler/queue": "qa"}},
		{Name: "b", Labels: map[string]string{"runai/queue": "qb"}},
	}
	projects, _ := FindProjects(nss, config.Projects{NamespaceLabel: "kai.scheduler/queue"})
	if !reflect.DeepEqual(projects, []Project{{"qa", "a"}}) {
		t.Errorf("projects = %+v", projects)
	}
}

// An ambiguous name keeps every candidate's members (when the source
// says who they are) as well as its last known members, and grants none.
func TestDesiredStateAmbiguousKeepsCandidates(t *testing.T) {
	groups := map[string]*model.Group{
		"runai-viewers": {Name: "runai-viewers", Err: errors.New("ambiguous"), MightGrant: []string{"cand1", "cand2"}},
	}
	d := byRef(DesiredState(nil, config.Groups{GlobalViewers: []string{"runai-viewers"}}, "runai", groups,
		map[string][]string{"runai-viewers": {"old"}}))[model.ViewerRef()]
	if len(d.Users) != 0 || !reflect.DeepEqual(d.Keep, []string{"cand1", "cand2", "old"}) || d.Incomplete {
		t.Errorf("%+v", d)
	}
	// Without last known members, the candidates alone say who to keep.
	d = byRef(DesiredState(nil, config.Groups{GlobalViewers: []string{"runai-viewers"}}, "runai", groups, nil))[model.ViewerRef()]
	if !reflect.DeepEqual(d.Keep, []string{"cand1", "cand2"}) || d.Incomplete {
		t.Errorf("no last known: %+v", d)
	}
}

func TestWantedGroupsNameTheirSetting(t *testing.T) {
	g := config.Groups{Executors: []string{"runai-{project}-executors"}, Viewers: []string{"{project}-viewers"}, GlobalViewers: []string{"runai-viewers"}}
	projects := []Project{{Name: "alpha", Namespace: "runai-alpha"}, {Name: "beta", Namespace: "ml-beta"}}
	want := []WantedGroup{
		{"groups.executors", "runai-{project}-executors", "alpha", "runai-alpha-executors"},
		{"groups.viewers", "{project}-viewers", "alpha", "alpha-viewers"},
		{"groups.executors", "runai-{project}-executors", "beta", "runai-beta-executors"},
		{"groups.viewers", "{project}-viewers", "beta", "beta-viewers"},
		{"groups.globalViewers", "runai-viewers", "", "runai-viewers"},
	}
	if got := WantedGroups(g, projects); !reflect.DeepEqual(got, want) {
		t.Errorf("WantedGroups = %+v\nwant %+v", got, want)
	}
	names := AllGroupNames(g, projects)
	if len(names) != len(want) {
		t.Fatalf("AllGroupNames = %v", names)
	}
	for i, w := range want {
		if names[i] != w.Name {
			t.Errorf("AllGroupNames[%d] = %q, want %q", i, names[i], w.Name)
		}
	}
}
