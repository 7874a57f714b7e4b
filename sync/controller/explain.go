package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// BindingExplanation says whether one user is in one binding, and why.
type BindingExplanation struct {
	Binding model.Ref `json:"binding"`
	// Granted: the directory puts the user in this binding.
	Granted bool `json:"granted"`
	// Via lists the group paths that grant it, e.g. "alice ← core ← executors".
	Via []string `json:"via,omitempty"`
	// Why lists the reasons it is not granted (or partly not): not a member,
	// disabled, rejected ID, skipped kind, group missing, lookup failed.
	Why []string `json:"why,omitempty"`
	// Entries are the directory entries that matched the user, each with
	// its stable identity ("CN=alice,OU=… (objectGUID 6f1c…)"): the
	// identity survives renames and moves, and is never another entry's.
	Entries []string `json:"entries,omitempty"`
	// Holds: the binding holds the user now; HandAdded: not added by us.
	Holds     bool `json:"holds"`
	HandAdded bool `json:"handAdded,omitempty"`
	// Shard names the shard (a binding <name>-N to the same role) that
	// holds the user, when it is not the first binding.
	Shard string `json:"shard,omitempty"`
	// Leftover: held by hand, not granted by the directory, not managed:
	// kept under policy sync, for an admin to clean up.
	Leftover bool `json:"leftover,omitempty"`
	// Pending says what the next cycle would do for this user: add, remove,
	// removal held by the guard, or nothing.
	Pending string `json:"pending,omitempty"`
	// Error: the binding is left untouched this cycle, for this reason.
	Error string `json:"error,omitempty"`
}

// ProjectExplanation covers one project.
type ProjectExplanation struct {
	Project   string             `json:"project"`
	Namespace string             `json:"namespace"`
	Executor  BindingExplanation `json:"executor"`
}

// Explanation is the answer to `explain`.
type Explanation struct {
	User     string               `json:"user"`
	Projects []ProjectExplanation `json:"projects"`
	Viewer   *BindingExplanation  `json:"viewer,omitempty"`
	IndexMap *BindingExplanation  `json:"indexMap,omitempty"`
}

// Explain says, read-only, whether user is in each binding and why. It
// runs the cycle's own read and plan as a dry run (the same projects,
// discovery, fence, guard, ownership and shard rules as diff), then reads
// the user's part of the result. With project set, only that project's
// executor binding is listed, and the viewer and index-map reasons are
// limited to the groups that project (and the global viewers) contribute.
// The directory must trace members (ldapsrc.Source.Trace).
func (s *Pipeline) Explain(ctx context.Context, user, project string) (*Explanation, error) {
	rep := s.Cycle(ctx, CycleOptions{DryRun: true})
	if rep.Plans == nil {
		// Nothing could be read: there is nothing to explain.
		return nil, rep.Err
	}
	if project != "" && !slices.ContainsFunc(rep.Projects, func(p plan.Project) bool { return p.Name == project }) {
		return nil, fmt.Errorf("project %q not found (no namespace labelled %s=%s and no static project of that name)", project, s.cfg.Projects.NamespaceLabel, project)
	}
	return explainUser(s.cfg, user, project, rep), nil
}

// explainUser reads one user's part of a dry-run cycle's report.
func explainUser(cfg *config.Config, user, project string, rep *Report) *Explanation {
	plans := map[model.Ref]plan.BindingPlan{}
	for _, p := range rep.Plans {
		plans[p.Ref] = p
	}
	groups, current := rep.read.groups, rep.read.current
	m := matcher{user: user, cfgCase: cfg.LDAP.UserIDCase, prefix: cfg.LDAP.UserIDPrefix}
	out := &Explanation{User: user}
	var viewerGroups, execGroups []string
	for _, p := range rep.Projects {
		execNames, viewNames := plan.GroupNames(cfg.Groups, p.Name)
		if project != "" && p.Name != project {
			continue
		}
		viewerGroups = append(viewerGroups, viewNames...)
		execGroups = append(execGroups, execNames...)
		ref := model.ExecutorRef(p.Namespace)
		out.Projects = append(out.Projects, ProjectExplanation{Project: p.Name, Namespace: p.Namespace,
			Executor: m.explain(ref, execNames, groups, plan.ShardsOf(ref, current), plans[ref])})
	}
	viewerGroups = append(viewerGroups, cfg.Groups.GlobalViewers...)
	if len(cfg.Groups.Viewers)+len(cfg.Groups.GlobalViewers) > 0 {
		ref := model.ViewerRef()
		e := m.explain(ref, viewerGroups, groups, plan.ShardsOf(ref, current), plans[ref])
		out.Viewer = &e
	}
	if len(cfg.Groups.Executors) > 0 {
		ref := model.IndexMapRef(cfg.Kubernetes.RunaiNamespace)
		e := m.explain(ref, execGroups, groups, plan.ShardsOf(ref, current), plans[ref])
		out.IndexMap = &e
	}
	return out
}

