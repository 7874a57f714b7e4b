package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// ChangeSource tells what changed in the directory since a cursor
// (ldapsrc.Source).
type ChangeSource interface {
	Mark(ctx context.Context) (ldapsrc.Cursor, error)
	Changes(ctx context.Context, since ldapsrc.Cursor) (*ldapsrc.ChangeSet, error)
}

// Poll results, as counted in runai_ldap_sync_directory_polls_total.
const (
	PollIdle          = metrics.PollIdle
	PollChanges       = metrics.PollChanges
	PollError         = metrics.PollError
	PollServerChanged = metrics.PollServerChanged
	// PollNoCursor: no full cycle has marked the change history yet.
	PollNoCursor = "no_cursor"
	// PollCursorLost: a cycle ran but could not mark the change history,
	// so a full cycle is due.
	PollCursorLost = metrics.PollCursorLost
	// PollOff: change detection is off or the directory cannot do it.
	PollOff = "off"
)

// ForcedNewProject: a poll saw a group that makes a new project.
const ForcedNewProject = metrics.ForcedNewProject

// TriggerChange marks writes made because a poll saw a directory change.
const TriggerChange = "directory-change"

// errNotReread stands in for a group whose last lookup failed and which an
// incremental sync does not read again: its bindings stay as the last
// cycle left them.
var errNotReread = errors.New("lookup failed in the last cycle; the next cycle reads it again")

// incState is what incremental syncs need from the last full cycle.
type incState struct {
	// cursor is where the last full cycle (or applied poll) left the
	// change history; nil when unknown (no cycle yet, server switched).
	cursor *ldapsrc.Cursor
	// cycles counts the full cycles that set this state: with no cursor,
	// it tells a lost cursor from none yet.
	cycles int
	// reached is, per group name, every entry a change to which may
	// change the group's members (model.Group.Reached).
	reached map[string][]string
	// failed are the groups whose last lookup failed, with the error.
	failed map[string]error
}

// poller is the polls' part of a term: the change source, what the last
// cycle (and the polls since) left for the next poll, and whether polls
// can run at all. Its methods keep that state and run a poll's read, plan
// and apply (applyChanges) through the Pipeline's shared steps.
type poller struct {
	s       *Pipeline // the term's logger, metrics and configuration
	changes ChangeSource
	inc     incState
	// off is set when the directory turns out to keep no change markers;
	// polls stop.
	off bool
	// blindDeletions is set once the daemon has said that polls cannot see
	// deletions, so it says so once, not every cycle.
	blindDeletions bool
}

// on reports whether polls can run.
func (p *poller) on() bool { return p.changes != nil && !p.off }

// WithChanges turns on incremental change detection: every full cycle
// marks the directory's change history, and Poll re-syncs what changed
// since. Call it before the first cycle.
func (s *Pipeline) WithChanges(cs ChangeSource) *Pipeline {
	s.polls.changes = cs
	return s
}

// markChanges is called by a cycle before it reads the directory. It
// returns the error too, so the cycle can tell a directory it cannot use
// at all (then it reads nothing) from a mark that failed alone.
func (p *poller) markChanges(ctx context.Context, opts CycleOptions) (*ldapsrc.Cursor, error) {
	if p.changes == nil || opts.DryRun {
		return nil, nil
	}
	c, err := p.changes.Mark(ctx)
	if err != nil {
		if errors.Is(err, ldapsrc.ErrNoChangeTracking) {
			p.s.log.Warn("incremental change detection is unavailable with this directory; changes reach the bindings at the next full cycle", zap.Error(err))
			p.off = true
			return nil, nil
		}
		if !unreachable(err) {
			p.s.log.Warn("could not mark the directory's change history; changes made now reach the bindings at the next full cycle", zap.Error(err))
		}
		return nil, err
	}
	return &c, nil
}

// rememberCycle starts the polls' state afresh from a cycle's mark: a
// cycle's read is complete, so what it reached replaces all that earlier
// reads reached (learnGroups then records it), but a group whose lookup
// failed keeps what it reached before.
func (p *poller) rememberCycle(mark *ldapsrc.Cursor, res *ldapsrc.Result) {
	if !p.on() {
		return
	}
	reached := make(map[string][]string, len(res.Groups))
	for name, g := range res.Groups {
		if g.Err != nil {
			reached[name] = p.inc.reached[name]
		}
	}
	p.inc = incState{cursor: mark, cycles: p.inc.cycles + 1, reached: reached, failed: map[string]error{}}
	if mark != nil {
		p.noteDeletions(mark.Deletions)
	}
}

