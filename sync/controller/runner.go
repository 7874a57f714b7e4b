package controller

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/health"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
)

// Runner is the daemon: one cycle at start, then one per schedule tick,
// with quicker retries after a failed cycle, and, when RepairInterval is
// set, drift repairs between cycles driven by the informers. With leader
// election, one Runner runs per leadership term.
type Runner struct {
	Syncer   *Syncer
	Schedule string
	Metrics  *metrics.Metrics
	Log      *zap.Logger
	Options  CycleOptions
	// RetryMin and RetryMax bound the backoff between retries of a failed
	// cycle; the schedule still runs as usual.
	RetryMin, RetryMax time.Duration
	// RepairInterval, when positive, runs the watch loop: a binding changed
	// by someone else is repaired, and a change to the project namespaces
	// runs a full cycle, at most once per RepairInterval.
	RepairInterval time.Duration
	// Status, if set, is told when a cycle succeeds (for /readyz).
	Status *health.Status
	// PollInterval, when positive and the Syncer has a ChangeSource, polls
	// the directory for changes between cycles (see Syncer.Poll).
	PollInterval time.Duration

	ready    atomic.Bool
	running  atomic.Bool
	failures atomic.Int64
	wg       gosync.WaitGroup
}

// coalesceDelay lets a burst of informer events (a kubectl apply of many
// bindings) become one repair.
const coalesceDelay = 200 * time.Millisecond

// Ready reports whether a cycle has succeeded since this Runner started.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Run runs until ctx ends, then waits for the cycle or repair in flight
// (which starts no new write once ctx is done) and returns.
func (r *Runner) Run(ctx context.Context) error {
	if r.RetryMin <= 0 {
		r.RetryMin = 10 * time.Second
	}
	if r.RetryMax <= 0 {
		r.RetryMax = 5 * time.Minute
	}
	if r.RetryMax < r.RetryMin {
		r.RetryMax = r.RetryMin
	}
	sched := cron.New()
	if _, err := sched.AddFunc(r.Schedule, func() { r.tick(ctx, "schedule") }); err != nil {
		return fmt.Errorf("schedule %q: %w", r.Schedule, err)
	}
	// Repairs re-apply the desired state of a cycle of this Runner only.
	r.Syncer.Forget()
	defer r.Syncer.Forget()
	if r.Status != nil {
		r.Status.SetReady(false)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.tick(ctx, "start")
	}()
	if r.RepairInterval > 0 && !r.Options.DryRun {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.watchLoop(ctx)
		}()
	}
	if r.PollInterval > 0 && r.Syncer.changes != nil && !r.Options.DryRun {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.pollLoop(ctx)
		}()
	}
	sched.Start()
	<-ctx.Done()
	r.Log.Info("shutting down: finishing the write in flight")
	<-sched.Stop().Done()
	r.wg.Wait()
	return nil
}

// tick runs one cycle unless one is already running, in which case the
// tick is skipped and counted. It reports whether the cycle ran.
func (r *Runner) tick(ctx context.Context, trigger string) bool {
	if ctx.Err() != nil {
		return false
	}
	if !r.running.CompareAndSwap(false, true) {
		r.Log.Warn("cycle skipped: the previous one is still running", zap.String("trigger", trigger))
		if r.Metrics != nil {
			r.Metrics.CyclesSkipped.Inc()
		}
		return false
	}
	rep := r.Syncer.Cycle(ctx, r.Options)
	r.running.Store(false)
	r.logReport(rep, trigger)
	if rep.Err == nil {
		r.ready.Store(true)
		if r.Status != nil {
			r.Status.SetReady(true)
		}
		r.failures.Store(0)
		return true
	}
	if ctx.Err() == nil {
		r.scheduleRetry(ctx)
	}
	return true
}

