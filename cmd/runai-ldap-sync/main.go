// Command runai-ldap-sync keeps Run:AI project access in Kubernetes in step
// with Active Directory groups.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `runai-ldap-sync keeps Run:AI project access in step with Active Directory.

Usage:
  runai-ldap-sync run          --config FILE   the daemon: one cycle at start, then on the schedule
  runai-ldap-sync once         --config FILE   one cycle, then exit (non-zero if it failed)
  runai-ldap-sync diff         --config FILE [-o text|json]   print the plan, write nothing
  runai-ldap-sync check-config --config FILE   validate the configuration and exit
  runai-ldap-sync version

Flags for run, once and diff:
  --config FILE       configuration file (required)
  --kubeconfig FILE   kubeconfig (default: in-cluster, then $KUBECONFIG)
  --log-level LEVEL   debug, info, warn or error (default info)
  --approve-removals  approve, for this run, removals the guard would hold (run, once)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // the cycle failed
	exitUsage  = 2 // bad command line or configuration
)

type flags struct {
	config, kubeconfig, logLevel, output string
	approve                              bool
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "runai-ldap-sync %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "run", "once", "diff", "check-config":
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}

	var f flags
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "configuration file")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level")
	if cmd == "diff" {
		fs.StringVar(&f.output, "o", "text", "output format: text or json")
	}
	if cmd == "run" || cmd == "once" {
		fs.BoolVar(&f.approve, "approve-removals", false, "approve removals held by the guard, for this run")
	}
	if err := fs.Parse(rest); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return exitUsage
	}
	if f.config == "" {
		fmt.Fprintln(stderr, "--config FILE is required")
		return exitUsage
	}
	if f.output != "" && f.output != "text" && f.output != "json" {
		fmt.Fprintf(stderr, "-o must be text or json, got %q\n", f.output)
		return exitUsage
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if cmd == "check-config" {
		fmt.Fprintf(stdout, "%s: configuration is valid\n", f.config)
		return exitOK
	}

	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	d, err := newDaemon(cfg, f, log)
	if err != nil {
		log.Error("start-up failed", zap.Error(err))
		return exitFailed
	}
	switch cmd {
	case "once":
		rep := d.syncer.Cycle(ctx, sync.CycleOptions{DryRun: cfg.Mode == config.ModeDryRun, ApproveRemovals: f.approve})
		if rep.Err != nil {
			log.Error("cycle failed", zap.Error(rep.Err))
			return exitFailed
		}
		log.Info("cycle done", zap.Int("projects", len(rep.Projects)), zap.Int("bindings_written", rep.Applied), zap.Duration("duration", rep.Duration))
		return exitOK
	case "diff":
		rep := d.syncer.Cycle(ctx, sync.CycleOptions{DryRun: true})
		if err := printPlan(stdout, rep, f.output); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFailed
		}
		if rep.Err != nil {
			log.Error("plan is incomplete", zap.Error(rep.Err))
			return exitFailed
		}
		return exitOK
	default: // run
		return d.run(ctx, cfg, f)
	}
}

type daemon struct {
	syncer  *sync.Syncer
	metrics *sync.Metrics
	log     *zap.Logger
}

func newDaemon(cfg *config.Config, f flags, log *zap.Logger) (*daemon, error) {
	rc, err := kube.RestConfig(f.kubeconfig)
	if err != nil {
		return nil, err
	}
	kc, err := kube.NewClient(rc, cfg.Kubernetes.QPS, cfg.Kubernetes.Burst)
	if err != nil {
		return nil, err
	}
	src := ldapsrc.New(cfg.LDAP, log.Named("ldap"))
	m := sync.NewMetrics(version)
	m.WatchStats(&src.Stats, kc.Stats)
	return &daemon{syncer: sync.New(cfg, src, kc, log, m), metrics: m, log: log}, nil
}

func (d *daemon) run(ctx context.Context, cfg *config.Config, f flags) int {
	r := &sync.Runner{
		Syncer: d.syncer, Schedule: cfg.Schedule, Metrics: d.metrics, Log: d.log,
		Options: sync.CycleOptions{DryRun: cfg.Mode == config.ModeDryRun, ApproveRemovals: f.approve},
	}
	d.log.Info("starting", zap.String("version", version), zap.String("mode", cfg.Mode),
		zap.String("policy", cfg.Policy), zap.String("schedule", cfg.Schedule))
	srvErr := make(chan error, 1)
	if cfg.Server.Address != "" {
		go func() { srvErr <- sync.Serve(ctx, cfg.Server.Address, r.Handler(), d.log) }()
	}
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	select {
	case err := <-srvErr:
		if err != nil {
			d.log.Error("stopping", zap.Error(err))
			return exitFailed
		}
		<-runErr
	case err := <-runErr:
		if err != nil {
			d.log.Error("stopping", zap.Error(err))
			return exitFailed
		}
	}
	d.log.Info("stopped")
	return exitOK
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// planJSON is one binding's change in `diff -o json`.
type planJSON struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Add       []string `json:"add"`
	Remove    []string `json:"remove"`
	Create    bool     `json:"create"`
	Held      []string `json:"held,omitempty"`
}

func printPlan(w io.Writer, rep *sync.Report, format string) error {
	var out []planJSON
	for _, p := range rep.Plans {
		if !p.HasChanges() && len(p.Held) == 0 {
			continue
		}
		out = append(out, planJSON{Kind: p.Ref.Kind, Namespace: p.Ref.Namespace, Name: p.Ref.Name,
			Add: nonNil(p.Add), Remove: nonNil(p.Remove), Create: p.Create, Held: p.Held})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	if format == "json" {
		if out == nil {
			out = []planJSON{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(out) == 0 {
		_, err := fmt.Fprintln(w, "no changes")
		return err
	}
	for _, p := range out {
		ref := kube.Ref{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name}
		suffix := ""
		if p.Create {
			suffix = " (create)"
		}
		fmt.Fprintf(w, "%s%s\n", ref, suffix)
		for _, u := range p.Add {
			fmt.Fprintf(w, "+ %s\n", u)
		}
		for _, u := range p.Remove {
			fmt.Fprintf(w, "- %s\n", u)
		}
		for _, u := range p.Held {
			fmt.Fprintf(w, "! %s (removal held by the guard)\n", u)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
