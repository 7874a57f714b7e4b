package controller

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// metricsObserver publishes the pipeline's results as metrics: the reports of
// cycles, polls and repairs once they are built, and the failed requests
// as they happen. Without metrics (m nil) it does nothing.
type metricsObserver struct{ m *metrics.Metrics }

// cycleDone publishes a cycle's report as metrics.
func (o metricsObserver) cycleDone(rep *Report) {
	m := o.m
	if m == nil {
		return
	}
	m.CycleDuration.Observe(rep.Duration.Seconds())
	now := float64(time.Now().Unix())
	m.LastCycle.Set(now)
	result := rep.Result()
	m.Cycles.WithLabelValues(result).Inc()
	if result != ResultFailure {
		// A partial cycle applied everything it could read: the sync is
		// working, and the partial count and its alert say what it skipped.
		m.LastSuccess.Set(now)
	}
	if rep.Plans == nil {
		// The cycle stopped before planning: keep the last drift figures
		// rather than report a drift of zero nobody measured.
		return
	}
	m.Projects.Set(float64(len(rep.Projects)))
	o.provisionDone(rep)
	counts := map[string]int{}
	for _, sp := range rep.SkippedProjects {
		counts[sp.Reason]++
	}
	for _, r := range plan.ProjectSkipReasons {
		m.ProjectsSkipped.WithLabelValues(r).Set(float64(counts[r]))
	}
	m.GroupsMissing.Set(float64(len(rep.MissingGroups)))
	m.GroupsFailed.Set(float64(len(rep.FailedGroups)))
	m.LDAPErrors.WithLabelValues("group").Add(float64(len(rep.FailedGroups)))
	for _, r := range model.SkipReasons {
		m.MembersSkipped.WithLabelValues(r).Set(float64(rep.Skipped[r]))
	}
	m.ResetBindings() // every per-binding series is set again below
	for _, p := range rep.Plans {
		o.setBinding(p, rep)
	}
}

// planDone sets one binding's series from its plan, replacing what an
// earlier cycle or repair set.
func (o metricsObserver) planDone(p plan.BindingPlan, rep *Report) {
	m := o.m
	if m == nil {
		return
	}
	labels := map[string]string{"kind": p.Ref.Kind, "namespace": p.Ref.Namespace, "name": p.Ref.Name}
	m.HeldRemovals.DeletePartialMatch(labels)
	m.HeldAdditions.DeletePartialMatch(labels)
	m.BindingErrors.DeletePartialMatch(labels)
	o.setBinding(p, rep)
}

// setBinding sets one binding's series from its plan. A full cycle calls
// it after ResetBindings: the partial-match deletes of planDone, each a
// scan of every series, would find nothing there.
func (o metricsObserver) setBinding(p plan.BindingPlan, rep *Report) {
	m := o.m
	lv := []string{p.Ref.Kind, p.Ref.Namespace, p.Ref.Name}
	if p.Err != nil {
		reason := "lookup_or_roleref"
		if errors.Is(p.Err, plan.ErrRecordUnreadable) {
			reason = "ownership_record"
		}
		m.BindingErrors.WithLabelValues(append(lv, reason)...).Set(1)
		return
	}
	m.DriftMissing.WithLabelValues(lv...).Set(float64(p.Missing))
	m.DriftUnexpected.WithLabelValues(lv...).Set(float64(p.Unexpected))
	m.DesiredSubjects.WithLabelValues(lv...).Set(float64(p.Desired))
	m.BindingShards.WithLabelValues(lv...).Set(float64(p.Shards))
	m.Leftovers.WithLabelValues(lv...).Set(float64(len(p.Leftovers)))
	if len(p.Held) > 0 {
		m.HeldRemovals.WithLabelValues(append(lv, p.HoldReason)...).Set(float64(len(p.Held)))
	}
	if len(p.HeldAdd) > 0 {
		m.HeldAdditions.WithLabelValues(append(lv, p.AddHoldReason)...).Set(float64(len(p.HeldAdd)))
	}
	if _, ok := rep.WriteErrors[p.Ref]; ok {
		m.BindingErrors.WithLabelValues(append(lv, "write")...).Set(1)
	}
}

// repairDone publishes a repair's result; only the repaired bindings'
// series change.
func (o metricsObserver) repairDone(rep *Report) {
	m := o.m
	if m == nil || len(rep.Plans) == 0 && rep.Err == nil {
		return
	}
	if rep.Err == nil {
		m.Repairs.WithLabelValues("success").Inc()
	} else {
		m.Repairs.WithLabelValues("failure").Inc()
	}
	for _, p := range rep.Plans {
		o.planDone(p, rep)
	}
}

