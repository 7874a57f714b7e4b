package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// This file is the one seam between the loop and the guard's store: every
// path that plans (cycle, poll, repair) calls loadState before and
// commitState after planning, before any binding is written.

// StateStore keeps the guard's windows, approvals, group pins and last
// known members across restarts and leadership terms (kube.StateStore).
type StateStore interface {
	Load(ctx context.Context) (*model.StateSnapshot, error)
	// Approvals reads only the approvals, without decoding the state: the
	// loop asks for them before every poll while something is held.
	Approvals(ctx context.Context) (map[string]string, error)
	Save(ctx context.Context, st *model.State, consumed []string) ([]string, error)
}

// guardState is the term's view of the guard's store.
type guardState struct {
	s     *Pipeline // the term's logger, metrics, configuration and members
	store StateStore
	// snap is the store's last read (or write); loaded says this term read
	// it once (and took its last known members).
	snap   *model.StateSnapshot
	loaded bool
	// held maps the approval key of each held change to its binding, and
	// heldPins each group held for its pin to the key that approves it
	// (pollApprovals): what the last plans hold, nothing that was released
	// since.
	held     map[string]model.Ref
	heldPins map[string]string
}

// WithState keeps the guard's state in store. Call it before the first
// cycle; without it the state lives in memory for the Pipeline's life.
func (s *Pipeline) WithState(store StateStore) *Pipeline {
	s.guard.store = store
	return s
}

// memStore is the store of a Pipeline built without one (tests, explain).
type memStore struct{ snap model.StateSnapshot }

func (m *memStore) Load(context.Context) (*model.StateSnapshot, error) {
	c := m.snap
	c.Approvals = maps.Clone(m.snap.Approvals)
	if c.Approvals == nil {
		c.Approvals = map[string]string{}
	}
	return &c, nil
}

func (m *memStore) Approvals(ctx context.Context) (map[string]string, error) {
	snap, err := m.Load(ctx)
	if err != nil {
		return nil, err
	}
	return snap.Approvals, nil
}

func (m *memStore) Save(_ context.Context, st *model.State, consumed []string) ([]string, error) {
	m.snap.State, m.snap.Exists = *st, true
	for _, k := range consumed {
		delete(m.snap.Approvals, k)
	}
	return nil, nil
}

// loadState reads the store (approvals may have been added since) into
// popts. The first read of a term also brings back the last known members
// of groups, so a group that fails after a restart or a new leader still
// holds back only its own users. A store that cannot be read fails the
// caller: nothing is planned without it.
func (g *guardState) loadState(ctx context.Context, popts *plan.PlanOptions) (*model.StateSnapshot, error) {
	snap, err := g.store.Load(ctx)
	if err != nil {
		g.s.obs.kubeError("get")
		return nil, err
	}
	if !g.loaded {
		known := g.s.members.Known()
		back := map[string]*model.Group{}
		for name, members := range plan.LastKnown(&snap.State) {
			if _, ok := known[name]; !ok {
				back[name] = &model.Group{Name: name, Found: true, Members: members}
			}
		}
		g.s.members.Remember(back)
		g.loaded = true
	}
	g.snap = snap
	popts.State = snap
	return snap, nil
}

// checkPins holds the groups whose name now resolves to another entry
// (plan.CheckPins), reports them, and returns the groups as planning must
// see them and the pin approvals used.
func (g *guardState) checkPins(snap *model.StateSnapshot, groups map[string]*model.Group, now time.Time) (map[string]*model.Group, []string) {
	checked, holds, used := plan.CheckPins(groups, &snap.State, snap.Approvals, now, model.ApprovalTTL(g.s.cfg.Guard.Window))
	if g.heldPins == nil {
		g.heldPins = map[string]string{}
	}
	for name := range groups {
		delete(g.heldPins, name) // read again: held only if still in holds
	}
	for _, h := range holds {
		g.heldPins[h.Group] = h.Key
		cmd := model.ApproveCommand(g.s.cfg.Kubernetes.RunaiNamespace, h.Key, "group "+h.Group+" is "+h.DN)
		g.s.log.Warn("group name resolves to another entry than before; held as a failed group (its last known members keep access, the new entry's members gain none) until approved",
			zap.String("group", h.Group), zap.String("dn", h.DN), zap.String("id", h.ID), zap.String("wasDN", h.WasDN), zap.String("wasID", h.WasID),
			zap.String("approvalKey", h.Key), zap.String("approve", cmd))
		g := *checked[h.Group]
		g.Err = fmt.Errorf("%w; approve the new entry with: %s", g.Err, cmd)
		checked[h.Group] = &g
	}
	return checked, used
}

// pinRead is the step after every directory read (cycle or poll): it loads
// the guard's state into popts and checks the groups read against their
// identity pins, and returns the read as planning must see it and the pin
// approvals used. Without the state nothing is planned.
func (g *guardState) pinRead(ctx context.Context, popts *plan.PlanOptions, res *ldapsrc.Result) (*ldapsrc.Result, []string, error) {
	snap, err := g.loadState(ctx, popts)
	if err != nil {
		return nil, nil, err
	}
	groups, used := g.checkPins(snap, res.Groups, popts.Now)
	return &ldapsrc.Result{Groups: groups, Skipped: res.Skipped, SkippedSamples: res.SkippedSamples}, used, nil
}

