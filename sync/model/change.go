package model

import "errors"

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
	// SetAnnotations are set and DropAnnotations removed in the same write
	// (the guard's history, a used or stale approval).
	SetAnnotations  map[string]string
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
}
