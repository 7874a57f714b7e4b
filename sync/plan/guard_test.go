package plan

import (
	"fmt"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// stored records a plan's guard state and used approval in a copy of the
// store, as the controller does after planning.
func stored(snap *model.StateSnapshot, p BindingPlan) *model.StateSnapshot {
	next := &model.StateSnapshot{State: model.State{Bindings: map[string]*model.BindingState{}}, Approvals: map[string]string{}}
	if snap != nil {
		maps.Copy(next.State.Bindings, snap.State.Bindings)
		maps.Copy(next.Approvals, snap.Approvals)
		next.State.Groups = snap.State.Groups
	}
	if p.State != nil {
		next.State.Bindings[p.Ref.String()] = p.State
	}
	delete(next.Approvals, p.UsedApproval)
	return next
}

func approvals(keys ...string) *model.StateSnapshot {
	s := &model.StateSnapshot{Approvals: map[string]string{}}
	for _, k := range keys {
		s.Approvals[k] = "test"
	}
	return s
}

func numbered(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	return out
}

// Approvals live in the store: an approval annotation on the binding (which
// the project's namespace admin may write) approves nothing and is
// removed; only the exact key in the store approves, and `once
// --approve-removals` approves the one binding it names.
func TestApprovalsLiveInTheStore(t *testing.T) {
	ten := numbered("u", 10)
	cur := binding(users(ten...), ten...)
	p := planFor(Desired{Ref: execRef, Users: ten[:1]}, cur, syncOpts(t0))
	if len(p.Held) != 9 || p.ApprovalKey == "" || len(p.Remove) > 0 {
		t.Fatalf("wipe not held: %+v", p)
	}
	key := p.ApprovalKey
	cur.Annotations[ApproveAnnotation] = key
	p = planFor(Desired{Ref: execRef, Users: ten[:1]}, cur, syncOpts(t0))
	if p.Approved || len(p.Remove) > 0 || p.StaleApproval != key || !reflect.DeepEqual(p.Writes[0].DropAnnotations, []string{ApproveAnnotation}) {
		t.Fatalf("annotation on the binding approved or was kept: %+v", p)
	}
	for _, wrong := range []string{"true", ApprovalKey(execRef, ten[1:2], nil), ApprovalKey(model.ExecutorRef("other"), ten[1:], nil)} {
		opts := syncOpts(t0)
		opts.State = approvals(wrong)
		if q := planFor(Desired{Ref: execRef, Users: ten[:1]}, cur, opts); q.Approved || q.UsedApproval != "" {
			t.Errorf("approval %q approved: %+v", wrong, q)
		}
	}
	opts := syncOpts(t0)
	opts.State = approvals(key)
	p = planFor(Desired{Ref: execRef, Users: ten[:1]}, cur, opts)
	if !p.Approved || len(p.Remove) != 9 || p.UsedApproval != key {
		t.Fatalf("stored key: %+v", p)
	}
	if len(p.State.History) != 0 {
		t.Errorf("approved removals counted in the window: %+v", p.State.History)
	}
	opts = syncOpts(t0)
	opts.Approve = model.ExecutorRef("other")
	if q := planFor(Desired{Ref: execRef, Users: ten[:1]}, cur, opts); q.Approved {
		t.Errorf("approving another binding approved this one")
	}
	opts.Approve = execRef
	if q := planFor(Desired{Ref: execRef, Users: ten[:1]}, cur, opts); !q.Approved || q.UsedApproval != "" {
		t.Errorf("approving this binding by name: %+v", q)
	}
}

// A group that brings a burst (a nested all-accounts group) is held, on
// creation as on an existing binding; another group's joiner is not.
func TestAdditionGuardHoldsOnlyTheBurst(t *testing.T) {
	opts := syncOpts(t0)
	opts.Guard.MaxAddCount = 20
	burst := append(numbered("d", 30), "vera")
	d := Desired{Ref: execRef, Users: append(numbered("d", 30), "vera", "zoe"),
		Sources: []Source{{"p1-viewers", burst}, {"p2-viewers", []string{"zoe"}}}}
	for name, cur := range map[string]*model.Binding{"existing": binding(nil), "created": nil} {
		p := planFor(d, cur, opts)
		if !eq(p.Add, []string{"zoe"}) || len(p.HeldAdd) != 31 || p.AddHoldReason != HoldTooManyAdd || !eq(p.HeldGroups, []string{"p1-viewers"}) {
			t.Errorf("%s: add=%v held=%d groups=%v", name, p.Add, len(p.HeldAdd), p.HeldGroups)
		}
		if name == "created" && !p.Create {
			t.Errorf("not created")
		}
		// A user granted by both a bursting and a calm group passes.
		d2 := d
		d2.Sources = append(d2.Sources, Source{"p3-viewers", []string{"d005"}})
		if q := planFor(d2, cur, opts); !eq(q.Add, []string{"d005", "zoe"}) {
			t.Errorf("%s: vouched-for user: %v", name, q.Add)
		}
	}
}

// The window is the store's: deleting the binding and letting it be
// recreated resets nothing, and additions through one group add up. The
// users the tool granted before come back freely: restoring access is no
// burst.
func TestAdditionWindowSurvivesDeletion(t *testing.T) {
	opts := syncOpts(t0)
	opts.Guard.MaxAddCount = 20
	fifteen := numbered("a", 15)
	d := Desired{Ref: execRef, Users: fifteen, Sources: []Source{{"g", fifteen}}}
	p := planFor(d, binding(nil), opts)
	if len(p.Add) != 15 || p.WindowAdded != 0 || !eq(p.State.Granted, fifteen) {
		t.Fatalf("first 15: %+v", p)
	}
	opts.State = stored(nil, p)
	opts.Now = t0.Add(10 * time.Minute)
	thirty := numbered("a", 30)
	d = Desired{Ref: execRef, Users: thirty, Sources: []Source{{"g", thirty}}}
	p = planFor(d, nil, opts) // deleted by the namespace admin
	if !eq(p.Add, fifteen) || !eq(p.HeldAdd, thirty[15:]) || p.WindowAdded != 15 || !p.Create {
		t.Fatalf("recreated binding: add=%v held=%v window=%d", p.Add, p.HeldAdd, p.WindowAdded)
	}
	if p.StateChanged {
		t.Errorf("re-grants changed the window: %+v", p.State)
	}
	opts.Now = t0.Add(2 * time.Hour)
	if p = planFor(d, nil, opts); len(p.HeldAdd) != 0 || len(p.Add) != 30 {
		t.Errorf("15 new through one group after the window: add %d held %d", len(p.Add), len(p.HeldAdd))
	}
}

// Entries are bounded: one per slot of the window, and per entry at most
// maxGroupsPerEntry groups (the rest count against every group).
func TestHistoryBounded(t *testing.T) {
	var h []HistoryEntry
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * 5 * time.Second)
		by := map[string]int{fmt.Sprintf("g%d", i): 1}
		h = windowOf(recordHistory(h, now, time.Hour, 1, by), now, time.Hour)
	}
	if len(h) > historySlots+1 {
		t.Errorf("%d entries kept", len(h))
	}
	for _, e := range h {
		if len(e.AddedBy) > maxGroupsPerEntry {
			t.Errorf("entry names %d groups", len(e.AddedBy))
		}
	}
	now := t0.Add(1000 * 5 * time.Second)
	if r, a := windowTotals(h); r != a || r < 700 {
		t.Errorf("window counts %d removed, %d added", r, a)
	}
	if n := addedThrough(h, "g999"); n < 1 {
		t.Errorf("a group folded into %q counts nothing: %d", model.AnyGroup, n)
	}
	if got := windowOf(h, now.Add(2*time.Hour), time.Hour); len(got) != 0 {
		t.Errorf("entries outlive the window: %d", len(got))
	}
}

