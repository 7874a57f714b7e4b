package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// The guard's window is kept in the store (model.State) in the Run:AI
// namespace, never on the binding: a project admin who deletes the
// binding resets nothing.

// HistoryEntry is one write the guard counts.
type HistoryEntry = model.GuardEntry

// historySlots bounds the entries one window keeps (they merge by slot).
const historySlots = 60

// maxGroupsPerEntry bounds the groups one entry names; the others are
// counted under model.AnyGroup, which counts against every group.
const maxGroupsPerEntry = 32

// slot is the granularity of entries in a window.
func slot(window time.Duration) time.Duration {
	return max(window/historySlots, time.Second)
}

// windowOf keeps the entries inside the window ending at now.
func windowOf(all []HistoryEntry, now time.Time, window time.Duration) []HistoryEntry {
	if window <= 0 {
		return nil
	}
	var out []HistoryEntry
	for _, e := range all {
		if e.At.After(now.Add(-window)) && e.Removed >= 0 && e.Added >= 0 {
			out = append(out, e)
		}
	}
	return out
}

// windowTotals sums a window's removals and additions.
func windowTotals(h []HistoryEntry) (removed, added int) {
	for _, e := range h {
		removed += e.Removed
		added += e.Added
	}
	return removed, added
}

// addedThrough is what the window added through one group: its own count
// and what was counted for any group.
func addedThrough(h []HistoryEntry, group string) int {
	n := 0
	for _, e := range h {
		n += e.AddedBy[group] + e.AddedBy[model.AnyGroup]
	}
	return n
}

