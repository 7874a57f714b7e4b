package controller

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// fakeDir is a directory for unit tests of the cycle's logic; the real
// directory is exercised by the integration tests.
type fakeDir struct {
	members map[string][]string // group -> members; absent means not found
	failing map[string]bool
	// ids are the groups' stable identities (objectGUID), if any.
	ids      map[string]string
	connErr  error
	resolves int
	// asked records the names of every Resolve.
	asked [][]string
}

// dnOf is the fake directory's normalised DN of a group or user.
func dnOf(name string) string { return "cn=" + name }

func (f *fakeDir) Resolve(_ context.Context, names []string) (*ldapsrc.Result, error) {
	f.resolves++
	f.asked = append(f.asked, append([]string(nil), names...))
	if f.connErr != nil {
		return nil, f.connErr
	}
	res := &ldapsrc.Result{Groups: map[string]*model.Group{}, Skipped: map[string]int{}}
	for _, n := range names {
		g := &model.Group{Name: n}
		if f.failing[n] {
			g.Err = errors.New("timeout")
		} else if m, ok := f.members[n]; ok {
			g.Found, g.Members = true, m
			if id := f.ids[n]; id != "" {
				g.Identity, g.DN = id, dnOf(n)
			}
			g.Reached = []string{dnOf(n)}
			for _, u := range m {
				g.Reached = append(g.Reached, dnOf(u))
			}
		}
		res.Groups[n] = g
	}
	return res, nil
}

// fakeCluster keeps bindings in memory, applying changes like kube.Client,
// with a resourceVersion that grows with every write.
type fakeCluster struct {
	sync.Mutex
	nss      []model.Namespace
	bindings map[model.Ref]*model.Binding
	writes   []model.Ref
	failOn   map[model.Ref]bool
	rv       int
	reads    int
}

func (f *fakeCluster) Namespaces(context.Context) ([]model.Namespace, error) {
	f.Lock()
	defer f.Unlock()
	f.reads++
	return append([]model.Namespace(nil), f.nss...), nil
}

func (f *fakeCluster) Bindings(context.Context, string) (map[model.Ref]*model.Binding, error) {
	f.Lock()
	defer f.Unlock()
	f.reads++
	out := map[model.Ref]*model.Binding{}
	for k, v := range f.bindings {
		out[k] = v.Copy()
	}
	return out, nil
}

func (f *fakeCluster) Get(_ context.Context, ref model.Ref) (*model.Binding, error) {
	f.Lock()
	defer f.Unlock()
	f.reads++
	if b, ok := f.bindings[ref]; ok {
		return b.Copy(), nil
	}
	return &model.Binding{Ref: ref}, nil
}

func (f *fakeCluster) Apply(_ context.Context, ch model.Change, _ *model.Binding) (*model.Binding, error) {
	f.Lock()
	defer f.Unlock()
	if f.failOn[ch.Ref] {
		return nil, errors.New("forbidden")
	}
	f.writes = append(f.writes, ch.Ref)
	cur := f.bindings[ch.Ref]
	if cur == nil {
		cur = &model.Binding{Ref: ch.Ref, Exists: true, UID: "uid-" + ch.Ref.String(), RoleRef: model.ExpectedRoleRef(ch.Ref.Name), Annotations: map[string]string{}}
	}
	managed := model.NewManaged(cur, ch)
	cur.Subjects = model.NewSubjects(cur.Subjects, ch.Add, ch.Remove)
	cur.Managed = managed
	for _, a := range ch.DropAnnotations {
		delete(cur.Annotations, a)
	}
	f.rv++
	cur.ResourceVersion = strconv.Itoa(f.rv)
	f.bindings[ch.Ref] = cur
	return cur.Copy(), nil
}

// edit changes a binding the way a human would, bumping its version, and
// returns the new state as an informer would deliver it.
func (f *fakeCluster) edit(ref model.Ref, fn func(b *model.Binding)) *model.Binding {
	f.Lock()
	defer f.Unlock()
	b := f.bindings[ref]
	fn(b)
	f.rv++
	b.ResourceVersion = strconv.Itoa(f.rv)
	return b.Copy()
}

