package plan

import (
	"fmt"
	"slices"
	"sort"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// member is one binding of a logical binding: the first one (index 0) or a
// shard, as it is and as the plan leaves it.
type member struct {
	ref    model.Ref
	b      *model.Binding // nil when it does not exist
	users  map[string]struct{}
	owned  map[string]struct{}
	hist   []HistoryEntry
	size   int // estimated stored size after the plan
	add    []string
	remove []string
	move   []string
	own    []string
	added  int // of add, the users new to the logical binding
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
// them, a new user goes to the first one with room.
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
	// One member per binding that exists (and the first one); spread adds
	// the shards it needs.
	slots := make([]*member, max(len(shards), 1))
	ours := map[string]struct{}{}
	for i := range slots {
		sl := newMember(d.Ref, i)
		slots[i] = sl
		if i < len(shards) && shards[i] != nil && shards[i].Exists {
			sl.b = shards[i]
		}
		if !sl.exists() {
			continue
		}
		b := sl.b
		if b.ManagedErr != nil {
			p.Err = fmt.Errorf("%w: %w", ErrRecordUnreadable, b.ManagedErr)
			return p
		}
		if want := model.ExpectedRoleRef(b.Ref.Name); b.RoleRef != want {
			p.Err = fmt.Errorf("%s has roleRef %s/%s, expected ClusterRole/%s (%w); roleRef cannot be changed in place and this tool never deletes a binding: fix it by hand (delete it, and the next cycle recreates it)",
				b.Ref, b.RoleRef.Kind, b.RoleRef.Name, want.Name, ErrRoleRefMismatch)
			return p
		}
		for _, sub := range b.Subjects {
			if _, dup := sl.users[sub.Name]; dup || !model.IsUser(sub) {
				continue
			}
			sl.users[sub.Name] = struct{}{}
			sl.size += userBytes(sub.Name)
		}
		for _, u := range b.Managed {
			sl.owned[u] = struct{}{}
			if _, here := sl.users[u]; here {
				ours[u] = struct{}{}
			}
		}
		sl.hist = decodeHistory(b.Annotations[HistoryAnnotation], opts.Now, opts.Guard.Window)
	}
	// Every user the bindings hold (read only: one binding's set is it).
	present := slots[0].users
	if len(slots) > 1 {
		present = map[string]struct{}{}
		for _, sl := range slots {
			for u := range sl.users {
				present[u] = struct{}{}
			}
		}
	}
	base := slots[0]
	p.Create = !base.exists()

	want := make(map[string]struct{}, len(d.Users))
	for _, u := range d.Users {
		want[u] = struct{}{}
		if _, ok := present[u]; !ok {
			p.Add = append(p.Add, u)
		}
	}
	p.Missing = len(p.Add)

	// Which present users the policy may remove, and the base the guard's
	// share is measured against.
	p.adoptAdds = opts.Policy == config.PolicySync && opts.Adopt
	var candidates []string
	managed := 0
	for u := range present {
		_, wanted := want[u]
		_, mine := ours[u]
		switch {
		case opts.Policy == config.PolicyAuthoritative:
			managed++
			if !wanted {
				candidates = append(candidates, u)
			}
		case mine:
			if opts.Policy != config.PolicyUpsertOnly {
				managed++
				if !wanted {
					candidates = append(candidates, u)
				}
			}
		case wanted:
			if p.adoptAdds {
				// A hand-kept user the directory vouches for: ours from
				// now on, removed like any other when they leave.
				p.Adopt = append(p.Adopt, u)
				managed++
			}
		default:
			p.Leftovers = append(p.Leftovers, u)
		}
	}
	sort.Strings(candidates)
	sort.Strings(p.Adopt)
	sort.Strings(p.Leftovers)

	for _, sl := range slots {
		r, a := windowTotals(sl.hist)
		p.WindowRemoved += r
		p.WindowAdded += a
	}

	var heldRemove, heldAdd []string
	removeReason, addReason := "", ""
	if !d.Incomplete {
		// (When incomplete, what we could not read may still name the
		// candidates: nothing is removed.)
		p.Unexpected = len(candidates)
		if len(candidates) > 0 {
			if removeReason = removalHold(len(candidates), managed, p.WindowRemoved, opts.Guard); removeReason == "" {
				p.Remove = candidates
			} else {
				heldRemove = candidates
			}
		}
	}
	// The first binding's creation is no addition to an existing binding.
	if g := opts.Guard; !p.Create && g.MaxAddCount > 0 && len(p.Add) > 0 && p.WindowAdded+len(p.Add) > g.MaxAddCount {
		heldAdd, p.Add, addReason = p.Add, nil, HoldTooManyAdd
	}

	approval := ""
	if base.exists() {
		approval = base.b.Annotations[ApproveAnnotation]
	}
	switch {
	case len(heldRemove)+len(heldAdd) == 0:
		if approval != "" && !d.Incomplete {
			p.StaleApproval = approval
		}
	case opts.ApproveAll || approval == ApprovalKey(d.Ref, heldRemove, heldAdd):
		p.Remove = append(p.Remove, heldRemove...)
		p.Add = append(p.Add, heldAdd...)
		p.Approved, p.HoldReason, p.AddHoldReason = true, removeReason, addReason
	default:
		p.Held, p.HoldReason, p.HeldAdd, p.AddHoldReason = heldRemove, removeReason, heldAdd, addReason
		p.ApprovalKey = ApprovalKey(d.Ref, heldRemove, heldAdd)
		if approval != "" {
			p.StaleApproval = approval
		}
	}
	sort.Strings(p.Add)
	sort.Strings(p.Remove)

	slots, err := spread(&p, slots, want, opts, limit, maxShards)
	if err != nil {
		return BindingPlan{Ref: d.Ref, Desired: len(d.Users), Incomplete: d.Incomplete, Failed: d.Failed,
			Err: fmt.Errorf("%s left as it is: %w", d.Ref, err)}
	}

	// The window counts what the guard let through by itself; what a human
	// approved is vouched for. Each binding keeps the count of its own
	// writes, so a change to one shard writes that shard alone.
	countRemoved := !(p.Approved && removeReason != "")
	countAdded := !(p.Approved && addReason != "")
	for i, sl := range slots {
		removed, added := 0, 0
		if countRemoved {
			removed = len(sl.remove)
		}
		if countAdded {
			added = sl.added
		}
		history := ""
		if opts.Guard.Window > 0 && removed+added > 0 {
			history = recordHistory(sl.hist, opts.Now, opts.Guard.Window, removed, added)
		}
		stale := staleOwned(sl)
		dropApproval := i == 0 && (p.Approved || p.StaleApproval != "")
		create := !sl.exists() && (i == 0 || len(sl.add) > 0)
		if create || len(sl.add)+len(sl.remove)+len(sl.own)+len(stale) > 0 || history != "" || dropApproval {
			ch := model.Change{Ref: sl.ref, Create: create, Add: sl.add, Remove: sl.remove, Own: sl.own}
			if history != "" {
				ch.SetAnnotations = map[string]string{HistoryAnnotation: history}
			}
			if dropApproval {
				ch.DropAnnotations = []string{ApproveAnnotation}
			}
			p.Writes = append(p.Writes, ch)
		}
		if len(sl.move) > 0 {
			p.Moves = append(p.Moves, model.Change{Ref: sl.ref, Remove: sl.move})
		}
		p.Disown = append(p.Disown, stale...)
		if sl.exists() || create {
			p.Shards = i + 1
		}
	}
	// The logical binding forgets only users it no longer holds and does
	// not get back (a shard's record may drop a user who moves to another).
	if len(p.Disown) == 0 {
		return p
	}
	gone := p.Disown[:0]
	adding := toSet(p.Add)
	for _, u := range sortedUnique(p.Disown) {
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
	return p
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

// spread turns the logical plan (p.Add, p.Remove, p.Adopt) into each
// member's changes: a removal comes out of every binding the policy lets it
// leave, an adoption is recorded where the user is, a shard past the safe
// size hands its excess to others (Moves), and every new or moved user
// goes to the first binding with room for them.
func spread(p *BindingPlan, slots []*member, want map[string]struct{}, opts PlanOptions, limit, maxShards int) ([]*member, error) {
	authoritative := opts.Policy == config.PolicyAuthoritative
	removing := toSet(p.Remove)
	adopting := toSet(p.Adopt)
	for _, sl := range slots {
		if len(removing)+len(adopting) == 0 {
			break
		}
		for u := range sl.users {
			_, rm := removing[u]
			_, mine := sl.owned[u]
			if rm && (authoritative || mine) {
				sl.remove = append(sl.remove, u)
				sl.size -= userBytes(u)
				continue
			}
			if _, ok := adopting[u]; ok && !mine {
				sl.own = append(sl.own, u)
			}
		}
		sort.Strings(sl.remove)
	}
	// heldElsewhere: a user some other binding keeps holding.
	heldElsewhere := func(u string, from int) bool {
		for j, sl := range slots {
			if j == from || slices.Contains(sl.remove, u) || slices.Contains(sl.move, u) {
				continue
			}
			if _, ok := sl.users[u]; ok {
				return true
			}
		}
		return false
	}
	// A binding past the safe size (written by an earlier version, or the
	// size was lowered) hands wanted users it owns to others, from the end
	// of the alphabet, until it fits; those held elsewhere as well just
	// leave it.
	type mover struct {
		user string
		from int
	}
	var moving []mover
	for i, sl := range slots {
		if sl.size <= limit {
			continue
		}
		users := sortedKeys(sl.users)
		for k := len(users) - 1; k >= 0 && sl.size > limit; k-- {
			u := users[k]
			_, wanted := want[u]
			_, mine := sl.owned[u]
			_, rm := removing[u]
			if !wanted || rm || !(mine || authoritative) {
				continue
			}
			if !heldElsewhere(u, i) {
				moving = append(moving, mover{u, i})
			}
			sl.move = append(sl.move, u)
			sl.size -= userBytes(u)
		}
		sort.Strings(sl.move)
	}
	place := func(u string, from int) bool {
		for j := 0; j <= maxShards; j++ {
			if j == len(slots) {
				slots = append(slots, newMember(p.Ref, j))
			}
			sl := slots[j]
			if j == from || sl.size+userBytes(u) > limit {
				continue
			}
			sl.add = append(sl.add, u)
			sl.size += userBytes(u)
			if from < 0 {
				sl.added++
			}
			if from < 0 && p.adoptAdds || from >= 0 {
				// What the plan adds is granted: ours even if someone put
				// it there between the plan and the write. A moved user
				// was ours where they were.
				sl.own = append(sl.own, u)
			}
			return true
		}
		return false
	}
	unplaced := 0
	for _, u := range p.Add {
		if !place(u, -1) {
			unplaced++
		}
	}
	for _, m := range moving {
		if !place(m.user, m.from) {
			// No room elsewhere: the user stays where they are.
			sl := slots[m.from]
			sl.move = remove(sl.move, m.user)
			sl.size += userBytes(m.user)
		}
	}
	if unplaced > 0 {
		return nil, fmt.Errorf("%d users to add find no room in the binding and its %d shards of %.1f MiB each (hand-added users take room as well): "+
			"raise kubernetes.maxBindingShards (at most %d) or remove leftovers", unplaced, maxShards, float64(limit)/(1<<20), model.MaxShards)
	}
	for _, sl := range slots {
		sort.Strings(sl.add)
		sl.own = sortedUnique(sl.own)
	}
	return slots, nil
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

func sortedUnique(in []string) []string { return sortedKeys(toSet(in)) }

func (o PlanOptions) shardBytes() int {
	if o.ShardBytes > 0 {
		return o.ShardBytes
	}
	return DefaultShardBytes
}

func (o PlanOptions) maxShards() int { return min(max(o.MaxShards, 0), model.MaxShards) }
