package plan

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func queue(p string) map[string]string { return map[string]string{"runai/queue": p} }

// TestFenceLabelledNamespaces: a label does not make a system or Run:AI
// namespace, an excluded one, one outside namespacePattern or the
// daemon's own a project (the kube-system labelled runai/queue=sys).
func TestFenceLabelledNamespaces(t *testing.T) {
	nss := []model.Namespace{
		{Name: "kube-system", Labels: queue("sys")},
		{Name: "runai", Labels: queue("ctl")},
		{Name: "runai-backend", Labels: queue("backend")},
		{Name: "runai-reservation", Labels: queue("res")},
		{Name: "default", Labels: queue("dflt")},
		{Name: "openshift-monitoring", Labels: queue("mon")},
		{Name: "ops", Labels: queue("ops")},
		{Name: "team-a-infra", Labels: queue("infra")},
		{Name: "ml-vision", Labels: queue("vision")},
		{Name: "runai-alpha", Labels: queue("alpha")},
	}
	cfg := config.Projects{NamespaceLabel: "runai/queue", ExcludeNamespaces: []string{"team-*-infra"}, OwnNamespace: "ops"}
	f := FindProjectsWith(nss, cfg, Discovered{})
	if want := []Project{{"alpha", "runai-alpha"}, {"vision", "ml-vision"}}; !reflect.DeepEqual(f.Projects, want) {
		t.Errorf("projects = %v, want %v", f.Projects, want)
	}
	fenced := map[string]bool{}
	for _, s := range f.Skipped {
		if s.Reason != SkipFenced {
			t.Errorf("unexpected skip %+v", s)
		}
		fenced[s.Namespace] = true
	}
	for _, ns := range []string{"kube-system", "runai", "runai-backend", "runai-reservation", "default", "openshift-monitoring", "ops", "team-a-infra"} {
		if !fenced[ns] {
			t.Errorf("%s not reported as fenced: %+v", ns, f.Skipped)
		}
	}

	// namespacePattern: every project namespace must match.
	cfg.NamespacePattern = "runai-*"
	f = FindProjectsWith(nss, cfg, Discovered{})
	if want := []Project{{"alpha", "runai-alpha"}}; !reflect.DeepEqual(f.Projects, want) {
		t.Errorf("with namespacePattern runai-*: projects = %v, want %v", f.Projects, want)
	}
}

// TestFenceDirectoryProjects reproduces the first attack in the
// pure code: a group runai-backend-executors (project "backend") must not
// take over the existing, unlabelled runai-backend, with or without the
// provisioning keys; nor may any discovered project use an existing
// unlabelled namespace unless this tool labels it.
func TestFenceDirectoryProjects(t *testing.T) {
	nss := []model.Namespace{
		{Name: "runai-backend"},
		{Name: "runai-legacy", ResourceVersion: "7"},
		{Name: "runai-alpha", Labels: queue("alpha")},
	}
	disc := Discovered{Names: []string{"alpha", "backend", "legacy", "reservation", "fresh"}}
	for _, tc := range []struct {
		name          string
		create, label bool
		projects      []Project
		actions       []string
		skipped       map[string]string // namespace -> reason
	}{
		{name: "provisioning off", projects: []Project{{"alpha", "runai-alpha"}},
			skipped: map[string]string{"runai-backend": SkipFenced, "runai-reservation": SkipFenced, "runai-legacy": SkipUnlabelled, "runai-fresh": SkipNamespaceMissing}},
		{name: "create and label", create: true, label: true,
			projects: []Project{{"alpha", "runai-alpha"}, {"fresh", "runai-fresh"}, {"legacy", "runai-legacy"}},
			actions:  []string{"create runai-fresh", "label runai-legacy"},
			skipped:  map[string]string{"runai-backend": SkipFenced, "runai-reservation": SkipFenced}},
		{name: "create only", create: true,
			projects: []Project{{"alpha", "runai-alpha"}, {"fresh", "runai-fresh"}},
			actions:  []string{"create runai-fresh"},
			skipped:  map[string]string{"runai-backend": SkipFenced, "runai-reservation": SkipFenced, "runai-legacy": SkipUnlabelled}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Projects{NamespaceLabel: "runai/queue", CreateNamespaces: tc.create, LabelExistingNamespaces: tc.label,
				FromGroups: &config.FromGroups{Pattern: "runai-{project}-executors"}}
			f := FindProjectsWith(nss, cfg, disc)
			if !reflect.DeepEqual(f.Projects, tc.projects) {
				t.Errorf("projects = %v, want %v", f.Projects, tc.projects)
			}
			var actions []string
			for _, a := range f.Actions {
				verb := "label"
				if a.Create {
					verb = "create"
				}
				actions = append(actions, verb+" "+a.Namespace)
			}
			if fmt.Sprint(actions) != fmt.Sprint(tc.actions) {
				t.Errorf("actions = %v, want %v", actions, tc.actions)
			}
			skipped := map[string]string{}
			for _, s := range f.Skipped {
				skipped[s.Namespace] = s.Reason
			}
			if !reflect.DeepEqual(skipped, tc.skipped) {
				t.Errorf("skipped = %v, want %v", skipped, tc.skipped)
			}
		})
	}

	// A static project is the admin's explicit word: an unlabelled
	// namespace is used as before (but never a fenced one).
	f := FindProjectsWith(nss, config.Projects{NamespaceLabel: "runai/queue",
		Static: []config.StaticProject{{Name: "legacy"}, {Name: "sys", Namespace: "kube-system"}}}, Discovered{})
	if want := []Project{{"alpha", "runai-alpha"}, {"legacy", "runai-legacy"}}; !reflect.DeepEqual(f.Projects, want) {
		t.Errorf("static: projects = %v, want %v", f.Projects, want)
	}
	if want := []SkippedProject{{"sys", "kube-system", SkipFenced}}; !reflect.DeepEqual(f.Skipped, want) {
		t.Errorf("static: skipped = %v, want %v", f.Skipped, want)
	}
}

