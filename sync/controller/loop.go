package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/health"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Loop is the daemon's controller loop. One goroutine (Run) owns all
// sync state: the Pipeline of the current leadership term (last desired
// state, last known members, poll cursor and its server, projects),
// the pending work and the backoff. Schedule ticks, informer events and
// leadership changes reach it as events in its inbox; it runs cycles,
// polls and repairs itself, one at a time, so nothing is shared behind a
// lock. A leadership term starts from a fresh Pipeline: nothing learnt in an
// earlier term (members, projects, cursor) is trusted.
type Loop struct {
	// NewPipeline builds the fresh Pipeline of a term. Pipeline, if set, is used
	// for the first term instead (tests).
	NewPipeline func() *Pipeline
	Pipeline    *Pipeline
	Schedule    string
	Metrics     *metrics.Metrics
	Log         *zap.Logger
	Options     CycleOptions
	// RetryMin and RetryMax bound the one backoff of all directory contact
	// (cycles, polls, forced cycles) after a failure: it doubles from
	// RetryMin to RetryMax, and any success ends it.
	RetryMin, RetryMax time.Duration
	// CredentialCheck is how often, after the directory refused the bind
	// password, the password file is checked for new content (default 10s).
	// Until it changes, the directory is not contacted at all.
	CredentialCheck time.Duration
	// RepairInterval, when positive, repairs bindings changed by someone
	// else and runs a full cycle when the project namespaces change, at
	// most once per RepairInterval.
	RepairInterval time.Duration
	// Status, if set, is told when a cycle has run without failure (for
	// /readyz).
	Status *health.Status
	// PollInterval, when positive and the Pipeline has a ChangeSource, polls
	// the directory for changes between cycles (see Pipeline.Poll).
	PollInterval time.Duration
	// Elected: terms start only through Lead (leader election); otherwise
	// one term lasts the whole Run.
	Elected bool
	// Clock tells the time (default time.Now): the loop's only clock.
	Clock func() time.Time

	initOnce sync.Once
	inbox    inbox
	leads    chan lead
	// wakes counts the loop's turns, so a test can tell waiting from
	// spinning.
	wakes atomic.Int64
}

// coalesceDelay lets a burst of informer events (a kubectl apply of many
// bindings) become one repair.
const coalesceDelay = 200 * time.Millisecond

// defaultCredentialCheck is how often a refused password file is re-read.
const defaultCredentialCheck = 10 * time.Second

type lead struct {
	ctx  context.Context
	done chan struct{}
}

func (r *Loop) init() {
	r.initOnce.Do(func() {
		r.inbox.kick = make(chan struct{}, 1)
		r.leads = make(chan lead)
		if r.RetryMin <= 0 {
			r.RetryMin = 10 * time.Second
		}
		if r.RetryMax <= 0 {
			r.RetryMax = 5 * time.Minute
		}
		if r.RetryMax < r.RetryMin {
			r.RetryMax = r.RetryMin
		}
		if r.Clock == nil {
			r.Clock = time.Now
		}
		if r.CredentialCheck <= 0 {
			r.CredentialCheck = defaultCredentialCheck
		}
		if r.Status == nil {
			r.Status = &health.Status{}
		}
	})
}

// BindingChanged is the informer handler for managed bindings (b is nil
// for a deletion). It never blocks.
func (r *Loop) BindingChanged(ref model.Ref, b *model.Binding, rv string) {
	r.init()
	r.inbox.post(evBinding{ref, b, rv})
}

// NamespaceChanged is the informer handler for namespaces. It never blocks.
func (r *Loop) NamespaceChanged(old, cur *model.Namespace) {
	r.init()
	r.inbox.post(evNamespace{old, cur})
}

// TemplateChanged is the informer handler for template objects. It never
// blocks.
func (r *Loop) TemplateChanged() {
	r.init()
	r.inbox.post(evTemplate{})
}

// Lead runs one leadership term until ctx ends, and returns once the term
// is over: the write in flight finished, nothing else started. The term
// starts from a fresh Pipeline.
func (r *Loop) Lead(ctx context.Context) {
	r.init()
	l := lead{ctx: ctx, done: make(chan struct{})}
	select {
	case r.leads <- l:
		<-l.done
	case <-ctx.Done():
	}
}

