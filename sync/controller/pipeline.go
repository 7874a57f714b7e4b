package controller

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// Directory is the source of desired state (ldapsrc.Source): every
// capability the pipeline uses is declared here, none found by type
// assertion.
type Directory interface {
	// Resolve reads the named groups (a cycle reads every managed group).
	Resolve(ctx context.Context, names []string) (*ldapsrc.Result, error)
	// ResolveTargeted reads a few groups without reading the whole
	// directory (a poll's).
	ResolveTargeted(ctx context.Context, names []string) (*ldapsrc.Result, error)
	// PasswordFingerprint identifies the bind password file's content: a
	// new one is tried once.
	PasswordFingerprint() (string, error)
	// Close ends the connection the term's reads shared.
	Close()
}

// Cluster is the provider of current state and the writer: kube.Client,
// or kube.Cache, which reads from informers.
type Cluster interface {
	Namespaces(ctx context.Context) ([]model.Namespace, error)
	Bindings(ctx context.Context, runaiNS string) (map[model.Ref]*model.Binding, error)
	// BindingsInMemory reports whether Bindings answers from memory (a
	// synced informer cache): a cycle then reads them when it plans; else
	// beside the directory read, which hides the LIST's round trips.
	BindingsInMemory() bool
	Get(ctx context.Context, ref model.Ref) (*model.Binding, error)
	Apply(ctx context.Context, ch model.Change, current *model.Binding) (*model.Binding, error)
	// Wrote reports whether rv is the state of our own last write of ref,
	// or older: the one record of our writes is the Cluster's (kube.Cache),
	// whose informers echo them.
	Wrote(ref model.Ref, rv string) bool
}

// Recorder records Kubernetes Events on bindings (kube.EventRecorder).
type Recorder interface {
	Event(ref model.Ref, uid string, eventType, reason, message string)
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

// Pipeline runs sync cycles.
type Pipeline struct {
	cfg     *config.Config
	dir     Directory
	cluster Cluster
	log     *zap.Logger
	// obs publishes results as metrics (obs.m nil: none), logs as log
	// lines.
	obs  metricsObserver
	logs logObserver

	// writes applies plans and records the Events of what it did.
	writes applier

	// Everything below is the state of one leadership term, owned by the
	// controller loop (Loop): a Pipeline is not safe for concurrent use,
	// and a new term starts with a new Pipeline.

	// members are each group's members from its last good lookup (the
	// term's first plan brings back those the guard's store kept).
	members termMemory
	// guard is the term's view of the guard's store (state.go).
	guard guardState
	// desired is the last full cycle's desired state per binding: repairs
	// re-apply it without reading the directory. nil before the first
	// cycle: nothing is repaired then.
	desired map[model.Ref]plan.Desired
	// planOpts are the policy inputs the last cycle planned with; the
	// guard's state is guard.snap, the store's latest read or write.
	planOpts plan.PlanOptions

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
func (s *Pipeline) Close() { s.dir.Close() }

// PasswordFingerprint identifies the directory's bind password file's
// content: the loop tries a new one once.
func (s *Pipeline) PasswordFingerprint() (string, error) { return s.dir.PasswordFingerprint() }

// PollsOn reports whether polls can run (a change source is set and the
// directory keeps change markers).
func (s *Pipeline) PollsOn() bool { return s.polls.on() }

// New returns a Pipeline. metrics may be nil.
func New(cfg *config.Config, dir Directory, cluster Cluster, log *zap.Logger, metrics *metrics.Metrics) *Pipeline {
	s := &Pipeline{cfg: cfg, dir: dir, cluster: cluster, log: log, obs: metricsObserver{m: metrics}, logs: logObserver{log: log},
		members: termMemory{}, guard: guardState{store: &memStore{}}}
	s.polls.s = s
	s.guard.s = s
	s.provisioning = provisioner{s: s, provisioned: map[string]string{}}
	s.writes = applier{s: s, shards: map[model.Ref]int{}}
	return s
}

// WithEvents makes the Pipeline record a Kubernetes Event on a binding for
// every change, held removal and binding left untouched. Call it before
// the first cycle.
func (s *Pipeline) WithEvents(r Recorder) *Pipeline {
	s.writes.events = r
	return s
}

// CycleOptions change one cycle.
type CycleOptions struct {
	// DryRun computes and reports, and writes nothing.
	DryRun bool
	// Approve names the one binding whose held changes this cycle
	// approves (once --approve-removals); the zero Ref approves none.
	Approve model.Ref
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
	WriteErrors map[model.Ref]error
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
	// placed are the projects that the namespaces' labels skip (the
	// first of SkippedProjects).
	placed []plan.SkippedProject
	// skippedSamples are examples of the members skipped, by reason.
	skippedSamples map[string][]string
	// outcomes are what applying each plan came to (Events, metrics and
	// logs observe them).
	outcomes []outcome
}

// readState is what a cycle read: the groups as resolved and the current
// bindings.
type readState struct {
	groups  map[string]*model.Group
	current map[model.Ref]*model.Binding
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
func (s *Pipeline) Cycle(ctx context.Context, opts CycleOptions) *Report {
	return s.run(ctx, cycleScope(), opts)
}

func newReport(trigger string) *Report {
	return &Report{Trigger: trigger, Started: time.Now(), FailedGroups: map[string]error{}, WriteErrors: map[model.Ref]error{},
		Provision: ProvisionReport{NamespaceErrors: map[string]error{}, TemplateErrors: map[template.Key]error{}}}
}

// planOptions are the policy inputs of a plan under cfg.
func planOptions(cfg *config.Config, opts CycleOptions) plan.PlanOptions {
	return plan.PlanOptions{Policy: cfg.Policy, Guard: cfg.Guard, Adopt: cfg.Ownership.Adopt, Approve: opts.Approve, Now: time.Now(),
		RunaiNamespace: cfg.Kubernetes.RunaiNamespace,
		MaxShards:      cfg.Kubernetes.MaxBindingShards, ShardBytes: cfg.Kubernetes.BindingShardBytes}
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
