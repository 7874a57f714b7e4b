// Package metrics holds the daemon's Prometheus metrics.
package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

const ns = "runai_ldap_sync"

// Poll results, as counted in runai_ldap_sync_directory_polls_total, and
// reasons for a forced full cycle (full_cycles_forced_total).
const (
	PollIdle          = "idle"
	PollChanges       = "changes"
	PollError         = "error"
	PollServerChanged = "server_changed"
	// PollCursorLost: a cycle ran but could not mark the change history,
	// so a full cycle is due.
	PollCursorLost = "cursor_lost"
	// ForcedNewProject: a poll saw a group that makes a new project.
	ForcedNewProject = "new_project"
)

// Metrics are the daemon's Prometheus metrics, on their own registry (no
// global state).
type Metrics struct {
	Registry *prometheus.Registry

	DriftMissing    *prometheus.GaugeVec
	DriftUnexpected *prometheus.GaugeVec
	DesiredSubjects *prometheus.GaugeVec
	// BindingShards is how many bindings (the first and its shards) hold
	// a logical binding's users.
	BindingShards   *prometheus.GaugeVec
	HeldRemovals    *prometheus.GaugeVec
	HeldAdditions   *prometheus.GaugeVec
	Leftovers       *prometheus.GaugeVec
	BindingErrors   *prometheus.GaugeVec
	CycleDuration   prometheus.Histogram
	Cycles          *prometheus.CounterVec
	CyclesSkipped   prometheus.Counter
	LastSuccess     prometheus.Gauge
	LastCycle       prometheus.Gauge
	LDAPErrors      *prometheus.CounterVec
	KubeErrors      *prometheus.CounterVec
	Changes         *prometheus.CounterVec
	Projects        prometheus.Gauge
	ProjectsSkipped *prometheus.GaugeVec
	GroupsMissing   prometheus.Gauge
	GroupsFailed    prometheus.Gauge
	MembersSkipped  *prometheus.GaugeVec
	BuildInfo       *prometheus.GaugeVec
	Repairs         *prometheus.CounterVec
	DriftEvents     *prometheus.CounterVec
	Leader          prometheus.Gauge
	// LeaderStalled and LeaseUnrenewed: the leader election as this replica
	// sees it (sync/leader.Watch).
	LeaderStalled  prometheus.Gauge
	LeaseUnrenewed prometheus.Gauge
	Events         *prometheus.CounterVec
	// Provisioning (projects.*).
	NamespacesProvisioned *prometheus.CounterVec
	TemplateApplied       *prometheus.CounterVec
	TemplateDrift         *prometheus.GaugeVec
	ProjectsDiscovered    prometheus.Gauge
	ProjectsOrphaned      prometheus.Gauge
	// Incremental change detection (incremental.*).
	Polls        *prometheus.CounterVec
	DirChanges   *prometheus.CounterVec
	Incremental  *prometheus.CounterVec
	Propagation  prometheus.Histogram
	ForcedCycles *prometheus.CounterVec
	PollBlind    *prometheus.GaugeVec
	// perBinding are the per-binding gauges, which ResetBindings drops.
	perBinding []*prometheus.GaugeVec
}

// NewMetrics registers every metric.
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bl := []string{"kind", "namespace", "name"}
	m := &Metrics{Registry: reg}
	// promauto registers each metric as it is made: no second list to keep.
	f := promauto.With(reg)
	m.bindingMetrics(f, bl)
	m.cycleMetrics(f)
	m.watchMetrics(f)
	m.pollMetrics(f)
	m.provisioningMetrics(f)
	m.BuildInfo.WithLabelValues(version).Set(1)
	m.zeroSeries()
	return m
}

// bindingMetrics creates the per-binding gauges (labels kind, namespace, name).
func (m *Metrics) bindingMetrics(f promauto.Factory, bl []string) {
	m.DriftMissing = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "binding_drift_missing_subjects",
		Help: "Users the directory grants but the binding lacked, before this cycle's writes."}, bl)
	m.DriftUnexpected = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "binding_drift_unexpected_subjects",
		Help: "Users in the binding that the policy would remove, before this cycle's writes."}, bl)
	m.DesiredSubjects = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "binding_desired_subjects",
		Help: "Users the directory says the binding should hold."}, bl)
	m.BindingShards = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "binding_shards",
		Help: "Bindings (the first one and its shards <name>-1, -2, ...) that hold the binding's users."}, bl)
	m.HeldRemovals = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "binding_held_removals",
		Help: "Removals the guard is holding until approved, per binding."}, append(bl, "reason"))
	m.HeldAdditions = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "binding_held_additions",
		Help: "Additions the guard is holding until approved (guard.maxAddCount), per binding."}, append(bl, "reason"))
	m.Leftovers = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "binding_leftover_subjects",
		Help: "Users in the binding that the directory does not grant and group sync does not own: kept under policy sync, for an admin to clean up."}, bl)
	m.BindingErrors = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "binding_sync_errors",
		Help: "1 when the binding was left untouched this cycle because of an error."}, append(bl, "reason"))
	m.perBinding = []*prometheus.GaugeVec{m.DriftMissing, m.DriftUnexpected, m.DesiredSubjects, m.BindingShards,
		m.HeldRemovals, m.HeldAdditions, m.Leftovers, m.BindingErrors}
}

