package model

import (
	"fmt"
	"sort"
)

// Subject kinds a binding may hold; only User subjects are managed.
const (
	KindUser           = "User"
	KindGroup          = "Group"
	KindServiceAccount = "ServiceAccount"
)

// Subject is one subject of a binding, as Kubernetes holds it.
type Subject struct {
	Kind      string
	APIGroup  string
	Name      string
	Namespace string
}

// IsUser reports whether s is a User subject (the only kind we manage).
func IsUser(s Subject) bool {
	return s.Kind == KindUser && (s.APIGroup == RBACGroup || s.APIGroup == "")
}

// UserSubject is how Run:AI writes a user subject.
func UserSubject(name string) Subject {
	return Subject{APIGroup: RBACGroup, Kind: KindUser, Name: name}
}

// Binding is the current state of one managed binding.
type Binding struct {
	Ref
	Exists          bool
	UID             string
	ResourceVersion string
	RoleRef         RoleRef
	Subjects        []Subject
	// Managed are the users this tool owns, for a Binding built in code;
	// one read from the API keeps its record undecoded: see Owned.
	Managed []string
	// ManagedErr is set when the ownership record cannot be read: the
	// binding is then that binding's error (left untouched), never the
	// cycle's.
	ManagedErr error
	// Annotations are kept for approval and other operator signals.
	Annotations map[string]string
	// Record is ManagedAnnotation as read, decoded only by Owned: only a
	// binding that is planned or written pays for reading it.
	Record string
}

// Owned returns the users this tool owns in b: its ownership record,
// decoded now and within its bounds (DecodeManaged), or Managed for a
// Binding built without one. An error is that binding's alone: fix or
// remove the annotation and it is written again.
func (b *Binding) Owned() ([]string, error) {
	if b.ManagedErr != nil {
		return nil, b.ManagedErr
	}
	if b.Record == "" {
		return b.Managed, nil
	}
	users, err := DecodeManaged(b.Record)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; fix or remove the annotation (the binding is left untouched until then)", b.Ref, err)
	}
	return users, nil
}

// Users returns the names of the User subjects, unique.
func (b *Binding) Users() []string {
	seen := map[string]struct{}{}
	var out []string
	for _, s := range b.Subjects {
		if IsUser(s) {
			if _, ok := seen[s.Name]; !ok {
				seen[s.Name] = struct{}{}
				out = append(out, s.Name)
			}
		}
	}
	return out
}

// Copy returns a deep copy of b.
func (b *Binding) Copy() *Binding {
	c := *b
	c.Subjects = append([]Subject(nil), b.Subjects...)
	c.Managed = append([]string(nil), b.Managed...)
	if b.Annotations != nil {
		c.Annotations = make(map[string]string, len(b.Annotations))
		for k, v := range b.Annotations {
			c.Annotations[k] = v
		}
	}
	return &c
}

// NewSubjects applies a change to a subject list: removals drop User
// subjects of those names, additions are appended in sorted order, and
// duplicate User subjects collapse. Other subjects keep their place.
func NewSubjects(current []Subject, add, remove []string) []Subject {
	drop := toSet(remove)
	seen := map[string]struct{}{}
	out := make([]Subject, 0, len(current)+len(add))
	for _, s := range current {
		if IsUser(s) {
			if _, ok := drop[s.Name]; ok {
				continue
			}
			if _, ok := seen[s.Name]; ok {
				continue
			}
			seen[s.Name] = struct{}{}
		}
		out = append(out, s)
	}
	for _, u := range SortedUnique(add) {
		if _, ok := seen[u]; ok {
			continue
		}
		seen[u] = struct{}{}
		out = append(out, UserSubject(u))
	}
	return out
}

// NewManaged is the ownership record after a change: the users we owned,
// those the change makes ours (Own, and additions nobody had put there
// before), kept only if the binding still holds them after the write, so
// ownership of a user ends when the user is gone from the binding.
func NewManaged(current *Binding, ch Change) []string {
	// A record that cannot be read is never written over (kube's Apply).
	owned, _ := current.Owned()
	return NewManagedFrom(current, owned, ch)
}

// NewManagedFrom is NewManaged with the current record already read.
func NewManagedFrom(current *Binding, owned []string, ch Change) []string {
	present := toSet(current.Users())
	after := map[string]struct{}{}
	for _, s := range NewSubjects(current.Subjects, ch.Add, ch.Remove) {
		if IsUser(s) {
			after[s.Name] = struct{}{}
		}
	}
	set := map[string]struct{}{}
	claim := func(u string) {
		if _, ok := after[u]; ok {
			set[u] = struct{}{}
		}
	}
	for _, u := range owned {
		claim(u)
	}
	for _, u := range ch.Own {
		claim(u)
	}
	for _, u := range ch.Add {
		if _, ok := present[u]; !ok {
			claim(u)
		}
	}
	return SortedKeys(set)
}

// SortedUnique returns the strings of in, sorted, each once.
func SortedUnique(in []string) []string { return SortedKeys(toSet(in)) }

func toSet(in []string) map[string]struct{} {
	m := make(map[string]struct{}, len(in))
	for _, s := range in {
		m[s] = struct{}{}
	}
	return m
}

// SortedKeys returns m's keys sorted, never nil (an empty list encodes
// as [], not null).
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
