package controller

import (
	"errors"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
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
	for _, r := range ldapsrc.SkipReasons {
		m.MembersSkipped.WithLabelValues(r).Set(float64(rep.Skipped[r]))
	}
	m.ResetBindings() // every per-binding series is set again below
	for _, p := range rep.Plans {
		o.planDone(p, rep)
	}
}

// planDone sets one binding's series from its plan, replacing what an
// earlier cycle or repair set.
func (o metricsObserver) planDone(p plan.BindingPlan, rep *Report) {
	m := o.m
	if m == nil {
		return
	}
	lv := []string{p.Ref.Kind, p.Ref.Namespace, p.Ref.Name}
	labels := map[string]string{"kind": p.Ref.Kind, "namespace": p.Ref.Namespace, "name": p.Ref.Name}
	m.HeldRemovals.DeletePartialMatch(labels)
	m.HeldAdditions.DeletePartialMatch(labels)
	m.BindingErrors.DeletePartialMatch(labels)
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

// propagated observes, for each binding a poll wrote, the time since the
// poll saw the change.
func (o metricsObserver) propagated(rep *Report, opts CycleOptions, seen time.Time) {
	if o.m == nil {
		return
	}
	for _, p := range rep.Plans {
		if _, failed := rep.WriteErrors[p.Ref]; p.HasChanges() && p.Err == nil && !failed && !opts.DryRun {
			o.m.Propagation.Observe(time.Since(seen).Seconds())
		}
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
