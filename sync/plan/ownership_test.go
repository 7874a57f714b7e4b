package plan

import (
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

// Eight of ten members removed one at a time, minutes apart: the window
// counts them together, so the sixth is held instead of the binding
// emptying down to its last users. Once the window has passed, removals
// go through again.
func TestGuardWindowCountsAcrossWrites(t *testing.T) {
	ten := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"}
	cur := binding(users(ten...), ten...)
	now := t0
	members := append([]string(nil), ten...)
	var snap *model.StateSnapshot
	for i := 0; i < 8; i++ {
		members = members[1:]
		now = now.Add(5 * time.Second)
		opts := syncOpts(now)
		opts.State = snap
		p := planFor(Desired{Ref: execRef, Users: members}, cur, opts)
		snap = stored(snap, p)
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
	later := syncOpts(now.Add(time.Hour + time.Minute))
	later.State = snap
	p := planFor(Desired{Ref: execRef, Users: []string{"u8", "u9"}}, cur, later)
	if p.WindowRemoved != 0 || p.HoldReason != HoldTooLarge {
		t.Errorf("after the window: window=%d reason=%q", p.WindowRemoved, p.HoldReason)
	}
	p = planFor(Desired{Ref: execRef, Users: []string{"u6", "u7", "u8", "u9"}}, cur, later)
	if !eq(p.Remove, []string{"u5"}) {
		t.Errorf("after the window one removal passes: %+v", p)
	}
	// Window 0 counts each write alone (the old rule).
	old := syncOpts(now)
	old.Guard.Window, old.State = 0, snap
	p = planFor(Desired{Ref: execRef, Users: []string{"u6", "u7", "u8", "u9"}}, cur, old)
	if !eq(p.Remove, []string{"u5"}) || len(p.State.History) != 0 {
		t.Errorf("window 0: %+v", p)
	}
}