// Run runs the loop until ctx ends, then finishes the write in flight and
// returns.
func (r *Loop) Run(ctx context.Context) error {
	r.init()
	if _, err := cron.ParseStandard(r.Schedule); err != nil {
		return fmt.Errorf("schedule %q: %w", r.Schedule, err)
	}
	if !r.Elected {
		r.term(ctx)
		r.Log.Info("shutting down: the write in flight finished")
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-r.leads:
			tctx, cancel := context.WithCancel(l.ctx)
			stop := context.AfterFunc(ctx, cancel)
			r.term(tctx)
			stop()
			cancel()
			close(l.done)
		case <-r.inbox.kick:
			// Standing by: nothing to keep. The next term starts afresh.
			r.inbox.take()
		}
	}
}

// term is one leadership term's state, owned by the loop goroutine.
type term struct {
	s *Pipeline
	// cycle is the trigger of a full cycle due, "" for none, due at
	// cycleAt (and once the directory backoff allows).
	cycle   string
	cycleAt time.Time
	// partials counts partial cycles in a row: each is retried, later and
	// later, in the one pending-cycle slot.
	partials int
	// lastCycleEnd: a tick stamped before it arrived while a cycle ran.
	lastCycleEnd time.Time
	// Backoff of all directory contact: failures in a row and the time
	// before which the directory is not contacted.
	failures     int
	backoffUntil time.Time
	// cred, when set, is the fingerprint of the password the directory
	// refused: nothing contacts the directory until the file differs.
	cred          string
	credNextCheck time.Time
	nextPoll      time.Time
	lastForced    time.Time
	// Repairs: when work was first queued, and when the last ran.
	workSince   time.Time
	lastRepair  time.Time
	retryRefs   []model.Ref
	retryRefsAt time.Time
	// work is what the informers and approvals asked for since the last
	// repair: bindings to repair, a cycle, a template check.
	work workQueue
}

func (r *Loop) pipeline() *Pipeline {
	if s := r.Pipeline; s != nil {
		r.Pipeline = nil
		return s
	}
	return r.NewPipeline()
}

// term runs one leadership term until ctx ends.
func (r *Loop) term(ctx context.Context) {
	t := &term{s: r.pipeline(), cycle: "start", work: newWorkQueue()}
	defer t.s.Close()
	r.Status.SetReady(false)
	defer r.Status.SetReady(false)
	sched := cron.New()
	if _, err := sched.AddFunc(r.Schedule, func() { r.inbox.post(evTick{at: r.Clock()}) }); err != nil {
		r.Log.Error("schedule", zap.Error(err))
		return
	}
	sched.Start()
	defer func() { <-sched.Stop().Done() }()
	// Events posted before the term are from before it: the first cycle
	// reads everything anyway.
	r.inbox.take()
	t.nextPoll = r.Clock().Add(r.PollInterval)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		r.wakes.Add(1)
		r.handle(t, r.inbox.take())
		now := r.Clock()
		did, wake := r.step(ctx, t, now)
		if did {
			continue
		}
		timer.Reset(max(wake.Sub(now), time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-r.inbox.kick:
		case <-timer.C:
		}
	}
}

// handle applies the events in order.
func (r *Loop) handle(t *term, evs []any) {
	for _, ev := range evs {
		switch e := ev.(type) {
		case evTick:
			if e.at.Before(t.lastCycleEnd) {
				r.Log.Warn("cycle skipped: the previous one was still running", zap.String("trigger", "schedule"))
				if r.Metrics != nil {
					r.Metrics.CyclesSkipped.Inc()
				}
				continue
			}
			t.want("schedule")
		case evBinding:
			if !r.repairs() {
				continue
			}
			if ref, ok := t.s.BindingChanged(e.ref, e.b, e.rv); ok {
				t.work.add(ref)
			}
		case evNamespace:
			if !r.repairs() {
				continue
			}
			if t.s.NamespaceChanged(e.old, e.cur) {
				t.work.requestCycle()
			}
		case evTemplate:
			if !r.repairs() {
				continue
			}
			if t.s.TemplateChanged() {
				t.work.requestTemplate()
			}
		}
	}
	if t.workSince.IsZero() && t.work.pending() {
		t.workSince = r.Clock()
	}
}

func (r *Loop) repairs() bool { return r.RepairInterval > 0 && !r.Options.DryRun }

