package plan

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
)

// ApproveAnnotation on a binding approves the changes the guard holds for
// it, and only those: its value must be their ApprovalKey, which diff and
// the RemovalsHeld Event print. The write that applies them removes it; a
// value that matches nothing held is removed as well (with an Event), so
// an approval never waits for a later, different mass removal.
const ApproveAnnotation = "runai-ldap-sync.github.io/approve-removals"

// ErrGroupFailed marks plan errors of a binding left untouched because a
// group feeding it failed; they are counted as failed groups, not again as
// binding errors.
var ErrGroupFailed = errors.New("group lookup failed")

// ErrRoleRefMismatch marks a plan error for a binding whose roleRef is not
// Run:AI's; such a binding is reported and never written.
var ErrRoleRefMismatch = errors.New("roleRef mismatch")

// ErrRecordUnreadable marks a plan error for a binding whose ownership
// record cannot be read; it is left untouched until the record is fixed.
var ErrRecordUnreadable = errors.New("ownership record unreadable")

// Hold reasons.
const (
	HoldTooMany    = "too_many"       // over guard.maxRemoveCount
	HoldTooLarge   = "too_large"      // over guard.maxRemovePercent
	HoldRemovesAll = "removes_all"    // would remove every subject we manage
	HoldTooManyAdd = "too_many_added" // additions over guard.maxAddCount
)

// BindingPlan is what one cycle will do to one binding.
type BindingPlan struct {
	Ref    kube.Ref
	Create bool
	Add    []string
	Remove []string
	// Held are removals the guard stopped, and why.
	Held       []string
	HoldReason string
	// Approved means held removals (and additions) were approved and are
	// in Remove (and Add).
	Approved bool
	// HeldAdd are additions the guard stopped (guard.maxAddCount), and why.
	HeldAdd       []string
	AddHoldReason string
	// ApprovalKey is the ApproveAnnotation value that approves what is
	// held; empty when nothing is.
	ApprovalKey string
	// StaleApproval is an approval on the binding that matches nothing
	// held; the write removes it.
	StaleApproval string
	// Adopt are present users the directory grants that become the tool's
	// (policy sync, ownership.adopt); Disown are users the ownership record
	// lists that the binding no longer holds: the record forgets them, so
	// anyone put back by hand later is a human's.
	Adopt, Disown []string
	// Leftovers are present users the directory does not grant and the
	// tool does not own: kept (policy sync, upsert-only), reported.
	Leftovers []string
	// WindowRemoved and WindowAdded are what the guard's window counted
	// before this plan; History is the annotation after the write ("":
	// unchanged).
	WindowRemoved, WindowAdded int
	History                    string
	// adoptAdds: users added are the tool's even if already there at the
	// write (ownership.adopt).
	adoptAdds bool
	// Desired is the number of users the binding should have.
	Desired int
	// Missing and Unexpected are the drift before this cycle's writes:
	// desired users absent, and users present that the policy would remove.
	Missing, Unexpected int
	// Incomplete: some feeding group failed, so nothing is removed.
	Incomplete bool
	// Err: the binding is left untouched this cycle, for this reason.
	Err error
	// Failed lists the groups feeding the binding whose lookup failed.
	Failed []string
}

// HasChanges reports whether the plan writes anything: subjects, or only
// the ownership record and annotations (MetadataOnly).
func (p *BindingPlan) HasChanges() bool {
	return p.Err == nil && (p.Create || len(p.Add) > 0 || len(p.Remove) > 0 ||
		len(p.Adopt) > 0 || len(p.Disown) > 0 || p.StaleApproval != "")
}

// MetadataOnly reports whether the write changes no subject, only the
// ownership record or an annotation.
func (p *BindingPlan) MetadataOnly() bool {
	return p.HasChanges() && !p.Create && len(p.Add) == 0 && len(p.Remove) == 0
}

// Change is the write that carries out the plan; the writer only encodes
// it (kube.Client.Apply).
func (p *BindingPlan) Change() kube.Change {
	ch := kube.Change{Ref: p.Ref, Create: p.Create, Add: p.Add, Remove: p.Remove, Own: p.Adopt}
	if p.adoptAdds {
		// What the plan adds is granted: ours even if someone put it there
		// between the plan and the write.
		ch.Own = append(append([]string(nil), p.Add...), p.Adopt...)
	}
	if p.History != "" {
		ch.SetAnnotations = map[string]string{HistoryAnnotation: p.History}
	}
	if p.Approved || p.StaleApproval != "" {
		ch.DropAnnotations = []string{ApproveAnnotation}
	}
	return ch
}

// PlanOptions are the policy inputs of a plan.
type PlanOptions struct {
	Policy string
	Guard  config.Guard
	// Adopt: present users the directory grants become the tool's.
	Adopt bool
	// ApproveAll approves every held change (once --approve-removals).
	ApproveAll bool
	// Now ends the guard's window; the caller's clock, passed as a value.
	Now time.Time
}

