package plan

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func syncOpts(now time.Time) PlanOptions {
	return PlanOptions{Policy: config.PolicySync, Adopt: true, Now: now,
		Guard: config.Guard{MaxRemovePercent: 50, MaxRemoveCount: 20, Window: time.Hour}}
}

// write applies a plan's change to a binding the way model.Client does.
func write(t *testing.T, cur *model.Binding, p BindingPlan) *model.Binding {
	t.Helper()
	if p.Err != nil {
		t.Fatalf("plan error: %v", p.Err)
	}
	if len(p.Writes) != 1 || len(p.Moves) > 0 {
		t.Fatalf("one binding: want one write, got %+v and moves %+v", p.Writes, p.Moves)
	}
	ch := p.Writes[0]
	next := cur.Copy()
	next.Managed = model.NewManaged(cur, ch)
	next.Subjects = model.NewSubjects(cur.Subjects, ch.Add, ch.Remove)
	for k, v := range ch.SetAnnotations {
		next.Annotations[k] = v
	}
	for _, k := range ch.DropAnnotations {
		delete(next.Annotations, k)
	}
	return next
}

func planFor(d Desired, cur *model.Binding, opts PlanOptions) BindingPlan {
	return Plan([]Desired{d}, map[model.Ref]*model.Binding{d.Ref: cur}, opts)[0]
}

// Migration from a hand-kept binding: the user the directory grants is
// adopted by a metadata-only write and removed like any other once they
// leave; the one it does not grant is a leftover, kept and reported.
func TestAdoptionAndLeftovers(t *testing.T) {
	cur := binding(users("alice", "zed"))
	d := Desired{Ref: execRef, Users: []string{"alice", "bob"}}
	p := planFor(d, cur, syncOpts(t0))
	if !eq(p.Adopt, []string{"alice"}) || !eq(p.Leftovers, []string{"zed"}) || !eq(p.Add, []string{"bob"}) || len(p.Remove) > 0 {
		t.Fatalf("adopt=%v leftovers=%v add=%v remove=%v", p.Adopt, p.Leftovers, p.Add, p.Remove)
	}
	cur = write(t, cur, p)
	if !eq(cur.Managed, []string{"alice", "bob"}) {
		t.Fatalf("record after adoption = %v", cur.Managed)
	}
	// Nothing else to write: the adoption alone is a metadata-only write.
	only := planFor(Desired{Ref: execRef, Users: []string{"alice"}}, binding(users("alice", "zed")), syncOpts(t0))
	if !only.MetadataOnly() || len(only.Writes) != 1 || !eq(only.Writes[0].Own, []string{"alice"}) {
		t.Errorf("adoption alone: metadata-only %v, writes %+v", only.MetadataOnly(), only.Writes)
	}
	// alice and bob leave: both removed (bob alone would be 50%, fine;
	// both is every managed user: held) — one at a time then.
	p = planFor(Desired{Ref: execRef, Users: []string{"bob"}}, cur, syncOpts(t0.Add(time.Minute)))
	if !eq(p.Remove, []string{"alice"}) || !eq(p.Leftovers, []string{"zed"}) {
		t.Fatalf("after alice leaves: remove=%v leftovers=%v held=%v", p.Remove, p.Leftovers, p.Held)
	}
	cur = write(t, cur, p)
	if got := cur.Users(); !reflect.DeepEqual(got, []string{"zed", "bob"}) {
		t.Errorf("users = %v: the leftover stays", got)
	}

	// Adoption off: the old rule, a hand-kept user is never the tool's.
	off := syncOpts(t0)
	off.Adopt = false
	p = planFor(d, binding(users("alice", "zed")), off)
	if len(p.Adopt) > 0 || !eq(p.Leftovers, []string{"zed"}) {
		t.Errorf("adoption off: adopt=%v leftovers=%v", p.Adopt, p.Leftovers)
	}
	// Other policies adopt nothing; authoritative has no leftovers.
	auth := syncOpts(t0)
	auth.Policy = config.PolicyAuthoritative
	p = planFor(d, binding(users("alice", "zed")), auth)
	if len(p.Adopt)+len(p.Leftovers) > 0 || !eq(p.Remove, []string{"zed"}) {
		t.Errorf("authoritative: adopt=%v leftovers=%v remove=%v", p.Adopt, p.Leftovers, p.Remove)
	}
}

