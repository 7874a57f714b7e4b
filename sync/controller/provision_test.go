package controller

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// fakeProv writes namespaces into a fakeCluster and keeps template objects
// in memory; the real API server is exercised by the integration tests.
type fakeProv struct {
	cl      *fakeCluster
	objects map[template.Key]*unstructured.Unstructured
	calls   []string // every write, e.g. "create-ns runai-x", "apply RoleBinding/ns/name"
	failNS  map[string]bool
}

func newFakeProv(cl *fakeCluster) *fakeProv {
	return &fakeProv{cl: cl, objects: map[template.Key]*unstructured.Unstructured{}, failNS: map[string]bool{}}
}

func (f *fakeProv) CreateNamespace(_ context.Context, name string, l map[string]string) error {
	if f.failNS[name] {
		return errors.New("forbidden")
	}
	f.calls = append(f.calls, "create-ns "+name)
	f.cl.Lock()
	defer f.cl.Unlock()
	f.cl.nss = append(f.cl.nss, model.Namespace{Name: name, Labels: l})
	return nil
}

func (f *fakeProv) LabelNamespace(_ context.Context, name, rv string, l map[string]string) error {
	f.calls = append(f.calls, "label-ns "+name)
	f.cl.Lock()
	defer f.cl.Unlock()
	for i, ns := range f.cl.nss {
		if ns.Name == name {
			if ns.ResourceVersion != rv {
				return apierrors.NewConflict(schema.GroupResource{Resource: "namespaces"}, name, errors.New("changed"))
			}
			f.cl.nss[i].Labels = merge(ns.Labels, l)
		}
	}
	return nil
}

func (f *fakeProv) ListObjects(_ context.Context, gvr schema.GroupVersionResource, selector string) ([]unstructured.Unstructured, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, err
	}
	var out []unstructured.Unstructured
	for _, o := range f.objects {
		if k, _ := template.KindOf(o); k.GVR() == gvr && sel.Matches(labels.Set(o.GetLabels())) {
			out = append(out, *o.DeepCopy())
		}
	}
	return out, nil
}

func (f *fakeProv) GetObject(_ context.Context, _ schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	for k, o := range f.objects {
		if k.Namespace == ns && k.Name == name {
			return o.DeepCopy(), nil
		}
	}
	return nil, nil
}

func (f *fakeProv) ApplyObject(_ context.Context, _ schema.GroupVersionResource, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	key := template.KeyOf(obj)
	f.calls = append(f.calls, "apply "+key.String())
	u := obj.DeepCopy()
	u.SetResourceVersion("1") // a field the server adds
	f.objects[key] = u
	return u.DeepCopy(), nil
}

type fakeDiscoverer struct {
	d   *ldapsrc.Discovery
	err error
}

func (f fakeDiscoverer) DiscoverProjects(context.Context, config.FromGroups) (*ldapsrc.Discovery, error) {
	return f.d, f.err
}

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

