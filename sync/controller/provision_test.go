package controller

import (
	"context"
	"errors"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

const testTemplate = `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: runai-scheduler-rw, namespace: <NAMESPACE>}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: runai-scheduler-rw}
subjects: [{kind: ServiceAccount, name: runai-scheduler, namespace: runai}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: project-info}
data: {project: <PROJECT>}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: runai-job-executor-manual, namespace: <NAMESPACE>}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: runai-job-executor}
`

func provisioningFixture(t *testing.T) (*Pipeline, *controllertest.Dir, *controllertest.Cluster, *controllertest.Prov, *metrics.Metrics) {
	t.Helper()
	dir, cl := newFixture()
	dir.Members["runai-gamma-executors"] = []string{"gus"}
	dir.Members["runai-delta-executors"] = []string{"dora"}
	cfg := testConfig()
	cfg.Projects.CreateNamespaces = true
	cfg.Projects.Static = []config.StaticProject{{Name: "gamma"}}
	cfg.Projects.FromGroups = &config.FromGroups{Pattern: "runai-{project}-executors"}
	tmpl, err := template.Parse([]byte(testTemplate))
	if err != nil {
		t.Fatal(err)
	}
	prov := controllertest.NewProv(cl)
	disc := controllertest.Discoverer{D: &ldapsrc.Discovery{Projects: []ldapsrc.DiscoveredProject{{Name: "alpha"}, {Name: "beta"}, {Name: "delta"}}}}
	m := metrics.NewMetrics("test")
	s := New(cfg, dir, cl, zap.NewNop(), m).WithProvisioning(disc, prov).WithTemplate(tmpl)
	return s, dir, cl, prov, m
}

func TestCycleProvisionsNewProjectsInOneCycle(t *testing.T) {
	s, _, cl, prov, m := provisioningFixture(t)

	// diff first: everything is reported, nothing written.
	rep := s.Cycle(context.Background(), CycleOptions{DryRun: true})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if len(prov.Calls) != 0 || len(cl.Writes) != 0 {
		t.Fatalf("dry run wrote: %v %v", prov.Calls, cl.Writes)
	}
	if got := namespaceNames(rep.Provision.Namespaces); !reflect.DeepEqual(got, []string{"runai-delta", "runai-gamma"}) {
		t.Errorf("planned namespaces %v", got)
	}
	// 4 projects × 2 objects, the executor binding apart; all missing.
	if len(rep.Provision.Templates) != 8 || rep.Provision.TemplateObjects != 8 {
		t.Errorf("planned %d template changes of %d objects, want 8 of 8", len(rep.Provision.Templates), rep.Provision.TemplateObjects)
	}
	if !hasPlan(rep, model.ExecutorRef("runai-delta"), true) {
		t.Error("the dry run does not plan the new project's executor binding")
	}

	rep = s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	wantCalls := []string{"create-ns runai-delta", "create-ns runai-gamma"}
	if got := prov.Calls[:2]; !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("namespace writes %v, want %v", got, wantCalls)
	}
	for _, ns := range []string{"runai-alpha", "runai-beta", "runai-gamma", "runai-delta"} {
		for _, name := range []string{"runai-scheduler-rw", "project-info"} {
			if !prov.HasObject(ns, name) {
				t.Errorf("%s/%s not applied", ns, name)
			}
		}
		if prov.HasObject(ns, model.ExecutorBinding) {
			t.Errorf("the template's executor binding was applied in %s: its subjects are the directory's", ns)
		}
	}
	if got := cl.Users(model.ExecutorRef("runai-delta")); !reflect.DeepEqual(got, []string{"dora"}) {
		t.Errorf("new directory project's executors = %v", got)
	}
	if got := cl.Users(model.ExecutorRef("runai-gamma")); !reflect.DeepEqual(got, []string{"gus"}) {
		t.Errorf("new static project's executors = %v", got)
	}
	labelsOf := func(name string) map[string]string {
		for _, ns := range cl.NSs {
			if ns.Name == name {
				return ns.Labels
			}
		}
		return nil
	}
	if l := labelsOf("runai-delta"); l["runai/queue"] != "delta" || l[config.ProvisionedLabel] != "true" {
		t.Errorf("runai-delta labels %v", l)
	}
	if v := value(m.NamespacesProvisioned.WithLabelValues("create")); v != 2 {
		t.Errorf("namespaces_provisioned_total{create} = %v", v)
	}
	if v := value(m.TemplateApplied.WithLabelValues("create")); v != 8 {
		t.Errorf("template_objects_applied_total{create} = %v", v)
	}
	if v := value(m.ProjectsDiscovered); v != 3 {
		t.Errorf("projects_discovered = %v", v)
	}

	// The next cycle has nothing to do and writes nothing.
	prov.Calls, cl.Writes = nil, nil
	if rep = s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil || len(prov.Calls) != 0 || len(cl.Writes) != 0 {
		t.Errorf("second cycle: err=%v provisioning writes %v binding writes %v", rep.Err, prov.Calls, cl.Writes)
	}

	// A hand change and a deletion are brought back, and nothing else.
	cfgKey := template.Key{Kind: "ConfigMap", Namespace: "runai-alpha", Name: "project-info"}
	_ = unstructured.SetNestedField(prov.Objects[cfgKey].Object, "hacked", "data", "project")
	delete(prov.Objects, template.Key{Kind: "RoleBinding", Namespace: "runai-gamma", Name: "runai-scheduler-rw"})
	rep = s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	sort.Strings(prov.Calls)
	if want := []string{"apply ConfigMap/runai-alpha/project-info", "apply RoleBinding/runai-gamma/runai-scheduler-rw"}; !reflect.DeepEqual(prov.Calls, want) {
		t.Errorf("repair writes %v, want %v", prov.Calls, want)
	}
	for _, ch := range rep.Provision.Templates {
		if ch.Name == "project-info" && (ch.Create || ch.Field != "data.project") {
			t.Errorf("hand change reported as %+v", ch)
		}
	}
	if v := value(m.TemplateDrift.WithLabelValues("changed")); v != 1 {
		t.Errorf("template_objects_drift{changed} = %v", v)
	}
}

