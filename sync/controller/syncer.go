package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// Directory is the source of desired state (ldapsrc.Source).
type Directory interface {
	Resolve(ctx context.Context, names []string) (*ldapsrc.Result, error)
}

// Cluster is the provider of current state and the writer: kube.Client,
// or kube.Cache, which reads from informers.
type Cluster interface {
	Namespaces(ctx context.Context) ([]kube.Namespace, error)
	Bindings(ctx context.Context, runaiNS string) (map[kube.Ref]*kube.Binding, error)
	Get(ctx context.Context, ref kube.Ref) (*kube.Binding, error)
	Apply(ctx context.Context, ch kube.Change, current *kube.Binding) (*kube.Binding, error)
}

// Recorder records Kubernetes Events on bindings (kube.EventRecorder).
type Recorder interface {
	Event(ref kube.Ref, uid string, eventType, reason, message string)
}

// Event reasons.
const (
	ReasonCreated         = "BindingCreated"
	ReasonChanged         = "SubjectsChanged"
	ReasonRemovalsHeld    = "RemovalsHeld"
	ReasonRoleRefMismatch = "RoleRefMismatch"
	ReasonLeftUntouched   = "LeftUntouched"
	ReasonWriteFailed     = "WriteFailed"
	// ReasonApprovalRemoved: an approval that matched nothing held was
	// removed.
	ReasonApprovalRemoved = "ApprovalRemoved"
)

// Triggers of a write, as logged.
const (
	TriggerCycle  = "cycle"
	TriggerRepair = "repair"
)

// Syncer runs sync cycles.
type Syncer struct {
	cfg     *config.Config
	dir     Directory
	cluster Cluster
	log     *zap.Logger
	// obs publishes results as metrics (obs.m nil: none).
	obs metricsObserver

	// writes applies plans and records the Events of what it did.
	writes applier

	// Everything below is the state of one leadership term, owned by the
	// controller loop (Runner): a Syncer is not safe for concurrent use,
	// and a new term starts with a new Syncer.

	// members are each group's members from its last good lookup (the
	// term's first plan brings back those the guard's store kept).
	members termMemory
	// guard is the term's view of the guard's store (state.go).
	guard guardState
	// desired is the last full cycle's desired state per binding: repairs
	// re-apply it without reading the directory. nil before the first
	// cycle: nothing is repaired then.
	desired map[kube.Ref]plan.Desired
	// planOpts are the policy inputs the last cycle planned with; the
	// guard's state is guard.snap, the store's latest read or write.
	planOpts plan.PlanOptions

	work workQueue

	// provisioning serves the opt-in projects.* features.
	provisioning provisioner
	// polls is the polls' state (WithChanges).
	polls poller

	// lastProjects are the last cycle's projects, for incremental syncs and
	// template repairs.
	lastProjects []plan.Project
}

// unreachable reports whether err means the directory could not be used at
// all (no server reachable and bound, or the credentials refused), as
// opposed to one search failing.
func unreachable(err error) bool {
	var ce *ldapsrc.ConnectError
	return err != nil && (errors.As(err, &ce) || errors.Is(err, ldapsrc.ErrInvalidCredentials))
}

// Close ends the term's use of the directory: the connection its reads
// shared is closed (the next term dials afresh).
func (s *Syncer) Close() {
	if c, ok := s.dir.(interface{ Close() }); ok {
		c.Close()
	}
}

// passwordFingerprint identifies the bind password file's content, when
// the directory can tell (ldapsrc.Source.PasswordFingerprint).
func passwordFingerprint(dir Directory) (string, error) {
	if p, ok := dir.(interface{ PasswordFingerprint() (string, error) }); ok {
		return p.PasswordFingerprint()
	}
	return "", errors.New("the directory cannot tell whether its password changed")
}

// New returns a Syncer. metrics may be nil.
func New(cfg *config.Config, dir Directory, cluster Cluster, log *zap.Logger, metrics *metrics.Metrics) *Syncer {
	s := &Syncer{cfg: cfg, dir: dir, cluster: cluster, log: log, obs: metricsObserver{m: metrics},
		members: termMemory{}, guard: guardState{store: &memStore{}}, work: newWorkQueue()}
	s.polls.s = s
	s.guard.s = s
	s.provisioning = provisioner{s: s, provisioned: map[string]string{}}
	s.writes = applier{s: s, written: map[kube.Ref]string{}, shards: map[kube.Ref]int{}}
	return s
}

// WithEvents makes the Syncer record a Kubernetes Event on a binding for
// every change, held removal and binding left untouched. Call it before
// the first cycle.
func (s *Syncer) WithEvents(r Recorder) *Syncer {
	s.writes.events = r
	return s
}

// CycleOptions change one cycle.
type CycleOptions struct {
	// DryRun computes and reports, and writes nothing.
	DryRun bool
	// Approve names the one binding whose held changes this cycle
	// approves (once --approve-removals); the zero Ref approves none.
	Approve kube.Ref
}