// recordHistory returns the window with one more write.
func recordHistory(h []HistoryEntry, now time.Time, window time.Duration, removed int, by map[string]int) []HistoryEntry {
	s := slot(window)
	at := now.Truncate(s)
	if at.Before(now) {
		at = at.Add(s)
	}
	at = at.UTC()
	added := 0
	for _, n := range by {
		added += n
	}
	out := make([]HistoryEntry, 0, len(h)+1)
	merged := false
	for _, e := range h {
		e.AddedBy = maps.Clone(e.AddedBy)
		if e.At.Equal(at) {
			e.Removed += removed
			e.Added += added
			e.AddedBy = mergeCounts(e.AddedBy, by)
			merged = true
		}
		out = append(out, e)
	}
	if !merged {
		out = append(out, HistoryEntry{At: at, Removed: removed, Added: added, AddedBy: mergeCounts(nil, by)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// mergeCounts adds by to m, keeping at most maxGroupsPerEntry groups: the
// smallest counts fold into model.AnyGroup.
func mergeCounts(m, by map[string]int) map[string]int {
	if len(by) == 0 {
		return m
	}
	if m == nil {
		m = map[string]int{}
	}
	for g, n := range by {
		m[g] += n
	}
	if len(m) <= maxGroupsPerEntry {
		return m
	}
	names := make([]string, 0, len(m))
	for g := range m {
		if g != model.AnyGroup {
			names = append(names, g)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		return m[names[i]] > m[names[j]] || m[names[i]] == m[names[j]] && names[i] < names[j]
	})
	for _, g := range names[maxGroupsPerEntry-1:] {
		m[model.AnyGroup] += m[g]
		delete(m, g)
	}
	return m
}

// removalHold says why removing n of the base users the tool manages must
// be held, or "", counting the window's earlier removals: their total is
// measured against the share and count limits, and against the users
// managed when the window began (base plus those removed since).
func removalHold(n, base, windowRemoved int, g config.Guard) string {
	total, whole := n+windowRemoved, base+windowRemoved
	switch {
	case g.AllowEmptyBelow > 0 && whole < g.AllowEmptyBelow:
		return ""
	case n >= base:
		return HoldRemovesAll
	case total > g.MaxRemoveCount:
		return HoldTooMany
	case total*100 > g.MaxRemovePercent*whole:
		return HoldTooLarge
	}
	return ""
}

// additions is the addition guard's verdict on one plan.
type additions struct {
	pass, held []string
	// bursting are the groups whose additions are held.
	bursting []string
	// by counts the passed additions by the group that brought them.
	by map[string]int
}

// additionHold splits users to add by the configured groups that grant
// them: a group whose additions in the window, these included, exceed
// limit is a burst, and a user is held when every group granting them is
// one. So a burst holds the users it brings, never another group's
// joiner. limit 0 holds nothing.
func additionHold(add []string, sources []Source, hist []HistoryEntry, limit int) additions {
	if len(add) == 0 {
		return additions{}
	}
	adding := toSet(add)
	through := map[string][]string{}
	for _, s := range sources {
		for _, u := range s.Members {
			if _, ok := adding[u]; ok {
				through[u] = append(through[u], s.Group)
			}
		}
	}
	count := map[string]int{}
	for _, u := range add {
		if len(through[u]) == 0 {
			// Granted by no source given (a Desired built without them).
			through[u] = []string{model.AnyGroup}
		}
		for _, g := range through[u] {
			count[g]++
		}
	}
	burst := map[string]bool{}
	for g, n := range count {
		burst[g] = limit > 0 && addedThrough(hist, g)+n > limit
	}
	out := additions{by: map[string]int{}}
	for _, u := range add {
		held := true
		for _, g := range through[u] {
			held = held && burst[g]
		}
		if held {
			out.held = append(out.held, u)
			continue
		}
		out.pass = append(out.pass, u)
		for _, g := range through[u] {
			out.by[g]++
		}
	}
	for g, b := range burst {
		if b {
			out.bursting = append(out.bursting, g)
		}
	}
	sort.Strings(out.bursting)
	return out
}

// ApprovalKey approves exactly these held removals and additions on this
// binding, and nothing else; it is recorded in the store
// (model.ApproveCommand).
func ApprovalKey(ref model.Ref, remove, add []string) string {
	h := sha256.New()
	h.Write([]byte(ref.String() + "\n"))
	for _, u := range sortedCopy(remove) {
		h.Write([]byte("-" + u + "\n"))
	}
	for _, u := range sortedCopy(add) {
		h.Write([]byte("+" + u + "\n"))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// PinKey approves that a configured group name now resolves to the entry
// id.
func PinKey(group, id string) string {
	h := sha256.Sum256([]byte("group\n" + group + "\n" + id + "\n"))
	return "sha256:" + hex.EncodeToString(h[:])[:16]
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// ApproveCommand is the kubectl command that approves key for ref, in the
// store of the Run:AI namespace runaiNS.
func ApproveCommand(runaiNS string, ref model.Ref, key string) string {
	return model.ApproveCommand(runaiNS, key, ref.String())
}

// verdict is the guard stage's answer for one plan.
type verdict struct {
	heldRemove, heldAdd     []string
	removeReason, addReason string
	// by counts the additions let through, by the group that brought them.
	by map[string]int
}

// guardPlan is the guard stage: removals over the limits are held (none
// at all while a feeding group cannot be read), and so are additions
// through a group over guard.maxAddCount, creation of the binding
// included. The window is the store's, so a deleted binding resets none;
// a user the tool granted here before (granted) comes back freely.
func guardPlan(p *BindingPlan, d Desired, c classified, hist []HistoryEntry, granted map[string]struct{}, g config.Guard) verdict {
	var v verdict
	p.WindowRemoved, p.WindowAdded = windowTotals(hist)
	if !d.Incomplete {
		// (When incomplete, what we could not read may still name the
		// candidates: nothing is removed.)
		p.Unexpected = len(c.candidates)
		if len(c.candidates) > 0 {
			if v.removeReason = removalHold(len(c.candidates), c.managed, p.WindowRemoved, g); v.removeReason == "" {
				p.Remove = c.candidates
			} else {
				v.heldRemove = c.candidates
			}
		}
	}
	var back, fresh []string
	for _, u := range p.Add {
		if _, ok := granted[u]; ok {
			back = append(back, u)
		} else {
			fresh = append(fresh, u)
		}
	}
	adds := additionHold(fresh, d.Sources, hist, g.MaxAddCount)
	p.Add, v.by = append(back, adds.pass...), adds.by
	if len(adds.held) > 0 {
		v.heldAdd, v.addReason, p.HeldGroups = adds.held, HoldTooManyAdd, adds.bursting
	}
	return v
}

// approve is the approval stage: what the guard holds goes through when
// the store holds its exact key, or `once --approve-removals` names this
// binding; otherwise it is held, with the key that approves it.
func approve(p *BindingPlan, v verdict, opts PlanOptions) {
	if len(v.heldRemove)+len(v.heldAdd) > 0 {
		key := ApprovalKey(p.Ref, v.heldRemove, v.heldAdd)
		stored := opts.approved(key)
		if stored || opts.Approve == p.Ref {
			p.Remove = append(p.Remove, v.heldRemove...)
			p.Add = append(p.Add, v.heldAdd...)
			p.Approved, p.HoldReason, p.AddHoldReason = true, v.removeReason, v.addReason
			if stored {
				p.UsedApproval = key
			}
		} else {
			p.Held, p.HoldReason, p.HeldAdd, p.AddHoldReason = v.heldRemove, v.removeReason, v.heldAdd, v.addReason
			p.ApprovalKey = key
			p.ApproveCommand = ApproveCommand(opts.RunaiNamespace, p.Ref, key)
		}
	}
	sort.Strings(p.Add)
	sort.Strings(p.Remove)
}

// nextState is the binding's guard state after the plan: the window
// counts what the guard let through by itself (what a human approved is
// vouched for), the binding is known from now on (no more adoption), and
// the users granted are those granted before (and, the first time, those
// its ownership record names) with this plan's additions, less its
// removals.
func nextState(prev model.BindingState, hist []HistoryEntry, p *BindingPlan, v verdict, ours map[string]struct{}, opts PlanOptions) (*model.BindingState, bool) {
	granted := toSet(prev.Granted)
	if !prev.Known {
		maps.Copy(granted, ours)
	}
	for _, u := range p.Add {
		granted[u] = struct{}{}
	}
	for _, u := range p.Adopt {
		granted[u] = struct{}{}
	}
	for _, u := range p.Remove {
		delete(granted, u)
	}
	st := &model.BindingState{History: hist, Known: true, Granted: model.SortedKeys(granted)}
	if len(st.Granted) == 0 {
		st.Granted = nil
	}
	// A list the store dropped for size is unknown: only this plan's own
	// changes make it differ (else a full store is rewritten every cycle).
	changed := !prev.Known || !prev.Dropped && !slices.Equal(st.Granted, prev.Granted) ||
		prev.Dropped && len(p.Add)+len(p.Adopt)+len(p.Remove) > 0
	removed := len(p.Remove) - len(v.heldRemove)
	if !p.Approved {
		removed = len(p.Remove)
	}
	if opts.Guard.Window > 0 && removed+len(v.by) > 0 {
		st.History = recordHistory(hist, opts.Now, opts.Guard.Window, removed, v.by)
		changed = true
	}
	return st, changed
}