// provisionDone publishes the provisioning part of a cycle's report.
func (o metricsObserver) provisionDone(rep *Report) {
	m := o.m
	m.ProjectsDiscovered.Set(float64(len(rep.Provision.Discovered)))
	m.ProjectsOrphaned.Set(float64(len(rep.Provision.Orphaned)))
	missing, changed := 0, 0
	for _, ch := range rep.Provision.Templates {
		if ch.Create {
			missing++
		} else {
			changed++
		}
	}
	m.TemplateDrift.WithLabelValues("missing").Set(float64(missing))
	m.TemplateDrift.WithLabelValues("changed").Set(float64(changed))
}

// kubeError counts a failed Kubernetes request.
func (o metricsObserver) kubeError(op string) {
	if o.m != nil {
		o.m.KubeErrors.WithLabelValues(op).Inc()
	}
}

// ldapError counts a failed directory request.
func (o metricsObserver) ldapError(op string) {
	if o.m != nil {
		o.m.LDAPErrors.WithLabelValues(op).Inc()
	}
}

// drift counts a drift BindingChanged queued a repair for.
func (o metricsObserver) drift(d drift) {
	if o.m != nil {
		o.m.DriftEvents.WithLabelValues(d.change).Inc()
	}
}

// polled counts a poll by its result.
func (o metricsObserver) polled(result string) {
	if o.m != nil {
		o.m.Polls.WithLabelValues(result).Inc()
	}
}

// applied counts the changes of a plan written.
func (o metricsObserver) applied(out outcome) {
	if o.m == nil || !out.tried || out.err != nil {
		return
	}
	p := out.p
	if p.Create {
		o.m.Changes.WithLabelValues(p.Ref.Kind, "create").Inc()
	}
	o.m.Changes.WithLabelValues(p.Ref.Kind, "add").Add(float64(len(p.Add)))
	o.m.Changes.WithLabelValues(p.Ref.Kind, "remove").Add(float64(len(p.Remove)))
}

// pollDone publishes a poll's re-sync: its result, each planned binding's
// series, and for each binding written the time since the poll saw the
// change.
func (o metricsObserver) pollDone(rep *Report, opts CycleOptions, seen time.Time) {
	if o.m == nil {
		return
	}
	result := "success"
	if rep.Err != nil {
		result = "failure"
	}
	o.m.Incremental.WithLabelValues(result).Inc()
	for _, bp := range rep.Plans {
		o.planDone(bp, rep)
	}
	if opts.DryRun {
		return
	}
	for _, out := range rep.outcomes {
		if out.tried && out.err == nil {
			o.m.Propagation.Observe(time.Since(seen).Seconds())
		}
	}
}

// logObserver says in the log what the pipeline found and did, once a
// run's report (or a poll's finding) is built. Progress and a step's own
// failures (a binding written, a write or a mark that failed) are logged
// where they happen instead: a reader of the log waits for them.
type logObserver struct{ log *zap.Logger }

// outcomes logs the bindings left untouched and the changes held, and the
// one summary of a run's first creations.
func (o logObserver) outcomes(rep *Report, opts CycleOptions) {
	var created []string
	for _, out := range rep.outcomes {
		p := out.p
		if p.Err != nil {
			o.log.Error("binding left untouched", zap.String("binding", p.Ref.String()), zap.String("trigger", rep.Trigger), zap.Error(p.Err))
			continue
		}
		if len(p.Held) > 0 || len(p.HeldAdd) > 0 {
			o.log.Warn("changes held by the guard; approve exactly these by recording the key in the guard's store (approve), or run once with --approve-removals naming this binding",
				zap.String("binding", p.Ref.String()), zap.String("trigger", rep.Trigger), zap.String("reason", p.HoldReason), zap.Strings("held", p.Held),
				zap.String("addReason", p.AddHoldReason), zap.Strings("heldAdded", p.HeldAdd), zap.String("approvalKey", p.ApprovalKey),
				zap.Strings("heldGroups", p.HeldGroups), zap.String("approve", p.ApproveCommand),
				zap.Int("windowRemoved", p.WindowRemoved), zap.Int("windowAdded", p.WindowAdded))
		}
		if out.firstCreate && out.tried && out.err == nil {
			created = append(created, p.Ref.String())
		}
	}
	if len(created) > 0 && !opts.DryRun {
		o.log.Info("bindings created", zap.String("trigger", rep.Trigger), zap.Int("count", len(created)),
			zap.String("bindings", listOf("", created)))
	}
}

// projects logs the projects a cycle's placement skipped, and those no
// longer configured or discovered.
func (o logObserver) projects(rep *Report, cfg config.Projects) {
	for _, sp := range rep.placed {
		fields := []zap.Field{zap.String("project", sp.Name), zap.String("namespace", sp.Namespace), zap.String("reason", sp.Reason)}
		if sp.Reason == plan.SkipFenced {
			fields = append(fields, zap.String("fence", cfg.Fenced(sp.Namespace)))
		}
		o.log.Warn("project skipped", fields...)
	}
	for _, p := range rep.Provision.Orphaned {
		o.log.Warn("project is no longer configured or discovered; its namespace is kept and still synced (never deleted or unlabelled): remove the label or the namespace by hand if it is gone for good",
			zap.String("project", p.Name), zap.String("namespace", p.Namespace))
	}
}