func namespaceNames(as []plan.NamespaceAction) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Namespace)
	}
	return out
}

func hasPlan(rep *Report, ref model.Ref, create bool) bool {
	for _, p := range rep.Plans {
		if p.Ref == ref && p.Create == create {
			return true
		}
	}
	return false
}

func TestCycleProvisioningFailures(t *testing.T) {
	s, _, cl, prov, m := provisioningFixture(t)
	prov.FailNS["runai-gamma"] = true
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || !strings.Contains(rep.Err.Error(), "create namespace runai-gamma") {
		t.Fatalf("cycle error %v, want the failed namespace", rep.Err)
	}
	// gamma is dropped this cycle, everything else is synced.
	for _, p := range rep.Projects {
		if p.Name == "gamma" {
			t.Error("a project without a namespace was synced")
		}
	}
	if !containsSkip(rep.SkippedProjects, "gamma", plan.SkipCreateFailed) {
		t.Errorf("skipped %+v", rep.SkippedProjects)
	}
	if got := cl.Users(model.ExecutorRef("runai-delta")); !reflect.DeepEqual(got, []string{"dora"}) {
		t.Errorf("delta's executors = %v", got)
	}
	if v := value(m.ProjectsSkipped.WithLabelValues(plan.SkipCreateFailed)); v != 1 {
		t.Errorf("projects_skipped{%s} = %v", plan.SkipCreateFailed, v)
	}

	// Discovery fails: the static project is still provisioned, discovered
	// ones are not, and the cycle fails (it is incomplete).
	s2, _, cl2, prov2, _ := provisioningFixture(t)
	s2.provisioning.discoverer = controllertest.Discoverer{Err: errors.New("connection refused")}
	rep = s2.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || !strings.Contains(rep.Err.Error(), "discover projects") {
		t.Errorf("cycle error %v, want the discovery failure", rep.Err)
	}
	if !reflect.DeepEqual(prov2.Calls[:1], []string{"create-ns runai-gamma"}) || strings.Contains(strings.Join(prov2.Calls, " "), "runai-delta") {
		t.Errorf("writes %v", prov2.Calls)
	}
	if cl2.Users(model.ExecutorRef("runai-alpha")) == nil {
		t.Error("labelled projects were not synced after a discovery failure")
	}
}

func containsSkip(s []plan.SkippedProject, name, reason string) bool {
	for _, sp := range s {
		if sp.Name == name && sp.Reason == reason {
			return true
		}
	}
	return false
}

func TestCycleWithProvisioningOffNeverCallsTheProvisioner(t *testing.T) {
	dir, cl := newFixture()
	cfg := testConfig()
	cfg.Projects.Static = []config.StaticProject{{Name: "gamma"}}
	prov := controllertest.NewProv(cl)
	s := New(cfg, dir, cl, zap.NewNop(), nil).WithProvisioning(controllertest.Discoverer{Err: errors.New("must not be called")}, prov)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if len(prov.Calls) != 0 || len(rep.Provision.Namespaces) != 0 || len(cl.NSs) != 2 {
		t.Errorf("provisioning off, yet: calls %v actions %+v namespaces %d", prov.Calls, rep.Provision.Namespaces, len(cl.NSs))
	}
	if !containsSkip(rep.SkippedProjects, "gamma", plan.SkipNamespaceMissing) {
		t.Errorf("skipped %+v", rep.SkippedProjects)
	}
}

// value reads a gauge or counter.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.GetGauge().GetValue()
	}
	return d.GetCounter().GetValue()
}

