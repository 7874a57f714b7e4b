// Package plan is the pure core of runai-ldap-sync: which projects exist,
// who should be in each binding (desired state) and what to change (the
// plan). It has no I/O, no clock, no logging and no metrics: the same
// inputs always give the same answer.
package plan

import (
	"fmt"
	"sort"

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
	var out []string
	for _, p := range projects {
		e, v := GroupNames(g, p.Name)
		out = append(out, e...)
		out = append(out, v...)
	}
	out = append(out, g.GlobalViewers...)
	return out
}

// Desired is who should be in one binding.
type Desired struct {
	Ref   model.Ref
	Users []string // sorted, unique
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

// DesiredState computes every managed binding's desired users from the
// resolved groups. lastKnown holds each group's members from its last
// successful lookup: a union binding (viewer, index map) uses them for a
// group that failed now, so an error in one project never shrinks access
// granted through another. A project's own executor binding is left alone
// when one of its groups failed.
func DesiredState(projects []Project, g config.Groups, runaiNS string, groups map[string]*model.Group, lastKnown map[string][]string) []Desired {
	viewer := newUnion(model.ViewerRef())
	indexMap := newUnion(model.IndexMapRef(runaiNS))
	out := make([]Desired, 0, len(projects)+2)

	for _, p := range projects {
		execNames, viewNames := GroupNames(g, p.Name)
		d := Desired{Ref: model.ExecutorRef(p.Namespace)}
		users := map[string]struct{}{}
		for _, name := range execNames {
			members, ok, failed := membersOf(groups, lastKnown, name)
			if failed {
				d.Failed = append(d.Failed, name)
			}
			if failed && d.Err == nil {
				d.Err = groupErr(groups, name)
			}
			if ok {
				indexMap.add(members)
			} else {
				indexMap.incomplete(name)
			}
			for _, u := range members {
				users[u] = struct{}{}
			}
		}
		if d.Err == nil {
			d.Users = sortedKeys(users)
		}
		if len(execNames) > 0 {
			// No executors groups: executor bindings are not managed.
			out = append(out, d)
		}
		for _, name := range viewNames {
			members, ok, _ := membersOf(groups, lastKnown, name)
			if !ok {
				viewer.incomplete(name)
			}
			viewer.add(members)
		}
	}
	for _, name := range g.GlobalViewers {
		members, ok, _ := membersOf(groups, lastKnown, name)
		if !ok {
			viewer.incomplete(name)
		}
		viewer.add(members)
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

// membersOf returns a group's usable members. ok is false when the group
// failed and no last known members exist; failed reports the lookup error.
func membersOf(groups map[string]*model.Group, lastKnown map[string][]string, name string) (members []string, ok, failed bool) {
	gr := groups[name]
	if gr == nil {
		return nil, false, true
	}
	if gr.Err != nil {
		if last, have := lastKnown[name]; have {
			return last, true, true
		}
		return nil, false, true
	}
	return gr.Members, true, false
}

func groupErr(groups map[string]*model.Group, name string) error {
	if gr := groups[name]; gr != nil && gr.Err != nil {
		return fmt.Errorf("%w: group %q: %w", ErrGroupFailed, name, gr.Err)
	}
	return fmt.Errorf("%w: group %q was not resolved", ErrGroupFailed, name)
}

type union struct {
	ref    model.Ref
	users  map[string]struct{}
	failed []string
}

func newUnion(ref model.Ref) *union { return &union{ref: ref, users: map[string]struct{}{}} }

func (u *union) add(members []string) {
	for _, m := range members {
		u.users[m] = struct{}{}
	}
}

func (u *union) incomplete(group string) { u.failed = append(u.failed, group) }

func (u *union) desired() Desired {
	return Desired{Ref: u.ref, Users: sortedKeys(u.users), Incomplete: len(u.failed) > 0, Failed: u.failed}
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
