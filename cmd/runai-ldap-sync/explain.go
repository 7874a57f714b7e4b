package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// runExplain answers `explain --user ID [--project NAME] [-o text|json]`:
// read-only, whatever the mode.
func runExplain(f *flags, stdout, stderr io.Writer) error {
	if f.user == "" {
		return usageErr(fmt.Errorf("--user ID is required"))
	}
	cfg, _, err := f.loadConfig()
	if err != nil {
		return err
	}
	log, err := f.quietLogger("warn", stderr) // the explanation is the output
	if err != nil {
		return usageErr(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cc, err := kube.RestConfig(f.kubeconfig, f.context)
	if err != nil {
		return &exitError{code: exitFailed, err: err}
	}
	kc, err := kube.NewClient(cc.Config, cfg.Kubernetes.QPS, cfg.Kubernetes.Burst)
	if err != nil {
		return &exitError{code: exitFailed, err: err}
	}
	kc.SetScope(plan.Scope(cfg))
	src := ldapsrc.New(cfg.LDAP, log.Named("ldap"))
	src.Trace = true
	// The discovery and the fence of a cycle; a dry run writes nothing.
	ex, err := controller.New(cfg, src, kc, log, nil).WithProvisioning(src, kc).Explain(ctx, f.user, f.project)
	if err != nil {
		return &exitError{code: exitFailed, err: err}
	}
	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ex); err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		return nil
	}
	printExplanation(stdout, ex)
	return nil
}
