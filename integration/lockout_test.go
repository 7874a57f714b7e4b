package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

// TestWrongPasswordNeverLocksTheAccount runs the daemon with the default
// configuration (incremental polls and repairs on; timings scaled down)
// and a wrong bind password against a real Samba AD whose lockout
// threshold is 5: the refused password is tried once, not again until the
// password file changes, so the account is never locked; once the file
// holds the right password the daemon recovers within one check (10s).
func TestWrongPasswordNeverLocksTheAccount(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	setLockoutPolicy(t, e.samba, 5, 30*time.Minute)
	c, err := e.samba.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(ldap.NewSearchRequest(e.ou, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		fmt.Sprintf("(userPrincipalName=%s)", ldap.EscapeFilter(e.bindUPN)), []string{"dn"}, nil))
	c.Close()
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("find the service account: %v", err)
	}
	svcDN := res.Entries[0].DN

	writeFile(t, e.pwFile, []byte("Wrong-Pa55-not-the-one\n"))
	addr := freeAddr(t)
	// The default configuration, faster: polls every second, a cycle every
	// 10s, retries from 1s doubling to 4s.
	cfg := e.config(groupsYAML + sampleProjects + `schedule: "@every 10s"
retry: {minBackoff: 1s, maxBackoff: 4s}
repair: {minInterval: 1s}
incremental: {pollInterval: 1s}
` + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitLog("the directory refused the bind password", 1, 60*time.Second)
	// 45s: four scheduled cycles, ~45 polls and the retries would each
	// bind without the wait.
	time.Sleep(45 * time.Second)
	n, locked := badPwdCount(t, e.samba, svcDN)
	t.Logf("after 45s with a wrong password: badPwdCount %d, locked %v", n, locked)
	if n >= 5 || locked {
		t.Fatalf("badPwdCount %d (locked %v): the daemon retried a refused password", n, locked)
	}
	if n != 1 {
		t.Errorf("badPwdCount %d, want 1 (one try per password)", n)
	}
	if _, code := d.get("/readyz"); code != 503 {
		t.Errorf("/readyz = %d with a refused password", code)
	}

	fixed := time.Now()
	writeFile(t, e.pwFile, []byte(e.password+"\n"))
	d.waitReady(20 * time.Second)
	took := time.Since(fixed)
	t.Logf("ready %v after the password file was fixed", took.Round(100*time.Millisecond))
	if took > 12*time.Second {
		t.Errorf("recovered %v after the fix, want within one check (10s)", took)
	}
	expectSampleSynced(e, 10*time.Second)
	if code := d.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

// TestSIGTERMDuringADialToASilentServer: the directory accepts TCP
// connections and never says a word (a hung DC, a firewall that
// blackholes after the handshake). SIGTERM while the daemon waits on it
// ends the process within seconds, not ldap.timeout per URL, and releases
// the lease.
func TestSIGTERMDuringADialToASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c) // held open, never answered
		}
	}()
	dir := t.TempDir()
	api, err := harness.StartAPIServer(context.Background(), etcd, filepath.Join(dir, "apiserver"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Stop)
	cs, err := kubernetes.NewForConfig(api.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The Lease lives in the Run:AI namespace.
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "runai"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := api.WriteKubeconfig(kc, api.AdminToken); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "config.yaml")
	// Two URLs to the same silent server and a 30s timeout: before the fix
	// a shutdown could wait 2 × 30s per URL.
	url := "ldaps://" + ln.Addr().String()
	cfg := fmt.Sprintf(`ldap:
  urls: [%q, %q]
  insecureSkipVerify: true
  bindDN: "svc@example.test"
  bindPasswordFile: %s
  baseDN: "DC=example,DC=test"
  timeout: 30s
groups:
  executors: ["runai-{project}-executors"]
projects:
  static: [{name: alpha}]
leaderElection: {enabled: true, leaseDuration: 15s, renewDeadline: 10s, retryPeriod: 2s}
server: {address: %q}
`, url, url, pw, addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfgPath, kc, addr)
	waitFor(t, 60*time.Second, "the daemon dials the directory", func() error {
		if accepted.Load() == 0 {
			return errors.New("no connection accepted")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // well inside the TLS handshake's wait
	start := time.Now()
	code := d.stop(syscall.SIGTERM, 20*time.Second)
	took := time.Since(start)
	t.Logf("exited %v after SIGTERM, status %d", took.Round(10*time.Millisecond), code)
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if took > 5*time.Second {
		t.Errorf("exit took %v with ldap.timeout 30s; a shutdown must not wait for a silent server", took)
	}
	if d.count("leader lease released") != 1 {
		t.Error("lease not released on the way out")
	}
}