// A user the record lists but the binding no longer holds is dropped from
// the record; put back by hand afterwards, they are a human's and stay.
func TestOwnershipEndsWhenTheUserIsGone(t *testing.T) {
	cur := binding(users("alice"), "alice", "bob")       // bob removed by hand
	d := Desired{Ref: execRef, Users: []string{"alice"}} // and left the group
	p := planFor(d, cur, syncOpts(t0))
	if !eq(p.Disown, []string{"bob"}) || !p.MetadataOnly() {
		t.Fatalf("disown=%v metadata-only=%v", p.Disown, p.MetadataOnly())
	}
	cur = write(t, cur, p)
	if !eq(cur.Managed, []string{"alice"}) {
		t.Fatalf("record = %v", cur.Managed)
	}
	cur.Subjects = append(cur.Subjects, model.UserSubject("bob")) // put back by hand
	p = planFor(d, cur, syncOpts(t0))
	if len(p.Remove) > 0 || !eq(p.Leftovers, []string{"bob"}) || p.HasChanges() {
		t.Errorf("bob put back by hand: remove=%v leftovers=%v changes=%v", p.Remove, p.Leftovers, p.HasChanges())
	}
	// A user removed by hand but still granted is added back, and stays ours.
	p = planFor(Desired{Ref: execRef, Users: []string{"alice", "carol"}}, binding(users("alice"), "alice", "carol"), syncOpts(t0))
	if len(p.Disown) > 0 || !eq(p.Add, []string{"carol"}) {
		t.Errorf("still granted: disown=%v add=%v", p.Disown, p.Add)
	}
}

// Approvals are specific: only the key of what is held now approves it; a
// stale or generic approval is removed, and never approves a later hold.
func TestApprovalsAreSpecificAndExpire(t *testing.T) {
	ten := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"}
	cur := binding(users(ten...), ten...)
	// An approval set while nothing is held is removed by the next write.
	cur.Annotations[ApproveAnnotation] = "true"
	p := planFor(Desired{Ref: execRef, Users: ten}, cur, syncOpts(t0))
	if p.StaleApproval != "true" || !p.HasChanges() || !reflect.DeepEqual(p.Writes[0].DropAnnotations, []string{ApproveAnnotation}) {
		t.Fatalf("stale approval: %+v", p)
	}
	cur = write(t, cur, p)
	// Later, a wipe: held, with a key.
	p = planFor(Desired{Ref: execRef, Users: []string{"u0"}}, cur, syncOpts(t0))
	if len(p.Held) != 9 || p.ApprovalKey == "" || len(p.Remove) > 0 {
		t.Fatalf("wipe not held: %+v", p)
	}
	key := p.ApprovalKey
	// "true" and a key for another held set do not approve it.
	for _, wrong := range []string{"true", ApprovalKey(execRef, []string{"u1"}, nil), ApprovalKey(model.ExecutorRef("other"), p.Held, nil)} {
		cur.Annotations[ApproveAnnotation] = wrong
		q := planFor(Desired{Ref: execRef, Users: []string{"u0"}}, cur, syncOpts(t0))
		if len(q.Remove) > 0 || q.StaleApproval != wrong || q.ApprovalKey != key {
			t.Errorf("approval %q: remove=%v stale=%q key=%q", wrong, q.Remove, q.StaleApproval, q.ApprovalKey)
		}
	}
	// The key approves exactly this set, and the write removes it.
	cur.Annotations[ApproveAnnotation] = key
	p = planFor(Desired{Ref: execRef, Users: []string{"u0"}}, cur, syncOpts(t0))
	if !p.Approved || len(p.Remove) != 9 || p.StaleApproval != "" {
		t.Fatalf("approved: %+v", p)
	}
	if ch := p.Writes[0]; !reflect.DeepEqual(ch.DropAnnotations, []string{ApproveAnnotation}) {
		t.Errorf("approval not dropped: %+v", ch)
	}
	// The held set changed (one more left): the old key no longer fits.
	p = planFor(Desired{Ref: execRef, Users: nil}, cur, syncOpts(t0))
	if p.Approved || p.StaleApproval != key {
		t.Errorf("key for another held set approved: %+v", p)
	}
	// While a feeding group failed, an approval is left alone.
	p = planFor(Desired{Ref: execRef, Users: ten, Incomplete: true}, cur, syncOpts(t0))
	if p.StaleApproval != "" || p.HasChanges() {
		t.Errorf("incomplete: %+v", p)
	}
}

