package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// writeTimeout bounds one write. Writes run detached from the cycle's
// context, so a shutdown lets the write in flight finish instead of
// leaving it half-known.
const writeTimeout = 30 * time.Second

// applier is the apply step of the pipeline: it writes plans and keeps
// what later runs need to know of those writes (how many shards each
// binding has); the Events of what it did are recorded once the run's
// report is built (Pipeline.observe).
type applier struct {
	s      *Pipeline // the term's cluster, logger, metrics and configuration
	events Recorder
	// shards is how many bindings (the first and its shards) each logical
	// binding had after its last plan.
	shards map[model.Ref]int
}

// applied is what the apply step did: each plan's outcome, the bindings
// whose write failed, and the errors.
type applied struct {
	outcomes    []outcome
	writeErrors map[model.Ref]error
	errs        []error
}

// applyPlans writes the plans unless dry-run, the same way for a cycle, a
// poll and a repair, and returns what it did. Events, metrics and logs
// observe the outcomes once the run's report is built.
func (a *applier) applyPlans(ctx context.Context, opts CycleOptions, trigger string, plans []plan.BindingPlan, current map[model.Ref]*model.Binding) applied {
	res := applied{writeErrors: map[model.Ref]error{}}
	if !opts.DryRun {
		a.s.guard.noteHeld(plans, trigger == TriggerCycle)
	}
	for i := range plans {
		p := &plans[i]
		o := outcome{p: p, cur: current[p.Ref]}
		// A binding planned before in this term and now created again was
		// deleted under us: drift a human should see (its Event). A first
		// creation (first cycle, new project) goes in the one summary.
		_, known := a.shards[p.Ref]
		o.firstCreate = p.Create && !known
		if p.Err != nil {
			// A failed group is counted as such; an unreadable record is
			// that binding's error (Event, metric), not the cycle's.
			if !errors.Is(p.Err, plan.ErrGroupFailed) && !errors.Is(p.Err, plan.ErrRecordUnreadable) {
				res.errs = append(res.errs, p.Err)
			}
			res.outcomes = append(res.outcomes, o)
			continue
		}
		a.shards[p.Ref] = p.Shards
		if opts.DryRun || !p.HasChanges() {
			res.outcomes = append(res.outcomes, o)
			continue
		}
		if err := ctx.Err(); err != nil {
			// Shutting down: do not start another write.
			res.errs = append(res.errs, fmt.Errorf("%s interrupted before writing %s: %w", trigger, p.Ref, err))
			res.outcomes = append(res.outcomes, o)
			break
		}
		o.tried = true
		b, err := a.apply(ctx, p, current, trigger)
		if err != nil {
			o.err = err
			res.writeErrors[p.Ref] = err
			res.errs = append(res.errs, err)
		} else {
			o.written = b
		}
		res.outcomes = append(res.outcomes, o)
	}
	return res
}

// outcome is what applying one plan came to.
type outcome struct {
	p *plan.BindingPlan
	// cur is the binding before; written is it after a write (tried) that
	// succeeded, and err the write's error if it failed.
	cur, written *model.Binding
	tried        bool
	err          error
	// firstCreate: a creation of a binding not planned before in this
	// term. It is counted in the cycle's one "bindings created" log line
	// instead of an Event per binding, which at a migration's thousands
	// of bindings doubled the first cycle's writes.
	firstCreate bool
}

// apply writes one plan: every binding's write, then the moves. It returns
// the binding as written.
func (a *applier) apply(ctx context.Context, p *plan.BindingPlan, current map[model.Ref]*model.Binding, trigger string) (*model.Binding, error) {
	// Detached from ctx: a shutdown lets the writes in flight finish.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	// A user moving between shards is in the new one before leaving the
	// old one. A failed write stops the rest (the next cycle or repair
	// plans afresh).
	written := map[model.Ref]*model.Binding{}
	for _, ch := range append(append([]model.Change(nil), p.Writes...), p.Moves...) {
		cur := current[ch.Ref]
		if w, ok := written[ch.Ref]; ok {
			cur = w
		}
		b, err := a.s.cluster.Apply(wctx, ch, cur)
		if err != nil {
			op := "patch"
			if ch.Create {
				op = "create"
			}
			a.s.obs.kubeError(op)
			a.s.log.Error("binding write failed", zap.String("binding", p.Ref.String()), zap.String("shard", ch.Ref.Name), zap.String("trigger", trigger), zap.Error(err))
			return nil, fmt.Errorf("write %s: %w", ch.Ref, err)
		}
		if b != nil {
			written[ch.Ref] = b
		}
	}
	b := current[p.Ref]
	if w, ok := written[p.Ref]; ok {
		b = w
	}
	a.s.log.Info("binding updated", updatedFields(p, trigger)...)
	return b, nil
}

// updatedFields describe a binding write in the log.
func updatedFields(p *plan.BindingPlan, trigger string) []zap.Field {
	fields := []zap.Field{zap.String("binding", p.Ref.String()), zap.String("kind", p.Ref.Kind),
		zap.String("namespace", p.Ref.Namespace), zap.String("name", p.Ref.Name), zap.String("trigger", trigger),
		zap.Bool("created", p.Create), zap.Strings("added", nonNil(p.Add)), zap.Strings("removed", nonNil(p.Remove))}
	if p.Approved {
		fields = append(fields, zap.Bool("approved", true))
	}
	if p.Shards > 1 || len(p.Moves) > 0 || len(p.Writes) > 0 && p.Writes[0].Ref != p.Ref {
		var shards []string
		for _, r := range p.ShardWrites() {
			shards = append(shards, r.Name)
		}
		fields = append(fields, zap.Int("shards", p.Shards), zap.Strings("written", shards))
	}
	if len(p.Adopt) > 0 || len(p.Disown) > 0 {
		fields = append(fields, zap.Strings("adopted", p.Adopt), zap.Strings("disowned", p.Disown))
	}
	if p.StaleApproval != "" {
		fields = append(fields, zap.String("approvalRemoved", p.StaleApproval))
	}
	return fields
}

// recordEvents records the Events of one plan's outcome on its binding:
// left untouched, changes held, the write failed, or what it changed.
func (a *applier) recordEvents(o outcome, trigger string) {
	p := o.p
	if p.Err != nil {
		a.untouchedEvent(p, o.cur)
		return
	}
	if len(p.Held) > 0 || len(p.HeldAdd) > 0 {
		a.event(p.Ref, uidOf(o.cur), corev1.EventTypeWarning, ReasonRemovalsHeld, heldMessage(p, a.s.cfg.Guard))
	}
	switch {
	case !o.tried:
	case o.err != nil:
		a.event(p.Ref, uidOf(o.cur), corev1.EventTypeWarning, ReasonWriteFailed,
			fmt.Sprintf("group sync could not write the binding (%s); it retries: %v", trigger, errors.Unwrap(o.err)))
	default:
		if p.StaleApproval != "" {
			a.event(p.Ref, uidOf(o.written), corev1.EventTypeWarning, ReasonApprovalRemoved, staleApprovalMessage(p))
		}
		reason := ReasonChanged
		if p.Create {
			reason = ReasonCreated
		}
		if !o.firstCreate && (p.Create || len(p.Add)+len(p.Remove)+len(p.Adopt)+len(p.Disown) > 0) {
			a.event(p.Ref, uidOf(o.written), corev1.EventTypeNormal, reason, changeMessage(p, a.s.cfg.Policy, trigger))
		}
	}
}