// cycleMetrics creates the what full cycles did and found.
func (m *Metrics) cycleMetrics(f promauto.Factory) {
	m.CycleDuration = f.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "cycle_duration_seconds",
		Help: "Duration of sync cycles.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)})
	m.Cycles = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "cycles_total",
		Help: "Sync cycles run, by result: success; partial (some groups, bindings or objects skipped, everything else applied); failure (nothing could be read, nothing written)."}, []string{"result"})
	m.CyclesSkipped = f.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "cycles_skipped_total",
		Help: "Scheduled cycles skipped because the previous one was still running."})
	m.LastSuccess = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "last_success_timestamp_seconds",
		Help: "Unix time of the end of the last fully successful cycle."})
	m.LastCycle = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "last_cycle_timestamp_seconds",
		Help: "Unix time of the end of the last cycle, successful or not."})
	m.LDAPErrors = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ldap_errors_total",
		Help: "Directory errors, by operation (connect, group)."}, []string{"operation"})
	m.KubeErrors = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "kube_errors_total",
		Help: "Kubernetes API errors, by operation (list, get, create, patch)."}, []string{"operation"})
	m.Changes = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "changes_total",
		Help: "Changes applied: users added and removed, bindings created."}, []string{"kind", "action"})
	m.Projects = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "projects",
		Help: "Projects found in the last cycle."})
	m.ProjectsSkipped = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "projects_skipped",
		Help: "Projects skipped in the last cycle, by reason."}, []string{"reason"})
	m.GroupsMissing = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "groups_missing",
		Help: "Configured groups that do not exist in the directory (they contribute no members)."})
	m.GroupsFailed = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "groups_failed",
		Help: "Groups whose lookup failed in the last cycle."})
	m.MembersSkipped = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "members_skipped",
		Help: "Group members not bound in the last cycle, by reason."}, []string{"reason"})
	m.BuildInfo = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "Build information; always 1."}, []string{"version"})
}

// watchMetrics creates the repairs, Events and leadership between cycles.
func (m *Metrics) watchMetrics(f promauto.Factory) {
	m.Repairs = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "repairs_total",
		Help: "Drift repairs run between cycles (re-applying the last desired state to bindings changed by someone else), by result."}, []string{"result"})
	m.DriftEvents = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "drift_events_total",
		Help: "Changes by someone else to a managed binding that made it differ from the desired state, by kind of change (changed, deleted)."}, []string{"change"})
	m.Leader = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "leader",
		Help: "1 while this replica holds the leader lease (or leader election is off) and may write; 0 on standby."})
	m.LeaderStalled = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "leader_stalled",
		Help: "1 when the leader Lease is held but has not been renewed for 3 lease durations, as this replica sees it: no replica syncs (a dead holder, or a Lease taken by someone else); 0 otherwise."})
	m.LeaseUnrenewed = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "leader_lease_unrenewed_seconds",
		Help: "Seconds since this replica last saw the leader Lease change (a renewal, a new holder); a live leader renews every few seconds."})
	m.Events = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_total",
		Help: "Kubernetes Events recorded on managed bindings, by reason."}, []string{"reason"})
}

// pollMetrics creates the incremental change detection (incremental.*).
func (m *Metrics) pollMetrics(f promauto.Factory) {
	m.Polls = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "directory_polls_total",
		Help: "Change polls of the directory between full cycles, by result (idle, changes, error, server_changed)."}, []string{"result"})
	m.DirChanges = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "directory_changes_total",
		Help: "Changed directory entries seen by polls, by kind (group, user) and whether they feed a managed binding (relevant: true, false)."}, []string{"kind", "relevant"})
	m.Incremental = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "incremental_syncs_total",
		Help: "Incremental syncs of the bindings fed by changed groups, by result (success, failure)."}, []string{"result"})
	m.Propagation = f.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "propagation_seconds",
		Help: "Time from a poll seeing a directory change to the binding written.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)})
	m.ForcedCycles = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "full_cycles_forced_total",
		Help: "Full cycles run outside the schedule because changes could not be followed incrementally, by reason (server_changed, cursor_lost, new_project)."}, []string{"reason"})
	m.PollBlind = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "directory_poll_blind",
		Help: "1 when polls cannot see this kind of directory change (deletion), which then reaches the bindings at the next full cycle; 0 when they can."}, []string{"change"})
}

