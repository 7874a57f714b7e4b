package kube

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
)

// projectScope is the daemon's scope in short: namespaces labelled
// runai/queue, reading only that label.
var projectScope = model.Scope{
	Namespace:       func(_ string, labels map[string]string) bool { _, ok := labels["runai/queue"]; return ok },
	NamespaceLabels: []string{"runai/queue"},
}

func bulkyBinding(ns, name string, labels map[string]string) *rbacv1.RoleBinding {
	big := strings.Repeat("x", 64<<10)
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, ResourceVersion: "5",
			Annotations:   map[string]string{model.ManagedAnnotation: `["` + big + `"]`, reducedAnnotation: "true", "other": big},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		RoleRef:  ExpectedRoleRef(model.ExecutorBinding),
		Subjects: []rbacv1.Subject{UserSubject("mallory"), UserSubject(big)},
	}
}

func TestCacheKeepsOnlyTheScopeWhole(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shard := map[string]string{model.ShardOfLabel: model.ExecutorBinding}
	objs := []*rbacv1.RoleBinding{
		bulkyBinding("runai-a", model.ExecutorBinding, nil),
		bulkyBinding("runai-a", model.ExecutorBinding+"-1", shard),
		bulkyBinding("team", model.ExecutorBinding, nil),
		bulkyBinding("team", model.ExecutorBinding+"-2", shard),
		bulkyBinding("team", "anything", shard),
		bulkyBinding("runai-a", "anything", shard),
	}
	cs := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "runai-a", Labels: map[string]string{"runai/queue": "a", "big": strings.Repeat("y", 63)},
			Annotations: map[string]string{"bomb": strings.Repeat("z", 200<<10)}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}},
	)
	for _, o := range objs {
		if _, err := cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ca := startScopedCache(ctx, t, cs)

	// What the informers hold. (The fake ignores field selectors: the
	// executor informer sees every RoleBinding, and keeps none it does not
	// manage.)
	for _, inf := range ca.bindingInfs {
		for _, o := range inf.GetStore().List() {
			rb, ok := o.(*rbacv1.RoleBinding)
			if !ok {
				continue
			}
			ref := model.Ref{Kind: model.KindRoleBinding, Namespace: rb.Namespace, Name: rb.Name}
			whole := ca.informerFor(ref) == inf && rb.Namespace == "runai-a"
			if len(rb.ManagedFields) > 0 {
				t.Errorf("%s keeps managedFields", ref)
			}
			if whole {
				if isReduced(rb) || len(rb.Subjects) != 2 || rb.Annotations[model.ManagedAnnotation] == "" {
					t.Errorf("%s in a project namespace is not kept whole: %+v", ref, rb.ObjectMeta.Annotations[reducedAnnotation])
				}
				continue
			}
			if !isReduced(rb) || len(rb.Subjects) > 0 || len(rb.Annotations) != 1 || len(rb.Labels) > 0 {
				t.Errorf("%s outside the scope keeps more than its identity: %d subjects, %d annotations", ref, len(rb.Subjects), len(rb.Annotations))
			}
		}
	}
	o, _, _ := ca.ns.GetStore().GetByKey("runai-a")
	if ns := o.(*corev1.Namespace); len(ns.Labels) != 1 || len(ns.Annotations) > 0 {
		t.Errorf("namespace keeps %v and %d annotations", ns.Labels, len(ns.Annotations))
	}

	all, err := ca.Bindings(ctx, "runai")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[model.ExecutorRef("runai-a")] == nil || all[model.ShardRef(model.ExecutorRef("runai-a"), 1)] == nil {
		t.Errorf("Bindings = %v, want the project's binding and its shard only", all)
	}
	// One outside the scope is read from the API when asked for.
	b, err := ca.Get(ctx, model.ExecutorRef("team"))
	if err != nil || len(b.Subjects) != 2 {
		t.Errorf("Get outside the scope: %v, %v", b, err)
	}

	// team becomes a project: its bindings are read whole from the API.
	if _, err := cs.CoreV1().Namespaces().Update(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team", Labels: map[string]string{"runai/queue": "t"}}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !ca.inScope("team") {
		if time.Now().After(deadline) {
			t.Fatal("the namespace informer never saw the label")
		}
		time.Sleep(10 * time.Millisecond)
	}
	all, err = ca.Bindings(ctx, "runai")
	if err != nil {
		t.Fatal(err)
	}
	got := all[model.ExecutorRef("team")]
	if len(all) != 4 || got == nil || len(got.Subjects) != 2 || all[model.ShardRef(model.ExecutorRef("team"), 2)] == nil {
		t.Errorf("after labelling: %d bindings, team's %+v", len(all), got)
	}
}

