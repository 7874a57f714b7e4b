package kube

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// SetScope limits what c reads to s; call it before the first read.
func (c *Client) SetScope(s model.Scope) { c.scope = s }

// keepLabels returns the labels of the scope's keys (all without keys).
func keepLabels(s model.Scope, labels map[string]string) map[string]string {
	if s.NamespaceLabels == nil || labels == nil {
		return labels
	}
	out := map[string]string{}
	for _, k := range s.NamespaceLabels {
		if v, ok := labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

// inNamespace reports whether bindings in ns are in the scope, ns being
// known with labels; an unknown namespace (known false) is, so a binding is
// never lost to a namespace the informer has not seen yet.
func inNamespace(s model.Scope, ns string, labels map[string]string, known bool) bool {
	return s.Namespace == nil || !known || s.Namespace(ns, labels)
}

// reducedAnnotation marks an object of which only the identity is kept.
// The transform removes it from every object it keeps whole, so no one
// can set it to hide a binding.
const reducedAnnotation = "runai-ldap-sync.github.io/reduced-in-cache"

// reduceNamespace keeps what the daemon reads of a namespace: its name,
// the scope's labels and whether it is going away.
func reduceNamespace(s model.Scope, ns *corev1.Namespace) *corev1.Namespace {
	return &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion,
			CreationTimestamp: ns.CreationTimestamp, DeletionTimestamp: ns.DeletionTimestamp, Labels: keepLabels(s, ns.Labels)},
		Status: corev1.NamespaceStatus{Phase: ns.Status.Phase},
	}
}

// identityMeta is what is kept of an object outside the scope.
func identityMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, Annotations: map[string]string{reducedAnnotation: "true"}}
}

// reduceBinding returns obj reduced to its identity (marked), or, when
// keep, whole but for what is never read: managedFields, the last-applied
// copy kubectl keeps, and any reduced mark.
func reduceBinding(obj any, keep bool) any {
	switch o := obj.(type) {
	case *rbacv1.RoleBinding:
		if !keep {
			return &rbacv1.RoleBinding{ObjectMeta: identityMeta(&o.ObjectMeta)}
		}
		trimMeta(&o.ObjectMeta)
		shareSubjectConstants(o.Subjects)
	case *rbacv1.ClusterRoleBinding:
		if !keep {
			return &rbacv1.ClusterRoleBinding{ObjectMeta: identityMeta(&o.ObjectMeta)}
		}
		trimMeta(&o.ObjectMeta)
		shareSubjectConstants(o.Subjects)
	}
	return obj
}

// shareSubjectConstants points each subject's kind and API group at the
// constant of the same text. The decoder allocates both for every subject:
// at 100,000 users the informers keep about 225,000 subjects, and these
// were 450,000 small objects that the collector marked at every cycle.
func shareSubjectConstants(subjects []rbacv1.Subject) {
	for i := range subjects {
		subjects[i].Kind, subjects[i].APIGroup = constKind(subjects[i].Kind), constGroup(subjects[i].APIGroup)
	}
}

// constKind is kind, as the constant of the same text if there is one.
func constKind(kind string) string {
	switch kind {
	case rbacv1.UserKind:
		return rbacv1.UserKind
	case rbacv1.GroupKind:
		return rbacv1.GroupKind
	case rbacv1.ServiceAccountKind:
		return rbacv1.ServiceAccountKind
	}
	return kind
}

// constGroup is group, as the constant of the same text if it is RBAC's.
func constGroup(group string) string {
	if group == rbacv1.GroupName {
		return rbacv1.GroupName
	}
	return group
}

func trimMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	delete(m.Annotations, reducedAnnotation)
	delete(m.Annotations, corev1.LastAppliedConfigAnnotation)
}

// isReduced reports whether the informer keeps only obj's identity.
func isReduced(obj any) bool {
	m, ok := obj.(metav1.Object)
	if !ok {
		return false
	}
	_, reduced := m.GetAnnotations()[reducedAnnotation]
	return reduced
}
