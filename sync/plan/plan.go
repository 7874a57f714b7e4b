package plan

import (
	"errors"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// ApproveAnnotation and HistoryAnnotation are what earlier versions kept
// on the binding, where the project's own namespace admin could write
// them. Approvals and the guard's window live in the store now
// (model.StateConfigMap); a binding that carries either loses it at the
// next write, and the approval is never read.
const (
	ApproveAnnotation = "runai-ldap-sync.github.io/approve-removals"
	HistoryAnnotation = "runai-ldap-sync.github.io/guard-history"
)

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
	HoldTooManyAdd = "too_many_added" // a group's additions over guard.maxAddCount
)

// BindingPlan is what one cycle will do to one binding.
type BindingPlan struct {
	Ref    model.Ref
	Create bool
	Add    []string
	Remove []string
	// Held are removals the guard stopped, and why.
	Held       []string
	HoldReason string
	// Approved means held removals (and additions) were approved and are
	// in Remove (and Add).
	Approved bool
	// HeldAdd are additions the guard stopped (guard.maxAddCount), and why;
	// HeldGroups are the groups whose bursts they are.
	HeldAdd       []string
	AddHoldReason string
	HeldGroups    []string
	// ApprovalKey approves what is held (recorded in the store); empty
	// when nothing is. UsedApproval is the stored approval this plan used.
	ApprovalKey, UsedApproval string
	// ApproveCommand records ApprovalKey in the store, ready to paste.
	ApproveCommand string
	// StaleApproval is an approval annotation of an earlier version on
	// the binding: never read, the write removes it.
	StaleApproval string
	// Kept are users no group grants now that a failed group may grant:
	// not removed while it fails.
	Kept []string
	// State is the binding's guard state after this plan, for the store;
	// StateChanged says it differs from what the store holds.
	State        *model.BindingState
	StateChanged bool
	// Adopt are present users the directory grants that become the tool's
	// (policy sync, ownership.adopt, a binding the store does not know
	// yet: migration only); Disown are users the ownership record
	// lists that the binding no longer holds: the record forgets them, so
	// anyone put back by hand later is a human's.
	Adopt, Disown []string
	// Leftovers are present users the directory does not grant and the
	// tool does not own: kept (policy sync, upsert-only), reported.
	Leftovers []string
	// WindowRemoved and WindowAdded are what the guard's window counted
	// before this plan, over every shard.
	WindowRemoved, WindowAdded int
	// Writes carry out the plan: one change per binding (the first or a
	// shard) that changes. Moves are written after all of Writes
	// succeeded: they take users out of a shard past the safe size once
	// Writes has added them to another, so no one is ever without access.
	// The writer only encodes them (model.Client.Apply).
	Writes, Moves []model.Change
	// Shards is how many bindings (the first one and its shards) exist
	// after the plan.
	Shards int
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
	return p.Err == nil && len(p.Writes)+len(p.Moves) > 0
}

// bindingState is the store's state of ref (empty when none).
func (o PlanOptions) bindingState(ref model.Ref) model.BindingState {
	if o.State != nil {
		if b := o.State.State.Bindings[ref.String()]; b != nil {
			return *b
		}
	}
	return model.BindingState{}
}

// approved reports whether the store holds the approval key, recorded
// less than model.ApprovalTTL ago.
func (o PlanOptions) approved(key string) bool {
	return o.State != nil && approvalLive(o.State.Approvals, &o.State.State, key, o.Now, model.ApprovalTTL(o.Guard.Window))
}

// approvalLive: approvals hold key, first seen less than ttl before now
// (or not seen yet: it is new). An older one approves nothing; the next
// store write removes it.
func approvalLive(approvals map[string]string, st *model.State, key string, now time.Time, ttl time.Duration) bool {
	if _, ok := approvals[key]; !ok {
		return false
	}
	seen, ok := st.ApprovalsSeen[key]
	return !ok || now.Sub(seen) <= ttl
}

// MetadataOnly reports whether the writes change no subject, only
// ownership records or annotations.
func (p *BindingPlan) MetadataOnly() bool {
	if !p.HasChanges() || len(p.Moves) > 0 {
		return false
	}
	for _, w := range p.Writes {
		if w.Create || len(w.Add)+len(w.Remove) > 0 {
			return false
		}
	}
	return true
}

// ShardWrites returns the refs of the bindings the plan writes, in order.
func (p *BindingPlan) ShardWrites() []model.Ref {
	var out []model.Ref
	seen := map[model.Ref]bool{}
	for _, w := range append(append([]model.Change(nil), p.Writes...), p.Moves...) {
		if !seen[w.Ref] {
			seen[w.Ref] = true
			out = append(out, w.Ref)
		}
	}
	return out
}

// PlanOptions are the policy inputs of a plan.
type PlanOptions struct {
	Policy string
	Guard  config.Guard
	// Adopt: present users the directory grants become the tool's, in a
	// binding the store does not know yet (migration).
	Adopt bool
	// Approve names the one binding whose held changes are approved (once
	// --approve-removals); the zero Ref approves none.
	Approve model.Ref
	// State is the guard's store as read (nil: empty), in RunaiNamespace.
	State          *model.StateSnapshot
	RunaiNamespace string
	// MaxShards is how many shards a binding may have after the first
	// (kubernetes.maxBindingShards, at most model.MaxShards); 0: none.
	MaxShards int
	// ShardBytes is the safe size of one binding by the stored-size
	// estimate; 0 is DefaultShardBytes. Tests lower it.
	ShardBytes int
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
func Plan(desired []Desired, current map[model.Ref]*model.Binding, opts PlanOptions) []BindingPlan {
	// The shards in current, by the binding they extend (one pass, rather
	// than a lookup of every possible shard name of every binding).
	extra := map[model.Ref][]*model.Binding{}
	for ref, b := range current {
		if base, i, ok := model.ShardBase(ref); ok && i > 0 && model.IsShard(ref) && b != nil && b.Exists {
			list := extra[base]
			for len(list) <= i {
				list = append(list, nil)
			}
			list[i] = b
			extra[base] = list
		}
	}
	out := make([]BindingPlan, 0, len(desired))
	for _, d := range desired {
		shards := []*model.Binding{current[d.Ref]}
		if list := extra[d.Ref]; len(list) > 1 {
			shards = append(shards, list[1:]...)
		}
		out = append(out, PlanOne(d, shards, opts))
	}
	return out
}

// ShardsOf collects a binding and its shards from current state: element
// 0 is the binding, element i its shard i (nil when absent), up to the
// last one that exists.
func ShardsOf(ref model.Ref, current map[model.Ref]*model.Binding) []*model.Binding {
	out := []*model.Binding{current[ref]}
	for i := 1; i <= model.MaxShards; i++ {
		if b := current[model.ShardRef(ref, i)]; b != nil && b.Exists {
			for len(out) < i {
				out = append(out, nil)
			}
			out = append(out, b)
		}
	}
	return out
}