// Plan compares desired with current state and returns, per binding, the
// users to add and to remove. It is a pure function: the same inputs always
// give the same plan, and it never touches a server.
//
// Comparison is by set: order and duplicates in the current subject list do
// not matter, and equal sets mean no write. Only User subjects are ever
// removed; Groups and ServiceAccounts are never touched.
func Plan(desired []Desired, current map[kube.Ref]*kube.Binding, opts PlanOptions) []BindingPlan {
	out := make([]BindingPlan, 0, len(desired))
	for _, d := range desired {
		out = append(out, PlanOne(d, current[d.Ref], opts))
	}
	return out
}

// PlanOne plans one binding: Plan for a single desired state and its
// current binding (nil when it does not exist).
func PlanOne(d Desired, cur *kube.Binding, opts PlanOptions) BindingPlan {
	p := BindingPlan{Ref: d.Ref, Desired: len(d.Users), Incomplete: d.Incomplete, Failed: d.Failed}
	if d.Err != nil {
		p.Err = d.Err
		return p
	}
	if err := tooLarge(d.Users); err != nil {
		p.Err = fmt.Errorf("%s left as it is: %w", d.Ref, err)
		return p
	}
	if cur == nil || !cur.Exists {
		// Run:AI's template creates these bindings with no subjects; create
		// a missing one even when empty, so Run:AI finds it.
		p.Create = true
		p.Add = append([]string(nil), d.Users...)
		p.Missing = len(d.Users)
		return p
	}
	if cur.ManagedErr != nil {
		p.Err = fmt.Errorf("%w: %w", ErrRecordUnreadable, cur.ManagedErr)
		return p
	}
	if want := kube.ExpectedRoleRef(d.Ref.Name); cur.RoleRef != want {
		p.Err = fmt.Errorf("%s has roleRef %s/%s, expected ClusterRole/%s (%w); roleRef cannot be changed in place and this tool never deletes a binding: fix it by hand (delete it, and the next cycle recreates it)",
			d.Ref, cur.RoleRef.Kind, cur.RoleRef.Name, want.Name, ErrRoleRefMismatch)
		return p
	}

	present := map[string]struct{}{}
	for _, u := range cur.Users() {
		present[u] = struct{}{}
	}
	owned := make(map[string]struct{}, len(cur.Managed))
	for _, u := range cur.Managed {
		owned[u] = struct{}{}
	}
	want := make(map[string]struct{}, len(d.Users))
	for _, u := range d.Users {
		want[u] = struct{}{}
		if _, ok := present[u]; !ok {
			p.Add = append(p.Add, u)
		}
	}
	p.Missing = len(p.Add)
	for _, u := range cur.Managed {
		_, here := present[u]
		_, wanted := want[u]
		if !here && !wanted {
			p.Disown = append(p.Disown, u)
		}
	}

	// Which present users the policy may remove, and the base the guard's
	// share is measured against.
	p.adoptAdds = opts.Policy == config.PolicySync && opts.Adopt
	var candidates []string
	base := 0
	for u := range present {
		_, wanted := want[u]
		_, ours := owned[u]
		switch {
		case opts.Policy == config.PolicyAuthoritative:
			base++
			if !wanted {
				candidates = append(candidates, u)
			}
		case ours:
			if opts.Policy != config.PolicyUpsertOnly {
				base++
				if !wanted {
					candidates = append(candidates, u)
				}
			}
		case wanted:
			if p.adoptAdds {
				// A hand-kept user the directory vouches for: ours from
				// now on, removed like any other when they leave.
				p.Adopt = append(p.Adopt, u)
				base++
			}
		default:
			p.Leftovers = append(p.Leftovers, u)
		}
	}
	sort.Strings(candidates)
	sort.Strings(p.Adopt)
	sort.Strings(p.Leftovers)

	history := decodeHistory(cur.Annotations[HistoryAnnotation], opts.Now, opts.Guard.Window)
	p.WindowRemoved, p.WindowAdded = windowTotals(history)

	var heldRemove, heldAdd []string
	removeReason, addReason := "", ""
	if !d.Incomplete {
		// (When incomplete, what we could not read may still name the
		// candidates: nothing is removed.)
		p.Unexpected = len(candidates)
		if len(candidates) > 0 {
			if removeReason = removalHold(len(candidates), base, p.WindowRemoved, opts.Guard); removeReason == "" {
				p.Remove = candidates
			} else {
				heldRemove = candidates
			}
		}
	}
	if g := opts.Guard; g.MaxAddCount > 0 && len(p.Add) > 0 && p.WindowAdded+len(p.Add) > g.MaxAddCount {
		heldAdd, p.Add, addReason = p.Add, nil, HoldTooManyAdd
	}

	approval := cur.Annotations[ApproveAnnotation]
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

	// The window counts what the guard let through by itself; what a human
	// approved is vouched for.
	removed, added := len(p.Remove), len(p.Add)
	if p.Approved && removeReason != "" {
		removed = 0
	}
	if p.Approved && addReason != "" {
		added = 0
	}
	if opts.Guard.Window > 0 && removed+added > 0 {
		p.History = recordHistory(history, opts.Now, opts.Guard.Window, removed, added)
	}
	return p
}