// Report is what one cycle or repair found and did.
type Report struct {
	// Trigger is TriggerCycle or TriggerRepair.
	Trigger         string
	Started         time.Time
	Duration        time.Duration
	Projects        []plan.Project
	SkippedProjects []plan.SkippedProject
	MissingGroups   []string
	FailedGroups    map[string]error
	Skipped         map[string]int
	Plans           []plan.BindingPlan
	// Applied counts bindings written.
	Applied int
	// Created counts first creations, recorded in one "bindings created"
	// log line rather than one Event each (a re-creation after a
	// deletion keeps its Event).
	Created     int
	WriteErrors map[kube.Ref]error
	// Provision is what the projects.* provisioning found and did.
	Provision ProvisionReport
	// Err is the cycle's overall error; nil means fully successful.
	Err error
	// Fatal: nothing could be read (namespaces, the directory, the current
	// bindings), so nothing was written: the cycle failed. Otherwise an
	// Err means a partial cycle: what was safe was applied, and the failed
	// groups, bindings or objects were skipped.
	Fatal bool
	// DirErr is the error of a failed contact with the directory as a
	// whole (connect, bind, a read of everything): the controller backs
	// off on it.
	DirErr error

	// CycleWanted: a poll saw what only a full cycle handles (a group
	// that makes a new project).
	CycleWanted bool

	// read is what the cycle planned from (explain reads a user's part).
	read readState
}

// readState is what a cycle read: the groups as resolved and the current
// bindings.
type readState struct {
	groups  map[string]*ldapsrc.Group
	current map[kube.Ref]*kube.Binding
}

// Cycle results, as counted in runai_ldap_sync_cycles_total.
const (
	ResultSuccess = "success"
	ResultPartial = "partial"
	ResultFailure = "failure"
)

// Result says whether the cycle succeeded, was partial or failed.
func (r *Report) Result() string {
	switch {
	case r.Err == nil:
		return ResultSuccess
	case r.Fatal:
		return ResultFailure
	}
	return ResultPartial
}

// Changes returns the plans that write something.
func (r *Report) Changes() []plan.BindingPlan {
	var out []plan.BindingPlan
	for _, p := range r.Plans {
		if p.HasChanges() {
			out = append(out, p)
		}
	}
	return out
}

// Cycle runs one sync cycle: projects, directory, desired state, plan and,
// unless dry-run, the writes.
func (s *Syncer) Cycle(ctx context.Context, opts CycleOptions) *Report {
	rep := newReport(TriggerCycle)
	rep.Err = s.cycle(ctx, opts, rep)
	if rep.Err != nil && (rep.Plans == nil || ctx.Err() != nil) {
		// Stopped before planning (nothing could be read, nothing written),
		// or interrupted by a shutdown.
		rep.Fatal = true
	}
	rep.Duration = time.Since(rep.Started)
	s.obs.cycleDone(rep)
	return rep
}

