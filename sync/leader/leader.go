// Package leader runs the daemon's leader election on a Kubernetes Lease.
package leader

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
)

// Elector competes for one Lease.
type Elector struct {
	Config          *rest.Config
	Namespace, Name string
	Identity        string
	LeaseDuration   time.Duration
	RenewDeadline   time.Duration
	RetryPeriod     time.Duration
	Log             *zap.Logger
	// OnNewLeader, if set, is told the identity of every leader seen.
	OnNewLeader func(id string)
	// Metrics, if set, gets the stall gauges (leader_stalled,
	// leader_lease_unrenewed_seconds), kept up to date every RetryPeriod.
	Metrics *metrics.Metrics
	// OnStalled, if set, is told when the election becomes stalled (a held
	// Lease unrenewed for StallLeaseDurations lease durations) and when it
	// no longer is.
	OnStalled func(stalled bool, holder string)
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	watch Watch
}

// Run competes for the Lease until ctx ends; while it holds the lease it
// runs lead, whose ctx ends when the lease is lost or ctx ends. On
// shutdown lead returns first (the write in flight finished), then the
// lease is released, so the next leader can start at once. A leader that
// fails to renew stops (its write in flight, if any, still finishes:
// writes carry a resourceVersion precondition, so an overlap with the new
// leader loses no update) and stands by again.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	cs, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(e.Config), "runai-ldap-sync/leader-election"))
	if err != nil {
		return fmt.Errorf("leader election client: %w", err)
	}
	now := e.Now
	if now == nil {
		now = time.Now
	}
	lock := &watchedLock{LeaseLock: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}, w: &e.watch, now: now}
	go e.reportStalls(ctx, now)
	for {
		var started atomic.Bool
		termDone := make(chan struct{})
		// The elector's context outlives ctx until the term is over: the
		// lease is released only after the write in flight finished.
		leCtx, leCancel := context.WithCancel(context.WithoutCancel(ctx))
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: resourcelock.Interface(lock), Name: e.Name, ReleaseOnCancel: true,
			LeaseDuration: e.LeaseDuration, RenewDeadline: e.RenewDeadline, RetryPeriod: e.RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					started.Store(true)
					defer close(termDone)
					runCtx, cancel := context.WithCancel(lctx)
					defer cancel()
					defer context.AfterFunc(ctx, cancel)()
					e.Log.Info("became leader", zap.String("lease", e.Namespace+"/"+e.Name), zap.String("identity", e.Identity))
					lead(runCtx)
				},
				OnStoppedLeading: func() {},
				OnNewLeader: func(id string) {
					if e.OnNewLeader != nil {
						e.OnNewLeader(id)
					}
					if id != e.Identity {
						e.Log.Info("standing by", zap.String("leader", id))
					}
				},
			},
		})
		if err != nil {
			leCancel()
			return fmt.Errorf("leader election: %w", err)
		}
		go func() {
			select {
			case <-ctx.Done():
			case <-leCtx.Done():
				return
			}
			// Finish the write in flight before releasing the lease.
			if started.Load() {
				<-termDone
			}
			leCancel()
		}()
		elector.Run(leCtx)
		if started.Load() {
			<-termDone
		}
		leCancel()
		if ctx.Err() != nil {
			e.Log.Info("leader lease released")
			return nil
		}
		e.Log.Warn("lost the leader lease; standing by", zap.String("identity", e.Identity))
	}
}

// reportStalls publishes the Watch's state every RetryPeriod until ctx
// ends, and logs each change between stalled and not.
func (e *Elector) reportStalls(ctx context.Context, now func() time.Time) {
	limit := StallLeaseDurations * e.LeaseDuration
	period := e.RetryPeriod
	if period <= 0 {
		period = 2 * time.Second // NewLeaderElector refuses it; do not panic first
	}
	t := time.NewTicker(period)
	defer t.Stop()
	was := false
	for {
		holder, age, stalled := e.watch.State(now(), limit)
		if e.Metrics != nil {
			e.Metrics.LeaseUnrenewed.Set(age.Seconds())
			v := 0.0
			if stalled {
				v = 1
			}
			e.Metrics.LeaderStalled.Set(v)
		}
		if stalled != was {
			if stalled {
				e.Log.Error("leader lease held but not renewed: no replica syncs", zap.String("lease", e.Namespace+"/"+e.Name),
					zap.String("holder", holder), zap.Duration("unrenewed_for", age.Round(time.Second)),
					zap.String("fix", "if the holder is no replica of this Deployment, delete the Lease (kubectl -n "+e.Namespace+" delete lease "+e.Name+") and find who wrote it"))
			} else {
				e.Log.Info("leader lease renewed again", zap.String("lease", e.Namespace+"/"+e.Name), zap.String("holder", holder))
			}
			if e.OnStalled != nil {
				e.OnStalled(stalled, holder)
			}
			was = stalled
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
