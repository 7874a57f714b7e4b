package sync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"
)

// Runner is the daemon: one cycle at start, then one per schedule tick,
// with quicker retries after a failed cycle, and the HTTP endpoints.
type Runner struct {
	Syncer   *Syncer
	Schedule string
	Metrics  *Metrics
	Log      *zap.Logger
	Options  CycleOptions
	// RetryMin and RetryMax bound the backoff between retries of a failed
	// cycle; the schedule still runs as usual.
	RetryMin, RetryMax time.Duration

	ready    atomic.Bool
	running  atomic.Bool
	failures atomic.Int64
	wg       gosync.WaitGroup
}

// Ready reports whether a cycle has succeeded since start.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Run runs until ctx ends, then waits for the cycle in flight (which
// starts no new write once ctx is done) and returns.
func (r *Runner) Run(ctx context.Context) error {
	if r.RetryMin == 0 {
		r.RetryMin = 10 * time.Second
	}
	if r.RetryMax == 0 {
		r.RetryMax = 5 * time.Minute
	}
	sched := cron.New()
	if _, err := sched.AddFunc(r.Schedule, func() { r.tick(ctx, "schedule") }); err != nil {
		return fmt.Errorf("schedule %q: %w", r.Schedule, err)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.tick(ctx, "start")
	}()
	sched.Start()
	<-ctx.Done()
	r.Log.Info("shutting down: finishing the cycle in flight")
	<-sched.Stop().Done()
	r.wg.Wait()
	return nil
}

// tick runs one cycle unless one is already running, in which case the
// tick is skipped and counted.
func (r *Runner) tick(ctx context.Context, trigger string) {
	if ctx.Err() != nil {
		return
	}
	if !r.running.CompareAndSwap(false, true) {
		r.Log.Warn("cycle skipped: the previous one is still running", zap.String("trigger", trigger))
		if r.Metrics != nil {
			r.Metrics.CyclesSkipped.Inc()
		}
		return
	}
	rep := r.Syncer.Cycle(ctx, r.Options)
	r.running.Store(false)
	r.logReport(rep, trigger)
	if rep.Err == nil {
		r.ready.Store(true)
		r.failures.Store(0)
		return
	}
	if ctx.Err() == nil {
		r.scheduleRetry(ctx)
	}
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

// Handler serves /metrics, /healthz and /readyz.
func (r *Runner) Handler() http.Handler {
	mux := http.NewServeMux()
	if r.Metrics != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(r.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !r.Ready() {
			http.Error(w, "no successful sync cycle yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
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