func (f *fakeCluster) remove(ref model.Ref) string {
	f.Lock()
	defer f.Unlock()
	delete(f.bindings, ref)
	f.rv++
	return strconv.Itoa(f.rv)
}

func (f *fakeCluster) users(ref model.Ref) []string {
	f.Lock()
	defer f.Unlock()
	b := f.bindings[ref]
	if b == nil {
		return nil
	}
	u := b.Users()
	sort.Strings(u)
	return u
}

var testGroups = config.Groups{
	Executors:     []string{"runai-{project}-executors"},
	Viewers:       []string{"runai-{project}-viewers"},
	GlobalViewers: []string{"runai-viewers"},
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
		nss: []model.Namespace{
			{Name: "runai-alpha", Labels: map[string]string{"runai/queue": "alpha"}},
			{Name: "runai-beta", Labels: map[string]string{"runai/queue": "beta"}},
		},
		bindings: map[model.Ref]*model.Binding{},
		failOn:   map[model.Ref]bool{},
	}
	return dir, cl
}

func TestCycleCreatesThenIsIdle(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), metrics.NewMetrics("test"))
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatalf("cycle: %v", rep.Err)
	}
	if rep.Applied != 4 || len(cl.writes) != 4 {
		t.Fatalf("first cycle wrote %d bindings (%v), want 4", rep.Applied, cl.writes)
	}
	if got := cl.users(model.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "bob", "carol", "dave", "erin", "frank"}) {
		t.Errorf("index map = %v", got)
	}
	if got := cl.users(model.ViewerRef()); !reflect.DeepEqual(got, []string{"gina", "vera"}) {
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
	if got := cl.users(model.ExecutorRef("runai-alpha")); !reflect.DeepEqual(got, []string{"alice", "bob", "dave"}) {
		t.Errorf("alpha lost someone: %v", got)
	}
	if got := cl.users(model.ExecutorRef("runai-beta")); !reflect.DeepEqual(got, []string{"carol", "erin"}) {
		t.Errorf("beta did not sync: %v", got)
	}
	if got := cl.users(model.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "bob", "carol", "dave", "erin"}) {
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
	cl.failOn[model.ExecutorRef("runai-alpha")] = true
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

// Leftovers are reported per binding and adopted users recorded by a
// metadata-only write; an unreadable ownership record is that binding's
// error only: the cycle succeeds and the metric names the reason.
func TestCycleOwnershipReporting(t *testing.T) {
	dir, cl := newFixture()
	betaRef := model.ExecutorRef("runai-beta")
	cl.bindings[alphaRef] = &model.Binding{Ref: alphaRef, Exists: true, ResourceVersion: "1", RoleRef: model.ExpectedRoleRef(model.ExecutorBinding),
		Subjects: []model.Subject{model.UserSubject("alice"), model.UserSubject("bob"), model.UserSubject("dave"), model.UserSubject("zed")}, Annotations: map[string]string{}}
	cl.bindings[betaRef] = &model.Binding{Ref: betaRef, Exists: true, ResourceVersion: "1", RoleRef: model.ExpectedRoleRef(model.ExecutorBinding),
		Subjects: []model.Subject{model.UserSubject("carol")}, ManagedErr: errors.New("bad record"),
		Annotations: map[string]string{model.ManagedAnnotation: "[\"carol"}}
	m := metrics.NewMetrics("test")
	s := New(testConfig(), dir, cl, zap.NewNop(), m)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatalf("an unreadable record failed the cycle: %v", rep.Err)
	}
	if got := testCounter(t, m, "runai_ldap_sync_binding_leftover_subjects", `namespace="runai-alpha"`); got != 1 {
		t.Errorf("leftover gauge = %v, want 1 (zed)", got)
	}
	if got := testCounter(t, m, "runai_ldap_sync_binding_sync_errors", `reason="ownership_record"`); got != 1 {
		t.Errorf("ownership_record error gauge = %v", got)
	}
	if got := cl.bindings[alphaRef].Managed; !reflect.DeepEqual(got, []string{"alice", "bob", "dave"}) {
		t.Errorf("alpha record = %v: granted users adopted, zed not", got)
	}
	if got := cl.users(betaRef); !reflect.DeepEqual(got, []string{"carol"}) {
		t.Errorf("beta, with an unreadable record, was written: %v", got)
	}
}
