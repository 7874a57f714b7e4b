// Command runai-ldap-sync keeps Run:AI project access in Kubernetes in step
// with Active Directory groups.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/health"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/leader"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses (docs/cli.md). diff and doctor have their own (exitChanges,
// doctor.Exit*).
const (
	exitOK     = 0
	exitFailed = 1 // the cycle failed
	exitUsage  = 2 // bad command line or configuration
)

// flags are every command's flags; each command registers those it takes.
type flags struct {
	config, kubeconfig, context, logLevel, logFormat, output string
	approve                                                  string
	// explain
	user, project string
	// doctor
	userKubeconfig, userContext, directoryUser, daemonUser string
}

// loadConfig reads --config (and the project template it names), for
// the commands that need it.
func (f *flags) loadConfig() (*config.Config, *template.Template, error) {
	if f.config == "" {
		return nil, nil, usageErr(errors.New("--config FILE is required"))
	}
	cfg, tmpl, err := loadConfig(f.config)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	return cfg, tmpl, nil
}

// quietLogger is the logger of a command whose output is not its log:
// the default level (info) becomes level.
func (f *flags) quietLogger(level string, stderr io.Writer) (*zap.Logger, error) {
	if f.logLevel != "info" {
		level = f.logLevel
	}
	return newLogger(level, f.logFormat, stderr)
}

// runSync runs `run`, `once` or `diff`.
func runSync(cmd string, f *flags, stdout, stderr io.Writer) error {
	approve, err := parseRef(f.approve)
	if err != nil {
		return usageErr(fmt.Errorf("--approve-removals: %w", err))
	}
	cfg, tmpl, err := f.loadConfig()
	if err != nil {
		if cmd == "diff" {
			return asDiffError(err)
		}
		return err
	}
	log, err := newLogger(f.logLevel, f.logFormat, stderr)
	if err != nil {
		return usageErr(err)
	}
	defer func() { _ = log.Sync() }()
	// client-go (informers, leader election) logs through klog: make its
	// lines lines of the same log.
	klog.SetLogger(newKlogLogger(log.Named("client-go")))
	// The daemon's own namespace is never a project (the Deployment sets
	// POD_NAMESPACE from the downward API).
	cfg.Projects.OwnNamespace = os.Getenv("POD_NAMESPACE")
	for _, o := range cfg.OptOuts() {
		log.Warn("safety opt-out in the configuration", zap.String("key", o.Key), zap.String("risk", o.Risk))
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	d, err := newDaemon(cfg, tmpl, f, log, cmd)
	switch {
	case err != nil && cmd == "run":
		log.Error("start-up failed", zap.Error(err))
		return &exitError{code: exitFailed}
	case err != nil && cmd == "diff":
		return &exitError{code: exitDiffError, err: fmt.Errorf("start-up failed, nothing compared: %w", err)}
	case err != nil:
		return &exitError{code: exitFailed, err: fmt.Errorf("start-up failed: %w", err)}
	}
	switch cmd {
	case "once":
		return d.once(ctx, approve)
	case "diff":
		return printDiff(ctx, d, f.output, stdout)
	default: // run
		if code := d.run(ctx, f); code != exitOK {
			return &exitError{code: code}
		}
		return nil
	}
}

type daemon struct {
	cfg    *config.Config
	rc     *rest.Config
	kc     *kube.Client
	cache  *kube.Cache // run only
	events *kube.EventRecorder
	// newPipeline builds a Pipeline with fresh state (one per leadership term).
	newPipeline func() *controller.Pipeline
	// loop is the controller loop (run only; set before the informers
	// start, whose handlers post events to it).
	loop     *controller.Loop
	metrics  *metrics.Metrics
	log      *zap.Logger
	identity string
}

func newDaemon(cfg *config.Config, tmpl *template.Template, f *flags, log *zap.Logger, cmd string) (*daemon, error) {
	kc, cc, err := f.kubeClient(cfg, 0)
	if err != nil {
		return nil, err
	}
	rc := cc.Config
	src := ldapsrc.New(cfg.LDAP, log.Named("ldap"))
	m := metrics.NewMetrics(version)
	m.WatchStats(&src.Stats, kc.Stats)
	d := &daemon{cfg: cfg, rc: rc, kc: kc, metrics: m, log: log, identity: identity()}
	var cluster controller.Cluster = kc
	if cmd == "run" {
		// The daemon reads current state from informers, which also report
		// hand edits for repair. once and diff read with LIST and GET.
		h := kube.Handlers{
			Binding:   func(ref model.Ref, b *model.Binding, rv string) { d.loop.BindingChanged(ref, b, rv) },
			Namespace: func(old, cur *model.Namespace) { d.loop.NamespaceChanged(old, cur) },
			WatchError: func(what string, err error) {
				m.KubeErrors.WithLabelValues("watch").Inc()
				log.Warn("watch failed; the informer retries", zap.String("watch", what), zap.Error(err))
			},
		}
		if tmpl != nil {
			h.TemplateSelector, h.Template = controller.TemplateSelector(), func() { d.loop.TemplateChanged() }
		}
		d.cache = kube.NewCache(kc, cfg.Kubernetes.RunaiNamespace, h)
		cluster = d.cache
	}
	if cmd == "run" && cfg.Mode == config.ModeEnforce && cfg.Incremental.Enabled {
		src.Reach = true
	}
	if (cmd == "run" || cmd == "once") && cfg.Mode == config.ModeEnforce {
		d.events = kube.NewEventRecorder(kc, d.identity, cfg.Kubernetes.RunaiNamespace)
	}
	d.newPipeline = func() *controller.Pipeline {
		s := controller.New(cfg, src, cluster, log, m)
		if src.Reach {
			s.WithChanges(src)
		}
		if cfg.Projects.Provisioning() {
			// Namespaces and template objects are written through the
			// Client: the informers watch only the managed bindings.
			s.WithProvisioning(src, kc).WithTemplate(tmpl)
		}
		if d.events != nil {
			s.WithEvents(d.events)
		}
		return s.WithState(kc.StateStore(cfg.Kubernetes.RunaiNamespace))
	}
	return d, nil
}

// parseRef reads a binding named as ClusterRoleBinding/NAME or
// RoleBinding/NAMESPACE/NAME (as logs, Events and diff print it); "" is
// the zero Ref.
func parseRef(s string) (model.Ref, error) {
	if s == "" {
		return model.Ref{}, nil
	}
	parts := strings.Split(s, "/")
	switch {
	case len(parts) == 2 && parts[0] == model.KindClusterRoleBinding && parts[1] != "":
		return model.Ref{Kind: parts[0], Name: parts[1]}, nil
	case len(parts) == 3 && parts[0] == model.KindRoleBinding && parts[1] != "" && parts[2] != "":
		return model.Ref{Kind: parts[0], Namespace: parts[1], Name: parts[2]}, nil
	}
	return model.Ref{}, fmt.Errorf("%q names no binding: use ClusterRoleBinding/NAME or RoleBinding/NAMESPACE/NAME (diff prints them)", s)
}

// identity names this replica in the Lease and in Events: the host (the
// pod's name in Kubernetes) and a random suffix, unique per process.
func identity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "runai-ldap-sync"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "_" + hex.EncodeToString(b)
}

