package plan

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// shardOpts: room for 10 users of 8 characters a binding, up to 4 shards.
func shardOpts(now time.Time) PlanOptions {
	o := syncOpts(now)
	o.MaxShards = 4
	o.ShardBytes = bindingOverhead + 10*userBytes("u0000000")
	return o
}

// cluster applies writes the way model.Client does, shard by shard.
type cluster map[model.Ref]*model.Binding

func (c cluster) apply(t *testing.T, p BindingPlan) (writes int) {
	t.Helper()
	if p.Err != nil {
		t.Fatalf("plan error: %v", p.Err)
	}
	if p.State != nil {
		raw, _ := json.Marshal(p.State)
		c[storeRef] = &model.Binding{Ref: storeRef, Annotations: map[string]string{"state": string(raw)}}
	}
	for _, ch := range append(append([]model.Change(nil), p.Writes...), p.Moves...) {
		cur := c[ch.Ref]
		if cur == nil || !cur.Exists {
			if !ch.Create {
				t.Fatalf("write to %s, which does not exist, is no create", ch.Ref)
			}
			cur = &model.Binding{Ref: ch.Ref, Exists: true, RoleRef: model.ExpectedRoleRef(ch.Ref.Name), Annotations: map[string]string{}}
		}
		next := cur.Copy()
		next.Managed = model.NewManaged(cur, ch)
		next.Subjects = model.NewSubjects(cur.Subjects, ch.Add, ch.Remove)
		for _, k := range ch.DropAnnotations {
			delete(next.Annotations, k)
		}
		c[ch.Ref] = next
		writes++
	}
	return writes
}

func (c cluster) plan(users []string, opts PlanOptions) BindingPlan {
	if st := c[storeRef]; st != nil && opts.State == nil {
		var bs model.BindingState
		_ = json.Unmarshal([]byte(st.Annotations["state"]), &bs)
		opts.State = stored(nil, BindingPlan{Ref: execRef, State: &bs})
	}
	return Plan([]Desired{{Ref: execRef, Users: users}}, c, opts)[0]
}

// storeRef holds the guard state the plans of a cluster wrote, as the
// store does (no binding is named so).
var storeRef = model.Ref{Kind: "ConfigMap", Name: "store"}

// union is every user the shards grant, and where each is.
func (c cluster) union() map[string][]int {
	out := map[string][]int{}
	for i := 0; i <= model.MaxShards; i++ {
		if b := c[model.ShardRef(execRef, i)]; b != nil && b.Exists {
			for _, u := range b.Users() {
				out[u] = append(out[u], i)
			}
		}
	}
	return out
}

func TestShardsGrowKeepUsersInPlaceAndWriteOneShardPerChange(t *testing.T) {
	c := cluster{}
	now := t0
	all := names(0, 25)
	p := c.plan(all, shardOpts(now))
	if p.Shards != 3 || len(p.Writes) != 3 || !p.Writes[0].Create || !p.Writes[2].Create {
		t.Fatalf("25 users, 10 a binding: want 3 bindings created, got %d writes %+v", p.Shards, p.Writes)
	}
	for i, w := range p.Writes {
		if want := model.ShardRef(execRef, i); w.Ref != want {
			t.Errorf("write %d goes to %s, want %s", i, w.Ref, want)
		}
	}
	if p.Writes[1].Ref.Name != "runai-job-executor-manual-1" || p.Writes[2].Ref.Name != "runai-job-executor-manual-2" {
		t.Errorf("shard names: %s, %s", p.Writes[1].Ref.Name, p.Writes[2].Ref.Name)
	}
	c.apply(t, p)
	got := c.union()
	if len(got) != 25 {
		t.Fatalf("granted %d users, want 25", len(got))
	}
	for u, where := range got {
		if len(where) != 1 {
			t.Errorf("%s is in shards %v", u, where)
		}
	}
	// Steady state: nothing to write.
	now = now.Add(time.Minute)
	if p := c.plan(all, shardOpts(now)); p.HasChanges() {
		t.Fatalf("steady state writes %+v", p.Writes)
	}
	// One user added: exactly one shard written, the one with room.
	now = now.Add(time.Minute)
	p = c.plan(append(append([]string(nil), all...), "u9999999"), shardOpts(now))
	if len(p.Writes) != 1 || p.Writes[0].Ref != model.ShardRef(execRef, 2) || len(p.Moves) != 0 {
		t.Fatalf("one addition: want one write to shard 2, got %+v", p.Writes)
	}
	c.apply(t, p)
	// One user of shard 1 leaves: exactly shard 1 written.
	now = now.Add(time.Minute)
	left := append(append([]string(nil), all[:12]...), all[13:]...)
	left = append(left, "u9999999")
	p = c.plan(left, shardOpts(now))
	if len(p.Writes) != 1 || p.Writes[0].Ref != model.ShardRef(execRef, 1) || !eq(p.Writes[0].Remove, []string{all[12]}) {
		t.Fatalf("one removal: want one write to shard 1, got %+v", p.Writes)
	}
	c.apply(t, p)
	// Growth does not reshuffle: the newcomer goes to the first binding
	// with room (shard 1, which lost a user); everyone else stays.
	before := c.union()
	now = now.Add(time.Minute)
	p = c.plan(append(append([]string(nil), left...), "u8888888"), shardOpts(now))
	if len(p.Writes) != 1 || p.Writes[0].Ref != model.ShardRef(execRef, 1) {
		t.Fatalf("newcomer: want shard 1, got %+v", p.Writes)
	}
	c.apply(t, p)
	for u, where := range before {
		if after := c.union()[u]; len(after) != 1 || after[0] != where[0] {
			t.Errorf("%s moved from %v to %v", u, where, after)
		}
	}
}