func provisioningFixture(t *testing.T) (*Pipeline, *fakeDir, *fakeCluster, *fakeProv, *metrics.Metrics) {
	t.Helper()
	dir, cl := newFixture()
	dir.members["runai-gamma-executors"] = []string{"gus"}
	dir.members["runai-delta-executors"] = []string{"dora"}
	cfg := testConfig()
	cfg.Projects.CreateNamespaces = true
	cfg.Projects.Static = []config.StaticProject{{Name: "gamma"}}
	cfg.Projects.FromGroups = &config.FromGroups{Pattern: "runai-{project}-executors"}
	tmpl, err := template.Parse([]byte(testTemplate))
	if err != nil {
		t.Fatal(err)
	}
	prov := newFakeProv(cl)
	disc := fakeDiscoverer{d: &ldapsrc.Discovery{Projects: []ldapsrc.DiscoveredProject{{Name: "alpha"}, {Name: "beta"}, {Name: "delta"}}}}
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
	if len(prov.calls) != 0 || len(cl.writes) != 0 {
		t.Fatalf("dry run wrote: %v %v", prov.calls, cl.writes)
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
	if got := prov.calls[:2]; !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("namespace writes %v, want %v", got, wantCalls)
	}
	for _, ns := range []string{"runai-alpha", "runai-beta", "runai-gamma", "runai-delta"} {
		for _, name := range []string{"runai-scheduler-rw", "project-info"} {
			if !hasObject(prov, ns, name) {
				t.Errorf("%s/%s not applied", ns, name)
			}
		}
		if hasObject(prov, ns, model.ExecutorBinding) {
			t.Errorf("the template's executor binding was applied in %s: its subjects are the directory's", ns)
		}
	}
	if got := cl.users(model.ExecutorRef("runai-delta")); !reflect.DeepEqual(got, []string{"dora"}) {
		t.Errorf("new directory project's executors = %v", got)
	}
	if got := cl.users(model.ExecutorRef("runai-gamma")); !reflect.DeepEqual(got, []string{"gus"}) {
		t.Errorf("new static project's executors = %v", got)
	}
	labelsOf := func(name string) map[string]string {
		for _, ns := range cl.nss {
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
	prov.calls, cl.writes = nil, nil
	if rep = s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil || len(prov.calls) != 0 || len(cl.writes) != 0 {
		t.Errorf("second cycle: err=%v provisioning writes %v binding writes %v", rep.Err, prov.calls, cl.writes)
	}

	// A hand change and a deletion are brought back, and nothing else.
	cfgKey := template.Key{Kind: "ConfigMap", Namespace: "runai-alpha", Name: "project-info"}
	_ = unstructured.SetNestedField(prov.objects[cfgKey].Object, "hacked", "data", "project")
	delete(prov.objects, template.Key{Kind: "RoleBinding", Namespace: "runai-gamma", Name: "runai-scheduler-rw"})
	rep = s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	sort.Strings(prov.calls)
	if want := []string{"apply ConfigMap/runai-alpha/project-info", "apply RoleBinding/runai-gamma/runai-scheduler-rw"}; !reflect.DeepEqual(prov.calls, want) {
		t.Errorf("repair writes %v, want %v", prov.calls, want)
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

func hasObject(p *fakeProv, ns, name string) bool {
	for k := range p.objects {
		if k.Namespace == ns && k.Name == name {
			return true
		}
	}
	return false
}

func TestCycleProvisioningFailures(t *testing.T) {
	s, _, cl, prov, m := provisioningFixture(t)
	prov.failNS["runai-gamma"] = true
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
	if got := cl.users(model.ExecutorRef("runai-delta")); !reflect.DeepEqual(got, []string{"dora"}) {
		t.Errorf("delta's executors = %v", got)
	}
	if v := value(m.ProjectsSkipped.WithLabelValues(plan.SkipCreateFailed)); v != 1 {
		t.Errorf("projects_skipped{%s} = %v", plan.SkipCreateFailed, v)
	}

	// Discovery fails: the static project is still provisioned, discovered
	// ones are not, and the cycle fails (it is incomplete).
	s2, _, cl2, prov2, _ := provisioningFixture(t)
	s2.provisioning.discoverer = fakeDiscoverer{err: errors.New("connection refused")}
	rep = s2.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || !strings.Contains(rep.Err.Error(), "discover projects") {
		t.Errorf("cycle error %v, want the discovery failure", rep.Err)
	}
	if !reflect.DeepEqual(prov2.calls[:1], []string{"create-ns runai-gamma"}) || strings.Contains(strings.Join(prov2.calls, " "), "runai-delta") {
		t.Errorf("writes %v", prov2.calls)
	}
	if cl2.users(model.ExecutorRef("runai-alpha")) == nil {
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
	prov := newFakeProv(cl)
	s := New(cfg, dir, cl, zap.NewNop(), nil).WithProvisioning(fakeDiscoverer{err: errors.New("must not be called")}, prov)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if len(prov.calls) != 0 || len(rep.Provision.Namespaces) != 0 || len(cl.nss) != 2 {
		t.Errorf("provisioning off, yet: calls %v actions %+v namespaces %d", prov.calls, rep.Provision.Namespaces, len(cl.nss))
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
		prov.objects[template.KeyOf(obj)] = obj
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
	s.provisioning.discoverer = fakeDiscoverer{d: &ldapsrc.Discovery{Projects: []ldapsrc.DiscoveredProject{
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
	s.provisioning.discoverer = fakeDiscoverer{err: errors.New("search timed out")}
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

// merge returns the union of label maps; later maps win.
func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestDiscoveryFailureKeepsTheLastProjects(t *testing.T) {
	s, dir, cl, _, m := provisioningFixture(t)
	// epsilon's namespace exists without the project label: only the
	// discovery makes it a project, by labelling it (a discovered project
	// never uses an unlabelled namespace as it is: the fence).
	s.cfg.Projects.LabelExistingNamespaces = true
	cl.nss = append(cl.nss, model.Namespace{Name: "runai-epsilon"})
	dir.members["runai-epsilon-executors"] = []string{"eve"}
	s.provisioning.discoverer = fakeDiscoverer{d: &ldapsrc.Discovery{Projects: []ldapsrc.DiscoveredProject{{Name: "epsilon"}}}}
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	epsilon := model.ExecutorRef("runai-epsilon")
	if got := cl.users(epsilon); !reflect.DeepEqual(got, []string{"eve"}) {
		t.Fatalf("epsilon's executors = %v", got)
	}
	// The group search fails: epsilon, found by the last discovery, stays a
	// project of this cycle (its binding is still planned and synced).
	s.provisioning.discoverer = fakeDiscoverer{err: errors.New("search timed out")}
	dir.members["runai-epsilon-executors"] = []string{"eve", "ezra"}
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Result() != ResultPartial {
		t.Errorf("result %s (%v), want partial", rep.Result(), rep.Err)
	}
	if !hasPlan(rep, epsilon, false) {
		t.Errorf("epsilon dropped after a failed discovery: projects %v", rep.Projects)
	}
	if got := cl.users(epsilon); !reflect.DeepEqual(got, []string{"eve", "ezra"}) {
		t.Errorf("epsilon's executors = %v, want it still synced", got)
	}
	if len(rep.Provision.Orphaned) != 0 || value(m.ProjectsOrphaned) != 0 {
		t.Errorf("orphaned %v after a failed discovery", rep.Provision.Orphaned)
	}
	// A new term knows no discovery: a failure then keeps nothing.
	s2, _, _, _, _ := provisioningFixture(t)
	s2.provisioning.discoverer = fakeDiscoverer{err: errors.New("search timed out")}
	if rep := s2.Cycle(context.Background(), CycleOptions{}); hasPlan(rep, epsilon, false) || hasPlan(rep, epsilon, true) {
		t.Error("a fresh Pipeline invented discovered projects")
	}
}