// noteDeletions says once whether polls see deletions, and keeps the
// runai_ldap_sync_directory_poll_blind gauge.
func (p *poller) noteDeletions(visible bool) {
	if p.s.obs.m != nil {
		v := 0.0
		if !visible {
			v = 1
		}
		p.s.obs.m.PollBlind.WithLabelValues("deletion").Set(v)
	}
	switch {
	case !visible && !p.blindDeletions:
		p.blindDeletions = true
		if p.s.cfg.LDAP.Schema == config.SchemaActiveDirectory {
			p.s.log.Warn("polls cannot see deleted users and groups: the bind account reads no deleted objects (Show Deleted control); " +
				"a deletion reaches the bindings at the next full cycle (or when the deletion also changes a group). " +
				"Grant the account List Contents and Read Property on CN=Deleted Objects (docs/operations.md) to have polls carry deletions")
		} else {
			p.s.log.Warn("polls cannot see deleted entries: the server has no access log of deletes (accesslog overlay) the bind account may read; " +
				"a deleted group, or a deleted member whose groups do not change with it (refint overlay), reaches the bindings at the next full cycle. " +
				"Log deletes to an accesslog database readable by the bind account (docs/operations.md) to have polls carry deletions")
		}
	case visible && p.blindDeletions:
		p.blindDeletions = false
		p.s.log.Info("polls now see deleted users and groups")
	}
}

// Poll asks the directory what changed since the last cycle or poll and
// re-syncs exactly the bindings those changes feed. An idle poll costs one
// small directory search and no Kubernetes request. It returns the poll's
// result and, when bindings were re-synced, the report.
func (s *Pipeline) Poll(ctx context.Context, opts CycleOptions) (string, *Report) {
	if !s.polls.on() {
		return PollOff, nil
	}
	cur := s.polls.inc.cursor
	if cur == nil {
		if s.polls.inc.cycles > 0 {
			// A cycle ran but could not mark the history (or the server
			// changed): only a full cycle can set a cursor that loses nothing.
			return PollCursorLost, nil
		}
		return PollNoCursor, nil
	}
	seen := time.Now()
	cs, err := s.polls.changes.Changes(ctx, *cur)
	switch {
	case err != nil:
		s.obs.polled(PollError)
		if ctx.Err() == nil {
			s.log.Warn("directory change poll failed; the next poll or cycle tries again", zap.Error(err))
		}
		rep := newReport(TriggerChange)
		rep.Err, rep.DirErr = err, err
		return PollError, rep
	case cs.LogErr != nil:
		// The poll's other changes stand (below); deletions wait for the
		// cycle until its mark finds the log readable again.
		if ctx.Err() == nil {
			s.log.Warn("could not read the directory's access log of deletions; deleted entries reach the bindings at the next full cycle", zap.Error(cs.LogErr))
		}
		s.polls.noteDeletions(false)
	}
	switch {
	case cs.ServerChanged:
		s.obs.polled(PollServerChanged)
		s.log.Info("directory server changed: its change numbers say nothing about what the previous one served; full cycle",
			zap.String("why", cs.Why), zap.String("was", cur.Server), zap.String("now", cs.Next.Server))
		s.polls.advance(nil)
		return PollServerChanged, nil
	case len(cs.Entries) == 0:
		s.obs.polled(PollIdle)
		s.polls.advance(&cs.Next)
		return PollIdle, nil
	}
	s.obs.polled(PollChanges)
	rep := s.polls.applyChanges(ctx, cs, seen, opts)
	return PollChanges, rep
}

// advance moves the cursor past what a poll handled. (A poll runs to its
// end on the loop's goroutine, so no cycle can have replaced it meanwhile.)
func (p *poller) advance(next *ldapsrc.Cursor) { p.inc.cursor = next }

// applyChanges re-resolves the groups a change set touches and writes the
// bindings whose desired state changed: the pipeline, in the scope of the
// groups the change reached.
func (p *poller) applyChanges(ctx context.Context, cs *ldapsrc.ChangeSet, seen time.Time, opts CycleOptions) *Report {
	if p.s.desired == nil {
		return nil // no cycle has planned yet: nothing to re-sync against
	}
	// The last cycle's projects: a new project needs a cycle.
	projects := p.s.lastProjects
	all := model.SortedUnique(plan.AllGroupNames(p.s.cfg.Groups, projects))
	sc := scope{trigger: TriggerChange, changes: cs, seen: seen, all: all,
		affected: affectedGroups(cs, all, p.inc.reached, p.s.obs.m)}
	// A group that makes a new project (projects.fromGroups): only a full
	// cycle provisions and syncs a project.
	project := newDiscoveredProject(p.s.cfg, cs, projects)
	sc.newProject = project != ""
	p.s.logs.changesSeen(cs, sc.affected, project)
	if len(sc.affected) == 0 {
		p.advance(&cs.Next)
		rep := newReport(TriggerChange)
		rep.Projects, rep.CycleWanted = projects, sc.newProject
		return rep
	}
	return p.s.run(ctx, sc, opts)
}