// The Client drops bindings outside the scope as it reads each page.
func TestClientBindingsKeepOnlyTheScope(t *testing.T) {
	ctx := context.Background()
	shard := map[string]string{model.ShardOfLabel: model.ExecutorBinding}
	bindings := []*rbacv1.RoleBinding{bulkyBinding("runai-a", model.ExecutorBinding, nil), bulkyBinding("team", model.ExecutorBinding, nil),
		bulkyBinding("team", model.ExecutorBinding+"-1", shard), bulkyBinding("runai-a", model.ExecutorBinding+"-1", shard),
		bulkyBinding("runai-a", "anything", shard)}
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "runai-a", Labels: map[string]string{"runai/queue": "a", "other": "x"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}},
	}
	var metas []runtime.Object
	for _, rb := range bindings {
		objs = append(objs, rb)
		metas = append(metas, &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"}, ObjectMeta: rb.ObjectMeta})
	}
	cs := fake.NewClientset(objs...)
	scheme := metadatafake.NewTestScheme()
	metav1.AddMetaToScheme(scheme)
	scheme.AddKnownTypeWithName(rbacv1.SchemeGroupVersion.WithKind("RoleBinding"), &metav1.PartialObjectMetadata{})
	scheme.AddKnownTypeWithName(rbacv1.SchemeGroupVersion.WithKind("RoleBindingList"), &metav1.PartialObjectMetadataList{})
	md := metadatafake.NewSimpleMetadataClient(scheme, metas...)
	c := &Client{cs: cs, md: md, Stats: &RequestStats{byVerb: map[string]*atomic.Int64{}}, scope: projectScope}
	all, err := c.Bindings(ctx, "runai")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[model.ExecutorRef("runai-a")] == nil || all[model.ShardRef(model.ExecutorRef("runai-a"), 1)] == nil {
		t.Errorf("Bindings = %v", all)
	}
	nss, _ := c.Namespaces(ctx)
	if len(nss) != 2 || len(nss[0].Labels)+len(nss[1].Labels) != 1 {
		t.Errorf("namespaces keep labels outside the scope: %+v", nss)
	}
	// Both hold an executor binding (read as metadata): a project found by
	// label stays where its binding is.
	for _, ns := range nss {
		if !ns.HoldsExecutor {
			t.Errorf("namespace %s holds %s, Namespaces says it does not", ns.Name, model.ExecutorBinding)
		}
	}
	// Only executor bindings count: without them no namespace holds one.
	md2 := metadatafake.NewSimpleMetadataClient(scheme, metas[2:]...)
	c2 := &Client{cs: cs, md: md2, Stats: &RequestStats{byVerb: map[string]*atomic.Int64{}}, scope: projectScope}
	nss, _ = c2.Namespaces(ctx)
	for _, ns := range nss {
		if ns.HoldsExecutor {
			t.Errorf("namespace %s holds no %s, Namespaces says it does", ns.Name, model.ExecutorBinding)
		}
	}
}

// apiGets counts the fake's GETs of RoleBindings.
func apiGets(cs *fake.Clientset) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "get" && a.GetResource().Resource == "rolebindings" {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, or fails the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A binding the informer reduced before its namespace became a project's
// is read from the API once, not at every cycle until it changes; it is
// read again when the informer holds a newer state, and forgotten (never
// kept whole) once its namespace leaves the scope.
func TestCacheReadsAPromotedBindingOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	team := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}
	cs := fake.NewClientset(team, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding, Namespace: "team", ResourceVersion: "5"},
		RoleRef: ExpectedRoleRef(model.ExecutorBinding), Subjects: []rbacv1.Subject{UserSubject("alice")}})
	ca := startScopedCache(ctx, t, cs)
	ref := model.ExecutorRef("team")
	label := func(labels map[string]string) {
		t.Helper()
		ns := team.DeepCopy()
		ns.Labels = labels
		if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(want string) {
		t.Helper()
		all, err := ca.Bindings(ctx, "runai")
		if err != nil {
			t.Fatal(err)
		}
		b, err := ca.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := all[ref]; got == nil || joinUsers(got) != want || joinUsers(b) != want {
			t.Fatalf("Bindings %v, Get %+v, want users %s", all, b, want)
		}
	}

	label(map[string]string{"runai/queue": "t"})
	waitFor(t, "the namespace informer sees the label", func() bool { return ca.inScope("team") })
	before := apiGets(cs)
	for range 3 {
		read("alice")
	}
	if n := apiGets(cs) - before; n != 1 {
		t.Errorf("three cycles read the promoted binding with %d GETs, want 1", n)
	}

	// A change reaches the informer, which now keeps the binding whole.
	rb, _ := cs.RbacV1().RoleBindings("team").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
	rb.ResourceVersion, rb.Subjects = "6", []rbacv1.Subject{UserSubject("bob")}
	if _, err := cs.RbacV1().RoleBindings("team").Update(ctx, rb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the informer keeps the changed binding whole", func() bool {
		o, ok, _ := ca.exec.GetStore().GetByKey(storeKey(ref))
		return ok && !isReduced(o)
	})
	before = apiGets(cs)
	read("bob")
	if n := apiGets(cs) - before; n != 0 {
		t.Errorf("reading a binding the informer holds whole made %d GETs", n)
	}
	kept := ca.promoted.len()
	if kept != 0 {
		t.Errorf("%d promoted bindings kept after the informer caught up", kept)
	}

	// Out of the scope and back: reduced again by a change while out, then
	// read once more, and nothing kept whole while out.
	label(nil)
	waitFor(t, "the namespace informer sees the label go", func() bool { return !ca.inScope("team") })
	rb.ResourceVersion, rb.Subjects = "7", []rbacv1.Subject{UserSubject("carol")}
	if _, err := cs.RbacV1().RoleBindings("team").Update(ctx, rb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the informer reduces the binding", func() bool {
		o, ok, _ := ca.exec.GetStore().GetByKey(storeKey(ref))
		return ok && isReduced(o) && o.(metav1.Object).GetResourceVersion() == "7"
	})
	if b, err := ca.Get(ctx, ref); err != nil || joinUsers(b) != "carol" {
		t.Fatalf("Get outside the scope: %+v, %v", b, err)
	}
	kept = ca.promoted.len()
	if kept != 0 {
		t.Errorf("a binding outside the scope is kept whole")
	}
	label(map[string]string{"runai/queue": "t"})
	waitFor(t, "the namespace informer sees the label again", func() bool { return ca.inScope("team") })
	before = apiGets(cs)
	read("carol")
	read("carol")
	if n := apiGets(cs) - before; n != 1 {
		t.Errorf("re-promoted binding read with %d GETs, want 1", n)
	}
	// Leaving the scope forgets it.
	label(nil)
	waitFor(t, "the promoted binding is forgotten", func() bool {
		return ca.promoted.len() == 0
	})
}

