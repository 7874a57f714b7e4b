package main

import (
	"fmt"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
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
