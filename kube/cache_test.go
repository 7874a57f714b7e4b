package kube

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// The informers are exercised against a real kube-apiserver by the
// integration tests; this checks the Cache's own logic with client-go's
// fake clientset (which ignores field selectors, so it holds only managed
// names here).

type seen struct {
	mu       sync.Mutex
	bindings []string
	ns       []string
}

func (s *seen) binding(ref model.Ref, b *model.Binding, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := "deleted"
	if b != nil {
		state = "users=" + joinUsers(b)
	}
	s.bindings = append(s.bindings, ref.String()+" "+state)
}

func joinUsers(b *model.Binding) string {
	out := ""
	for i, u := range b.Users() {
		if i > 0 {
			out += ","
		}
		out += u
	}
	return out
}

func (s *seen) get() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bindings...), append([]string(nil), s.ns...)
}

func TestCacheReadsFromInformersAndReportsChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding, Namespace: "runai-a", ResourceVersion: "10"},
		RoleRef: ExpectedRoleRef(model.ExecutorBinding), Subjects: []rbacv1.Subject{UserSubject("alice")}}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: model.ViewerBinding, ResourceVersion: "11"},
		RoleRef: ExpectedRoleRef(model.ViewerBinding)}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "runai-a", Labels: map[string]string{"runai/queue": "a"}}}
	cs := fake.NewClientset(rb, crb, ns)
	c := &Client{cs: cs, Stats: &RequestStats{byVerb: map[string]*atomic.Int64{}}}
	var s seen
	ca := NewCache(c, "runai", Handlers{Binding: s.binding, Namespace: func(_, cur *model.Namespace) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur != nil {
			s.ns = append(s.ns, cur.Name)
		}
	}})
	if ca.Synced() || ca.BindingsInMemory() || c.BindingsInMemory() {
		t.Fatal("synced (or bindings in memory) before start, or the Client's in memory")
	}
	startAndSync(ctx, t, ca)

	if !ca.BindingsInMemory() {
		t.Error("synced, but the bindings are not read from memory")
	}
	before := len(cs.Actions())
	all, err := ca.Bindings(ctx, "runai")
	if err != nil {
		t.Fatal(err)
	}
	nss, _ := ca.Namespaces(ctx)
	a, _ := ca.Get(ctx, model.ExecutorRef("runai-a"))
	missing, _ := ca.Get(ctx, model.IndexMapRef("runai"))
	if after := len(cs.Actions()); after != before {
		t.Errorf("reads after sync made %d API requests: %v", after-before, cs.Actions()[before:])
	}
	if len(all) != 2 || len(nss) != 1 || !a.Exists || joinUsers(a) != "alice" || missing.Exists {
		t.Fatalf("bindings=%v namespaces=%v a=%+v missing=%+v", all, nss, a, missing)
	}
	if b, _ := s.get(); len(b) != 0 {
		t.Errorf("initial list reported as changes: %v", b)
	}

	// A hand edit and a deletion are reported.
	rb2 := rb.DeepCopy()
	rb2.ResourceVersion = "12"
	rb2.Subjects = nil
	if _, err := cs.RbacV1().RoleBindings("runai-a").Update(ctx, rb2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.RbacV1().ClusterRoleBindings().Delete(ctx, model.ViewerBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "runai-b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, n := s.get()
		if len(b) == 2 && len(n) == 1 {
			want := map[string]bool{"RoleBinding/runai-a/runai-job-executor-manual users=": true, "ClusterRoleBinding/runai-job-viewer-manual deleted": true}
			for _, e := range b {
				if !want[e] {
					t.Errorf("unexpected change %q", e)
				}
			}
			if n[0] != "runai-b" {
				t.Errorf("namespace change %v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes seen: %v %v", b, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewerPrefersTheLaterWrite(t *testing.T) {
	cached := &model.Binding{Exists: true, ResourceVersion: "99"}
	written := &model.Binding{Exists: true, ResourceVersion: "100"}
	if newer(cached, written) != written {
		t.Error("a write newer than the cache must win")
	}
	if newer(&model.Binding{Exists: true, ResourceVersion: "101"}, written).ResourceVersion != "101" {
		t.Error("a cache newer than the write must win")
	}
	if newer(&model.Binding{}, written) != written {
		t.Error("a binding we created and the informer has not seen must be returned")
	}
	if newer(&model.Binding{Exists: true, ResourceVersion: "abc"}, written).ResourceVersion != "abc" {
		t.Error("an incomparable version keeps the informer's state")
	}
}

// stubInformer is an informer at a fixed sync point with a given store.
type stubInformer struct {
	cache.SharedIndexInformer
	rv    string
	store cache.Store
}

func (s *stubInformer) LastSyncResourceVersion() string { return s.rv }
func (s *stubInformer) GetStore() cache.Store           { return s.store }

func TestSweepReportsAWrittenBindingDeletedUnseen(t *testing.T) {
	viewer := &stubInformer{rv: "100", store: cache.NewStore(cache.MetaNamespaceKeyFunc)}
	var reported []string
	ca := &Cache{viewer: viewer, writes: newOwnWrites(),
		h: Handlers{Binding: func(ref model.Ref, b *model.Binding, _ string) {
			reported = append(reported, fmt.Sprintf("%s %v", ref, b == nil))
		}}}
	ca.synced.Store(true)
	ref := model.ViewerRef()
	// We created it at 120; the informer is at 100 (its watch is down).
	ca.writes.record(ref, &model.Binding{Ref: ref, Exists: true, ResourceVersion: "120"}, true)
	if b, _ := ca.Get(context.Background(), ref); !b.Exists {
		t.Fatal("our own write must be visible before the informer sees it")
	}
	ca.sweep()
	ca.sweep()
	if len(reported) != 0 || len(ca.writes.written) != 1 {
		t.Fatalf("reported %v before the informer caught up", reported)
	}
	// The informer re-lists at 130 and the binding is not there: it was
	// deleted while the watch was down. Reported after two sweeps.
	viewer.rv = "130"
	if b, _ := ca.Get(context.Background(), ref); b.Exists {
		t.Error("a binding the informer no longer holds is still read as existing")
	}
	ca.sweep()
	if len(reported) != 0 {
		t.Fatalf("reported after one sweep: %v", reported)
	}
	ca.sweep()
	if len(reported) != 1 || reported[0] != "ClusterRoleBinding/runai-job-viewer-manual true" || len(ca.writes.written) != 0 {
		t.Fatalf("reported %v, written %v", reported, ca.writes.written)
	}
	// A binding the informer holds is just forgotten.
	ca.writes.record(ref, &model.Binding{Ref: ref, Exists: true, ResourceVersion: "140"}, true)
	viewer.rv = "150"
	_ = viewer.store.Add(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: model.ViewerBinding, ResourceVersion: "140"}})
	ca.sweep()
	ca.sweep()
	if len(reported) != 1 || len(ca.writes.written) != 0 {
		t.Errorf("reported %v, written %v", reported, ca.writes.written)
	}
}
