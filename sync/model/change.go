package model

import (
	"errors"
	"time"
)

// Change is one write to make: create the binding, or add and remove users.
type Change struct {
	Ref    Ref
	Create bool
	Add    []string
	Remove []string
	// Own are users that become the tool's in this write (adopted, or
	// added): recorded in the ownership record if the binding holds them
	// after the write.
	Own []string
	// DropAnnotations are removed in the same write (an approval
	// annotation on a binding, which the store replaced).
	DropAnnotations []string
}

// ErrManagedUnreadable means the binding's ownership record cannot be
// read; it is not written until the record is fixed or removed.
var ErrManagedUnreadable = errors.New("ownership record cannot be read")

// ErrRoleRefChanged means the binding's roleRef no longer is Run:AI's.
var ErrRoleRefChanged = errors.New("roleRef differs from Run:AI's")

// Namespace is the part of a namespace the sync needs.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Terminating bool
	// ResourceVersion is the precondition of a label write.
	ResourceVersion string
	// Created is when the namespace was created, and HoldsExecutor whether
	// it holds an executor RoleBinding: which of two namespaces labelled
	// for one project is the project's.
	Created       time.Time
	HoldsExecutor bool
}

// Scope is what the daemon manages in Kubernetes. Anyone who can create a
// RoleBinding in their namespace can give it a managed name, our labels
// and a large body; anyone who can patch namespaces can give them large
// labels. Outside the scope an object is read only as far as it identifies
// itself, and never kept whole (kube.Client.SetScope).
type Scope struct {
	// Namespace says whether bindings in a namespace may be managed: one
	// that may hold a project, or the Run:AI namespace. labels are the
	// namespace's, as kept (NamespaceLabels). nil: every namespace.
	Namespace func(name string, labels map[string]string) bool
	// NamespaceLabels are the only namespace label keys kept; nil: all.
	NamespaceLabels []string
}
