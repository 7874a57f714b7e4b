package sync

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
)

// fakeDir is a directory for unit tests of the cycle's logic; the real
// directory is exercised by the integration tests.
type fakeDir struct {
	members map[string][]string // group -> members; absent means not found
	failing map[string]bool
	connErr error
}

func (f *fakeDir) Resolve(_ context.Context, names []string) (*ldapsrc.Result, error) {
	if f.connErr != nil {
		return nil, f.connErr
	}
	res := &ldapsrc.Result{Groups: map[string]*ldapsrc.Group{}, Skipped: map[string]int{}}
	for _, n := range names {
		g := &ldapsrc.Group{Name: n}
		if f.failing[n] {
			g.Err = errors.New("timeout")
		} else if m, ok := f.members[n]; ok {
			g.Found, g.Members = true, m
		}
		res.Groups[n] = g
	}
	return res, nil
}

// fakeCluster keeps bindings in memory, applying changes like kube.Client.
type fakeCluster struct {
	nss      []kube.Namespace
	bindings map[kube.Ref]*kube.Binding
	writes   []kube.Ref
	failOn   map[kube.Ref]bool
}

func (f *fakeCluster) Namespaces(context.Context) ([]kube.Namespace, error) { return f.nss, nil }

func (f *fakeCluster) Bindings(context.Context, string) (map[kube.Ref]*kube.Binding, error) {
	out := map[kube.Ref]*kube.Binding{}
	for k, v := range f.bindings {
		c := *v
		out[k] = &c
	}
	return out, nil
}

func (f *fakeCluster) Apply(_ context.Context, ch kube.Change, _ *kube.Binding) (*kube.Binding, error) {
	if f.failOn[ch.Ref] {
		return nil, errors.New("forbidden")
	}
	f.writes = append(f.writes, ch.Ref)
	cur := f.bindings[ch.Ref]
	if cur == nil {
		cur = &kube.Binding{Ref: ch.Ref, Exists: true, RoleRef: kube.ExpectedRoleRef(ch.Ref.Name), Annotations: map[string]string{}}
	}
	managed := kube.NewManaged(cur, ch.Add, ch.Remove)
	cur.Subjects = kube.NewSubjects(cur.Subjects, ch.Add, ch.Remove)
	cur.Managed = managed
	f.bindings[ch.Ref] = cur
	return cur, nil
}

func (f *fakeCluster) users(ref kube.Ref) []string {
	b := f.bindings[ref]
	if b == nil {
		return nil
	}
	u := b.Users()
	sort.Strings(u)
	return u
}

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Groups = testGroups
	return &cfg
}

func newFixture() (*fakeDir, *fakeCluster) {
	dir := &fakeDir{members: map[string][]string{
		"runai-alpha-executors": {"alice", "bob", "dave"},
		"runai-alpha-viewers":   {"vera"},
		"runai-beta-executors":  {"carol", "erin", "frank"},
		"runai-viewers":         {"gina"},
	}, failing: map[string]bool{}}
	cl := &fakeCluster{
		nss: []kube.Namespace{
			{Name: "runai-alpha", Labels: map[string]string{"runai/queue": "alpha"}},
			{Name: "runai-beta", Labels: map[string]string{"runai/queue": "beta"}},
		},
		bindings: map[kube.Ref]*kube.Binding{},
		failOn:   map[kube.Ref]bool{},
	}
	return dir, cl
}

func TestCycleCreatesThenIsIdle(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), NewMetrics("test"))
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatalf("cycle: %v", rep.Err)
	}
	if rep.Applied != 4 || len(cl.writes) != 4 {
		t.Fatalf("first cycle wrote %d bindings (%v), want 4", rep.Applied, cl.writes)
	}
	if got := cl.users(kube.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "bob", "carol", "dave", "erin", "frank"}) {
		t.Errorf("index map = %v", got)
	}
	if got := cl.users(kube.ViewerRef()); !reflect.DeepEqual(got, []string{"gina", "vera"}) {
		t.Errorf("viewer = %v", got)
	}
	cl.writes = nil
	rep = s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil || len(cl.writes) != 0 {
		t.Errorf("second cycle: err=%v writes=%v, want no writes", rep.Err, cl.writes)
	}
}

func TestCycleDryRunWritesNothing(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	rep := s.Cycle(context.Background(), CycleOptions{DryRun: true})
	if rep.Err != nil || len(cl.writes) != 0 || len(rep.Changes()) != 4 {
		t.Errorf("dry run: err=%v writes=%v changes=%d", rep.Err, cl.writes, len(rep.Changes()))
	}
}

func TestCycleFailedGroupRemovesNobody(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	// alpha's executors group now fails and bob left beta's group: alpha is
	// untouched, beta still syncs, the index map keeps alpha's last members.
	dir.failing["runai-alpha-executors"] = true
	dir.members["runai-beta-executors"] = []string{"carol", "erin"}
	cl.writes = nil
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil {
		t.Error("a failed group must fail the cycle")
	}
	if got := cl.users(kube.ExecutorRef("runai-alpha")); !reflect.DeepEqual(got, []string{"alice", "bob", "dave"}) {
		t.Errorf("alpha lost someone: %v", got)
	}
	if got := cl.users(kube.ExecutorRef("runai-beta")); !reflect.DeepEqual(got, []string{"carol", "erin"}) {
		t.Errorf("beta did not sync: %v", got)
	}
	if got := cl.users(kube.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "bob", "carol", "dave", "erin"}) {
		t.Errorf("index map = %v", got)
	}
}

func TestCycleDirectoryDownWritesNothing(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	s.Cycle(context.Background(), CycleOptions{})
	dir.connErr = errors.New("no directory server could be used")
	cl.writes = nil
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || len(cl.writes) != 0 {
		t.Errorf("err=%v writes=%v", rep.Err, cl.writes)
	}
}

func TestCycleWriteErrorDoesNotStopOthers(t *testing.T) {
	dir, cl := newFixture()
	cl.failOn[kube.ExecutorRef("runai-alpha")] = true
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || rep.Applied != 3 || len(rep.WriteErrors) != 1 {
		t.Errorf("err=%v applied=%d writeErrors=%v", rep.Err, rep.Applied, rep.WriteErrors)
	}
}

func TestCycleCancelledStartsNoWrite(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := s.Cycle(ctx, CycleOptions{})
	if rep.Err == nil || len(cl.writes) != 0 {
		t.Errorf("err=%v writes=%v", rep.Err, cl.writes)
	}
}