// provisioningMetrics creates the provisioning (projects.*).
func (m *Metrics) provisioningMetrics(f promauto.Factory) {
	m.NamespacesProvisioned = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "namespaces_provisioned_total",
		Help: "Project namespaces created or labelled (projects.createNamespaces, labelExistingNamespaces), by action (create, label)."}, []string{"action"})
	m.TemplateApplied = f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "template_objects_applied_total",
		Help: "Project template objects applied, by action (create: was missing; update: was changed by hand)."}, []string{"action"})
	m.TemplateDrift = f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "template_objects_drift",
		Help: "Project template objects that were missing or changed before the last cycle's writes, by change (missing, changed)."}, []string{"change"})
	m.ProjectsDiscovered = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "projects_discovered",
		Help: "Projects named by directory groups (projects.fromGroups) in the last cycle."})
	m.ProjectsOrphaned = f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "projects_orphaned",
		Help: "Projects whose namespace this tool provisioned but that are no longer static or discovered (kept, never deleted)."})
}

// zeroSeries pre-creates label values so alerts see zeros, not absent
// series.
func (m *Metrics) zeroSeries() {
	m.Cycles.WithLabelValues("success")
	m.Cycles.WithLabelValues("partial")
	m.Cycles.WithLabelValues("failure")
	m.Repairs.WithLabelValues("success")
	m.Repairs.WithLabelValues("failure")
	m.DriftEvents.WithLabelValues("changed")
	m.DriftEvents.WithLabelValues("deleted")
	for _, r := range []string{PollIdle, PollChanges, PollError, PollServerChanged} {
		m.Polls.WithLabelValues(r)
	}
	m.Incremental.WithLabelValues("success")
	m.Incremental.WithLabelValues("failure")
	m.ForcedCycles.WithLabelValues(PollServerChanged)
	m.ForcedCycles.WithLabelValues(PollCursorLost)
	m.ForcedCycles.WithLabelValues(ForcedNewProject)
	m.PollBlind.WithLabelValues("deletion")
	for _, a := range []string{"create", "label"} {
		m.NamespacesProvisioned.WithLabelValues(a)
	}
	for _, a := range []string{"create", "update"} {
		m.TemplateApplied.WithLabelValues(a)
	}
	for _, c := range []string{"missing", "changed"} {
		m.TemplateDrift.WithLabelValues(c)
	}
	for _, op := range []string{"connect", "group", "credentials"} {
		m.LDAPErrors.WithLabelValues(op)
	}
	for _, r := range model.SkipReasons {
		m.MembersSkipped.WithLabelValues(r)
	}
}

// DirectoryCounter is the directory source's request counts
// (ldapsrc.Stats).
type DirectoryCounter interface {
	Counts() (searches, entries, binds int64)
}

// RequestCounter is the API client's request counts (kube.RequestStats).
type RequestCounter interface {
	Count() map[string]int64
	Conflicts() int64
}

// WatchStats exports the directory and API request counters kept by the
// source and the client; either may be nil.
func (m *Metrics) WatchStats(src DirectoryCounter, kc RequestCounter) {
	m.Registry.MustRegister(statsCollector{src: src, kube: kc})
}

var (
	searchesDesc = prometheus.NewDesc(ns+"_ldap_searches_total", "LDAP search requests sent (one per page).", nil, nil)
	entriesDesc  = prometheus.NewDesc(ns+"_ldap_entries_total", "LDAP entries received.", nil, nil)
	bindsDesc    = prometheus.NewDesc(ns+"_ldap_binds_total", "LDAP connections bound.", nil, nil)
	kubeReqDesc  = prometheus.NewDesc(ns+"_kube_requests_total", "Kubernetes API requests, by HTTP verb (WATCH for watches).", []string{"verb"}, nil)
	conflictDesc = prometheus.NewDesc(ns+"_kube_conflicts_total", "Binding writes refused because someone else changed the binding first; each is read again and re-applied.", nil, nil)
)

type statsCollector struct {
	src  DirectoryCounter
	kube RequestCounter
}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- searchesDesc
	ch <- entriesDesc
	ch <- bindsDesc
	ch <- kubeReqDesc
	ch <- conflictDesc
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src != nil {
		searches, entries, binds := c.src.Counts()
		ch <- prometheus.MustNewConstMetric(searchesDesc, prometheus.CounterValue, float64(searches))
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.CounterValue, float64(entries))
		ch <- prometheus.MustNewConstMetric(bindsDesc, prometheus.CounterValue, float64(binds))
	}
	if c.kube != nil {
		counts := c.kube.Count()
		verbs := make([]string, 0, len(counts))
		for v := range counts {
			verbs = append(verbs, v)
		}
		sort.Strings(verbs)
		for _, v := range verbs {
			ch <- prometheus.MustNewConstMetric(kubeReqDesc, prometheus.CounterValue, float64(counts[v]), v)
		}
		ch <- prometheus.MustNewConstMetric(conflictDesc, prometheus.CounterValue, float64(c.kube.Conflicts()))
	}
}

// ResetBindings drops every per-binding series, e.g. when this replica
// stops leading, so only the leader reports drift and held removals.
func (m *Metrics) ResetBindings() {
	for _, v := range m.perBinding {
		v.Reset()
	}
}