type matcher struct {
	user, cfgCase, prefix string
}

// is reports whether a traced member is the user asked about: by its
// normalised ID, or by its raw ID when it was rejected or skipped.
func (m matcher) is(ms model.Membership) bool {
	if ms.ID != "" && ms.ID == m.user {
		return true
	}
	raw := strings.TrimPrefix(m.user, m.prefix)
	return ms.RawID != "" && strings.EqualFold(strings.TrimSpace(ms.RawID), raw)
}

var skipWords = map[string]string{
	model.SkipDisabled:    "the account is disabled",
	model.SkipComputer:    "it is a computer account",
	model.SkipForeign:     "it is a foreign security principal",
	model.SkipNoID:        "the entry has no user ID attribute",
	model.SkipInvalidID:   "the user ID is rejected (empty, control characters, system: prefix or too long)",
	model.SkipOther:       "the entry is not a user",
	model.SkipOutsideBase: "the entry is outside the base DN",
	model.SkipUnresolved:  "the member names no account",
}

func (m matcher) explain(ref model.Ref, groups []string, resolved map[string]*model.Group, shards []*model.Binding, bp plan.BindingPlan) BindingExplanation {
	e := BindingExplanation{Binding: ref}
	for _, name := range groups {
		g := resolved[name]
		switch {
		case g == nil:
			continue
		case g.Err != nil:
			e.Why = append(e.Why, fmt.Sprintf("lookup of group %s failed: %v", name, g.Err))
			continue
		case !g.Found:
			e.Why = append(e.Why, fmt.Sprintf("group %s does not exist", name))
			continue
		}
		member := false
		for _, ms := range g.Memberships {
			if !m.is(ms) {
				continue
			}
			member = true
			entry := ms.DN
			if ms.Identity != "" {
				entry += " (" + ms.Identity + ")"
			}
			if !slices.Contains(e.Entries, entry) {
				e.Entries = append(e.Entries, entry)
			}
			path := append([]string{m.user}, reversed(ms.Path)...)
			if ms.Skip == "" {
				e.Granted = true
				e.Via = append(e.Via, strings.Join(path, " ← "))
			} else {
				e.Why = append(e.Why, fmt.Sprintf("member of %s (%s) but %s", name, strings.Join(path, " ← "), skipWords[ms.Skip]))
			}
		}
		if !member {
			e.Why = append(e.Why, "not a member of "+name)
		}
	}
	if e.Granted {
		e.Why = nil // one path is enough; the rest is noise
	}
	// A sharded binding is one: the user holds it through any shard, and
	// was put there by hand if no shard holding them records them as ours.
	owned := false
	for _, cur := range shards {
		if cur != nil && cur.Exists && slices.Contains(cur.Users(), m.user) {
			e.Holds = true
			if rec, _ := cur.Owned(); slices.Contains(rec, m.user) {
				owned = true
			}
			if cur.Ref != ref {
				e.Shard = cur.Ref.Name
			}
		}
	}
	e.HandAdded = e.Holds && !owned
	if bp.Err != nil {
		e.Error = bp.Err.Error()
	}
	e.Leftover = slices.Contains(bp.Leftovers, m.user)
	switch {
	case slices.Contains(bp.Adopt, m.user):
		e.Pending = "adopt (granted by the directory: managed from now on, removed when they leave the groups)"
	case slices.Contains(bp.HeldAdd, m.user):
		e.Pending = "addition held by the guard (" + bp.AddHoldReason + ")"
	case slices.Contains(bp.Add, m.user):
		e.Pending = "add"
	case slices.Contains(bp.Remove, m.user):
		e.Pending = "remove"
	case slices.Contains(bp.Held, m.user):
		e.Pending = "removal held by the guard (" + bp.HoldReason + ")"
	}
	return e
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
