package controller

import (
	"context"
	"errors"
	"fmt"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

type failingStore struct{ memStore }

func (f *failingStore) Load(context.Context) (*model.StateSnapshot, error) {
	return nil, errors.New("connection refused")
}

func (f *failingStore) Approvals(context.Context) (map[string]string, error) {
	return nil, errors.New("connection refused")
}

// A store that cannot be read stops the cycle before any write: an empty
// window, no approvals and no last known members are never assumed.
func TestUnreadableStoreWritesNothing(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil).WithState(&failingStore{})
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || !rep.Fatal || len(cl.Writes) != 0 {
		t.Errorf("err=%v fatal=%v writes=%v", rep.Err, rep.Fatal, cl.Writes)
	}
}

// A new term (restart, new leader) reads the last known members back from
// the store: a group that fails then keeps only its own users.
func TestLastKnownMembersSurviveANewTerm(t *testing.T) {
	dir, cl := newFixture()
	store := &memStore{}
	s := New(testConfig(), dir, cl, zap.NewNop(), nil).WithState(store)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	// New term; alpha's viewers group fails; gina leaves the global group.
	dir.Failing["runai-alpha-viewers"] = true
	dir.Members["runai-viewers"] = nil
	dir.Members["runai-alpha-executors"] = []string{"alice", "bob", "dave"}
	s2 := New(testConfig(), dir, cl, zap.NewNop(), nil).WithState(store)
	s2.Cycle(context.Background(), CycleOptions{})
	if got := cl.Users(model.ViewerRef()); !reflect.DeepEqual(got, []string{"vera"}) {
		t.Errorf("viewer = %v, want vera kept (alpha's last known) and gina removed", got)
	}
}

// An approval nobody used within the guard's window is removed from the
// store, so it never approves the same burst brought back later.
func TestStaleApprovalsExpire(t *testing.T) {
	dir, cl := newFixture()
	store := &memStore{}
	store.snap.Approvals = map[string]string{"sha256:00000000000000aa": "old"}
	s := New(testConfig(), dir, cl, zap.NewNop(), nil).WithState(store)
	s.Cycle(context.Background(), CycleOptions{})
	seen, ok := store.snap.State.ApprovalsSeen["sha256:00000000000000aa"]
	if !ok || len(store.snap.Approvals) != 1 {
		t.Fatalf("approval not noted: %+v", store.snap)
	}
	store.snap.State.ApprovalsSeen["sha256:00000000000000aa"] = seen.Add(-2 * time.Hour)
	dir.Members["runai-viewers"] = []string{"gina", "gus"} // something to write
	s.Cycle(context.Background(), CycleOptions{})
	if len(store.snap.Approvals) != 0 || len(store.snap.State.ApprovalsSeen) != 0 {
		t.Errorf("stale approval kept: %+v", store.snap)
	}
}

// countingStore counts writes and, like a full store (model.EncodeState),
// drops the member lists named in drop: the group's or binding's list is
// then not kept, only its Dropped mark.
type countingStore struct {
	memStore
	saves int
	drop  map[string]bool // "group NAME", "binding REF"
}

func (c *countingStore) Save(ctx context.Context, st *model.State, consumed []string) ([]string, error) {
	c.saves++
	var dropped []string
	for n, g := range st.Groups {
		if c.drop["group "+n] && len(g.Members) > 0 {
			g.Members, g.Dropped = nil, true
			dropped = append(dropped, "group "+n)
		}
	}
	for n, b := range st.Bindings {
		if c.drop["binding "+n] && len(b.Granted) > 0 {
			b.Granted, b.Dropped = nil, true
			dropped = append(dropped, "binding "+n)
		}
	}
	_, err := c.memStore.Save(ctx, st, consumed)
	return dropped, err
}

// A cycle over unchanged inputs writes nothing to the store (issue 26:
// zero writes in steady state), also with lists the store dropped for
// size, members listed in another order, an empty group and a sharded
// binding; a real change is still saved.
func TestSteadyStateDoesNotWriteTheStore(t *testing.T) {
	dir, cl := newFixture()
	var viewers []string
	for i := range 150 {
		viewers = append(viewers, fmt.Sprintf("v%03d", i))
	}
	dir.Members["runai-viewers"] = viewers
	dir.Members["runai-beta-viewers"] = []string{}
	cfg := testConfig()
	cfg.Kubernetes.BindingShardBytes = 4096
	cfg.Guard.MaxAddCount = 0
	store := &countingStore{drop: map[string]bool{"group runai-viewers": true, "binding " + model.ViewerRef().String(): true}}
	s := New(cfg, dir, cl, zap.NewNop(), nil).WithState(store)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if store.saves != 1 || len(cl.Users(model.ShardRef(model.ViewerRef(), 1))) == 0 {
		t.Fatalf("first cycle: %d saves, viewer shard 1 %v; want 1 save and a sharded viewer binding", store.saves, cl.Users(model.ShardRef(model.ViewerRef(), 1)))
	}
	dir.Members["runai-alpha-executors"] = []string{"dave", "bob", "alice"} // same members, another order
	for i := range 2 {
		store.saves = 0
		writes := len(cl.Writes)
		if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
			t.Fatal(rep.Err)
		}
		if store.saves != 0 || len(cl.Writes) != writes {
			t.Errorf("steady cycle %d: %d store saves, bindings written %v; want none", i+2, store.saves, cl.Writes[writes:])
		}
	}
	// A new term reads the store back: still nothing to write.
	s2 := New(cfg, dir, cl, zap.NewNop(), nil).WithState(store)
	store.saves = 0
	if rep := s2.Cycle(context.Background(), CycleOptions{}); rep.Err != nil || store.saves != 0 {
		t.Errorf("new term over the same inputs: err %v, %d store saves; want none", rep.Err, store.saves)
	}
	// A real change is saved before the binding is written.
	dir.Members["runai-viewers"] = append(viewers[1:], "gus")
	store.saves = 0
	if rep := s2.Cycle(context.Background(), CycleOptions{}); rep.Err != nil || store.saves != 1 {
		t.Errorf("a changed group: err %v, %d store saves; want 1", rep.Err, store.saves)
	}
}

