package controller

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// maxListed bounds how many user IDs one Event message names.
const maxListed = 30

// event records an Event on a binding, if Events are on.
func (a *applier) event(ref model.Ref, uid string, eventType, reason, message string) {
	if a.events == nil {
		return
	}
	a.events.Event(ref, uid, eventType, reason, message)
	if a.s.obs.m != nil {
		a.s.obs.m.Events.WithLabelValues(reason).Inc()
	}
}

// ReasonProjectLabelCopied: a namespace is labelled for a project that is
// another namespace's (or several are, and none can be told apart).
const ReasonProjectLabelCopied = "ProjectLabelCopied"

// copiedLabelEvent reports, in the namespace itself, a project label that
// moves nothing (plan.SkipCopiedLabel, plan.SkipDuplicate).
func (a *applier) copiedLabelEvent(sp plan.SkippedProject) {
	ref := model.Ref{Kind: kube.KindNamespace, Name: sp.Namespace}
	label := a.s.cfg.Projects.NamespaceLabel + "=" + sp.Name
	switch sp.Reason {
	case plan.SkipCopiedLabel:
		a.event(ref, "", corev1.EventTypeWarning, ReasonProjectLabelCopied, fmt.Sprintf(
			"label %s ignored: project %s is another namespace's (the one holding its executor binding, else %s, else the oldest labelled); a copied label or %s marker moves nothing: remove it",
			label, sp.Name, config.DefaultNamespace(sp.Name), config.ProvisionedLabel))
	case plan.SkipDuplicate:
		a.event(ref, "", corev1.EventTypeWarning, ReasonProjectLabelCopied, fmt.Sprintf(
			"label %s ignored: several namespaces are labelled for project %s and none holds its executor binding or is the older; the project is not synced until only one is labelled",
			label, sp.Name))
	}
}

// untouchedEvent explains why a binding was not written.
func (a *applier) untouchedEvent(p *plan.BindingPlan, cur *model.Binding) {
	if errors.Is(p.Err, plan.ErrRoleRefMismatch) && cur != nil && cur.RoleRef == model.ExpectedRoleRef(p.Ref.Name) {
		// It is a shard whose roleRef is wrong: the plan's error names it.
		a.event(p.Ref, cur.UID, corev1.EventTypeWarning, ReasonRoleRefMismatch, "left untouched: "+p.Err.Error())
		return
	}
	if errors.Is(p.Err, plan.ErrRoleRefMismatch) && cur != nil {
		want := model.ExpectedRoleRef(p.Ref.Name)
		a.event(p.Ref, cur.UID, corev1.EventTypeWarning, ReasonRoleRefMismatch, fmt.Sprintf(
			"roleRef mismatch: the binding refers to %s/%s, expected ClusterRole/%s; left untouched: roleRef cannot change in place and group sync never deletes a binding (delete it by hand and it is recreated)",
			cur.RoleRef.Kind, cur.RoleRef.Name, want.Name))
		return
	}
	if errors.Is(p.Err, plan.ErrGroupFailed) {
		a.event(p.Ref, uidOf(cur), corev1.EventTypeWarning, ReasonLeftUntouched, fmt.Sprintf(
			"left untouched: the directory lookup of %s failed; no one is added or removed until it succeeds",
			listOf("group", p.Failed)))
		return
	}
	a.event(p.Ref, uidOf(cur), corev1.EventTypeWarning, ReasonLeftUntouched, "left untouched: "+p.Err.Error())
}

func uidOf(b *model.Binding) string {
	if b == nil {
		return ""
	}
	return b.UID
}

// changeMessage says who was added and removed, and why.
func changeMessage(p *plan.BindingPlan, policy, trigger string) string {
	var parts []string
	if p.Create {
		parts = append(parts, fmt.Sprintf("created by group sync with Run:AI's roleRef and %d users", len(p.Add)))
	}
	if len(p.Add) > 0 {
		parts = append(parts, "added by group sync: "+userList(p.Add))
	}
	if len(p.Remove) > 0 {
		why := "no longer in the directory groups; they were added by group sync"
		if policy == config.PolicyAuthoritative {
			why = "not in the directory groups, policy authoritative"
		}
		if p.Approved {
			why += "; the guard's hold was approved"
		}
		parts = append(parts, fmt.Sprintf("removed by group sync (%s): %s", why, userList(p.Remove)))
	}
	if len(p.Adopt) > 0 {
		parts = append(parts, "now managed by group sync (granted by the directory, already in the binding): "+userList(p.Adopt))
	}
	if len(p.Disown) > 0 {
		parts = append(parts, "no longer managed by group sync (gone from the binding; if put back by hand, they stay): "+userList(p.Disown))
	}
	msg := strings.Join(parts, "; ")
	if trigger == TriggerRepair {
		msg = "drift repair after a change by someone else: " + msg
	}
	return msg
}

// heldMessage says what the guard holds, why, and the command that
// approves exactly that, ready to paste.
func heldMessage(p *plan.BindingPlan, g config.Guard) string {
	var parts []string
	if len(p.Held) > 0 {
		var why string
		switch p.HoldReason {
		case plan.HoldRemovesAll:
			why = "it would remove every user group sync manages in this binding"
		case plan.HoldTooMany:
			why = fmt.Sprintf("%d removals, more than guard.maxRemoveCount=%d", len(p.Held)+p.WindowRemoved, g.MaxRemoveCount)
		case plan.HoldTooLarge:
			why = fmt.Sprintf("%d removals, more than guard.maxRemovePercent=%d%% of the users group sync manages", len(p.Held)+p.WindowRemoved, g.MaxRemovePercent)
		default:
			why = p.HoldReason
		}
		if p.WindowRemoved > 0 {
			why += fmt.Sprintf(", counting %d removed in the last guard.window=%s", p.WindowRemoved, g.Window)
		}
		parts = append(parts, fmt.Sprintf("removal held by guard (%s): %s", why, userList(p.Held)))
	}
	if len(p.HeldAdd) > 0 {
		parts = append(parts, fmt.Sprintf("addition held by guard (%s bring more than guard.maxAddCount=%d within guard.window=%s; other groups' joiners pass): %s",
			listOf("group", p.HeldGroups), g.MaxAddCount, g.Window, userList(p.HeldAdd)))
	}
	return fmt.Sprintf("%s; approve exactly these with: %s", strings.Join(parts, "; "), p.ApproveCommand)
}

// staleApprovalMessage says why an approval was removed.
func staleApprovalMessage(p *plan.BindingPlan) string {
	msg := fmt.Sprintf("annotation %s=%q removed and not read: approvals live in the guard's store in the Run:AI namespace, where a project's namespace admin cannot write", plan.ApproveAnnotation, p.StaleApproval)
	if p.ApprovalKey != "" {
		msg += "; what is held now is approved with: " + p.ApproveCommand
	}
	return msg
}

func userList(ids []string) string { return listOf("", ids) }

// listOf joins at most maxListed names, saying how many more there are.
func listOf(noun string, names []string) string {
	prefix := ""
	if noun != "" {
		prefix = noun + " "
		if len(names) > 1 {
			prefix = noun + "s "
		}
	}
	if len(names) <= maxListed {
		return prefix + strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s%s and %d more", prefix, strings.Join(names[:maxListed], ", "), len(names)-maxListed)
}
