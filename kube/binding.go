// Package kube reads and writes the Kubernetes side: project namespaces and
// the three Run:AI bindings. It is the "provider" of current state and the
// only place that writes. The words it speaks (Ref, Binding, Change, ...)
// are sync/model's; this package converts them to and from API objects.
package kube

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// ExpectedRoleRef is the API form of model.ExpectedRoleRef.
func ExpectedRoleRef(name string) rbacv1.RoleRef { return apiRoleRef(model.ExpectedRoleRef(name)) }

// UserSubject is the API form of model.UserSubject: how Run:AI writes a
// user subject.
func UserSubject(name string) rbacv1.Subject { return apiSubject(model.UserSubject(name)) }

func apiRoleRef(r model.RoleRef) rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: r.APIGroup, Kind: r.Kind, Name: r.Name}
}

func modelRoleRef(r rbacv1.RoleRef) model.RoleRef {
	return model.RoleRef{APIGroup: r.APIGroup, Kind: r.Kind, Name: r.Name}
}

func apiSubject(s model.Subject) rbacv1.Subject {
	return rbacv1.Subject{Kind: s.Kind, APIGroup: s.APIGroup, Name: s.Name, Namespace: s.Namespace}
}

func apiSubjects(in []model.Subject) []rbacv1.Subject {
	if in == nil {
		return nil
	}
	out := make([]rbacv1.Subject, len(in))
	for i, s := range in {
		out[i] = apiSubject(s)
	}
	return out
}

func modelSubjects(in []rbacv1.Subject) []model.Subject {
	if in == nil {
		return nil
	}
	out := make([]model.Subject, len(in))
	for i, s := range in {
		// The constants, not the decoder's copies: a LIST's subjects are
		// kept as the model's through the directory read (see constKind).
		out[i] = model.Subject{Kind: constKind(s.Kind), APIGroup: constGroup(s.APIGroup), Name: s.Name, Namespace: s.Namespace}
	}
	return out
}
