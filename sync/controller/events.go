package controller

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// maxListed bounds how many user IDs one Event message names.
const maxListed = 30

func (s *Syncer) event(ref kube.Ref, uid types.UID, eventType, reason, message string) {
	if s.events == nil {
		return
	}
	s.events.Event(ref, uid, eventType, reason, message)
	if s.metrics != nil {
		s.metrics.Events.WithLabelValues(reason).Inc()
	}
}

// untouchedEvent explains why a binding was not written.
func (s *Syncer) untouchedEvent(p *plan.BindingPlan, cur *kube.Binding) {
	if errors.Is(p.Err, plan.ErrRoleRefMismatch) && cur != nil {
		want := kube.ExpectedRoleRef(p.Ref.Name)
		s.event(p.Ref, cur.UID, corev1.EventTypeWarning, ReasonRoleRefMismatch, fmt.Sprintf(
			"roleRef mismatch: the binding refers to %s/%s, expected ClusterRole/%s; left untouched: roleRef cannot change in place and group sync never deletes a binding (delete it by hand and it is recreated)",
			cur.RoleRef.Kind, cur.RoleRef.Name, want.Name))
		return
	}
	if errors.Is(p.Err, plan.ErrGroupFailed) {
		s.event(p.Ref, uidOf(cur), corev1.EventTypeWarning, ReasonLeftUntouched, fmt.Sprintf(
			"left untouched: the directory lookup of %s failed; no one is added or removed until it succeeds",
			listOf("group", p.Failed)))
		return
	}
	s.event(p.Ref, uidOf(cur), corev1.EventTypeWarning, ReasonLeftUntouched, "left untouched: "+p.Err.Error())
}

func uidOf(b *kube.Binding) types.UID {
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
	msg := strings.Join(parts, "; ")
	if trigger == TriggerRepair {
		msg = "drift repair after a change by someone else: " + msg
	}
	return msg
}

// heldMessage says which removals the guard holds, why, and how to approve.
func heldMessage(p *plan.BindingPlan, g config.Guard) string {
	var why string
	switch p.HoldReason {
	case plan.HoldRemovesAll:
		why = "it would remove every user group sync manages in this binding"
	case plan.HoldTooMany:
		why = fmt.Sprintf("%d removals, more than guard.maxRemoveCount=%d", len(p.Held), g.MaxRemoveCount)
	case plan.HoldTooLarge:
		why = fmt.Sprintf("%d removals, more than guard.maxRemovePercent=%d%% of the users group sync manages", len(p.Held), g.MaxRemovePercent)
	default:
		why = p.HoldReason
	}
	return fmt.Sprintf("removal held by guard (%s): %s; approve once with the annotation %s=true on this binding, or run once --approve-removals",
		why, userList(p.Held), plan.ApproveAnnotation)
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
