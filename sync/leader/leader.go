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
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	for {
		var started atomic.Bool
		termDone := make(chan struct{})
		// The elector's context outlives ctx until the term is over: the
		// lease is released only after the write in flight finished.
		leCtx, leCancel := context.WithCancel(context.WithoutCancel(ctx))
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: e.Name, ReleaseOnCancel: true,
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
