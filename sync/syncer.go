package sync

import (
	"context"
	"errors"
	"fmt"
	"sort"
	gosync "sync"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
)

// Directory is the source of desired state (ldapsrc.Source).
type Directory interface {
	Resolve(ctx context.Context, names []string) (*ldapsrc.Result, error)
}

// Cluster is the provider of current state and the writer (kube.Client).
type Cluster interface {
	Namespaces(ctx context.Context) ([]kube.Namespace, error)
	Bindings(ctx context.Context, runaiNS string) (map[kube.Ref]*kube.Binding, error)
	Apply(ctx context.Context, ch kube.Change, current *kube.Binding) (*kube.Binding, error)
}

// writeTimeout bounds one write. Writes run detached from the cycle's
// context, so a shutdown lets the write in flight finish instead of
// leaving it half-known.
const writeTimeout = 30 * time.Second

// Syncer runs sync cycles.
type Syncer struct {
	cfg     *config.Config
	dir     Directory
	cluster Cluster
	log     *zap.Logger
	metrics *Metrics

	mu gosync.Mutex
	// lastKnown is each group's member list from its last good lookup.
	lastKnown map[string][]string
}

// New returns a Syncer. metrics may be nil.
func New(cfg *config.Config, dir Directory, cluster Cluster, log *zap.Logger, metrics *Metrics) *Syncer {
	return &Syncer{cfg: cfg, dir: dir, cluster: cluster, log: log, metrics: metrics, lastKnown: map[string][]string{}}
}

// CycleOptions change one cycle.
type CycleOptions struct {
	// DryRun computes and reports, and writes nothing.
	DryRun bool
	// ApproveRemovals approves every removal the guard would hold.
	ApproveRemovals bool
}

// Report is what one cycle found and did.
type Report struct {
	Started         time.Time
	Duration        time.Duration
	Projects        []Project
	SkippedProjects []SkippedProject
	MissingGroups   []string
	FailedGroups    map[string]error
	Skipped         map[string]int
	Plans           []BindingPlan
	// Applied counts bindings written.
	Applied     int
	WriteErrors map[kube.Ref]error
	// Err is the cycle's overall error; nil means fully successful.
	Err error
}

// Changes returns the plans that write something.
func (r *Report) Changes() []BindingPlan {
	var out []BindingPlan
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
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := &Report{Started: time.Now(), FailedGroups: map[string]error{}, WriteErrors: map[kube.Ref]error{}}
	rep.Err = s.cycle(ctx, opts, rep)
	rep.Duration = time.Since(rep.Started)
	s.record(rep)
	return rep
}