// watchLoop runs what the informers queued: a full cycle when the project
// namespaces changed, else a repair of the bindings changed by someone
// else. Runs are at least RepairInterval apart, so a tool fighting us
// (or a storm of edits) costs one write per binding per interval at most.
func (r *Runner) watchLoop(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.Syncer.work.kick:
		}
		wait := max(coalesceDelay, time.Until(last.Add(r.RepairInterval)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		refs, cycle := r.Syncer.work.take()
		template := r.Syncer.work.takeTemplate()
		last = time.Now()
		if cycle {
			if r.running.Load() {
				// A cycle is running and may have read the namespaces
				// before the change: run another once it is done.
				r.Syncer.work.requestCycle()
				continue
			}
			if !r.tick(ctx, "namespaces") {
				// A cycle was already running and may have read the
				// namespaces before the change: ask again.
				r.Syncer.work.requestCycle()
			}
			continue // a full cycle covers the queued bindings and the template too
		}
		if template {
			rep := r.Syncer.RepairTemplate(ctx, r.Options)
			if n := len(rep.Provision.Templates); n > 0 || rep.Err != nil {
				r.Log.Info("template objects checked after a change by someone else", zap.Int("applied", n), zap.Error(rep.Err))
			}
		}
		if len(refs) == 0 {
			continue
		}
		rep := r.Syncer.Repair(ctx, refs, r.Options)
		r.logRepair(rep, refs)
		if rep.Err != nil && ctx.Err() == nil {
			// Try the bindings that failed again, later; the scheduled
			// cycle and its retries repair them too.
			var failed []kube.Ref
			for ref := range rep.WriteErrors {
				failed = append(failed, ref)
			}
			if len(rep.WriteErrors) == 0 {
				failed = refs
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				select {
				case <-ctx.Done():
				case <-time.After(r.RetryMin):
					r.Syncer.work.add(failed...)
				}
			}()
		}
	}
}

// pollLoop asks the directory every PollInterval what changed, and has
// the Syncer re-sync what those changes feed. Polls pause while a full
// cycle runs: the cycle marks the change history itself.
func (r *Runner) pollLoop(ctx context.Context) {
	t := time.NewTicker(r.PollInterval)
	defer t.Stop()
	if c, ok := r.Syncer.changes.(interface{ ClosePolls() }); ok {
		defer c.ClosePolls()
	}
	var lastForced time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.running.Load() {
			continue
		}
		result, rep := r.Syncer.Poll(ctx, r.Options)
		if result == PollOff {
			return
		}
		if rep != nil && (len(rep.Plans) > 0 || rep.Err != nil) {
			fields := []zap.Field{zap.Int("bindings", len(rep.Plans)), zap.Int("bindings_written", rep.Applied), zap.Duration("duration", rep.Duration)}
			if rep.Err != nil {
				r.Log.Error("incremental sync failed; the next poll tries again", append(fields, zap.Error(rep.Err))...)
			} else {
				r.Log.Info("incremental sync done", fields...)
			}
		}
		// A lost cursor (the cycle could not mark the history) costs a full
		// cycle, at most once per RetryMin, rather than hours of waiting
		// for the schedule.
		if r.Syncer.TakeCycleWanted() {
			if r.Metrics != nil {
				r.Metrics.ForcedCycles.WithLabelValues(ForcedNewProject).Inc()
			}
			r.tick(ctx, "directory-new-project")
			continue
		}
		if result == PollServerChanged || result == PollCursorLost && time.Since(lastForced) >= r.RetryMin {
			lastForced = time.Now()
			if r.Metrics != nil {
				r.Metrics.ForcedCycles.WithLabelValues(result).Inc()
			}
			r.tick(ctx, "directory-"+strings.ReplaceAll(result, "_", "-"))
		}
	}
}

func (r *Runner) logRepair(rep *Report, refs []kube.Ref) {
	fields := []zap.Field{zap.Int("bindings", len(refs)), zap.Int("bindings_written", rep.Applied), zap.Duration("duration", rep.Duration)}
	if rep.Err != nil {
		r.Log.Error("repair failed", append(fields, zap.Error(rep.Err))...)
		return
	}
	r.Log.Info("repair done", fields...)
}

func (r *Runner) scheduleRetry(ctx context.Context) {
	n := r.failures.Add(1)
	delay := r.RetryMin << min(n-1, 16)
	if delay > r.RetryMax || delay <= 0 {
		delay = r.RetryMax
	}
	r.Log.Info("retrying failed cycle", zap.Duration("in", delay), zap.Int64("attempt", n))
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case <-ctx.Done():
		case <-time.After(delay):
			r.tick(ctx, "retry")
		}
	}()
}

func (r *Runner) logReport(rep *Report, trigger string) {
	fields := []zap.Field{
		zap.String("trigger", trigger), zap.Duration("duration", rep.Duration),
		zap.Int("projects", len(rep.Projects)), zap.Int("bindings_written", rep.Applied),
		zap.Int("groups_missing", len(rep.MissingGroups)), zap.Int("groups_failed", len(rep.FailedGroups)),
	}
	if rep.Err != nil {
		r.Log.Error("cycle failed", append(fields, zap.Error(rep.Err))...)
		return
	}
	r.Log.Info("cycle done", fields...)
}

// Handler serves /metrics, /healthz and /readyz for the Runner alone
// (no leader election).
func (r *Runner) Handler() http.Handler {
	if r.Status == nil {
		r.Status = &health.Status{}
	}
	return health.NewHandler(r.Metrics, r.Status)
}
