// Package health serves /metrics, /healthz and /readyz.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
)

// Status is what /readyz reports. With leader election, it outlives the
// Runners of the leadership terms.
type Status struct {
	// LeaderElection is true when replicas elect a leader.
	LeaderElection bool
	// Identity is this replica's identity in the Lease.
	Identity string

	leading atomic.Bool
	leader  atomic.Pointer[string]
	ready   atomic.Bool
}

// SetReady records whether a cycle has succeeded in this leadership term.
func (s *Status) SetReady(v bool) { s.ready.Store(v) }

// Ready reports whether a cycle has succeeded in this leadership term.
func (s *Status) Ready() bool { return s.ready.Load() }

// SetLeading records whether this replica leads.
func (s *Status) SetLeading(v bool) { s.leading.Store(v) }

// Leading reports whether this replica leads (always true without leader
// election).
func (s *Status) Leading() bool { return !s.LeaderElection || s.leading.Load() }

// SetLeader records the identity of the replica seen leading.
func (s *Status) SetLeader(id string) { s.leader.Store(&id) }

// Leader is the identity of the replica seen leading, if known.
func (s *Status) Leader() string {
	if p := s.leader.Load(); p != nil {
		return *p
	}
	return ""
}

// Standby reports whether another replica is seen holding the lease.
func (s *Status) Standby() bool {
	if !s.LeaderElection || s.leading.Load() {
		return false
	}
	l := s.Leader()
	return l != "" && l != s.Identity
}

// NewHandler serves /metrics, /healthz and /readyz:
//
//   - /healthz: 200 while the process runs.
//   - /readyz: 200 on a standby replica, one that sees another replica
//     holding the lease (standing by is healthy: it takes over when the
//     leader dies); on the leader, or without leader election, 200 once a
//     cycle has succeeded in this leadership term; 503 before, and while
//     no leader is known yet.
func NewHandler(m *metrics.Metrics, st *Status) http.Handler {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case st.Standby():
			_, _ = fmt.Fprintf(w, "ok: standby, leader is %q\n", st.Leader())
		case !st.Leading():
			http.Error(w, "waiting for the leader lease", http.StatusServiceUnavailable)
		case !st.ready.Load():
			http.Error(w, "no successful sync cycle yet", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	return mux
}

// Serve listens on addr until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (server.address): %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving metrics and health", zap.String("address", ln.Addr().String()))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("HTTP server: %w", err)
	}
	return nil
}
