package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
)

// runExplain answers `explain --user ID [--project NAME] [-o text|json]`:
// read-only, whatever the mode.
func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file")
	logLevel := fs.String("log-level", "warn", "log level")
	user := fs.String("user", "", "Kubernetes user name to explain (as bound, e.g. alice)")
	project := fs.String("project", "", "only this project")
	output := fs.String("o", "text", "output format: text or json")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return exitUsage
	case *cfgPath == "":
		fmt.Fprintln(stderr, "--config FILE is required")
		return exitUsage
	case *user == "":
		fmt.Fprintln(stderr, "--user ID is required")
		return exitUsage
	case *output != "text" && *output != "json":
		fmt.Fprintf(stderr, "-o must be text or json, got %q\n", *output)
		return exitUsage
	}
	cfg, _, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	rc, err := kube.RestConfig(*kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	kc, err := kube.NewClient(rc, cfg.Kubernetes.QPS, cfg.Kubernetes.Burst)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	src := ldapsrc.New(cfg.LDAP, log.Named("ldap"))
	src.Trace = true
	// The discovery and the fence of a cycle; a dry run writes nothing.
	ex, err := controller.New(cfg, src, kc, log, nil).WithProvisioning(src, kc).Explain(ctx, *user, *project)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ex); err != nil {
			return exitFailed
		}
		return exitOK
	}
	printExplanation(stdout, ex)
	return exitOK
}
