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
// Loops of the leadership terms.
type Status struct {
	// LeaderElection is true when replicas elect a leader.
	LeaderElection bool
	// Identity is this replica's identity in the Lease.
	Identity string

	leading atomic.Bool
	leader  atomic.Pointer[string]
	ready   atomic.Bool
	stalled atomic.Pointer[string] // the holder of a stalled Lease
}

// SetStalled records whether the leader Lease is held (by holder) but not
// renewed (sync/leader.Elector's OnStalled).
func (s *Status) SetStalled(stalled bool, holder string) {
	if stalled {
		s.stalled.Store(&holder)
	} else {
		s.stalled.Store(nil)
	}
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
//     leader dies), unless that lease has gone unrenewed for several lease
//     durations (nobody syncs: 503, so the stall shows); on the leader, or without leader election, 200 once a
//     cycle has succeeded in this leadership term; 503 before, and while
//     no leader is known yet.
//
// At most MaxConcurrentScrapes scrapes of /metrics run at once; more get
// 503 at once (the probes are not limited: they are cheap, and a flood of
// scrapes must not fail them).
func NewHandler(m *metrics.Metrics, st *Status) http.Handler {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("/metrics", Limit(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}), MaxConcurrentScrapes))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case st.Standby() && st.stalled.Load() != nil:
			http.Error(w, fmt.Sprintf("leader lease held by %q but not renewed for several lease durations: no replica syncs", *st.stalled.Load()), http.StatusServiceUnavailable)
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

// Limits of the HTTP server: anyone who reaches the port (the
// NetworkPolicy narrows who) must not hold connections or goroutines
// open for ever, nor pile up scrapes.
const (
	ReadHeaderTimeout    = 5 * time.Second
	ReadTimeout          = 10 * time.Second
	WriteTimeout         = 30 * time.Second
	IdleTimeout          = 60 * time.Second
	MaxHeaderBytes       = 16 << 10
	MaxConcurrentScrapes = 4
)

// NewServer is the HTTP server for h, with the limits above.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout,
		WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout, MaxHeaderBytes: MaxHeaderBytes}
}

// Limit serves at most n requests of h at once; the others get 503 with
// Retry-After at once, without waiting.
func Limit(h http.Handler, n int) http.Handler {
	sem := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			h.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many concurrent scrapes", http.StatusServiceUnavailable)
		}
	})
}

// Serve listens on addr until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (server.address): %w", addr, err)
	}
	srv := NewServer(h)
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
