package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every command has its own --help, on stdout, exit status 0.
func TestHelpOfEveryCommandExitsZero(t *testing.T) {
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	cmds := [][]string{{"--help"}, {"help"}}
	for _, c := range root.Commands() {
		cmds = append(cmds, []string{c.Name(), "--help"}, []string{"help", c.Name()})
		for _, sub := range c.Commands() {
			cmds = append(cmds, []string{c.Name(), sub.Name(), "--help"})
		}
	}
	for _, want := range []string{"run", "once", "diff", "explain", "check-config", "doctor", "version", "completion"} {
		if c, _, err := root.Find([]string{want}); err != nil || c.Name() != want {
			t.Errorf("no command %s", want)
		}
	}
	for _, args := range cmds {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
		}
	}
	if code := run([]string{"daemon", "--help"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Errorf("daemon (alias of run) --help: exit %d", code)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_runai-ldap-sync", "zsh": "#compdef runai-ldap-sync", "fish": "complete -c runai-ldap-sync"} {
		var out bytes.Buffer
		if code := run([]string{"completion", shell}, &out, &bytes.Buffer{}); code != 0 || !strings.Contains(out.String(), want) {
			t.Errorf("completion %s: exit %d, lacks %q", shell, code, want)
		}
	}
}

// --config completes YAML files, on every command that takes it.
func TestConfigCompletesYAML(t *testing.T) {
	for _, cmd := range []string{"run", "once", "diff", "explain", "check-config", "doctor"} {
		var out bytes.Buffer
		if code := run([]string{"__complete", cmd, "--config", ""}, &out, &bytes.Buffer{}); code != 0 || out.String() != "yaml\nyml\n:8\n" {
			t.Errorf("%s --config: exit %d, completions %q", cmd, code, out.String())
		}
	}
}

// -o other than text or json is a usage error, before the configuration is read.
func TestOutputFormatChecked(t *testing.T) {
	for _, args := range [][]string{
		{"diff", "-o", "yaml", "--config", "/nonexistent"},
		{"explain", "-o", "yaml", "--user", "u", "--config", "/nonexistent"},
		{"doctor", "-o", "yaml", "--config", "/nonexistent"},
	} {
		var errOut bytes.Buffer
		if code := run(args, &bytes.Buffer{}, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "-o must be text or json") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nope"},
		{"diff", "--nope"},
		{"once", "extra"},
		{"check-config"},
		{"explain", "--config", "x"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitUsage || errOut.Len() == 0 {
			t.Errorf("%v: exit %d (want %d), stderr %q", args, code, exitUsage, errOut.String())
		}
	}
}

// Scripts written for Go's flag package (-config FILE) still work.
func TestSingleDashLongFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"check-config", "-config", "/nonexistent"}, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "read config file") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
	if got := goFlagStyle([]string{"-o", "json", "-config=x", "--", "-config"}); strings.Join(got, " ") != "-o json --config=x -- -config" {
		t.Errorf("goFlagStyle: %v", got)
	}
}

// closedAddr is a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// diff against an API server that does not answer prints nothing on
// stdout, not "no changes" nor "[]", and exits with an error status (>1)
// and a human-readable error on stderr.
func TestDiffUnreachablePrintsNothing(t *testing.T) {
	dir, cfg, kc := unreachable(t)
	for _, format := range []string{"text", "json"} {
		var out, errOut bytes.Buffer
		code := run([]string{"diff", "--config", cfg, "--kubeconfig", kc, "-o", format, "--log-level", "error"}, &out, &errOut)
		if code <= 1 {
			t.Errorf("-o %s: exit %d, want >1", format, code)
		}
		if out.Len() != 0 {
			t.Errorf("-o %s: stdout %q, want nothing", format, out.String())
		}
		if !strings.Contains(errOut.String(), "Error: the plan is incomplete") {
			t.Errorf("-o %s: stderr lacks the human-readable error: %q", format, errOut.String())
		}
	}
	// A kubeconfig that cannot be loaded is an error too, before any plan.
	var out, errOut bytes.Buffer
	if code := run([]string{"diff", "--config", cfg, "--kubeconfig", filepath.Join(dir, "missing")}, &out, &errOut); code <= 1 || out.Len() != 0 {
		t.Errorf("missing kubeconfig: exit %d, stdout %q", code, out.String())
	}
	// A bad config file: >1 as well.
	if code := run([]string{"diff", "--config", filepath.Join(dir, "missing.yaml")}, &out, &errOut); code <= 1 {
		t.Errorf("missing config: exit %d", code)
	}
}

// --context completes the contexts of the kubeconfig.
func TestContextCompletion(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
current-context: prod
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: prod, context: {cluster: c, user: u}}, {name: staging, context: {cluster: c, user: u}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run([]string{"__complete", "diff", "--kubeconfig", kc, "--context", ""}, &out, &bytes.Buffer{}); code != 0 ||
		!strings.Contains(out.String(), "prod\nstaging\n") {
		t.Errorf("exit %d, completions %q", code, out.String())
	}
}

// unreachable writes a configuration and a kubeconfig naming a directory
// and an API server that nothing answers for.
func unreachable(t *testing.T) (dir, cfg, kc string) {
	t.Helper()
	dir = t.TempDir()
	pw := filepath.Join(dir, "pw")
	kc = filepath.Join(dir, "kubeconfig")
	cfg = filepath.Join(dir, "config.yaml")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(pw, "x\n")
	write(kc, `apiVersion: v1
kind: Config
current-context: c
clusters: [{name: c, cluster: {server: "https://`+closedAddr(t)+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
`)
	write(cfg, `ldap:
  urls: ["ldaps://`+closedAddr(t)+`"]
  bindDN: "svc@example.test"
  bindPasswordFile: `+pw+`
  baseDN: "DC=example,DC=test"
  timeout: 2s
groups:
  executors: ["runai-{project}-executors"]
projects:
  static: [{name: alpha}]
`)
	return dir, cfg, kc
}

// doctor with nothing reachable: each failure a line with its fix, exit 2.
func TestDoctorUnreachable(t *testing.T) {
	_, cfg, kc := unreachable(t)
	var out, errOut bytes.Buffer
	code := run([]string{"doctor", "--config", cfg, "--kubeconfig", kc}, &out, &errOut)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{"fail  ldap.bind", "fix: check ldap.urls", "fail  kube.connect", "fix: check --kubeconfig", "warn  ldap.groups", "0 ok, 1 warnings, 2 failures"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out.String())
		}
	}
}