// cycleRead logs what a cycle's read found: groups missing or failed,
// members skipped, and the leftovers its plans keep.
func (o logObserver) cycleRead(rep *Report) {
	if len(rep.MissingGroups) > 0 {
		o.log.Warn("groups not found in the directory; they contribute no members",
			zap.Int("count", len(rep.MissingGroups)), zap.Strings("groups", sample(rep.MissingGroups, 20)))
	}
	for name, err := range rep.FailedGroups {
		o.log.Error("group lookup failed; bindings it feeds lose no one", zap.String("group", name), zap.Error(err))
	}
	for reason, n := range rep.Skipped {
		o.log.Info("members skipped", zap.String("reason", reason), zap.Int("count", n), zap.Strings("examples", rep.skippedSamples[reason]))
	}
	o.leftovers(rep)
}

// leftovers says once per cycle which users are kept although the
// directory does not grant them and group sync does not own them.
func (o logObserver) leftovers(rep *Report) {
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
	o.log.Info("leftovers: users in bindings that the directory does not grant and group sync does not own are kept; remove them by hand (runai-ldap-sync diff lists them) or use policy authoritative",
		zap.Int("bindings", bindings), zap.Int("users", users), zap.Strings("examples", examples))
}

// cycleDone says how a cycle went.
func (o logObserver) cycleDone(rep *Report, trigger string) {
	fields := []zap.Field{
		zap.String("trigger", trigger), zap.String("result", rep.Result()), zap.Duration("duration", rep.Duration),
		zap.Int("projects", len(rep.Projects)), zap.Int("bindings_written", rep.Applied),
		zap.Int("groups_missing", len(rep.MissingGroups)), zap.Int("groups_failed", len(rep.FailedGroups)),
	}
	switch rep.Result() {
	case ResultFailure:
		o.log.Error("cycle failed", append(fields, zap.Error(rep.Err))...)
	case ResultPartial:
		o.log.Warn("cycle partial: applied what it safely could and skipped the rest",
			append(fields, zap.Strings("failed_groups", model.SortedKeys(rep.FailedGroups)), zap.Error(rep.Err))...)
	default:
		o.log.Info("cycle done", fields...)
	}
}

// repairDone says how a repair went.
func (o logObserver) repairDone(rep *Report, refs []model.Ref) {
	fields := []zap.Field{zap.Int("bindings", len(refs)), zap.Int("bindings_written", rep.Applied), zap.Duration("duration", rep.Duration)}
	if rep.Err != nil {
		o.log.Error("repair failed", append(fields, zap.Error(rep.Err))...)
		return
	}
	o.log.Info("repair done", fields...)
}

// pollDone says how a poll's re-sync went, if it planned or failed.
func (o logObserver) pollDone(rep *Report) {
	if rep == nil || len(rep.Plans) == 0 && rep.Err == nil {
		return
	}
	fields := []zap.Field{zap.Int("bindings", len(rep.Plans)), zap.Int("bindings_written", rep.Applied), zap.Duration("duration", rep.Duration)}
	if rep.Err != nil {
		o.log.Error("incremental sync failed; the next poll tries again", append(fields, zap.Error(rep.Err))...)
		return
	}
	o.log.Info("incremental sync done", fields...)
}

// changesSeen says what a poll's change set reached: a new project (a
// full cycle is wanted), no managed group, or the groups re-synced.
func (o logObserver) changesSeen(cs *ldapsrc.ChangeSet, affected []string, project string) {
	if project != "" {
		o.log.Info("directory group for a new project; full cycle", zap.String("project", project))
	}
	if len(affected) == 0 {
		o.log.Debug("directory changes feed no managed group", zap.Int("entries", len(cs.Entries)))
		return
	}
	o.log.Info("directory changed; re-syncing the bindings fed by the changed groups",
		zap.Int("entries", len(cs.Entries)), zap.Strings("groups", sample(affected, 20)), zap.Int("groupCount", len(affected)))
}

// drift says what BindingChanged queued a repair for.
func (o logObserver) drift(d drift) {
	if d.shard != "" {
		o.log.Info("a shard of a managed binding was changed by someone else; repair queued to check it",
			zap.String("binding", d.ref.String()), zap.String("shard", d.shard), zap.String("change", d.change))
		return
	}
	o.log.Info("drift detected: a managed binding was changed by someone else; repair queued",
		zap.String("binding", d.ref.String()), zap.String("change", d.change),
		zap.Strings("missing", nonNil(d.missing)), zap.Strings("unexpected", nonNil(d.unexpected)))
}
