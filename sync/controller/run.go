package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// scope is what one run of the pipeline covers, and the only thing in
// which a cycle, a poll and a repair differ: what is read, and which
// bindings are planned. Every guard, fence, ownership and shard rule, the
// store's commit and the writes are the same steps for all three.
type scope struct {
	// trigger names the path: TriggerCycle (every project; also diff and
	// explain as its dry run), TriggerChange (a poll) or TriggerRepair.
	trigger string
	// A poll's: the change set, when the poll saw it, the groups it reached
	// and every group of the last cycle's projects (the others stand as
	// last read), and whether it names a new project (a cycle is wanted).
	changes       *ldapsrc.ChangeSet
	seen          time.Time
	affected, all []string
	newProject    bool
	// A repair's: the bindings to plan against the last desired state,
	// without reading the directory.
	refs []model.Ref
}

func cycleScope() scope { return scope{trigger: TriggerCycle} }

// pass is one run of the pipeline: its scope, and what each step returned,
// from which the Report is built once at the end.
type pass struct {
	s       *Pipeline
	sc      scope
	opts    CycleOptions
	popts   plan.PlanOptions
	started time.Time

	// found are the projects planned (a cycle finds them; the others take
	// the last cycle's), with what provisioning found and did.
	found projectsFound
	prov  provisioned
	// res is the directory's answer as planned (pins checked); nil for a
	// repair. mark is where a cycle's read left the change history.
	res      *ldapsrc.Result
	pinned   bool
	mark     *ldapsrc.Cursor
	usedPins []string
	dirErr   error
	// desired are the bindings planned: a cycle's every binding, a poll's
	// those whose desired state moved, a repair's the given refs.
	desired []plan.Desired
	current map[model.Ref]*model.Binding
	plans   []plan.BindingPlan
	// soft are errors that stopped nothing: a failed discovery, a binding
	// that could not be read (a poll retries them).
	soft     []error
	stateErr error
	applied  applied
	// done: nothing in scope, nothing to do.
	done bool
	// bindings is a cycle's read of the current bindings, made beside the
	// directory read (see readBindings); stopBindings ends it unused.
	bindings     chan bindingsRead
	stopBindings context.CancelFunc
}

// bindingsRead is what Cluster.Bindings returned.
type bindingsRead struct {
	current map[model.Ref]*model.Binding
	err     error
}

// run is the pipeline: read → pin → (provision) → desired and plan →
// commit the guard's state → apply → remember; then the Report is built
// and the observers (metrics, Events, logs) see it.
func (s *Pipeline) run(ctx context.Context, sc scope, opts CycleOptions) *Report {
	p := &pass{s: s, sc: sc, opts: opts, popts: planOptions(s.cfg, opts), started: time.Now()}
	err := p.steps(ctx)
	p.endBindings()
	rep := p.report(ctx, err)
	s.observe(rep, sc, opts)
	return rep
}

