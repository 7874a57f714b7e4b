package main

import (
	"fmt"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// loadConfig reads the configuration and everything it names that start-up
// must check before doing anything: config's own validation, the LDAP
// syntax of its DNs and filter, and the project template. Each problem is
// reported as "config file <path>: invalid configuration: <field>: ...".
func loadConfig(path string) (*config.Config, *template.Template, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	if err := ldapsrc.CheckConfig(cfg); err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	tmpl, err := template.Load(cfg.Projects)
	if err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, tmpl, nil
}

// kubeClient is the API client of every command: the configuration
// --kubeconfig and --context resolve (kubectl's order), the configured
// request rate, and the daemon's scope (what it reads whole), so that
// diff, explain and doctor read what the daemon reads. timeout bounds each
// request when the kubeconfig sets no bound (0: none).
func (f *flags) kubeClient(cfg *config.Config, timeout time.Duration) (*kube.Client, *kube.ClientConfig, error) {
	cc, err := kube.RestConfig(f.kubeconfig, f.context)
	if err != nil {
		return nil, nil, err
	}
	if cc.Timeout == 0 {
		cc.Timeout = timeout
	}
	kc, err := kube.NewClient(cc.Config, cfg.Kubernetes.QPS, cfg.Kubernetes.Burst)
	if err != nil {
		return nil, nil, err
	}
	kc.SetScope(plan.Scope(cfg))
	return kc, cc, nil
}