// once runs `once`: one cycle (approving the removals held on approve, if
// any), its Events written, and what it did.
func (d *daemon) once(ctx context.Context, approve model.Ref) error {
	rep := d.newPipeline().Cycle(ctx, controller.CycleOptions{DryRun: d.cfg.Mode == config.ModeDryRun, Approve: approve})
	d.flushEvents()
	if rep.Err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("cycle failed: %w", rep.Err)}
	}
	d.log.Info("cycle done", zap.Int("projects", len(rep.Projects)), zap.Int("bindings_written", rep.Applied),
		zap.Int("namespaces_provisioned", len(rep.Provision.Namespaces)-len(rep.Provision.NamespaceErrors)),
		zap.Int("template_objects_applied", len(rep.Provision.Templates)-len(rep.Provision.TemplateErrors)),
		zap.Duration("duration", rep.Duration))
	return nil
}

// flushEvents gives the Events recorded so far a few seconds to be written.
func (d *daemon) flushEvents() {
	if d.events != nil {
		d.events.Shutdown(context.Background(), 5*time.Second)
	}
}

func (d *daemon) run(ctx context.Context, f *flags) int {
	ctx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	cfg := d.cfg
	status := &health.Status{LeaderElection: cfg.LeaderElection.Enabled, Identity: d.identity}
	d.log.Info("starting", zap.String("version", version), zap.String("mode", cfg.Mode),
		zap.String("policy", cfg.Policy), zap.String("schedule", cfg.Schedule),
		zap.Bool("leader_election", cfg.LeaderElection.Enabled), zap.Bool("repair", cfg.Repair.Enabled),
		zap.Bool("incremental", cfg.Incremental.Enabled && cfg.Mode == config.ModeEnforce),
		zap.String("identity", d.identity))
	srvErr := make(chan error, 1)
	if cfg.Server.Address != "" {
		go func() { srvErr <- health.Serve(ctx, cfg.Server.Address, health.NewHandler(d.metrics, status), d.log) }()
	}
	// Set before the informers start: their handlers post to it.
	r := d.newLoop(status)
	d.loop = r
	// The informers run on standby replicas too, so a new leader starts
	// with a warm cache.
	if err := d.cache.Start(ctx); err != nil {
		d.log.Error("stopping", zap.Error(err))
		return exitFailed
	}
	loopDone := make(chan error, 1)
	go func() { loopDone <- r.Run(ctx) }()
	runErr := make(chan error, 1)
	go func() { runErr <- d.elect(ctx, status) }()
	code := exitOK
	select {
	case err := <-srvErr:
		if err != nil {
			d.log.Error("stopping", zap.Error(err))
			code = exitFailed
		}
		stopRun() // without /metrics and /readyz, do not go on unseen
		<-runErr
	case err := <-runErr:
		if err != nil {
			d.log.Error("stopping", zap.Error(err))
			code = exitFailed
		}
	}
	if err := <-loopDone; err != nil {
		d.log.Error("stopping", zap.Error(err))
		code = exitFailed
	}
	d.flushEvents()
	d.log.Info("stopped")
	return code
}

