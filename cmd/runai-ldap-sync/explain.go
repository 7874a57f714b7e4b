package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
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

	kc, _, err := f.kubeClient(cfg, 0)
	if err != nil {
		return &exitError{code: exitFailed, err: err}
	}
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