// Eight of ten members removed one at a time, minutes apart: the window
// counts them together, so the sixth is held instead of the binding
// emptying down to its last users. Once the window has passed, removals
// go through again.
func TestGuardWindowCountsAcrossWrites(t *testing.T) {
	ten := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"}
	cur := binding(users(ten...), ten...)
	now := t0
	members := append([]string(nil), ten...)
	for i := 0; i < 8; i++ {
		members = members[1:]
		now = now.Add(5 * time.Second)
		p := planFor(Desired{Ref: execRef, Users: members}, cur, syncOpts(now))
		if i < 5 {
			if len(p.Remove) != i+1-p.WindowRemoved || len(p.Held) > 0 {
				t.Fatalf("removal %d: remove=%v held=%v window=%d", i+1, p.Remove, p.Held, p.WindowRemoved)
			}
		} else if len(p.Remove) > 0 || p.HoldReason != HoldTooLarge || p.WindowRemoved != 5 {
			t.Fatalf("removal %d not held: remove=%v held=%v reason=%q window=%d", i+1, p.Remove, p.Held, p.HoldReason, p.WindowRemoved)
		}
		if p.HasChanges() {
			cur = write(t, cur, p)
		}
	}
	if n := len(cur.Users()); n != 5 {
		t.Errorf("binding holds %d users, want 5 (three removals held)", n)
	}
	// An hour later the window is empty: the three held go out together
	// (3 of 5 is over half: still held), one at a time they pass.
	later := now.Add(time.Hour + time.Minute)
	p := planFor(Desired{Ref: execRef, Users: []string{"u8", "u9"}}, cur, syncOpts(later))
	if p.WindowRemoved != 0 || p.HoldReason != HoldTooLarge {
		t.Errorf("after the window: window=%d reason=%q", p.WindowRemoved, p.HoldReason)
	}
	p = planFor(Desired{Ref: execRef, Users: []string{"u6", "u7", "u8", "u9"}}, cur, syncOpts(later))
	if !eq(p.Remove, []string{"u5"}) {
		t.Errorf("after the window one removal passes: %+v", p)
	}
	// Window 0 counts each write alone (the old rule).
	old := syncOpts(now)
	old.Guard.Window = 0
	p = planFor(Desired{Ref: execRef, Users: []string{"u6", "u7", "u8", "u9"}}, cur, old)
	if !eq(p.Remove, []string{"u5"}) || p.Writes[0].SetAnnotations[HistoryAnnotation] != "" {
		t.Errorf("window 0: %+v", p)
	}
}

// guard.maxAddCount holds additions to an existing binding beyond that
// many in the window; the same key approves them.
func TestGuardHoldsAdditions(t *testing.T) {
	opts := syncOpts(t0)
	opts.Guard.MaxAddCount = 3
	cur := binding(users("a"), "a")
	p := planFor(Desired{Ref: execRef, Users: []string{"a", "b", "c"}}, cur, opts)
	if !eq(p.Add, []string{"b", "c"}) || len(p.HeldAdd) > 0 {
		t.Fatalf("two additions pass: %+v", p)
	}
	cur = write(t, cur, p)
	many := []string{"a", "b", "c"}
	for i := 0; i < 100; i++ {
		many = append(many, fmt.Sprintf("x%03d", i))
	}
	p = planFor(Desired{Ref: execRef, Users: many}, cur, opts)
	if len(p.Add) > 0 || len(p.HeldAdd) != 100 || p.AddHoldReason != HoldTooManyAdd || p.WindowAdded != 2 || p.ApprovalKey == "" {
		t.Fatalf("mass addition not held: add=%d held=%d reason=%q window=%d", len(p.Add), len(p.HeldAdd), p.AddHoldReason, p.WindowAdded)
	}
	cur.Annotations[ApproveAnnotation] = p.ApprovalKey
	p = planFor(Desired{Ref: execRef, Users: many}, cur, opts)
	if !p.Approved || len(p.Add) != 100 {
		t.Errorf("approved additions: %d, approved %v", len(p.Add), p.Approved)
	}
	// A new binding is not an addition to an existing one.
	p = planFor(Desired{Ref: execRef, Users: many}, &model.Binding{Ref: execRef}, opts)
	if !p.Create || len(p.Add) != len(many) {
		t.Errorf("create: %+v", p)
	}
}

func TestHistoryAnnotation(t *testing.T) {
	h := recordHistory(nil, t0.Add(time.Second), time.Hour, 2, 0)
	h2 := recordHistory(decodeHistory(h, t0.Add(2*time.Second), time.Hour), t0.Add(2*time.Second), time.Hour, 1, 3)
	got := decodeHistory(h2, t0.Add(3*time.Second), time.Hour)
	if r, a := windowTotals(got); len(got) != 1 || r != 3 || a != 3 {
		t.Errorf("writes in one slot merge: %s -> %+v", h2, got)
	}
	if got := decodeHistory(h2, t0.Add(time.Hour+2*time.Minute), time.Hour); len(got) != 0 {
		t.Errorf("entries outlive the window: %+v", got)
	}
	for _, bad := range []string{"{", `[{"at":"x"}]`, `[{"at":"2026-12-01T12:00:00Z","removed":-5}]`} {
		if r, _ := windowTotals(decodeHistory(bad, t0, time.Hour)); r != 0 {
			t.Errorf("%q counted %d", bad, r)
		}
	}
	// Bounded: at most one entry per slot of the window.
	var entries []HistoryEntry
	for i := 0; i < 1000; i++ {
		now := t0.Add(time.Duration(i) * 5 * time.Second)
		entries = decodeHistory(recordHistory(entries, now, time.Hour, 1, 0), now, time.Hour)
	}
	if len(entries) > historySlots+1 {
		t.Errorf("%d entries kept", len(entries))
	}
}