// standingGroups is every group of a poll's plan: those read again, and
// the others as the last read left them.
func standingGroups(all []string, read map[string]*model.Group, failed map[string]error, known map[string][]string) map[string]*model.Group {
	groups := make(map[string]*model.Group, len(all))
	for _, name := range all {
		if g, ok := read[name]; ok {
			groups[name] = g
			continue
		}
		if ferr, failed := failed[name]; failed {
			groups[name] = &model.Group{Name: name, Err: fmt.Errorf("%w: %w", errNotReread, ferr)}
			continue
		}
		groups[name] = &model.Group{Name: name, Found: true, Members: known[name]}
	}
	return groups
}

// changedDesired returns the desired bindings that differ from prev.
func changedDesired(desired []plan.Desired, prev map[model.Ref]plan.Desired) []plan.Desired {
	var changed []plan.Desired
	for _, d := range desired {
		if old, ok := prev[d.Ref]; !ok || !sameDesired(old, d) {
			changed = append(changed, d)
		}
	}
	return changed
}

// affectedGroups returns the configured group names a change set may
// change: a changed group of that name (created, renamed to it, members
// changed), or a changed entry the group reached last time, by identity
// or DN (a nested group, a member disabled, renamed, moved or deleted).
func affectedGroups(cs *ldapsrc.ChangeSet, all []string, reached map[string][]string, m *metrics.Metrics) []string {
	keys := make(map[string]struct{}, len(cs.Entries))
	names := map[string]struct{}{}
	for _, e := range cs.Entries {
		keys[e.Key] = struct{}{}
		if e.ID != "" {
			// A renamed, moved or deleted entry keeps its identity.
			keys[e.ID] = struct{}{}
		}
		for _, k := range e.IDKeys {
			keys[k] = struct{}{}
		}
		for _, n := range e.Names {
			names[strings.ToLower(n)] = struct{}{}
		}
	}
	hit := map[string]struct{}{} // changed entry keys that feed something
	var out []string
	for _, name := range all {
		affected := false
		if _, ok := names[strings.ToLower(name)]; ok {
			affected = true
		}
		for _, k := range reached[name] {
			if _, ok := keys[k]; ok {
				affected = true
				hit[k] = struct{}{}
			}
		}
		if affected {
			out = append(out, name)
		}
	}
	if m != nil {
		lower := make(map[string]struct{}, len(all))
		for _, n := range all {
			lower[strings.ToLower(n)] = struct{}{}
		}
		for _, e := range cs.Entries {
			kind := "user"
			if e.Group {
				kind = "group"
			}
			_, relevant := hit[e.Key]
			if _, ok := hit[e.ID]; ok && e.ID != "" {
				relevant = true
			}
			for _, k := range e.IDKeys {
				if _, ok := hit[k]; ok {
					relevant = true
				}
			}
			for _, n := range e.Names {
				if _, ok := lower[strings.ToLower(n)]; ok {
					relevant = true
				}
			}
			m.DirChanges.WithLabelValues(kind, fmt.Sprint(relevant)).Inc()
		}
	}
	return out
}

func sameDesired(a, b plan.Desired) bool {
	return a.Ref == b.Ref && a.Incomplete == b.Incomplete && (a.Err == nil) == (b.Err == nil) && slices.Equal(a.Users, b.Users)
}

// newDiscoveredProject returns a project named by a changed group through
// projects.fromGroups that the last cycle did not know, or "".
func newDiscoveredProject(cfg *config.Config, cs *ldapsrc.ChangeSet, projects []plan.Project) string {
	fg := cfg.Projects.FromGroups
	if fg == nil {
		return ""
	}
	_, re := ldapsrc.PatternFilter(cfg.LDAP.GroupNameAttribute, fg.Pattern)
	known := make(map[string]bool, len(projects))
	for _, p := range projects {
		known[p.Name] = true
	}
	for _, e := range cs.Entries {
		if !e.Group {
			continue
		}
		for _, n := range e.Names {
			if m := re.FindStringSubmatch(n); m != nil && !known[m[1]] && config.ValidProjectName(m[1]) {
				return m[1]
			}
		}
	}
	return ""
}
