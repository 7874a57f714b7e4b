// Package plan is the pure core of runai-ldap-sync: which projects exist,
// who should be in each binding (desired state) and what to change (the
// plan). It has no I/O, no clock, no logging and no metrics: the same
// inputs always give the same answer.
package plan

import (
	"fmt"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Project is one Run:AI project and its namespace.
type Project struct {
	Name      string
	Namespace string
}

// GroupNames returns the group names a project's executors and viewers
// come from, after {project} expansion.
func GroupNames(g config.Groups, project string) (executors, viewers []string) {
	for _, t := range g.Executors {
		executors = append(executors, config.ExpandGroup(t, project))
	}
	for _, t := range g.Viewers {
		viewers = append(viewers, config.ExpandGroup(t, project))
	}
	return executors, viewers
}

// AllGroupNames lists every group a cycle must resolve.
func AllGroupNames(g config.Groups, projects []Project) []string {
	wanted := WantedGroups(g, projects)
	out := make([]string, len(wanted))
	for i, w := range wanted {
		out[i] = w.Name
	}
	return out
}

// WantedGroup is a group a cycle resolves and the setting that names it.
type WantedGroup struct {
	Key      string // groups.executors, groups.viewers or groups.globalViewers
	Template string // the setting's entry, before {project} expansion
	Project  string // "" for a global viewer group
	Name     string
}

// WantedGroups lists every group a cycle must resolve, with where it comes
// from: each project's executor then viewer groups, then the global viewer
// groups.
func WantedGroups(g config.Groups, projects []Project) []WantedGroup {
	var out []WantedGroup
	for _, p := range projects {
		for _, t := range g.Executors {
			out = append(out, WantedGroup{"groups.executors", t, p.Name, config.ExpandGroup(t, p.Name)})
		}
		for _, t := range g.Viewers {
			out = append(out, WantedGroup{"groups.viewers", t, p.Name, config.ExpandGroup(t, p.Name)})
		}
	}
	for _, t := range g.GlobalViewers {
		out = append(out, WantedGroup{"groups.globalViewers", t, "", t})
	}
	return out
}

// Desired is who should be in one binding.
type Desired struct {
	Ref   model.Ref
	Users []string // sorted, unique
	// Sources are the groups that grant Users, each with the members it
	// grants: the addition guard holds a group's burst, not the others'.
	Sources []Source
	// Keep are users a failed, ambiguous or held group may grant (its last
	// known members): never removed while it fails, never added for it.
	Keep []string
	// Incomplete means a group feeding this binding could not be read and
	// had no last known members: Users is a lower bound, so the binding may
	// gain users but must lose none.
	Incomplete bool
	// Err means the binding must be left exactly as it is this cycle (a
	// lookup for the project's own groups failed).
	Err error
	// Failed lists the groups whose lookup failed, for reports.
	Failed []string
}

// Source is one configured group feeding a binding and the members it
// grants there.
type Source struct {
	Group   string
	Members []string
}

// DesiredState computes every managed binding's desired users from the
// resolved groups. lastKnown holds each group's members from its last
// successful lookup (kept in the store across restarts): a union binding
// keeps them for a group that failed now, so an error in one project
// neither shrinks access granted through it nor freezes the removals of
// the others. A project's own executor binding is left alone when one of
// its groups failed.
func DesiredState(projects []Project, g config.Groups, runaiNS string, groups map[string]*model.Group, lastKnown map[string][]string) []Desired {
	viewer := newUnion(model.ViewerRef())
	indexMap := newUnion(model.IndexMapRef(runaiNS))
	out := make([]Desired, 0, len(projects)+2)
	for _, p := range projects {
		execNames, viewNames := GroupNames(g, p.Name)
		if d, managed := executorDesired(p, execNames, groups, lastKnown, indexMap); managed {
			out = append(out, d)
		}
		for _, name := range viewNames {
			viewer.feed(groups, lastKnown, name)
		}
	}
	for _, name := range g.GlobalViewers {
		viewer.feed(groups, lastKnown, name)
	}
	// A binding is managed only when some group feeds it.
	if len(g.Viewers) > 0 || len(g.GlobalViewers) > 0 {
		out = append(out, viewer.desired())
	}
	if len(g.Executors) > 0 {
		out = append(out, indexMap.desired())
	}
	return out
}

// executorDesired is one project's executor binding (managed only when
// executors groups are configured); its groups also feed the index map.
func executorDesired(p Project, names []string, groups map[string]*model.Group, lastKnown map[string][]string, indexMap *union) (Desired, bool) {
	d := Desired{Ref: model.ExecutorRef(p.Namespace)}
	users := map[string]struct{}{}
	for _, name := range names {
		members, failed := indexMap.feed(groups, lastKnown, name)
		if failed {
			d.Failed = append(d.Failed, name)
			if d.Err == nil {
				d.Err = groupErr(groups, name)
			}
			continue
		}
		d.Sources = append(d.Sources, Source{Group: name, Members: members})
		for _, u := range members {
			users[u] = struct{}{}
		}
	}
	if d.Err != nil {
		d.Sources = nil
	} else {
		d.Users = model.SortedKeys(users)
	}
	return d, len(names) > 0
}

// membersOf returns a group's members, or for a failed group its last
// known members (ok false when there are none).
func membersOf(groups map[string]*model.Group, lastKnown map[string][]string, name string) (members []string, ok, failed bool) {
	gr := groups[name]
	if gr != nil && gr.Err == nil {
		return gr.Members, true, false
	}
	last, have := lastKnown[name]
	return last, have, true
}

func groupErr(groups map[string]*model.Group, name string) error {
	if gr := groups[name]; gr != nil && gr.Err != nil {
		return fmt.Errorf("%w: group %q: %w", ErrGroupFailed, name, gr.Err)
	}
	return fmt.Errorf("%w: group %q was not resolved", ErrGroupFailed, name)
}

// union is a binding fed by many projects' groups (viewer, index map).
type union struct {
	ref     model.Ref
	users   map[string]struct{}
	keep    map[string]struct{}
	sources []Source
	failed  []string
	blind   bool // a failed group has no last known members
}

func newUnion(ref model.Ref) *union {
	return &union{ref: ref, users: map[string]struct{}{}, keep: map[string]struct{}{}}
}

// feed adds one group: its members, or for a failed group its last known
// members to keep. It returns the members and whether the group failed.
func (u *union) feed(groups map[string]*model.Group, lastKnown map[string][]string, name string) ([]string, bool) {
	members, ok, failed := membersOf(groups, lastKnown, name)
	switch {
	case failed:
		u.failed = append(u.failed, name)
		gr := groups[name]
		known := gr != nil && gr.MightGrant != nil
		u.blind = u.blind || !ok && !known
		for _, m := range members {
			u.keep[m] = struct{}{}
		}
		if known {
			for _, m := range gr.MightGrant {
				u.keep[m] = struct{}{}
			}
		}
	default:
		u.sources = append(u.sources, Source{Group: name, Members: members})
		for _, m := range members {
			u.users[m] = struct{}{}
		}
	}
	return members, failed
}

func (u *union) desired() Desired {
	for m := range u.users {
		delete(u.keep, m)
	}
	d := Desired{Ref: u.ref, Users: model.SortedKeys(u.users), Sources: u.sources, Incomplete: u.blind, Failed: u.failed}
	if len(u.keep) > 0 {
		d.Keep = model.SortedKeys(u.keep)
	}
	return d
}