func (s *Syncer) cycle(ctx context.Context, opts CycleOptions, rep *Report) error {
	nss, err := s.cluster.Namespaces(ctx)
	if err != nil {
		s.kubeError("list")
		return fmt.Errorf("find projects: %w", err)
	}
	rep.Projects, rep.SkippedProjects = FindProjects(nss, s.cfg.Projects)
	for _, sp := range rep.SkippedProjects {
		s.log.Warn("project skipped", zap.String("project", sp.Name), zap.String("namespace", sp.Namespace), zap.String("reason", sp.Reason))
	}

	names := AllGroupNames(s.cfg.Groups, rep.Projects)
	res, err := s.dir.Resolve(ctx, names)
	if err != nil {
		if s.metrics != nil {
			s.metrics.LDAPErrors.WithLabelValues("connect").Inc()
		}
		// Nothing could be read: write nothing at all.
		return fmt.Errorf("read directory: %w", err)
	}
	rep.Skipped = res.Skipped
	for _, name := range sortedGroupNames(res.Groups) {
		g := res.Groups[name]
		switch {
		case g.Err != nil:
			rep.FailedGroups[name] = g.Err
		case !g.Found:
			rep.MissingGroups = append(rep.MissingGroups, name)
		}
	}
	s.logDirectory(rep, res)

	current, err := s.cluster.Bindings(ctx, s.cfg.Kubernetes.RunaiNamespace)
	if err != nil {
		s.kubeError("list")
		return fmt.Errorf("read current bindings: %w", err)
	}

	desired := DesiredState(rep.Projects, s.cfg.Groups, s.cfg.Kubernetes.RunaiNamespace, res.Groups, s.lastKnown)
	rep.Plans = Plan(desired, current, PlanOptions{Policy: s.cfg.Policy, Guard: s.cfg.Guard, ApproveAll: opts.ApproveRemovals})
	// Remember good answers only after they were used, so this cycle's
	// failures fall back to the previous cycle's members.
	for name, g := range res.Groups {
		if g.Err == nil {
			s.lastKnown[name] = g.Members
		}
	}

	var errs []error
	for name, gerr := range rep.FailedGroups {
		errs = append(errs, fmt.Errorf("group %q: %w", name, gerr))
	}
	for i := range rep.Plans {
		p := &rep.Plans[i]
		if p.Err != nil {
			s.log.Error("binding left untouched", zap.String("binding", p.Ref.String()), zap.Error(p.Err))
			if !errors.Is(p.Err, errGroupFailed) {
				errs = append(errs, p.Err)
			}
			continue
		}
		if len(p.Held) > 0 {
			s.log.Warn("removals held by the guard; approve with the annotation "+ApproveAnnotation+"=true on the binding or run once with --approve-removals",
				zap.String("binding", p.Ref.String()), zap.String("reason", p.HoldReason), zap.Strings("held", p.Held))
		}
		if opts.DryRun || !p.HasChanges() {
			continue
		}
		if err := ctx.Err(); err != nil {
			// Shutting down: do not start another write.
			errs = append(errs, fmt.Errorf("cycle interrupted before writing %s: %w", p.Ref, err))
			break
		}
		if err := s.apply(ctx, p, current[p.Ref]); err != nil {
			rep.WriteErrors[p.Ref] = err
			errs = append(errs, err)
			continue
		}
		rep.Applied++
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// errGroupFailed marks plan errors already counted as failed groups.
var errGroupFailed = errors.New("group lookup failed")

func (s *Syncer) apply(ctx context.Context, p *BindingPlan, current *kube.Binding) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	ch := kube.Change{Ref: p.Ref, Create: p.Create, Add: p.Add, Remove: p.Remove}
	if p.Approved {
		ch.DropAnnotations = []string{ApproveAnnotation}
	}
	_, err := s.cluster.Apply(wctx, ch, current)
	if err != nil {
		op := "patch"
		if p.Create {
			op = "create"
		}
		s.kubeError(op)
		s.log.Error("binding write failed", zap.String("binding", p.Ref.String()), zap.Error(err))
		return fmt.Errorf("write %s: %w", p.Ref, err)
	}
	fields := []zap.Field{zap.String("binding", p.Ref.String()), zap.String("kind", p.Ref.Kind),
		zap.String("namespace", p.Ref.Namespace), zap.String("name", p.Ref.Name),
		zap.Bool("created", p.Create), zap.Strings("added", nonNil(p.Add)), zap.Strings("removed", nonNil(p.Remove))}
	if p.Approved {
		fields = append(fields, zap.Bool("approved", true))
	}
	s.log.Info("binding updated", fields...)
	if s.metrics != nil {
		if p.Create {
			s.metrics.Changes.WithLabelValues(p.Ref.Kind, "create").Inc()
		}
		s.metrics.Changes.WithLabelValues(p.Ref.Kind, "add").Add(float64(len(p.Add)))
		s.metrics.Changes.WithLabelValues(p.Ref.Kind, "remove").Add(float64(len(p.Remove)))
	}
	return nil
}

func (s *Syncer) logDirectory(rep *Report, res *ldapsrc.Result) {
	if len(rep.MissingGroups) > 0 {
		s.log.Warn("groups not found in the directory; they contribute no members",
			zap.Int("count", len(rep.MissingGroups)), zap.Strings("groups", sample(rep.MissingGroups, 20)))
	}
	for name, err := range rep.FailedGroups {
		s.log.Error("group lookup failed; bindings it feeds lose no one", zap.String("group", name), zap.Error(err))
	}
	for reason, n := range res.Skipped {
		s.log.Info("members skipped", zap.String("reason", reason), zap.Int("count", n), zap.Strings("examples", res.SkippedSamples[reason]))
	}
}

func (s *Syncer) kubeError(op string) {
	if s.metrics != nil {
		s.metrics.KubeErrors.WithLabelValues(op).Inc()
	}
}

// record publishes a cycle's report as metrics.
func (s *Syncer) record(rep *Report) {
	m := s.metrics
	if m == nil {
		return
	}
	m.CycleDuration.Observe(rep.Duration.Seconds())
	now := float64(time.Now().Unix())
	m.LastCycle.Set(now)
	if rep.Err == nil {
		m.Cycles.WithLabelValues("success").Inc()
		m.LastSuccess.Set(now)
	} else {
		m.Cycles.WithLabelValues("failure").Inc()
	}
	if rep.Plans == nil {
		// The cycle stopped before planning: keep the last drift figures
		// rather than report a drift of zero nobody measured.
		return
	}
	m.Projects.Set(float64(len(rep.Projects)))
	counts := map[string]int{}
	for _, sp := range rep.SkippedProjects {
		counts[sp.Reason]++
	}
	for _, r := range ProjectSkipReasons {
		m.ProjectsSkipped.WithLabelValues(r).Set(float64(counts[r]))
	}
	m.GroupsMissing.Set(float64(len(rep.MissingGroups)))
	m.GroupsFailed.Set(float64(len(rep.FailedGroups)))
	m.LDAPErrors.WithLabelValues("group").Add(float64(len(rep.FailedGroups)))
	for _, r := range ldapsrc.SkipReasons {
		m.MembersSkipped.WithLabelValues(r).Set(float64(rep.Skipped[r]))
	}
	m.DriftMissing.Reset()
	m.DriftUnexpected.Reset()
	m.DesiredSubjects.Reset()
	m.HeldRemovals.Reset()
	m.BindingErrors.Reset()
	for _, p := range rep.Plans {
		lv := []string{p.Ref.Kind, p.Ref.Namespace, p.Ref.Name}
		if p.Err != nil {
			m.BindingErrors.WithLabelValues(append(lv, "lookup_or_roleref")...).Set(1)
			continue
		}
		m.DriftMissing.WithLabelValues(lv...).Set(float64(p.Missing))
		m.DriftUnexpected.WithLabelValues(lv...).Set(float64(p.Unexpected))
		m.DesiredSubjects.WithLabelValues(lv...).Set(float64(p.Desired))
		if len(p.Held) > 0 {
			m.HeldRemovals.WithLabelValues(append(lv, p.HoldReason)...).Set(float64(len(p.Held)))
		}
		if _, ok := rep.WriteErrors[p.Ref]; ok {
			m.BindingErrors.WithLabelValues(append(lv, "write")...).Set(1)
		}
	}
}

func sortedGroupNames(m map[string]*ldapsrc.Group) []string {
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