func (s *Syncer) cycle(ctx context.Context, opts CycleOptions, rep *Report) error {
	read, err := s.readDirectory(ctx, opts, rep)
	if err != nil {
		return err
	}
	popts := planOptions(s.cfg, opts)
	res, usedPins, err := s.guard.pinRead(ctx, &popts, read.res, rep)
	if err != nil {
		return err
	}
	logDirectory(s.log, rep, res)
	// Namespaces and template objects, once the directory answered (if it
	// cannot be reached, nothing at all is written).
	provisionErrs := s.provisioning.provision(ctx, opts, rep)

	current, err := s.cluster.Bindings(ctx, s.cfg.Kubernetes.RunaiNamespace)
	if err != nil {
		s.obs.kubeError("list")
		return fmt.Errorf("read current bindings: %w", err)
	}

	rep.read = readState{groups: res.Groups, current: current}
	desired := plan.DesiredState(rep.Projects, s.cfg.Groups, s.cfg.Kubernetes.RunaiNamespace, res.Groups, s.members.Known())
	rep.Plans = plan.Plan(desired, current, popts)
	stateErr := s.guard.commitState(ctx, opts, rep.Plans, res.Groups, usedPins)
	// Repairs from now on re-apply this desired state.
	byRef := make(map[kube.Ref]plan.Desired, len(desired))
	for _, d := range desired {
		byRef[d.Ref] = d
	}
	s.desired, s.planOpts = byRef, popts
	s.lastProjects = rep.Projects
	s.polls.rememberCycle(read.mark, res)
	s.learnGroups(res.Groups)

	errs := provisionErrs
	if read.discoverErr != nil {
		errs = append(errs, read.discoverErr)
	}
	errs = append(errs, groupErrors(rep)...)
	logLeftovers(s.log, rep)
	if stateErr != nil {
		// Without the guard's record, nothing is written.
		return errors.Join(append(errs, stateErr)...)
	}
	errs = append(errs, s.writes.applyPlans(ctx, opts, rep, current)...)
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// cycleRead is what a cycle's read step found: the groups, the change
// history's mark taken before the read, and a discovery error that did
// not stop the read.
type cycleRead struct {
	res         *ldapsrc.Result
	mark        *ldapsrc.Cursor
	discoverErr error
}

// readDirectory is a cycle's read step: the projects (namespaces, then
// directory discovery), the change history's mark, and every managed
// group. An error means nothing could be read: nothing is written.
func (s *Syncer) readDirectory(ctx context.Context, opts CycleOptions, rep *Report) (cycleRead, error) {
	nss, err := s.cluster.Namespaces(ctx)
	if err != nil {
		s.obs.kubeError("list")
		return cycleRead{}, fmt.Errorf("find projects: %w", err)
	}
	// A full cycle starts a new directory connection: it picks up a
	// rotated password or CA, and returns to the first server of
	// ldap.urls after a failover. Its discovery, mark and read, and the
	// polls until the next cycle, then share that one connection.
	s.Close()
	discoverErr := s.provisioning.findProjects(ctx, nss, rep)
	if unreachable(discoverErr) {
		// The directory cannot be used at all: do not bind again for the
		// mark and the read (a refused password would count three times).
		rep.DirErr = discoverErr
		return cycleRead{}, fmt.Errorf("read directory: %w", discoverErr)
	}

	names := plan.AllGroupNames(s.cfg.Groups, rep.Projects)
	// Before the read: a change made during it is seen by the next poll.
	// The mark and the read share one connection, so one server.
	mark, markErr := s.polls.markChanges(ctx, opts)
	if unreachable(markErr) {
		rep.DirErr = markErr
		s.obs.ldapError("connect")
		return cycleRead{}, fmt.Errorf("read directory: %w", markErr)
	}
	res, err := s.dir.Resolve(ctx, names)
	if err != nil {
		s.obs.ldapError("connect")
		// Nothing could be read: write nothing at all.
		rep.DirErr = err
		return cycleRead{}, fmt.Errorf("read directory: %w", err)
	}
	return cycleRead{res: res, mark: mark, discoverErr: discoverErr}, nil
}

// groupErrors are the errors of the groups whose lookup failed.
func groupErrors(rep *Report) []error {
	var errs []error
	for name, gerr := range rep.FailedGroups {
		errs = append(errs, fmt.Errorf("group %q: %w", name, gerr))
	}
	return errs
}

func newReport(trigger string) *Report {
	return &Report{Trigger: trigger, Started: time.Now(), FailedGroups: map[string]error{}, WriteErrors: map[kube.Ref]error{},
		Provision: ProvisionReport{NamespaceErrors: map[string]error{}, TemplateErrors: map[template.Key]error{}}}
}

// planOptions are the policy inputs of a plan under cfg.
func planOptions(cfg *config.Config, opts CycleOptions) plan.PlanOptions {
	return plan.PlanOptions{Policy: cfg.Policy, Guard: cfg.Guard, Adopt: cfg.Ownership.Adopt, Approve: opts.Approve, Now: time.Now(),
		RunaiNamespace: cfg.Kubernetes.RunaiNamespace,
		MaxShards:      cfg.Kubernetes.MaxBindingShards, ShardBytes: cfg.Kubernetes.BindingShardBytes}
}

// logLeftovers says once per cycle which users are kept although the
// directory does not grant them and group sync does not own them.
func logLeftovers(log *zap.Logger, rep *Report) {
	var bindings, users int
	var examples []string
	for _, p := range rep.Plans {
		if p.Err != nil || len(p.Leftovers) == 0 {
			continue
		}
		bindings++
		users += len(p.Leftovers)
		for _, u := range p.Leftovers {
			if len(examples) < 20 {
				examples = append(examples, p.Ref.String()+": "+u)
			}
		}
	}
	if users == 0 {
		return
	}
	log.Info("leftovers: users in bindings that the directory does not grant and group sync does not own are kept; remove them by hand (runai-ldap-sync diff lists them) or use policy authoritative",
		zap.Int("bindings", bindings), zap.Int("users", users), zap.Strings("examples", examples))
}

func logDirectory(log *zap.Logger, rep *Report, res *ldapsrc.Result) {
	if len(rep.MissingGroups) > 0 {
		log.Warn("groups not found in the directory; they contribute no members",
			zap.Int("count", len(rep.MissingGroups)), zap.Strings("groups", sample(rep.MissingGroups, 20)))
	}
	for name, err := range rep.FailedGroups {
		log.Error("group lookup failed; bindings it feeds lose no one", zap.String("group", name), zap.Error(err))
	}
	for reason, n := range res.Skipped {
		log.Info("members skipped", zap.String("reason", reason), zap.Int("count", n), zap.Strings("examples", res.SkippedSamples[reason]))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sample(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