func TestShardsShrinkAndGuardSeesOneBinding(t *testing.T) {
	c := cluster{}
	all := names(0, 30)
	c.apply(t, c.plan(all, shardOpts(t0)))
	// Shard 2's ten users leave: a third of the logical binding, which the
	// guard (50%) lets through, although it empties shard 2 entirely (a
	// guard per shard would call that "removes all").
	p := c.plan(all[:20], shardOpts(t0.Add(time.Minute)))
	if len(p.Held) != 0 || len(p.Remove) != 10 || len(p.Writes) != 1 || p.Writes[0].Ref != model.ShardRef(execRef, 2) {
		t.Fatalf("a third removed: held %v, writes %+v", p.Held, p.Writes)
	}
	c.apply(t, p)
	if b := c[model.ShardRef(execRef, 2)]; b == nil || !b.Exists || len(b.Users()) != 0 {
		t.Fatalf("an emptied shard stays in place, empty: %+v", b)
	}
	if p := c.plan(all[:20], shardOpts(t0.Add(2*time.Minute))); p.HasChanges() || p.Shards != 3 {
		t.Fatalf("after the shrink: writes %+v, shards %d", p.Writes, p.Shards)
	}
	// Within the window, 5 more of the remaining 20 (15 of 30 in the
	// window: 50%) pass; one more would be held over the logical binding.
	p = c.plan(all[:14], shardOpts(t0.Add(3*time.Minute)))
	if len(p.Held) != 6 || p.HoldReason != HoldTooLarge {
		t.Fatalf("the window counts removals over all shards: held %v (%s), window removed %d", p.Held, p.HoldReason, p.WindowRemoved)
	}
}

func TestShardHandEditsAndDeletion(t *testing.T) {
	c := cluster{}
	all := names(0, 25)
	c.apply(t, c.plan(all, shardOpts(t0)))
	s1 := model.ShardRef(execRef, 1)
	// A user removed by hand from shard 1 is put back there, in one write.
	b := c[s1].Copy()
	gone := b.Users()[0]
	b.Subjects = model.NewSubjects(b.Subjects, nil, []string{gone})
	c[s1] = b
	p := c.plan(all, shardOpts(t0.Add(time.Minute)))
	if !eq(p.Add, []string{gone}) || len(p.Writes) != 1 || p.Writes[0].Ref != s1 {
		t.Fatalf("hand removal: add %v writes %+v", p.Add, p.Writes)
	}
	c.apply(t, p)
	// A user added by hand to shard 2 is kept (policy sync): no write.
	s2 := model.ShardRef(execRef, 2)
	b = c[s2].Copy()
	b.Subjects = append(b.Subjects, model.UserSubject("hand"))
	c[s2] = b
	p = c.plan(all, shardOpts(t0.Add(time.Minute)))
	if !eq(p.Leftovers, []string{"hand"}) || p.HasChanges() {
		t.Fatalf("hand addition: leftovers %v writes %+v", p.Leftovers, p.Writes)
	}
	// A hand addition that takes a full shard past the safe size: the
	// hand-added user stays, one of ours moves to a shard with room.
	b = c[s1].Copy()
	b.Subjects = append(b.Subjects, model.UserSubject("hand2"))
	c[s1] = b
	p = c.plan(all, shardOpts(t0.Add(time.Minute)))
	if len(p.Writes) != 1 || p.Writes[0].Ref != s2 || len(p.Moves) != 1 || p.Moves[0].Ref != s1 ||
		!eq(p.Moves[0].Remove, p.Writes[0].Add) || len(p.Writes[0].Add) != 1 {
		t.Fatalf("shard 1 past the safe size: writes %+v moves %+v", p.Writes, p.Moves)
	}
	c.apply(t, p)
	b = c[s1].Copy()
	b.Subjects = model.NewSubjects(b.Subjects, nil, []string{"hand2"})
	c[s1] = b
	// A hand-deleted shard is recreated with its users.
	delete(c, s1)
	p = c.plan(all, shardOpts(t0.Add(2*time.Minute)))
	if len(p.Add) != 9 || len(p.Writes) != 1 || !p.Writes[0].Create || p.Writes[0].Ref != s1 {
		t.Fatalf("deleted shard: add %v writes %+v", p.Add, p.Writes)
	}
	c.apply(t, p)
	if len(c.union()) != 26 || len(c[s1].Users()) != 9 { // 25 and "hand"
		t.Fatalf("after the repair %d users are granted", len(c.union()))
	}
}