func (r *Loop) polls(t *term) bool {
	return r.PollInterval > 0 && t.s.PollsOn() && !r.Options.DryRun
}

// want queues a full cycle, due now; a queued one keeps its trigger.
func (t *term) want(trigger string) {
	if t.cycle == "" {
		t.cycle = trigger
	}
	t.cycleAt = time.Time{}
}

// step does the first thing due, if any, and reports whether it did, and
// otherwise when something may become due. What is due is decide's answer;
// step only carries it out.
func (r *Loop) step(ctx context.Context, t *term, now time.Time) (bool, time.Time) {
	if !t.work.pending() {
		t.workSince = time.Time{}
	}
	act, wake := decide(r.schedule(t), now)
	switch act {
	case actCheckPassword:
		r.checkPassword(t, now)
	case actQueueCycle:
		// Informer-queued full cycle (project namespaces changed), rate
		// limited like repairs; a cycle already due covers it.
		t.work.cycle = false
		if t.cycle == "" {
			t.want("namespaces")
		}
		t.lastRepair = now // runs of the watch are RepairInterval apart
	case actCycle:
		trigger := t.cycle
		t.cycle, t.cycleAt = "", time.Time{}
		r.runCycle(ctx, t, trigger)
	case actRepair:
		r.runRepair(ctx, t, now)
	case actRetryRepairs:
		t.work.add(t.retryRefs...)
		t.retryRefs = nil
		if t.workSince.IsZero() {
			t.workSince = now
		}
	case actPoll:
		r.runPoll(ctx, t, now)
	default:
		return false, wake
	}
	return true, wake
}

// schedule is the part of the loop state the scheduling decision reads.
func (r *Loop) schedule(t *term) schedule {
	return schedule{
		cred: t.cred != "", credNextCheck: t.credNextCheck, backoffUntil: t.backoffUntil,
		cycle: t.cycle != "", cycleAt: t.cycleAt,
		watchCycle: t.work.cycle, repairWork: len(t.work.refs) > 0 || t.work.template, workSince: t.workSince,
		repairs: r.repairs(), repairInterval: r.RepairInterval, lastRepair: t.lastRepair,
		retries: len(t.retryRefs) > 0, retryAt: t.retryRefsAt,
		polls: r.polls(t), nextPoll: t.nextPoll,
	}
}

func (r *Loop) runCycle(ctx context.Context, t *term, trigger string) {
	rep := t.s.Cycle(ctx, r.Options)
	t.lastCycleEnd = r.Clock()
	// A full cycle covers whatever repairs and template checks were queued.
	t.work.takeAll()
	t.workSince = time.Time{}
	t.nextPoll = t.lastCycleEnd.Add(r.PollInterval)
	logObserver{log: r.Log}.cycleDone(rep, trigger)
	switch rep.Result() {
	case ResultSuccess:
		r.Status.SetReady(true)
		t.directoryOK()
		t.partials = 0
	case ResultPartial:
		// The directory answered and everything safe was applied: ready.
		// What was skipped is read again later and later (RetryMin
		// doubling to RetryMax), in the one pending-cycle slot.
		r.Status.SetReady(true)
		t.directoryOK()
		t.partials++
		if t.cycle == "" {
			t.cycle = "retry-partial"
			t.cycleAt = t.lastCycleEnd.Add(backoff(r.RetryMin, r.RetryMax, t.partials))
		}
	default:
		if ctx.Err() != nil {
			return
		}
		r.directoryFailed(t, rep.Err, t.lastCycleEnd)
		// The same cycle again once the backoff allows.
		t.want("retry")
	}
}

func (r *Loop) runRepair(ctx context.Context, t *term, now time.Time) {
	refs, template := t.work.takeAll()
	t.workSince = time.Time{}
	t.lastRepair = now
	if template {
		rep := t.s.RepairTemplate(ctx, r.Options)
		if n := len(rep.Provision.Templates); n > 0 || rep.Err != nil {
			r.Log.Info("template objects checked after a change by someone else", zap.Int("applied", n), zap.Error(rep.Err))
		}
	}
	if len(refs) == 0 {
		return
	}
	rep := t.s.Repair(ctx, refs, r.Options)
	logObserver{log: r.Log}.repairDone(rep, refs)
	if rep.Err != nil && ctx.Err() == nil {
		// Try the bindings that failed again after RetryMin; the scheduled
		// cycle repairs them too. Repairs do not read the directory, so the
		// directory's backoff does not apply.
		failed := refs
		if len(rep.WriteErrors) > 0 {
			failed = failed[:0:0]
			for ref := range rep.WriteErrors {
				failed = append(failed, ref)
			}
		}
		t.retryRefs = append(t.retryRefs, failed...)
		t.retryRefsAt = r.Clock().Add(r.RetryMin)
	}
}