// TestMaxNewPerCycle: at most projects.maxNewPerCycle namespaces are
// created or labelled per cycle, the same ones each time; the rest wait,
// reported, and are not projects this cycle.
func TestMaxNewPerCycle(t *testing.T) {
	var names []string
	for i := 0; i < 25; i++ {
		names = append(names, fmt.Sprintf("p%02d", i))
	}
	cfg := config.Projects{NamespaceLabel: "runai/queue", CreateNamespaces: true, MaxNewPerCycle: 10,
		FromGroups: &config.FromGroups{Pattern: "runai-{project}-executors"}}
	nss := []model.Namespace{{Name: "runai-alpha", Labels: queue("alpha")}}
	f := FindProjectsWith(nss, cfg, Discovered{Names: append(names, "alpha")})
	if len(f.Actions) != 10 || f.Actions[0].Namespace != "runai-p00" || f.Actions[9].Namespace != "runai-p09" {
		t.Fatalf("actions = %d (%v)", len(f.Actions), f.Actions)
	}
	if len(f.Projects) != 11 { // alpha and the ten created
		t.Errorf("projects = %d, want 11: %v", len(f.Projects), f.Projects)
	}
	deferred := 0
	for _, s := range f.Skipped {
		if s.Reason == SkipDeferred {
			deferred++
		}
	}
	if deferred != 15 {
		t.Errorf("deferred = %d, want 15: %v", deferred, f.Skipped)
	}
	// Next cycle: the ten exist (labelled, ours); the next ten are created.
	for _, a := range f.Actions {
		nss = append(nss, model.Namespace{Name: a.Namespace, Labels: a.Labels})
	}
	f = FindProjectsWith(nss, cfg, Discovered{Names: append(names, "alpha")})
	if len(f.Actions) != 10 || f.Actions[0].Namespace != "runai-p10" || len(f.Projects) != 21 {
		t.Errorf("second cycle: actions %v, %d projects", f.Actions, len(f.Projects))
	}

	// A static project's existing namespace stays its project when the
	// label write waits (it was one without the label before).
	cfg.LabelExistingNamespaces = true
	cfg.Static = []config.StaticProject{{Name: "zz"}}
	nss = []model.Namespace{{Name: "runai-zz"}}
	f = FindProjectsWith(nss, cfg, Discovered{Names: names})
	found := false
	for _, p := range f.Projects {
		found = found || p.Name == "zz"
	}
	for _, s := range f.Skipped {
		if s.Name == "zz" {
			t.Errorf("static zz reported skipped: %+v", s)
		}
	}
	if !found || len(f.Actions) != 10 {
		t.Errorf("static zz with its label deferred: projects %v, %d actions", f.Projects, len(f.Actions))
	}
}

// TestDuplicateLabelRule: a copy of a project's label on another
// namespace does not make both be skipped, and moves nothing: the
// namespace holding the executor binding wins, else the default name
// runai-<project>, else the oldest; the provisioned marker counts for
// nothing (it is a label anyone who labels can copy). The copy is
// reported; with no way to pick, both are skipped.
func TestDuplicateLabelRule(t *testing.T) {
	cfg := config.Projects{NamespaceLabel: "runai/queue"}
	marked := map[string]string{"runai/queue": "alpha", prov: "true"}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		nss  []model.Namespace
		want []Project
		skip []SkippedProject
	}{
		{"default name wins",
			[]model.Namespace{{Name: "runai-alpha", Labels: queue("alpha")}, {Name: "team-b", Labels: queue("alpha")}},
			[]Project{{"alpha", "runai-alpha"}}, []SkippedProject{{"alpha", "team-b", SkipCopiedLabel}}},
		{"a copied provisioned marker wins nothing",
			[]model.Namespace{{Name: "runai-alpha", Labels: queue("alpha")}, {Name: "monitoring", Labels: marked, Created: t0}},
			[]Project{{"alpha", "runai-alpha"}}, []SkippedProject{{"alpha", "monitoring", SkipCopiedLabel}}},
		{"the executor binding's namespace wins over the default name and age",
			[]model.Namespace{{Name: "runai-alpha", Labels: marked, Created: t0}, {Name: "ml-alpha", Labels: queue("alpha"), HoldsExecutor: true, Created: t0.Add(time.Hour)}},
			[]Project{{"alpha", "ml-alpha"}}, []SkippedProject{{"alpha", "runai-alpha", SkipCopiedLabel}}},
		{"neither: the oldest",
			[]model.Namespace{{Name: "ml-alpha", Labels: queue("alpha"), Created: t0}, {Name: "team-b", Labels: marked, Created: t0.Add(time.Second)}},
			[]Project{{"alpha", "ml-alpha"}}, []SkippedProject{{"alpha", "team-b", SkipCopiedLabel}}},
		{"neither, same age: nothing guessed",
			[]model.Namespace{{Name: "ml-alpha", Labels: queue("alpha"), Created: t0}, {Name: "team-b", Labels: queue("alpha"), Created: t0}},
			nil, []SkippedProject{{"alpha", "ml-alpha", SkipDuplicate}, {"alpha", "team-b", SkipDuplicate}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := FindProjectsWith(tc.nss, cfg, Discovered{})
			if !reflect.DeepEqual(f.Projects, tc.want) || !reflect.DeepEqual(f.Skipped, tc.skip) {
				t.Errorf("projects %v skipped %v, want %v %v", f.Projects, f.Skipped, tc.want, tc.skip)
			}
		})
	}
}