// A failed group's last known members are kept: the others are removed.
func TestKeepHoldsOnlyTheFailedGroupsUsers(t *testing.T) {
	cur := binding(users("a", "b", "c", "d"), "a", "b", "c", "d")
	opts := syncOpts(t0)
	opts.Guard.MaxRemovePercent = 100
	p := planFor(Desired{Ref: execRef, Users: []string{"a"}, Keep: []string{"b", "c"}}, cur, opts)
	if !eq(p.Remove, []string{"d"}) || !eq(p.Kept, []string{"b", "c"}) {
		t.Errorf("remove=%v kept=%v", p.Remove, p.Kept)
	}
}

// Adoption is for migration: once the store knows the binding, a user put
// there by hand stays a human's, even when a group grants them later.
func TestAdoptionOnlyForBindingsTheStoreDoesNotKnow(t *testing.T) {
	d := Desired{Ref: execRef, Users: []string{"alice", "carol"}}
	cur := binding(users("alice", "carol"), "alice")
	p := planFor(d, cur, syncOpts(t0))
	if !eq(p.Adopt, []string{"carol"}) || !p.StateChanged || !p.State.Known {
		t.Fatalf("migration: adopt=%v state=%+v", p.Adopt, p.State)
	}
	opts := syncOpts(t0)
	opts.State = stored(nil, BindingPlan{Ref: execRef, State: &model.BindingState{Known: true}})
	p = planFor(d, cur, opts)
	if len(p.Adopt) > 0 || p.HasChanges() || p.StateChanged {
		t.Errorf("known binding adopted: %+v", p)
	}
	// carol leaves the group: the hand grant stays.
	p = planFor(Desired{Ref: execRef, Users: []string{"alice"}}, cur, opts)
	if len(p.Remove) > 0 || !eq(p.Leftovers, []string{"carol"}) {
		t.Errorf("hand grant removed: %+v", p)
	}
}
