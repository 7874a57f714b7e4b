package plan

import (
	"errors"
	"fmt"
	"sort"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
)

// ApproveAnnotation on a binding approves, once, the removals the guard
// holds for it; the cycle that applies them removes the annotation.
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
	HoldTooMany    = "too_many"    // over guard.maxRemoveCount
	HoldTooLarge   = "too_large"   // over guard.maxRemovePercent
	HoldRemovesAll = "removes_all" // would remove every subject we manage
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
	// Approved means held removals were approved and are in Remove.
	Approved bool
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

// HasChanges reports whether the plan writes anything.
func (p *BindingPlan) HasChanges() bool {
	return p.Err == nil && (p.Create || len(p.Add) > 0 || len(p.Remove) > 0)
}

// PlanOptions are the policy inputs of a plan.
type PlanOptions struct {
	Policy string
	Guard  config.Guard
	// ApproveAll approves every held removal (a command-line flag for one run).
	ApproveAll bool
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
	var candidates []string
	base := 0
	switch opts.Policy {
	case config.PolicyUpsertOnly:
	case config.PolicyAuthoritative:
		for u := range present {
			base++
			if _, ok := want[u]; !ok {
				candidates = append(candidates, u)
			}
		}
	default: // sync
		for _, u := range cur.Managed {
			if _, ok := present[u]; !ok {
				continue
			}
			base++
			if _, ok := want[u]; !ok {
				candidates = append(candidates, u)
			}
		}
	}
	sort.Strings(candidates)
	if d.Incomplete {
		// What we could not read may still name these users.
		return p
	}
	p.Unexpected = len(candidates)
	if len(candidates) == 0 {
		return p
	}
	reason := guardReason(len(candidates), base, opts.Guard)
	if reason == "" {
		p.Remove = candidates
		return p
	}
	if opts.ApproveAll || cur.Annotations[ApproveAnnotation] == "true" {
		p.Remove, p.Approved, p.HoldReason = candidates, true, reason
		return p
	}
	p.Held, p.HoldReason = candidates, reason
	return p
}

// guardReason says why removing n of base managed users must be held, or "".
func guardReason(n, base int, g config.Guard) string {
	switch {
	case n >= base:
		return HoldRemovesAll
	case n > g.MaxRemoveCount:
		return HoldTooMany
	case n*100 > g.MaxRemovePercent*base:
		return HoldTooLarge
	}
	return ""
}
