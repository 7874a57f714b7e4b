package controller

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

type failingStore struct{ memStore }

func (f *failingStore) Load(context.Context) (*model.StateSnapshot, error) {
	return nil, errors.New("connection refused")
}

// A store that cannot be read stops the cycle before any write: an empty
// window, no approvals and no last known members are never assumed.
func TestUnreadableStoreWritesNothing(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil).WithState(&failingStore{})
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || !rep.Fatal || len(cl.writes) != 0 {
		t.Errorf("err=%v fatal=%v writes=%v", rep.Err, rep.Fatal, cl.writes)
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
	dir.failing["runai-alpha-viewers"] = true
	dir.members["runai-viewers"] = nil
	dir.members["runai-alpha-executors"] = []string{"alice", "bob", "dave"}
	s2 := New(testConfig(), dir, cl, zap.NewNop(), nil).WithState(store)
	s2.Cycle(context.Background(), CycleOptions{})
	if got := cl.users(model.ViewerRef()); !reflect.DeepEqual(got, []string{"vera"}) {
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
	dir.members["runai-viewers"] = []string{"gina", "gus"} // something to write
	s.Cycle(context.Background(), CycleOptions{})
	if len(store.snap.Approvals) != 0 || len(store.snap.State.ApprovalsSeen) != 0 {
		t.Errorf("stale approval kept: %+v", store.snap)
	}
}