func (p *pass) steps(ctx context.Context) error {
	for _, step := range []func(context.Context) error{p.read, p.pin, p.provision, p.plan} {
		if err := step(ctx); err != nil || p.done {
			return err
		}
	}
	p.stateErr = p.s.guard.commitState(ctx, p.opts, p.plans, p.groupsRead(), p.usedPins)
	if p.stateErr == nil {
		// Without the guard's record, nothing is written.
		p.applied = p.s.writes.applyPlans(ctx, p.opts, p.sc.trigger, p.plans, p.current)
	}
	p.remember()
	errs := append(append(p.soft, p.prov.errs...), groupErrors(p.failedGroups())...)
	if p.stateErr != nil {
		errs = append(errs, p.stateErr)
	}
	errs = append(errs, p.applied.errs...)
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// read reads what the scope needs from the directory: a cycle, the
// projects and every managed group; a poll, the groups a change reached;
// a repair, nothing (it picks its bindings of the last desired state).
func (p *pass) read(ctx context.Context) error {
	switch p.sc.trigger {
	case TriggerCycle:
		return p.readAll(ctx)
	case TriggerChange:
		p.found.projects = p.s.lastProjects
		res, err := p.s.dir.ResolveTargeted(ctx, p.sc.affected)
		if err != nil {
			p.s.obs.ldapError("connect")
			// Nothing written; the cursor stays, so the next poll tries again.
			p.dirErr = err
			return fmt.Errorf("read changed groups: %w", err)
		}
		p.res = res
	case TriggerRepair:
		for _, ref := range p.sc.refs {
			if d, ok := p.s.desired[ref]; ok {
				p.desired = append(p.desired, d)
			}
		}
		p.done = len(p.desired) == 0
	}
	return nil
}

// readAll is a cycle's read: the projects (namespaces, then directory
// discovery), the change history's mark, and every managed group. An error
// means nothing could be read: nothing is written.
func (p *pass) readAll(ctx context.Context) error {
	s := p.s
	nss, err := s.cluster.Namespaces(ctx)
	if err != nil {
		s.obs.kubeError("list")
		return fmt.Errorf("find projects: %w", err)
	}
	if !s.cluster.BindingsInMemory() {
		p.readBindings(ctx)
	}
	// A full cycle starts a new directory connection: it picks up a
	// rotated password or CA, and returns to the first server of
	// ldap.urls after a failover. Its discovery, mark and read, and the
	// polls until the next cycle, then share that one connection.
	s.Close()
	var discoverErr error
	p.found, discoverErr = s.provisioning.findProjects(ctx, nss)
	if unreachable(discoverErr) {
		// The directory cannot be used at all: do not bind again for the
		// mark and the read (a refused password would count three times).
		p.dirErr = discoverErr
		return fmt.Errorf("read directory: %w", discoverErr)
	}
	if discoverErr != nil {
		p.soft = append(p.soft, discoverErr)
	}
	// Before the read: a change made during it is seen by the next poll.
	// The mark and the read share one connection, so one server.
	mark, markErr := s.polls.markChanges(ctx, p.opts)
	if unreachable(markErr) {
		p.dirErr = markErr
		s.obs.ldapError("connect")
		return fmt.Errorf("read directory: %w", markErr)
	}
	res, err := s.dir.Resolve(ctx, plan.AllGroupNames(s.cfg.Groups, p.found.projects))
	if err != nil {
		s.obs.ldapError("connect")
		// Nothing could be read: write nothing at all.
		p.dirErr = err
		return fmt.Errorf("read directory: %w", err)
	}
	p.res, p.mark = res, mark
	return nil
}

// readBindings starts a cycle's read of the current bindings beside its
// directory read, when they come from the API server (once, diff): a
// hundred pages at 5,000 projects, about half a second that no longer
// follows the directory's answer (docs/performance.md). From the daemon's
// informers they are read when planned: there the read is a copy in
// memory, which would only add to the live heap during the directory read.
// Reading them seconds before the plan is as safe as reading them just
// before: every write carries the resourceVersion it planned against, and
// a conflict re-reads and re-applies. Provisioning never creates a managed
// binding, so nothing it makes is missed.
func (p *pass) readBindings(ctx context.Context) {
	ctx, p.stopBindings = context.WithCancel(ctx)
	p.bindings = make(chan bindingsRead, 1)
	go func(out chan<- bindingsRead) {
		current, err := p.s.cluster.Bindings(ctx, p.s.cfg.Kubernetes.RunaiNamespace)
		out <- bindingsRead{current, err}
	}(p.bindings)
}

// currentBindings returns what readBindings read, or reads them now.
func (p *pass) currentBindings(ctx context.Context) bindingsRead {
	if p.bindings == nil {
		current, err := p.s.cluster.Bindings(ctx, p.s.cfg.Kubernetes.RunaiNamespace)
		return bindingsRead{current, err}
	}
	read := <-p.bindings
	p.bindings = nil
	return read
}

// endBindings stops a bindings read the pass did not use (the directory
// failed, or nothing was planned) and waits for it: nothing of a pass
// outlives it.
func (p *pass) endBindings() {
	if p.stopBindings == nil {
		return
	}
	p.stopBindings()
	if p.bindings != nil {
		<-p.bindings
	}
}

// pin loads the guard's state into the plan's options and, after a
// directory read, checks the groups read against their identity pins.
// Without the state nothing is planned.
func (p *pass) pin(ctx context.Context) error {
	if p.res == nil {
		_, err := p.s.guard.loadState(ctx, &p.popts)
		return err
	}
	res, used, err := p.s.guard.pinRead(ctx, &p.popts, p.res)
	if err != nil {
		// A poll's cursor stays, so the next poll tries again.
		return err
	}
	p.res, p.usedPins, p.pinned = res, used, true
	return nil
}

// provision is a cycle's: namespaces and template objects, once the
// directory answered (if it cannot be reached, nothing at all is written).
func (p *pass) provision(ctx context.Context) error {
	if p.sc.trigger == TriggerCycle {
		p.prov = p.s.provisioning.provision(ctx, p.opts, p.found)
	}
	return nil
}

// plan computes the desired state of the scope's bindings and plans them
// against their current state.
func (p *pass) plan(ctx context.Context) error {
	s := p.s
	switch p.sc.trigger {
	case TriggerCycle:
		read := p.currentBindings(ctx)
		if read.err != nil {
			s.obs.kubeError("list")
			return fmt.Errorf("read current bindings: %w", read.err)
		}
		p.current = read.current
		p.desired = plan.DesiredState(p.projects(), s.cfg.Groups, s.cfg.Kubernetes.RunaiNamespace, p.res.Groups, s.members.Known())
		p.plans = plan.Plan(p.desired, p.current, p.popts)
		return nil
	case TriggerChange:
		known := s.members.Known()
		groups := standingGroups(p.sc.all, p.res.Groups, s.polls.inc.failed, known)
		desired := plan.DesiredState(p.projects(), s.cfg.Groups, s.cfg.Kubernetes.RunaiNamespace, groups, known)
		// Exactly the bindings whose desired state moved; the others are as
		// the last cycle (and the repairs since) left them.
		p.desired = changedDesired(desired, s.desired)
		p.current = map[model.Ref]*model.Binding{}
		if len(p.desired) == 0 {
			return nil
		}
	}
	current, plans, errs := planEach(ctx, s.cluster, s.obs, p.desired, p.popts)
	if current == nil {
		return errors.Join(errs...)
	}
	p.current, p.plans, p.soft = current, plans, append(p.soft, errs...)
	return nil
}

// planEach reads each binding's current state (the informer cache, in the
// daemon) and plans it, skipping executor bindings whose namespace is gone
// or terminating (that change queues a full cycle). A nil map means
// nothing could be planned.
func planEach(ctx context.Context, cluster Cluster, obs metricsObserver, desired []plan.Desired, popts plan.PlanOptions) (map[model.Ref]*model.Binding, []plan.BindingPlan, []error) {
	live, err := liveNamespaces(ctx, cluster, obs)
	if err != nil {
		return nil, nil, []error{err}
	}
	var errs []error
	var plans []plan.BindingPlan
	current := map[model.Ref]*model.Binding{}
	for _, d := range desired {
		if d.Ref.Name == model.ExecutorBinding && !live[d.Ref.Namespace] {
			continue
		}
		shards, err := getShards(ctx, cluster, d.Ref, current)
		if err != nil {
			obs.kubeError("get")
			errs = append(errs, err)
			continue
		}
		plans = append(plans, plan.PlanOne(d, shards, popts))
	}
	return current, plans, errs
}

// getShards reads a binding and every shard it may have into current,
// and returns them as plan.PlanOne takes them: every shard name, as the
// cycle's list does, also with sharding turned off (a shard made before
// still counts, and its roleRef or record may leave the binding
// untouched). From the informer cache in the daemon, these are memory
// reads.
func getShards(ctx context.Context, cluster Cluster, ref model.Ref, current map[model.Ref]*model.Binding) ([]*model.Binding, error) {
	var out []*model.Binding
	for i := 0; i <= model.MaxShards; i++ {
		r := model.ShardRef(ref, i)
		b, err := cluster.Get(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", r, err)
		}
		current[r] = b
		out = append(out, b)
	}
	return out, nil
}

// liveNamespaces maps each namespace to whether it is live (not terminating).
func liveNamespaces(ctx context.Context, cluster Cluster, obs metricsObserver) (map[string]bool, error) {
	nss, err := cluster.Namespaces(ctx)
	if err != nil {
		obs.kubeError("list")
		return nil, fmt.Errorf("read namespaces: %w", err)
	}
	live := make(map[string]bool, len(nss))
	for _, n := range nss {
		live[n.Name] = !n.Terminating
	}
	return live, nil
}

// remember keeps what the run taught for the runs after it. A cycle's
// desired state, projects and groups are remembered even when the store
// could not be written (nothing was); a poll's only once written, so the
// poll that retries (its cursor stays) writes what this one did not.
func (p *pass) remember() {
	s := p.s
	switch p.sc.trigger {
	case TriggerCycle:
		// Repairs and polls from now on re-plan against this desired state.
		byRef := make(map[model.Ref]plan.Desired, len(p.desired))
		for _, d := range p.desired {
			byRef[d.Ref] = d
		}
		s.desired, s.planOpts = byRef, p.popts
		s.lastProjects = p.projects()
		s.polls.rememberCycle(p.mark, p.res)
		s.learnGroups(p.res.Groups)
	case TriggerChange:
		if p.stateErr != nil {
			return
		}
		for _, d := range p.desired {
			// A binding not written stays "changed", so the poll that retries
			// writes it.
			if _, failed := p.applied.writeErrors[d.Ref]; p.current[d.Ref] != nil && !failed {
				s.desired[d.Ref] = d
			}
		}
		s.learnGroups(p.res.Groups)
		// What a later poll could fix: a read or a write that failed. A
		// binding left untouched by the plan (roleRef not Run:AI's, too
		// large) fails the same way every time, so it does not hold the
		// cursor back.
		if len(p.soft) == 0 && len(p.applied.writeErrors) == 0 && len(p.failedGroups()) == 0 {
			s.polls.advance(&p.sc.changes.Next)
		}
	}
}

// projects are the projects planned: a cycle's, less those whose
// namespace could not be created; the last cycle's for the others.
func (p *pass) projects() []plan.Project {
	if p.prov.projects != nil {
		return p.prov.projects
	}
	return p.found.projects
}

// groupsRead are the groups read from the directory, as planned (none
// before their pins were checked).
func (p *pass) groupsRead() map[string]*model.Group {
	if !p.pinned {
		return nil
	}
	return p.res.Groups
}

// failedGroups are the groups of the read whose lookup failed.
func (p *pass) failedGroups() map[string]error {
	failed := map[string]error{}
	for name, g := range p.groupsRead() {
		if g.Err != nil {
			failed[name] = g.Err
		}
	}
	return failed
}

// report builds the run's Report from what the steps returned.
func (p *pass) report(ctx context.Context, err error) *Report {
	rep := newReport(p.sc.trigger)
	rep.Started, rep.Duration, rep.Err, rep.DirErr = p.started, time.Since(p.started), err, p.dirErr
	rep.Projects = p.projects()
	rep.SkippedProjects, rep.placed = append(p.found.skipped, p.prov.skipped...), p.found.placed
	rep.Provision = p.prov.report(p.found)
	rep.Plans, rep.CycleWanted = p.plans, p.sc.newProject
	if p.pinned {
		rep.Skipped, rep.skippedSamples = p.res.Skipped, p.res.SkippedSamples
		rep.MissingGroups, rep.FailedGroups = missingGroups(p.res.Groups), p.failedGroups()
	}
	if p.sc.trigger == TriggerCycle && p.res != nil && p.current != nil {
		rep.read = readState{groups: p.res.Groups, current: p.current}
	}
	rep.outcomes = p.applied.outcomes
	if p.applied.writeErrors != nil {
		rep.WriteErrors = p.applied.writeErrors
	}
	for _, o := range p.applied.outcomes {
		if o.tried && o.err == nil {
			rep.Applied++
			if o.firstCreate {
				rep.Created++
			}
		}
	}
	if p.sc.trigger == TriggerCycle && err != nil && (p.plans == nil || ctx.Err() != nil) {
		// Stopped before planning (nothing could be read, nothing written),
		// or interrupted by a shutdown.
		rep.Fatal = true
	}
	return rep
}

// missingGroups are the groups of a read that do not exist, sorted.
func missingGroups(groups map[string]*model.Group) []string {
	var out []string
	for _, name := range model.SortedKeys(groups) {
		if g := groups[name]; g.Err == nil && !g.Found {
			out = append(out, name)
		}
	}
	return out
}

// groupErrors are the errors of the groups whose lookup failed.
func groupErrors(failed map[string]error) []error {
	var errs []error
	for name, gerr := range failed {
		errs = append(errs, fmt.Errorf("group %q: %w", name, gerr))
	}
	return errs
}

// observe shows a finished run to its observers: Events and metrics of
// each plan's outcome, then the path's metrics and logs.
func (s *Pipeline) observe(rep *Report, sc scope, opts CycleOptions) {
	s.logs.outcomes(rep, opts)
	if !opts.DryRun {
		for _, o := range rep.outcomes {
			s.writes.recordEvents(o, rep.Trigger)
			s.obs.applied(o)
		}
	}
	switch sc.trigger {
	case TriggerCycle:
		for _, sp := range rep.placed {
			s.writes.copiedLabelEvent(sp)
		}
		s.obs.cycleDone(rep)
		s.logs.projects(rep, s.cfg.Projects)
		s.logs.cycleRead(rep)
	case TriggerChange:
		s.obs.pollDone(rep, opts, sc.seen)
	case TriggerRepair:
		s.obs.repairDone(rep)
	}
}