func TestCycleAdoptsTemplateObjectsMadeBeforeIt(t *testing.T) {
	s, _, _, prov, _ := provisioningFixture(t)
	// Run:AI's template applied by hand before: same content, none of our
	// labels, so the LIST by label misses it and a GET finds it.
	for _, obj := range s.provisioning.tmpl.Render("alpha", "runai-alpha", nil) {
		prov.Objects[template.KeyOf(obj)] = obj
	}
	rep := s.Cycle(context.Background(), CycleOptions{DryRun: true})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	for _, ch := range rep.Provision.Templates {
		if ch.Namespace == "runai-alpha" && (ch.Create || ch.Field != "metadata.labels") {
			t.Errorf("an existing object is planned as %+v, want an update of its labels", ch)
		}
	}
}

// The part of "keep the last discovery" that a namespace label cannot
// cover: a project whose namespace write waits for projects.maxNewPerCycle
// has no namespace yet, so only the kept discovery remembers it.
func TestDiscoveryFailureKeepsDeferredProjectsQueued(t *testing.T) {
	s, _, _, _, _ := provisioningFixture(t)
	s.cfg.Projects.MaxNewPerCycle = 1
	s.provisioning.discoverer = controllertest.Discoverer{D: &ldapsrc.Discovery{Projects: []ldapsrc.DiscoveredProject{
		{Name: "alpha"}, {Name: "beta"}, {Name: "delta"}, {Name: "epsilon"}, {Name: "zeta"}}}}
	deferred := func(rep *Report) []string {
		var out []string
		for _, sp := range rep.SkippedProjects {
			if sp.Reason == plan.SkipDeferred {
				out = append(out, sp.Name)
			}
		}
		sort.Strings(out)
		return out
	}
	// Four new projects (delta, epsilon, zeta discovered; gamma static; alpha
	// and beta have their namespaces), one namespace a cycle: three wait.
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	first := namespaceNames(rep.Provision.Namespaces)
	waiting := deferred(rep)
	if len(first) != 1 || len(waiting) != 3 {
		t.Fatalf("first cycle made %v and deferred %v, want 1 and 3", first, waiting)
	}
	// The discovery fails: the projects still waiting stay queued (one more
	// namespace is made, the rest still reported deferred), none forgotten.
	s.provisioning.discoverer = controllertest.Discoverer{Err: errors.New("search timed out")}
	rep = s.Cycle(context.Background(), CycleOptions{})
	if rep.Result() != ResultPartial {
		t.Errorf("result %s (%v), want partial", rep.Result(), rep.Err)
	}
	second := namespaceNames(rep.Provision.Namespaces)
	if len(second) != 1 || second[0] == first[0] {
		t.Errorf("after a failed discovery the cycle made namespaces %v, want one of the waiting %v", second, waiting)
	}
	if got := deferred(rep); len(got) != 2 {
		t.Errorf("after a failed discovery %v are deferred, want the 2 still waiting of %v", got, waiting)
	}
}

// controllertest.Merge returns the union of label maps; later maps win.
func TestDiscoveryFailureKeepsTheLastProjects(t *testing.T) {
	s, dir, cl, _, m := provisioningFixture(t)
	// epsilon's namespace exists without the project label: only the
	// discovery makes it a project, by labelling it (a discovered project
	// never uses an unlabelled namespace as it is: the fence).
	s.cfg.Projects.LabelExistingNamespaces = true
	cl.NSs = append(cl.NSs, model.Namespace{Name: "runai-epsilon"})
	dir.Members["runai-epsilon-executors"] = []string{"eve"}
	s.provisioning.discoverer = controllertest.Discoverer{D: &ldapsrc.Discovery{Projects: []ldapsrc.DiscoveredProject{{Name: "epsilon"}}}}
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	epsilon := model.ExecutorRef("runai-epsilon")
	if got := cl.Users(epsilon); !reflect.DeepEqual(got, []string{"eve"}) {
		t.Fatalf("epsilon's executors = %v", got)
	}
	// The group search fails: epsilon, found by the last discovery, stays a
	// project of this cycle (its binding is still planned and synced).
	s.provisioning.discoverer = controllertest.Discoverer{Err: errors.New("search timed out")}
	dir.Members["runai-epsilon-executors"] = []string{"eve", "ezra"}
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Result() != ResultPartial {
		t.Errorf("result %s (%v), want partial", rep.Result(), rep.Err)
	}
	if !hasPlan(rep, epsilon, false) {
		t.Errorf("epsilon dropped after a failed discovery: projects %v", rep.Projects)
	}
	if got := cl.Users(epsilon); !reflect.DeepEqual(got, []string{"eve", "ezra"}) {
		t.Errorf("epsilon's executors = %v, want it still synced", got)
	}
	if len(rep.Provision.Orphaned) != 0 || value(m.ProjectsOrphaned) != 0 {
		t.Errorf("orphaned %v after a failed discovery", rep.Provision.Orphaned)
	}
	// A new term knows no discovery: a failure then keeps nothing.
	s2, _, _, _, _ := provisioningFixture(t)
	s2.provisioning.discoverer = controllertest.Discoverer{Err: errors.New("search timed out")}
	if rep := s2.Cycle(context.Background(), CycleOptions{}); hasPlan(rep, epsilon, false) || hasPlan(rep, epsilon, true) {
		t.Error("a fresh Pipeline invented discovered projects")
	}
}