// startScopedCache starts a Cache of the project scope on cs and waits
// until its informers have synced.
func startScopedCache(ctx context.Context, t *testing.T, cs *fake.Clientset) *Cache {
	t.Helper()
	c := &Client{cs: cs, Stats: &RequestStats{byVerb: map[string]*atomic.Int64{}}, scope: projectScope}
	ca := NewCache(c, "runai", Handlers{})
	startAndSync(ctx, t, ca)
	return ca
}

// startAndSync starts ca and waits until its informers have synced.
func startAndSync(ctx context.Context, t *testing.T, ca *Cache) {
	t.Helper()
	if err := ca.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := ca.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
}

// A kept binding's subjects point their kind and API group at the
// constants (what the decoder allocated per subject is dropped); what they
// say is unchanged, and other kinds are left as they are.
func TestKeptSubjectsShareTheConstants(t *testing.T) {
	dup := func(s string) string { return strings.Clone(s) }
	subjects := []rbacv1.Subject{
		{APIGroup: dup(rbacv1.GroupName), Kind: dup(rbacv1.UserKind), Name: "alice"},
		{APIGroup: dup(rbacv1.GroupName), Kind: dup(rbacv1.GroupKind), Name: "oidc:admins"},
		{Kind: dup(rbacv1.ServiceAccountKind), Name: "ci", Namespace: "ml"},
		{APIGroup: "example.com", Kind: "Robot", Name: "r2"},
	}
	want := append([]rbacv1.Subject(nil), subjects...)
	for _, keep := range []any{
		&rbacv1.RoleBinding{Subjects: append([]rbacv1.Subject(nil), subjects...)},
		&rbacv1.ClusterRoleBinding{Subjects: append([]rbacv1.Subject(nil), subjects...)},
	} {
		var got []rbacv1.Subject
		switch o := reduceBinding(keep, true).(type) {
		case *rbacv1.RoleBinding:
			got = o.Subjects
		case *rbacv1.ClusterRoleBinding:
			got = o.Subjects
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%T: subjects %v, want %v", keep, got, want)
		}
		shared := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
		if !shared(got[0].Kind, rbacv1.UserKind) || !shared(got[1].Kind, rbacv1.GroupKind) || !shared(got[2].Kind, rbacv1.ServiceAccountKind) ||
			!shared(got[0].APIGroup, rbacv1.GroupName) || !shared(got[1].APIGroup, rbacv1.GroupName) {
			t.Errorf("%T: a kept subject's kind or API group is still its own copy", keep)
		}
	}
	// The model's copy of a listed binding (once, diff) shares them too.
	m := modelSubjects(subjects)
	if m[0].Kind != rbacv1.UserKind || m[0].Name != "alice" || m[3].Kind != "Robot" || m[3].APIGroup != "example.com" ||
		unsafe.StringData(m[0].Kind) != unsafe.StringData(rbacv1.UserKind) || unsafe.StringData(m[1].APIGroup) != unsafe.StringData(rbacv1.GroupName) {
		t.Errorf("model subjects %+v: want the same subjects, kinds and API groups the constants", m)
	}
}
