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
// that code written against kube keeps building while it moves over; they
// go once sync/controller speaks model.

// Run:AI's binding and role names (BRIEF §2).
const (
	// Deprecated: use model.ViewerBinding.
	ViewerBinding = model.ViewerBinding
	// Deprecated: use model.ExecutorBinding.
	ExecutorBinding = model.ExecutorBinding
	// Deprecated: use model.IndexMapBinding.
	IndexMapBinding = model.IndexMapBinding

	// Deprecated: use model.ViewerRole.
	ViewerRole = model.ViewerRole
	// Deprecated: use model.ExecutorRole.
	ExecutorRole = model.ExecutorRole
	// Deprecated: use model.IndexMapRole.
	IndexMapRole = model.IndexMapRole

	// Deprecated: use model.KindClusterRoleBinding.
	KindClusterRoleBinding = model.KindClusterRoleBinding
	// Deprecated: use model.KindRoleBinding.
	KindRoleBinding = model.KindRoleBinding

	// Deprecated: use model.ManagedAnnotation.
	ManagedAnnotation = model.ManagedAnnotation
	// Deprecated: use model.ManagedByLabel.
	ManagedByLabel = model.ManagedByLabel
	// Deprecated: use model.ManagedByValue.
	ManagedByValue = model.ManagedByValue
	// Deprecated: use model.FieldManager.
	FieldManager = model.FieldManager

	// Deprecated: use model.MaxShards.
	MaxShards = model.MaxShards
	// Deprecated: use model.ShardOfLabel.
	ShardOfLabel = model.ShardOfLabel
)

type (
	// Deprecated: use model.Ref.
	Ref = model.Ref
	// Deprecated: use model.Binding.
	Binding = model.Binding
	// Deprecated: use model.Change.
	Change = model.Change
	// Deprecated: use model.Namespace.
	Namespace = model.Namespace
)

var (
	// Deprecated: use model.ErrManagedUnreadable.
	ErrManagedUnreadable = model.ErrManagedUnreadable
	// Deprecated: use model.ErrRoleRefChanged.
	ErrRoleRefChanged = model.ErrRoleRefChanged
)

// Deprecated: use model.ViewerRef.
func ViewerRef() model.Ref { return model.ViewerRef() }

// Deprecated: use model.IndexMapRef.
func IndexMapRef(runaiNS string) model.Ref { return model.IndexMapRef(runaiNS) }

// Deprecated: use model.ExecutorRef.
func ExecutorRef(ns string) model.Ref { return model.ExecutorRef(ns) }

// Deprecated: use model.ShardRef.
func ShardRef(base model.Ref, i int) model.Ref { return model.ShardRef(base, i) }

// Deprecated: use model.ShardBase.
func ShardBase(ref model.Ref) (model.Ref, int, bool) { return model.ShardBase(ref) }

// Deprecated: use model.ShardNames.
func ShardNames(name string) []string { return model.ShardNames(name) }

// Deprecated: use model.IsShard.
func IsShard(ref model.Ref) bool { return model.IsShard(ref) }

// Deprecated: use model.EncodeManaged.
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