// Drift detection plans with the store as the last path left it, not as
// the last cycle read it: a user a repair added on an approval, then
// removed by hand together with the binding's ownership record, is queued
// for repair (with the cycle's snapshot, the addition looked like a new
// burst, held, and the drift waited for the next cycle).
func TestDriftSeesTheStoreAsTheLastRepairLeftIt(t *testing.T) {
	dir, cl := newFixture()
	ch := &controllertest.Changes{Server: "dc1", USN: 100}
	cfg := testConfig()
	cfg.Guard.MaxAddCount = 3
	store := &memStore{}
	s := New(cfg, dir, cl, zap.NewNop(), nil).WithChanges(ch).WithState(store)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	// carl joins: a fourth addition through the group within the window.
	dir.Members["runai-alpha-executors"] = []string{"alice", "bob", "carl", "dave"}
	ch.Change("runai-alpha-executors")
	_, rep := s.Poll(context.Background(), CycleOptions{})
	var key string
	for _, p := range rep.Plans {
		if p.Ref == alphaRef {
			key = p.ApprovalKey
		}
	}
	if key == "" || slices.Contains(cl.Users(alphaRef), "carl") {
		t.Fatalf("carl's addition not held: %v", cl.Users(alphaRef))
	}
	// Approved in the store: the loop's next poll asks for approvals
	// first, which gives the repair that adds him.
	store.snap.Approvals = map[string]string{key: "ok"}
	refs, _ := s.Approvals(context.Background())
	if rep := s.Repair(context.Background(), refs, CycleOptions{}); rep.Err != nil || !slices.Contains(cl.Users(alphaRef), "carl") {
		t.Fatalf("approved repair: %v, alpha = %v", rep.Err, cl.Users(alphaRef))
	}
	// A namespace admin takes carl out, and the ownership record with him.
	b := cl.Edit(alphaRef, func(b *model.Binding) {
		dropUser("carl")(b)
		b.Record, b.Managed = "", nil
		delete(b.Annotations, model.ManagedAnnotation)
	})
	queueBinding(s, alphaRef, b, b.ResourceVersion)
	if p := pending(s); !reflect.DeepEqual(p, []model.Ref{alphaRef}) {
		t.Fatalf("pending = %v, want alpha: carl was granted and approved", p)
	}
}

// loadCountingStore counts the store's reads.
type loadCountingStore struct {
	memStore
	loads int
}

func (l *loadCountingStore) Load(ctx context.Context) (*model.StateSnapshot, error) {
	l.loads++
	return l.memStore.Load(ctx)
}

func (l *loadCountingStore) Approvals(ctx context.Context) (map[string]string, error) {
	l.loads++
	return l.memStore.Approvals(ctx)
}

// Polls read the store for approvals only while something is held: a group
// pin that resolves to its entry again, or a held binding whose project is
// gone, is no longer waited for.
func TestApprovalsArePolledOnlyWhileSomethingIsHeld(t *testing.T) {
	dir, cl := newFixture()
	dir.IDs = map[string]string{"runai-viewers": "guid-1"}
	store := &loadCountingStore{}
	s := New(testConfig(), dir, cl, zap.NewNop(), nil).WithState(store)
	cycle := func() {
		t.Helper()
		if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Fatal {
			t.Fatal(rep.Err)
		}
	}
	polled := func() bool {
		before := store.loads
		s.guard.pollApprovals(context.Background())
		return store.loads > before
	}
	cycle()
	if polled() {
		t.Fatal("nothing held, the store read")
	}
	dir.IDs["runai-viewers"] = "guid-2" // a same-named group elsewhere
	cycle()
	if !polled() {
		t.Fatal("group pin held, the store not read for its approval")
	}
	dir.IDs["runai-viewers"] = "guid-1" // the group is the pinned one again
	cycle()
	if polled() {
		t.Error("pin released, the store still read every poll")
	}

	// Eight of ten leave alpha's group (beta's keeps them in the index
	// map): held on alpha's binding alone; then the project goes.
	many := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"}
	dir.Members["runai-alpha-executors"] = many
	dir.Members["runai-beta-executors"] = many
	cycle()
	dir.Members["runai-alpha-executors"] = many[:2]
	cycle()
	if !polled() {
		t.Fatal("removals held, the store not read for their approval")
	}
	cl.NSs = cl.NSs[1:] // runai-alpha is no project any more
	cycle()
	if polled() {
		t.Error("the held binding's project is gone, the store still read every poll")
	}
}