// A binding past the safe size (written by an earlier version, or the size
// was lowered) hands its excess to a shard: added there by Writes before
// Moves removes them, so no one is ever without access.
func TestShardMovesAddBeforeRemove(t *testing.T) {
	c := cluster{}
	all := names(0, 15)
	big := shardOpts(t0)
	big.ShardBytes = 1 << 20
	c.apply(t, c.plan(all, big))
	p := c.plan(all, shardOpts(t0.Add(time.Minute)))
	if len(p.Writes) != 1 || p.Writes[0].Ref != model.ShardRef(execRef, 1) || len(p.Writes[0].Add) != 5 || len(p.Writes[0].Remove) != 0 {
		t.Fatalf("moves: writes %+v", p.Writes)
	}
	if len(p.Moves) != 1 || p.Moves[0].Ref != execRef || !eq(p.Moves[0].Remove, p.Writes[0].Add) {
		t.Fatalf("moves: %+v", p.Moves)
	}
	if len(p.Add) != 0 || len(p.Remove) != 0 || p.WindowRemoved != 0 {
		t.Errorf("a move is no addition or removal: add %v remove %v", p.Add, p.Remove)
	}
	// Between the two writes every user holds the role somewhere.
	half := cluster{}
	for k, v := range c {
		half[k] = v
	}
	half.apply(t, BindingPlan{Writes: p.Writes})
	if len(half.union()) != 15 {
		t.Fatalf("after Writes, before Moves: %d users granted", len(half.union()))
	}
	c.apply(t, p)
	for u, where := range c.union() {
		if len(where) != 1 {
			t.Errorf("%s in %v after the move", u, where)
		}
	}
	if p := c.plan(all, shardOpts(t0.Add(2*time.Minute))); p.HasChanges() {
		t.Errorf("after the move: %+v %+v", p.Writes, p.Moves)
	}
}

func TestShardLimits(t *testing.T) {
	o := shardOpts(t0)
	if p := (cluster{}).plan(names(0, 51), o); p.Err == nil || !strings.Contains(p.Err.Error(), "maxBindingShards") {
		t.Errorf("51 users in 5 bindings of 10: %v", p.Err)
	}
	if p := (cluster{}).plan(names(0, 50), o); p.Err != nil || p.Shards != 5 {
		t.Errorf("50 users in 5 bindings of 10: %v, %d shards", p.Err, p.Shards)
	}
	// No shards configured: one binding, as before.
	o.MaxShards = 0
	if p := (cluster{}).plan(names(0, 11), o); p.Err == nil {
		t.Error("11 users, one binding of 10: want an error")
	}
	// A shard whose roleRef is not Run:AI's stops the logical binding.
	c := cluster{}
	c.apply(t, c.plan(names(0, 15), shardOpts(t0)))
	c[model.ShardRef(execRef, 1)].RoleRef.Name = "cluster-admin"
	if p := c.plan(names(0, 16), shardOpts(t0)); p.Err == nil || p.HasChanges() {
		t.Errorf("wrong roleRef on a shard: %v", p.Err)
	}
	// Policy authoritative removes hand-added users from any shard.
	c = cluster{}
	c.apply(t, c.plan(names(0, 15), shardOpts(t0)))
	s1 := c[model.ShardRef(execRef, 1)].Copy()
	s1.Subjects = append(s1.Subjects, model.UserSubject("hand"))
	c[s1.Ref] = s1
	ao := shardOpts(t0)
	ao.Policy = config.PolicyAuthoritative
	if p := c.plan(names(0, 15), ao); len(p.Writes) != 1 || !eq(p.Writes[0].Remove, []string{"hand"}) {
		t.Errorf("authoritative: %+v", p.Writes)
	}
}