// commitState records in the store, before any binding is written, each
// plan's guard state, the groups read well (pins, last known members) and
// the approvals used: a write that then fails leaves the window counting
// more, never less. Dry runs record nothing. An error means nothing may
// be written.
func (g *guardState) commitState(ctx context.Context, opts CycleOptions, plans []plan.BindingPlan, groups map[string]*model.Group, used []string) error {
	snap := g.snap
	if opts.DryRun || snap == nil {
		return nil
	}
	st := model.State{Bindings: maps.Clone(snap.State.Bindings), Groups: maps.Clone(snap.State.Groups), ApprovalsSeen: snap.State.ApprovalsSeen}
	if st.Bindings == nil {
		st.Bindings = map[string]*model.BindingState{}
	}
	dirty := len(used) > 0
	used, dirty = g.ageApprovals(&st, used, dirty)
	for _, p := range plans {
		if p.Err == nil && p.State != nil && p.StateChanged {
			st.Bindings[p.Ref.String()], dirty = p.State, true
		}
		if p.UsedApproval != "" {
			used, dirty = append(used, p.UsedApproval), true
		}
	}
	for name, g := range groups {
		if g != nil && g.Err == nil && plan.GroupChanged(st.Groups[name], g) {
			dirty = true
		}
	}
	if !dirty {
		return nil
	}
	plan.RememberGroups(&st, groups)
	dropped, err := g.store.Save(ctx, &st, used)
	if err != nil {
		g.s.obs.kubeError("update")
		return err
	}
	if len(dropped) > 0 {
		g.s.log.Warn("guard state store full: these member lists are not kept (a group's last known members: if it fails after a restart, the bindings it feeds only gain users until it is read again; "+
			"a binding's granted users: every addition there counts as new for the guard)",
			zap.Int("count", len(dropped)), zap.Strings("dropped", sample(dropped, 20)))
	}
	g.snap = &model.StateSnapshot{State: st, Approvals: snap.Approvals, Exists: true}
	for _, k := range used {
		delete(snap.Approvals, k)
	}
	return nil
}

// noteHeld remembers what the plans hold and the key that approves each,
// so pollApprovals can act on an approval without waiting for a cycle. A
// full cycle's plans are every binding: what they do not hold is released.
func (g *guardState) noteHeld(plans []plan.BindingPlan, all bool) {
	if g.held == nil || all {
		g.held = map[string]model.Ref{}
	}
	for _, p := range plans {
		if !all {
			// What this binding held before, its plan now replaces.
			for k, ref := range g.held {
				if ref == p.Ref {
					delete(g.held, k)
				}
			}
		}
		if p.ApprovalKey != "" {
			g.held[p.ApprovalKey] = p.Ref
		}
	}
}

// Approvals reads the guard's store when something is held (before each
// poll) and returns what an approval recorded since releases: bindings to
// repair, and whether a full cycle is wanted (for a group pin). Nothing
// held, no request.
func (s *Pipeline) Approvals(ctx context.Context) (repair []model.Ref, cycle bool) {
	return s.guard.pollApprovals(ctx)
}

func (g *guardState) pollApprovals(ctx context.Context) (repair []model.Ref, cycle bool) {
	if len(g.held) == 0 && len(g.heldPins) == 0 {
		return nil, false
	}
	approvals, err := g.store.Approvals(ctx)
	if err != nil {
		g.s.log.Warn("could not read the guard's store for approvals; the next poll tries again", zap.Error(err))
		return nil, false
	}
	for key := range approvals {
		if ref, ok := g.held[key]; ok {
			g.s.log.Info("approval recorded; repair queued to apply it", zap.String("binding", ref.String()), zap.String("approvalKey", key))
			repair = append(repair, ref)
			delete(g.held, key)
		}
	}
	for group, key := range g.heldPins {
		if _, ok := approvals[key]; ok {
			g.s.log.Info("group pin approval recorded; full cycle queued", zap.String("group", group), zap.String("approvalKey", key))
			cycle = true
			delete(g.heldPins, group)
		}
	}
	return repair, cycle
}

// ageApprovals notes when each approval in the store was first seen and
// consumes those unused for longer than model.ApprovalTTL, so an approval
// of a burst that went away never approves the same burst brought back
// later.
func (g *guardState) ageApprovals(st *model.State, used []string, dirty bool) ([]string, bool) {
	now, ttl := time.Now(), model.ApprovalTTL(g.s.cfg.Guard.Window)
	seen := maps.Clone(st.ApprovalsSeen)
	if seen == nil {
		seen = map[string]time.Time{}
	}
	for key := range g.snap.Approvals {
		if _, ok := seen[key]; !ok {
			seen[key], dirty = now, true
		}
	}
	for key, at := range seen {
		_, still := g.snap.Approvals[key]
		switch {
		case !still:
			delete(seen, key)
			dirty = true
		case now.Sub(at) > ttl && !slices.Contains(used, key):
			g.s.log.Info("approval unused for longer than the guard's window removed from the store", zap.String("approvalKey", key))
			used = append(used, key)
			delete(seen, key)
			dirty = true
		}
	}
	st.ApprovalsSeen = seen
	if len(seen) == 0 {
		st.ApprovalsSeen = nil
	}
	return used, dirty
}
