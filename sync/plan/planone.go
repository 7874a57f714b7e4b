package plan

import (
	"fmt"
	"sort"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// member is one binding of a logical binding: the first one (index 0) or a
// shard, as it is and as the plan leaves it.
type member struct {
	ref    model.Ref
	b      *model.Binding // nil when it does not exist
	users  map[string]struct{}
	owned  map[string]struct{}
	size   int // estimated stored size after the plan
	add    []string
	remove []string
	move   []string
	own    []string
}

func (s *member) exists() bool { return s.b != nil && s.b.Exists }

func newMember(base model.Ref, i int) *member {
	ref := base
	if i > 0 {
		ref = model.ShardRef(base, i)
	}
	return &member{ref: ref, users: map[string]struct{}{}, owned: map[string]struct{}{}, size: bindingOverhead}
}

// PlanOne plans one logical binding: shards[0] is the binding of d.Ref
// (nil when it does not exist) and shards[i] its i-th shard (nil or
// absent when it does not exist; ShardsOf collects them). The guard,
// ownership and policies see the union of the shards as one binding; the
// writes then go to the shards: a user stays in the shard that holds
// them, a new user goes to the first one with room. Each stage is a
// function of its own: read, classify (policy.go), guard and approve
// (guard.go), spread (spread.go), write.
func PlanOne(d Desired, shards []*model.Binding, opts PlanOptions) BindingPlan {
	p := BindingPlan{Ref: d.Ref, Desired: len(d.Users), Incomplete: d.Incomplete, Failed: d.Failed}
	if d.Err != nil {
		p.Err = d.Err
		return p
	}
	limit, maxShards := opts.shardBytes(), opts.maxShards()
	if err := tooLarge(d.Users, limit, maxShards); err != nil {
		p.Err = fmt.Errorf("%s left as it is: %w", d.Ref, err)
		return p
	}
	slots, ours, err := readShards(d.Ref, shards)
	if err != nil {
		p.Err = err
		return p
	}
	present := presentUsers(slots)
	p.Create = !slots[0].exists()
	want := toSet(d.Users)
	for _, u := range d.Users {
		if _, ok := present[u]; !ok {
			p.Add = append(p.Add, u)
		}
	}
	p.Missing = len(p.Add)

	prev := opts.bindingState(d.Ref)
	hist := windowOf(prev.History, opts.Now, opts.Guard.Window)
	c := classify(&p, present, want, toSet(d.Keep), ours, opts, prev.Known)
	v := guardPlan(&p, d, c, hist, toSet(prev.Granted), opts.Guard)
	approve(&p, v, opts)
	if slots, err = spread(&p, slots, want, opts, limit, maxShards); err != nil {
		return BindingPlan{Ref: d.Ref, Desired: len(d.Users), Incomplete: d.Incomplete, Failed: d.Failed,
			Err: fmt.Errorf("%s left as it is: %w", d.Ref, err)}
	}
	p.State, p.StateChanged = nextState(prev, hist, &p, v, ours, opts)
	writes(&p, slots, present)
	return p
}

// readShards is the read stage: one member per binding that exists (and
// the first one), with its users and ownership record, and the users the
// tool owns across them. A binding whose record cannot be read or whose
// roleRef is not Run:AI's makes the logical binding's error.
func readShards(ref model.Ref, shards []*model.Binding) ([]*member, map[string]struct{}, error) {
	slots := make([]*member, max(len(shards), 1))
	var ours map[string]struct{}
	for i := range slots {
		sl := newMember(ref, i)
		slots[i] = sl
		if i < len(shards) && shards[i] != nil && shards[i].Exists {
			sl.b = shards[i]
		}
		if !sl.exists() {
			continue
		}
		b := sl.b
		// The record is read here, when the binding is planned, and only
		// within its bounds (model.DecodeManaged).
		owned, err := b.Owned()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrRecordUnreadable, err)
		}
		// Sized up front: at 100,000 users growing these sets was most of
		// a steady-state plan's allocations and a sixth of its CPU.
		sl.users, sl.owned = make(map[string]struct{}, len(b.Subjects)), make(map[string]struct{}, len(owned))
		if ours == nil {
			ours = make(map[string]struct{}, len(owned))
		}
		if want := model.ExpectedRoleRef(b.Ref.Name); b.RoleRef != want {
			return nil, nil, fmt.Errorf("%s has roleRef %s/%s, expected ClusterRole/%s (%w); roleRef cannot be changed in place and this tool never deletes a binding: fix it by hand (delete it, and the next cycle recreates it)",
				b.Ref, b.RoleRef.Kind, b.RoleRef.Name, want.Name, ErrRoleRefMismatch)
		}
		for _, sub := range b.Subjects {
			if _, dup := sl.users[sub.Name]; dup || !model.IsUser(sub) {
				continue
			}
			sl.users[sub.Name] = struct{}{}
			sl.size += userBytes(sub.Name)
		}
		for _, u := range owned {
			sl.owned[u] = struct{}{}
			if _, here := sl.users[u]; here {
				ours[u] = struct{}{}
			}
		}
	}
	if ours == nil {
		ours = map[string]struct{}{}
	}
	return slots, ours, nil
}

