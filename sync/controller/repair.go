package controller

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// BindingChanged is the informer handler for managed bindings. It returns
// the binding to repair (ok) when someone else's change makes it differ from the
// last desired state, as the plan sees it under the configured policy and
// guard; our own writes (by resourceVersion) and changes the plan does not
// care about (a hand-added user, a Group subject) are ignored. b is nil
// for a deletion. It never blocks on a server.
func (s *Pipeline) BindingChanged(ref model.Ref, b *model.Binding, rv string) (repair model.Ref, ok bool) {
	// A shard belongs to the logical binding it extends.
	logical, index, isBase := model.ShardBase(ref)
	if !isBase || (index > 0 && !model.IsShard(ref)) {
		return model.Ref{}, false
	}
	d, managed := s.desired[logical]
	if !managed {
		return model.Ref{}, false
	}
	// Our own write, or a state from before it (the Cluster keeps our
	// writes). A deletion is never ours, and one found by a re-list carries
	// the last state's version.
	if b != nil && s.cluster.Wrote(ref, rv) {
		return model.Ref{}, false
	}
	change := "changed"
	if b == nil {
		change = "deleted"
	}
	// The plan of a sharded binding needs all its shards, which this
	// handler does not read (it never blocks on a server): a change to a
	// shard, or to a binding that has shards, queues a repair, which reads
	// them and writes only what the plan finds.
	if index > 0 || s.writes.shards[logical] > 1 {
		d := drift{ref: logical, shard: ref.Name, change: change}
		s.obs.drift(d)
		s.logs.drift(d)
		return logical, true
	}
	cur := b
	if cur == nil {
		cur = &model.Binding{Ref: ref}
	}
	opts := s.planOpts
	opts.Now = time.Now()
	// The store as last read or written, by whichever path (cycle, poll,
	// repair) touched it last.
	opts.State = s.guard.snap
	p := plan.PlanOne(d, []*model.Binding{cur}, opts)
	if !p.HasChanges() {
		return model.Ref{}, false
	}
	dr := drift{ref: ref, change: change, missing: p.Add, unexpected: p.Remove}
	s.obs.drift(dr)
	s.logs.drift(dr)
	return ref, true
}

// drift is a change by someone else that BindingChanged queued a repair
// for: of a binding (what it misses and holds unexpectedly), or of a
// sharded binding's shard (planned by the repair, which reads them all).
type drift struct {
	ref                 model.Ref
	shard, change       string
	missing, unexpected []string
}

// NamespaceChanged is the informer handler for namespaces: a namespace
// that gains, loses or changes the project label, or a static project's
// namespace appearing, disappearing or terminating, changes the set of
// projects, which needs a full cycle (the new project's groups must be
// read): it reports whether one is wanted. Other namespace changes are
// ignored.
func (s *Pipeline) NamespaceChanged(old, cur *model.Namespace) bool {
	label := s.cfg.Projects.NamespaceLabel
	value := func(n *model.Namespace) (string, bool) {
		if n == nil || label == "" {
			return "", false
		}
		v, ok := n.Labels[label]
		return v, ok
	}
	ov, oHas := value(old)
	nv, nHas := value(cur)
	relevant := oHas != nHas || ov != nv
	if !relevant && (oHas || nHas || isStaticNamespace(s.cfg.Projects, old, cur)) {
		// Appeared, disappeared or started terminating.
		relevant = (old == nil) != (cur == nil) || (old != nil && cur != nil && old.Terminating != cur.Terminating)
	}
	if !relevant {
		return false
	}
	active := s.desired != nil
	if cur != nil && label != "" {
		if p, ok := s.provisioning.provisioned[cur.Name]; ok && cur.Labels[label] == p && !cur.Terminating {
			// The echo of our own create or label: the cycle that wrote
			// it handled the project.
			delete(s.provisioning.provisioned, cur.Name)
			active = false
		}
	}
	if !active {
		return false
	}
	s.log.Info("project namespaces changed; full cycle queued", zap.String("namespace", evNamespace{old: old, cur: cur}.name()))
	return true
}

func isStaticNamespace(cfg config.Projects, nss ...*model.Namespace) bool {
	for _, n := range nss {
		if n == nil {
			continue
		}
		for _, sp := range cfg.Static {
			ns := sp.Namespace
			if ns == "" {
				ns = config.DefaultNamespace(sp.Name)
			}
			if ns == n.Name {
				return true
			}
		}
	}
	return false
}

// Repair re-applies the last full cycle's desired state to the given
// bindings, without reading the directory: each is planned against its
// current state (from the informer cache) with the same policy, guard and
// approvals as a cycle, then written, logged and recorded as Events the
// same way. Bindings not in the last desired state are skipped, as are
// executor bindings whose namespace is gone or terminating (the namespace
// change queues a full cycle).
func (s *Pipeline) Repair(ctx context.Context, refs []model.Ref, opts CycleOptions) *Report {
	return s.run(ctx, scope{trigger: TriggerRepair, refs: refs}, opts)
}