func (r *Loop) runPoll(ctx context.Context, t *term, now time.Time) {
	// An approval recorded in the store since: its repair, or a cycle.
	refs, cycle := t.s.Approvals(ctx)
	t.work.add(refs...)
	if cycle {
		t.work.requestCycle()
	}
	result, rep := t.s.Poll(ctx, r.Options)
	t.nextPoll = r.Clock().Add(r.PollInterval)
	if result == PollOff {
		return // and polls() is false from now on
	}
	if rep != nil && rep.DirErr != nil {
		if ctx.Err() == nil {
			r.directoryFailed(t, rep.DirErr, r.Clock())
		}
		return
	}
	if result == PollIdle || result == PollChanges {
		t.directoryOK()
	}
	logObserver{log: r.Log}.pollDone(rep)
	if rep != nil && rep.CycleWanted {
		if r.Metrics != nil {
			r.Metrics.ForcedCycles.WithLabelValues(ForcedNewProject).Inc()
		}
		t.want("directory-new-project")
		return
	}
	// A lost cursor (the cycle could not mark the history) costs a full
	// cycle, at most once per RetryMin, rather than hours of waiting for
	// the schedule.
	if result == PollServerChanged || result == PollCursorLost && now.Sub(t.lastForced) >= r.RetryMin {
		t.lastForced = now
		if r.Metrics != nil {
			r.Metrics.ForcedCycles.WithLabelValues(result).Inc()
		}
		t.want("directory-" + strings.ReplaceAll(result, "_", "-"))
	}
}

// directoryOK ends the backoff.
func (t *term) directoryOK() {
	t.failures = 0
	t.backoffUntil = time.Time{}
}

// directoryFailed starts or extends the one backoff of directory contact.
// A refused password is not tried again until the password file changes.
func (r *Loop) directoryFailed(t *term, err error, now time.Time) {
	var ce *ldapsrc.CredentialsError
	if errors.As(err, &ce) && !ce.Locked && ce.Fingerprint != "" {
		t.cred = ce.Fingerprint
		t.credNextCheck = now.Add(r.CredentialCheck)
		if r.Metrics != nil {
			r.Metrics.LDAPErrors.WithLabelValues("credentials").Inc()
		}
		r.Log.Error("the directory refused the bind password; it is not tried again until the password file (ldap.bindPasswordFile) changes, so the account is not locked out",
			zap.Duration("check_every", r.CredentialCheck))
		return
	}
	t.failures++
	delay := backoff(r.RetryMin, r.RetryMax, t.failures)
	if ce != nil {
		// A locked account stays locked for a while: wait the longest.
		delay = r.RetryMax
	}
	t.backoffUntil = now.Add(delay)
	r.Log.Info("directory contact backs off after a failure", zap.Duration("in", delay), zap.Int("attempt", t.failures))
}

// checkPassword reads the password file's fingerprint; new content is
// tried once, with a full cycle.
func (r *Loop) checkPassword(t *term, now time.Time) {
	t.credNextCheck = now.Add(r.CredentialCheck)
	fp, err := t.s.PasswordFingerprint()
	if err != nil {
		r.Log.Warn("cannot read the bind password file; checking again", zap.Error(err))
		return
	}
	if fp == t.cred {
		return
	}
	r.Log.Info("the bind password file changed; trying it once")
	t.cred = ""
	t.directoryOK()
	t.cycle = "" // whatever was due waits for this one
	t.want("password-changed")
}

// Ready reports whether a cycle has run without failure in this term.
func (r *Loop) Ready() bool {
	r.init()
	return r.Status.Ready()
}

// backoff is the delay after n failures in a row: lo doubling up to hi.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo << min(n-1, 16)
	if d > hi || d <= 0 {
		return hi
	}
	return d
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
