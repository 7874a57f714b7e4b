package plan

import (
	"errors"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Each stage of PlanOne, alone.

func TestReadShards(t *testing.T) {
	b := binding(users("a", "b", "a"), "a", "gone")
	shard := binding(users("c"), "c")
	shard.Ref = model.ShardRef(execRef, 2)
	slots, ours, err := readShards(execRef, []*model.Binding{b, nil, shard})
	if err != nil || len(slots) != 3 || slots[1].exists() || len(slots[0].users) != 2 {
		t.Fatalf("slots %+v, err %v", slots, err)
	}
	if len(ours) != 2 { // a and c: "gone" is recorded but not held
		t.Errorf("ours = %v", ours)
	}
	if got := presentUsers(slots); len(got) != 3 {
		t.Errorf("present = %v", got)
	}
	bad := binding(users("a"))
	bad.ManagedErr = errors.New("broken")
	if _, _, err := readShards(execRef, []*model.Binding{bad}); !errors.Is(err, ErrRecordUnreadable) {
		t.Errorf("unreadable record: %v", err)
	}
	bad = binding(users("a"))
	bad.RoleRef.Name = "cluster-admin"
	if _, _, err := readShards(execRef, []*model.Binding{bad}); !errors.Is(err, ErrRoleRefMismatch) {
		t.Errorf("roleRef: %v", err)
	}
}

func TestClassify(t *testing.T) {
	present := toSet([]string{"mine", "gone", "kept", "hand", "wanted-hand"})
	want := toSet([]string{"mine", "wanted-hand"})
	ours := toSet([]string{"mine", "gone", "kept"})
	keep := toSet([]string{"kept"})
	for _, tc := range []struct {
		policy     string
		known      bool
		candidates []string
		adopt      []string
		managed    int
	}{
		{config.PolicySync, false, []string{"gone"}, []string{"wanted-hand"}, 4},
		{config.PolicySync, true, []string{"gone"}, nil, 3},
		{config.PolicyUpsertOnly, false, nil, nil, 0},
		{config.PolicyAuthoritative, true, []string{"gone", "hand"}, nil, 5},
	} {
		var p BindingPlan
		c := classify(&p, present, want, keep, ours, PlanOptions{Policy: tc.policy, Adopt: true}, tc.known)
		if !eq(c.candidates, tc.candidates) || !eq(p.Adopt, tc.adopt) || c.managed != tc.managed {
			t.Errorf("%s known=%v: candidates %v adopt %v managed %d", tc.policy, tc.known, c.candidates, p.Adopt, c.managed)
		}
		if tc.policy != config.PolicyUpsertOnly && !eq(p.Kept, []string{"kept"}) {
			t.Errorf("%s: kept %v", tc.policy, p.Kept)
		}
	}
}

func TestGuardPlanAndApprove(t *testing.T) {
	g := config.Guard{MaxRemovePercent: 50, MaxRemoveCount: 20, MaxAddCount: 2, Window: time.Hour}
	p := BindingPlan{Ref: execRef, Add: []string{"x", "y", "z"}}
	d := Desired{Sources: []Source{{"big", []string{"x", "y", "z"}}}}
	v := guardPlan(&p, d, classified{candidates: []string{"a", "b"}, managed: 3}, nil, nil, g)
	if len(p.Add) != 0 || !eq(v.heldAdd, []string{"x", "y", "z"}) || !eq(v.heldRemove, []string{"a", "b"}) || v.removeReason != HoldTooLarge {
		t.Fatalf("verdict %+v, plan add %v", v, p.Add)
	}
	d.Incomplete = true
	q := BindingPlan{Ref: execRef}
	if v := guardPlan(&q, d, classified{candidates: []string{"a"}, managed: 3}, nil, nil, g); len(v.heldRemove)+len(q.Remove) != 0 {
		t.Errorf("incomplete: removal planned or held: %+v", v)
	}
	approve(&p, v, PlanOptions{RunaiNamespace: "runai"})
	if p.Approved || p.ApprovalKey != ApprovalKey(execRef, v.heldRemove, v.heldAdd) || p.ApproveCommand == "" {
		t.Fatalf("held: %+v", p)
	}
	r := BindingPlan{Ref: execRef}
	approve(&r, v, PlanOptions{State: approvals(p.ApprovalKey)})
	if !r.Approved || r.UsedApproval != p.ApprovalKey || len(r.Add) != 3 || len(r.Remove) != 2 {
		t.Errorf("approved: %+v", r)
	}
}

func TestNextState(t *testing.T) {
	opts := syncOpts(t0)
	p := &BindingPlan{Remove: []string{"a"}}
	st, changed := nextState(model.BindingState{}, nil, p, verdict{by: map[string]int{"g": 2}}, nil, opts)
	if !changed || !st.Known || len(st.History) != 1 || st.History[0].Removed != 1 || st.History[0].AddedBy["g"] != 2 {
		t.Errorf("state %+v", st)
	}
	if _, changed := nextState(*st, st.History, &BindingPlan{}, verdict{}, nil, opts); changed {
		t.Error("nothing written, state changed")
	}
	// Approved held removals are not counted.
	p = &BindingPlan{Remove: []string{"a", "b"}, Approved: true}
	st, _ = nextState(model.BindingState{Known: true}, nil, p, verdict{heldRemove: []string{"a", "b"}}, nil, opts)
	if len(st.History) != 0 {
		t.Errorf("approved removals counted: %+v", st.History)
	}
}

func TestWritesDropLegacyAnnotations(t *testing.T) {
	b := binding(users("a"), "a")
	b.Annotations[ApproveAnnotation] = "sha256:x"
	b.Annotations[HistoryAnnotation] = "[]"
	slots, _, _ := readShards(execRef, []*model.Binding{b})
	var p BindingPlan
	writes(&p, slots, presentUsers(slots))
	if len(p.Writes) != 1 || !eq(p.Writes[0].DropAnnotations, []string{ApproveAnnotation, HistoryAnnotation}) || p.StaleApproval != "sha256:x" {
		t.Errorf("writes %+v", p.Writes)
	}
}