// newLoop builds the controller loop from the configuration.
func (d *daemon) newLoop(status *health.Status) *controller.Loop {
	cfg := d.cfg
	r := &controller.Loop{
		NewPipeline: d.newPipeline, Schedule: cfg.Schedule, Metrics: d.metrics, Log: d.log, Status: status,
		Options:  controller.CycleOptions{DryRun: cfg.Mode == config.ModeDryRun},
		RetryMin: cfg.Retry.MinBackoff, RetryMax: cfg.Retry.MaxBackoff, Elected: true,
	}
	if cfg.Repair.Enabled {
		r.RepairInterval = cfg.Repair.MinInterval
	}
	if cfg.Incremental.Enabled {
		r.PollInterval = cfg.Incremental.PollInterval
	}
	return r
}

// elect leads for each term this replica wins (leader election), or for
// the whole run without it, until ctx ends.
func (d *daemon) elect(ctx context.Context, status *health.Status) error {
	cfg := d.cfg
	if !cfg.LeaderElection.Enabled {
		d.lead(ctx, status)
		return nil
	}
	e := &leader.Elector{Config: d.rc, Namespace: cfg.Kubernetes.RunaiNamespace, Name: cfg.LeaderElection.LeaseName,
		Identity: d.identity, LeaseDuration: cfg.LeaderElection.LeaseDuration, RenewDeadline: cfg.LeaderElection.RenewDeadline,
		RetryPeriod: cfg.LeaderElection.RetryPeriod, Log: d.log, OnNewLeader: status.SetLeader,
		Metrics: d.metrics, OnStalled: status.SetStalled}
	return e.Run(ctx, func(tctx context.Context) { d.lead(tctx, status) })
}

// lead runs one leadership term (the whole run without leader election)
// in the controller loop, until ctx ends and the write in flight finished.
func (d *daemon) lead(ctx context.Context, status *health.Status) {
	if ctx.Err() != nil {
		return // the term ended before it began
	}
	status.SetLeading(true)
	d.metrics.Leader.Set(1)
	defer func() {
		status.SetLeading(false)
		d.metrics.Leader.Set(0)
		if d.cfg.LeaderElection.Enabled {
			// Only the leader reports per-binding drift.
			d.metrics.ResetBindings()
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, kube.SyncTimeout)
	if err := d.cache.WaitForSync(sctx); err != nil && ctx.Err() == nil {
		d.log.Warn("informers not synced; reading with LIST and GET until they are", zap.Error(err))
	}
	cancel()
	d.loop.Lead(ctx)
}

// newLogger logs at level to w: JSON lines, or text with format "text"
// ("auto": text on a terminal, else JSON, as a pod's log collector wants).
func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	switch format {
	case "json":
		encoder = zapcore.NewJSONEncoder(enc)
	case "text":
		encoder = zapcore.NewConsoleEncoder(enc)
	case "auto", "":
		if isTerminal(w) {
			encoder = zapcore.NewConsoleEncoder(enc)
		} else {
			encoder = zapcore.NewJSONEncoder(enc)
		}
	default:
		return nil, fmt.Errorf("--log-format must be auto, json or text, got %q", format)
	}
	core := zapcore.NewCore(encoder, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
