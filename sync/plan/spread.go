package plan

import (
	"fmt"
	"slices"
	"sort"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// spread turns the logical plan (p.Add, p.Remove, p.Adopt) into each
// member's changes: a removal comes out of every binding the policy lets it
// leave, an adoption is recorded where the user is, a shard past the safe
// size hands its excess to others (Moves), and every new or moved user
// goes to the first binding with room for them.
func spread(p *BindingPlan, slots []*member, want map[string]struct{}, opts PlanOptions, limit, maxShards int) ([]*member, error) {
	authoritative := opts.Policy == config.PolicyAuthoritative
	removing := toSet(p.Remove)
	spreadRemovals(slots, removing, toSet(p.Adopt), authoritative)
	moving := overflowing(slots, want, removing, authoritative, limit)
	unplaced := 0
	for _, u := range p.Add {
		var ok bool
		if slots, ok = place(slots, p.Ref, u, -1, p.adoptAdds, limit, maxShards); !ok {
			unplaced++
		}
	}
	for _, m := range moving {
		var ok bool
		if slots, ok = place(slots, p.Ref, m.user, m.from, p.adoptAdds, limit, maxShards); !ok {
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
		sl.own = model.SortedUnique(sl.own)
	}
	return slots, nil
}

// spreadRemovals takes each removed user out of every binding the policy
// lets them leave, and records adoptions where the user is.
func spreadRemovals(slots []*member, removing, adopting map[string]struct{}, authoritative bool) {
	if len(removing)+len(adopting) == 0 {
		return
	}
	for _, sl := range slots {
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
}

type mover struct {
	user string
	from int
}

// overflowing picks the users a binding past the safe size (written by
// an earlier version, or the size was lowered) hands to others: wanted
// users it owns, from the end of the alphabet, until it fits; those held
// elsewhere as well just leave it.
func overflowing(slots []*member, want, removing map[string]struct{}, authoritative bool, limit int) []mover {
	var moving []mover
	for i, sl := range slots {
		if sl.size <= limit {
			continue
		}
		users := model.SortedKeys(sl.users)
		for k := len(users) - 1; k >= 0 && sl.size > limit; k-- {
			u := users[k]
			_, wanted := want[u]
			_, mine := sl.owned[u]
			_, rm := removing[u]
			if !wanted || rm || !(mine || authoritative) {
				continue
			}
			if !heldElsewhere(slots, u, i) {
				moving = append(moving, mover{u, i})
			}
			sl.move = append(sl.move, u)
			sl.size -= userBytes(u)
		}
		sort.Strings(sl.move)
	}
	return moving
}

// heldElsewhere: a binding other than from keeps holding u.
func heldElsewhere(slots []*member, u string, from int) bool {
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

// place puts u (new when from < 0, else moved out of slots[from]) into
// the first binding with room, adding a shard when needed.
func place(slots []*member, base model.Ref, u string, from int, adoptAdds bool, limit, maxShards int) ([]*member, bool) {
	for j := 0; j <= maxShards; j++ {
		if j == len(slots) {
			slots = append(slots, newMember(base, j))
		}
		sl := slots[j]
		if j == from || sl.size+userBytes(u) > limit {
			continue
		}
		sl.add = append(sl.add, u)
		sl.size += userBytes(u)
		if from < 0 && adoptAdds || from >= 0 {
			// What the plan adds is granted: ours even if someone put it
			// there between the plan and the write. A moved user was ours
			// where they were.
			sl.own = append(sl.own, u)
		}
		return slots, true
	}
	return slots, false
}
