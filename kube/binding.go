// Package kube reads and writes the Kubernetes side: project namespaces and
// the three Run:AI bindings. It is the "provider" of current state and the
// only place that writes. The words it speaks (Ref, Binding, Change, ...)
// are sync/model's; this package converts them to and from API objects.
package kube

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// The names below forward to sync/model, where the vocabulary lives, so
// that code written against kube keeps building while it moves over.

// Run:AI's binding and role names (BRIEF §2).
const (
	ViewerBinding   = model.ViewerBinding
	ExecutorBinding = model.ExecutorBinding
	IndexMapBinding = model.IndexMapBinding

	ViewerRole   = model.ViewerRole
	ExecutorRole = model.ExecutorRole
	IndexMapRole = model.IndexMapRole

	KindClusterRoleBinding = model.KindClusterRoleBinding
	KindRoleBinding        = model.KindRoleBinding

	ManagedAnnotation = model.ManagedAnnotation
	ManagedByLabel    = model.ManagedByLabel
	ManagedByValue    = model.ManagedByValue
	FieldManager      = model.FieldManager

	MaxShards    = model.MaxShards
	ShardOfLabel = model.ShardOfLabel
)

type (
	// Ref is model.Ref.
	Ref = model.Ref
	// Binding is model.Binding.
	Binding = model.Binding
	// Change is model.Change.
	Change = model.Change
	// Namespace is model.Namespace.
	Namespace = model.Namespace
)

var (
	// ErrManagedUnreadable is model.ErrManagedUnreadable.
	ErrManagedUnreadable = model.ErrManagedUnreadable
	// ErrRoleRefChanged is model.ErrRoleRefChanged.
	ErrRoleRefChanged = model.ErrRoleRefChanged
)

// ViewerRef is model.ViewerRef.
func ViewerRef() Ref { return model.ViewerRef() }

// IndexMapRef is model.IndexMapRef.
func IndexMapRef(runaiNS string) Ref { return model.IndexMapRef(runaiNS) }

// ExecutorRef is model.ExecutorRef.
func ExecutorRef(ns string) Ref { return model.ExecutorRef(ns) }

// ShardRef is model.ShardRef.
func ShardRef(base Ref, i int) Ref { return model.ShardRef(base, i) }

// ShardBase is model.ShardBase.
func ShardBase(ref Ref) (Ref, int, bool) { return model.ShardBase(ref) }

// ShardNames is model.ShardNames.
func ShardNames(name string) []string { return model.ShardNames(name) }

// IsShard is model.IsShard.
func IsShard(ref Ref) bool { return model.IsShard(ref) }

// EncodeManaged is model.EncodeManaged.
func EncodeManaged(users []string) string { return model.EncodeManaged(users) }

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
		out[i] = model.Subject{Kind: s.Kind, APIGroup: s.APIGroup, Name: s.Name, Namespace: s.Namespace}
	}
	return out
}