// presentUsers is every user the bindings hold (read only: with one
// binding, its own set).
func presentUsers(slots []*member) map[string]struct{} {
	if len(slots) == 1 {
		return slots[0].users
	}
	n := 0
	for _, sl := range slots {
		n += len(sl.users)
	}
	present := make(map[string]struct{}, n)
	for _, sl := range slots {
		for u := range sl.users {
			present[u] = struct{}{}
		}
	}
	return present
}

// writes is the last stage: each member's change (and moves), the
// shards after the plan, and the users the record forgets.
func writes(p *BindingPlan, slots []*member, present map[string]struct{}) {
	for i, sl := range slots {
		stale := staleOwned(sl)
		legacy := legacyAnnotations(sl)
		create := !sl.exists() && (i == 0 || len(sl.add) > 0)
		if create || len(sl.add)+len(sl.remove)+len(sl.own)+len(stale)+len(legacy) > 0 {
			p.Writes = append(p.Writes, model.Change{Ref: sl.ref, Create: create, Add: sl.add, Remove: sl.remove, Own: sl.own, DropAnnotations: legacy})
		}
		if len(sl.move) > 0 {
			p.Moves = append(p.Moves, model.Change{Ref: sl.ref, Remove: sl.move})
		}
		p.Disown = append(p.Disown, stale...)
		if sl.exists() || create {
			p.Shards = i + 1
		}
		if i == 0 && sl.exists() {
			p.StaleApproval = sl.b.Annotations[ApproveAnnotation]
		}
	}
	// The logical binding forgets only users it no longer holds and does
	// not get back (a shard's record may drop a user who moves to another).
	if len(p.Disown) == 0 {
		return
	}
	gone := p.Disown[:0]
	adding := toSet(p.Add)
	for _, u := range model.SortedUnique(p.Disown) {
		_, here := present[u]
		_, coming := adding[u]
		if !here && !coming {
			gone = append(gone, u)
		}
	}
	p.Disown = gone
	if len(p.Disown) == 0 {
		p.Disown = nil
	}
}

// legacyAnnotations are the annotations of earlier versions a binding
// still carries: the next write removes them.
func legacyAnnotations(sl *member) []string {
	if !sl.exists() {
		return nil
	}
	var out []string
	for _, a := range []string{ApproveAnnotation, HistoryAnnotation} {
		if _, ok := sl.b.Annotations[a]; ok {
			out = append(out, a)
		}
	}
	return out
}

// staleOwned are the users a binding's ownership record lists that it
// does not hold and does not get: the record forgets them.
func staleOwned(sl *member) []string {
	if len(sl.owned) <= len(sl.users) && len(sl.add) == 0 {
		// The common case: every user recorded is held. (A record longer
		// than the binding always has a stale entry.)
		stale := false
		for u := range sl.owned {
			if _, here := sl.users[u]; !here {
				stale = true
				break
			}
		}
		if !stale {
			return nil
		}
	}
	adding := toSet(sl.add)
	var out []string
	for u := range sl.owned {
		_, here := sl.users[u]
		_, coming := adding[u]
		if !here && !coming {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

func remove(list []string, u string) []string {
	out := list[:0]
	for _, v := range list {
		if v != u {
			out = append(out, v)
		}
	}
	return out
}

func toSet(in []string) map[string]struct{} {
	m := make(map[string]struct{}, len(in))
	for _, s := range in {
		m[s] = struct{}{}
	}
	return m
}

func (o PlanOptions) shardBytes() int {
	if o.ShardBytes > 0 {
		return o.ShardBytes
	}
	return DefaultShardBytes
}

func (o PlanOptions) maxShards() int { return min(max(o.MaxShards, 0), model.MaxShards) }
