// Package integration tests runai-ldap-sync end to end against real
// servers: a Samba Active Directory domain controller, etcd and
// kube-apiserver, all started by the harness. Nothing here is mocked, and
// nothing skips: a missing server fails the run.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

// etcd is shared; every test gets its own kube-apiserver (own etcd prefix),
// i.e. its own empty cluster, and its own fresh Samba domain (copied from a
// provisioned template in about a second). Samba's ports are fixed, so the
// tests of this package run one after the other.
var (
	etcd   *harness.Etcd
	binary string // the runai-ldap-sync binary under test, built with -race
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "runai-ldap-sync-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	binary = filepath.Join(dir, "runai-ldap-sync")
	build := exec.CommandContext(ctx, "go", "build", "-race", "-o", binary, "github.com/runai-ldap-sync/runai-ldap-sync/cmd/runai-ldap-sync")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: build runai-ldap-sync: %v\n", err)
		return 1
	}
	start := time.Now()
	// Provision the Samba template once up front, so a broken Samba fails
	// here, loudly, rather than in the first test.
	samba, err := harness.StartSamba(ctx, filepath.Join(dir, "samba"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start Samba AD DC (run `make deps`): %v\n", err)
		return 1
	}
	samba.Stop()
	if etcd, err = harness.StartEtcd(ctx, filepath.Join(dir, "etcd")); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start etcd (run `make tools`): %v\n", err)
		return 1
	}
	defer etcd.Stop()
	fmt.Fprintf(os.Stderr, "integration: Samba AD DC and etcd ready in %s\n", time.Since(start).Round(time.Millisecond))
	return m.Run()
}
