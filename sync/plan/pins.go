package plan

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// ErrPinChanged marks a group held because its name now resolves to
// another entry than the one pinned in the store.
var ErrPinChanged = errors.New("group name resolves to another entry than before")

// PinHold is a configured group whose name resolves to an entry other
// than the pinned one: held (as a failed group) until Key is approved.
type PinHold struct {
	Group     string
	WasID, ID string
	WasDN, DN string
	Key       string
}

// CheckPins compares each found group's identity (objectGUID, entryUUID)
// with the one pinned in the store: a group that now resolves to another
// entry (recreated, or squatted by a same-named group elsewhere) becomes a
// failed group, so its bindings keep its last known members and gain
// none of the new entry's, until its PinKey is approved. It returns the
// groups as the desired state must see them, the holds and the approval
// keys used. groups is not changed.
func CheckPins(groups map[string]*model.Group, st *model.State, approvals map[string]string, now time.Time, ttl time.Duration) (map[string]*model.Group, []PinHold, []string) {
	if st == nil || len(st.Groups) == 0 {
		return groups, nil, nil
	}
	out, cloned := groups, false
	var holds []PinHold
	var used []string
	for name, g := range groups {
		was := st.Groups[name]
		if g == nil || g.Err != nil || !g.Found || g.Identity == "" || was == nil || was.ID == "" || was.ID == g.Identity {
			continue
		}
		key := PinKey(name, g.Identity)
		if approvalLive(approvals, st, key, now, ttl) {
			used = append(used, key)
			continue
		}
		h := PinHold{Group: name, WasID: was.ID, ID: g.Identity, WasDN: was.DN, DN: g.DN, Key: key}
		holds = append(holds, h)
		if !cloned {
			out, cloned = maps.Clone(groups), true
		}
		held := *g
		held.Members = nil
		held.Err = fmt.Errorf("%w: %q is now %s (id %s), was %s (id %s); held until approved", ErrPinChanged, name, g.DN, g.Identity, was.DN, was.ID)
		out[name] = &held
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i].Group < holds[j].Group })
	sort.Strings(used)
	return out, holds, used
}

// RememberGroups records in st what this cycle read of each group: the
// pinned identity and the last known members of every group read well
// (held groups keep their old record).
func RememberGroups(st *model.State, checked map[string]*model.Group) {
	if st.Groups == nil {
		st.Groups = map[string]*model.GroupState{}
	}
	for name, g := range checked {
		if g == nil || g.Err != nil {
			continue
		}
		gs := &model.GroupState{Members: sortedMembers(g.Members)}
		if was := st.Groups[name]; was != nil && g.Identity == "" {
			gs.ID, gs.DN = was.ID, was.DN // the server showed none: keep the pin
		}
		if g.Found && g.Identity != "" {
			gs.ID, gs.DN = g.Identity, g.DN
		}
		if len(gs.Members) == 0 {
			gs.Members = nil
		}
		st.Groups[name] = gs
	}
}

// GroupChanged says whether what was read of g differs from what st
// keeps of it (was, nil when nothing is kept), so the store needs a write.
// Member order does not count. A list the store dropped for size is no
// change by itself: a full store would drop it again, so it is retried
// only with another change (same content, no write).
func GroupChanged(was *model.GroupState, g *model.Group) bool {
	switch {
	case was == nil:
		return true
	case g.Identity != "" && g.Identity != was.ID:
		return true
	case was.Dropped:
		return false
	}
	return !slices.Equal(was.Members, sortedMembers(g.Members))
}

// sortedMembers is members sorted (a copy when they were not).
func sortedMembers(members []string) []string {
	if slices.IsSorted(members) {
		return members
	}
	return slices.Sorted(slices.Values(members))
}

// LastKnown returns the last known members kept in st, by group.
func LastKnown(st *model.State) map[string][]string {
	out := map[string][]string{}
	if st == nil {
		return out
	}
	for name, g := range st.Groups {
		if !g.Dropped {
			out[name] = g.Members
		}
	}
	return out
}
