package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Incremental change detection against the real directories: with the
// schedule at one hour, every directory change must reach the bindings
// within the poll interval plus a few seconds, through polls, not cycles.

// nonWatchRequests sums the daemon's Kubernetes requests other than watches.
func nonWatchRequests(d *daemon) float64 {
	n := 0.0
	for _, verb := range []string{"GET", "LIST", "POST", "PATCH", "PUT", "DELETE"} {
		n += d.metric("runai_ldap_sync_kube_requests_total", `verb="`+verb+`"`)
	}
	return n
}

// expectPropagated waits for ref to hold exactly want, within the bound,
// and logs how long it took.
func expectPropagated(e *env, what string, ref model.Ref, start time.Time, want ...string) {
	e.t.Helper()
	e.waitUsers(ref, propagationBound, want...)
	e.t.Logf("%s: %s updated %v after the directory change", what, ref, time.Since(start).Round(10*time.Millisecond))
}

func TestIncrementalActiveDirectory(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	addr := freeAddr(t)
	cfg := e.config(groupsYAML + sampleProjects + incrementalYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	expectSampleSynced(e, 10*time.Second)
	betaRV := e.binding(betaExec).ResourceVersion

	// Idle: polls run, each costs one small search on a kept connection,
	// and nothing is asked of Kubernetes.
	d.waitMetric("runai_ldap_sync_directory_polls_total", `result="idle"`, 1, 10*time.Second)
	polls0 := d.metric("runai_ldap_sync_directory_polls_total", "")
	searches0 := d.metric("runai_ldap_sync_ldap_searches_total", "")
	binds0 := d.metric("runai_ldap_sync_ldap_binds_total", "")
	kube0 := nonWatchRequests(d)
	time.Sleep(4 * time.Second)
	polls := d.metric("runai_ldap_sync_directory_polls_total", "") - polls0
	idle := d.metric("runai_ldap_sync_directory_polls_total", `result="idle"`)
	searches := d.metric("runai_ldap_sync_ldap_searches_total", "") - searches0
	t.Logf("idle: %v polls, %v LDAP searches, %v binds, %v Kubernetes requests in 4s",
		polls, searches, d.metric("runai_ldap_sync_ldap_binds_total", "")-binds0, nonWatchRequests(d)-kube0)
	if polls < 2 || idle < 2 {
		t.Errorf("want >= 2 polls (idle) in 4s at 1s, got %v (idle %v)", polls, idle)
	}
	// Samba's own bookkeeping can move the USN (a change poll then costs a
	// second search, for entries that feed nothing): at most two per poll.
	if searches > 2*polls {
		t.Errorf("idle polls cost %v searches for %v polls", searches, polls)
	}
	if v := d.metric("runai_ldap_sync_ldap_binds_total", "") - binds0; v != 0 {
		t.Errorf("idle polls bound %v new connections; the poll connection should be kept", v)
	}
	if v := nonWatchRequests(d) - kube0; v != 0 {
		t.Errorf("idle polls made %v Kubernetes requests, want 0", v)
	}

	// A membership added.
	start := time.Now()
	e.user("henry", true)
	if err := e.samba.AddMembers(e.groups["runai-alpha-executors"], e.users["henry"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "member added", alphaExec, start, "alice", "bob", "carol", "erin", "hand-added", "henry")
	e.waitUsers(indexMap, propagationBound, "alice", "bob", "carol", "erin", "frank", "henry")

	// A membership removed: bob leaves alpha, but stays in the index map
	// through beta.
	start = time.Now()
	e.removeMembers("runai-alpha-executors", "bob")
	expectPropagated(e, "member removed", alphaExec, start, "alice", "carol", "erin", "hand-added", "henry")

	// A user disabled: carol (through the nested core group) loses access
	// everywhere.
	start = time.Now()
	if err := e.samba.SetEnabled(e.users["carol"], false); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "user disabled", alphaExec, start, "alice", "erin", "hand-added", "henry")
	e.waitUsers(indexMap, propagationBound, "alice", "bob", "erin", "frank", "henry")

	// A nested group changed, two levels down.
	start = time.Now()
	e.user("ivy", true)
	if err := e.samba.AddMembers(e.groups["runai-alpha-inner"], e.users["ivy"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "nested group changed", alphaExec, start, "alice", "erin", "hand-added", "henry", "ivy")

	// A global viewer group changed.
	start = time.Now()
	if err := e.samba.AddMembers(e.groups["runai-viewers"], e.users["frank"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "viewer group changed", viewer, start, "frank", "gina", "vera")

	// Everything came from polls: one full cycle ran (at start), and beta,
	// which no change touched, was never written.
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Errorf("cycles_total = %v, want 1 (the changes must not wait for or cause full cycles)", v)
	}
	if rv := e.binding(betaExec).ResourceVersion; rv != betaRV {
		t.Errorf("beta's binding was written (resourceVersion %s -> %s) though no change touched it", betaRV, rv)
	}
	d.waitMetric("runai_ldap_sync_propagation_seconds_count", "", 5, 5*time.Second)
	if v := d.metric("runai_ldap_sync_incremental_syncs_total", `result="failure"`); v != 0 {
		t.Errorf("incremental_syncs_total{failure} = %v", v)
	}
	if v := d.metric("runai_ldap_sync_directory_changes_total", `relevant="true"`); v < 5 {
		t.Errorf("directory_changes_total{relevant=true} = %v, want >= 5", v)
	}

	// The directory goes down: polls fail, nothing is removed; once it is
	// back, polls resume by themselves and changes flow again.
	before := e.snapshot(sampleRefs...)
	errs := d.metric("runai_ldap_sync_directory_polls_total", `result="error"`)
	e.samba.Down()
	d.waitMetric("runai_ldap_sync_directory_polls_total", `result="error"`, errs+2, 30*time.Second)
	e.expectNoneLost(before, "directory down during polls")
	if err := e.samba.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := e.samba.AddMembers(e.groups["runai-alpha-executors"], e.users["bob"]); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(alphaExec, 30*time.Second, "alice", "bob", "erin", "hand-added", "henry", "ivy")
	t.Logf("after the outage: change propagated %v after the directory change", time.Since(start).Round(10*time.Millisecond))
	if code := d.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

// TestIncrementalGuardHoldsRemovals: an incremental change that would
// remove too many users is held by the guard exactly as in a full cycle.
func TestIncrementalGuardHoldsRemovals(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	addr := freeAddr(t)
	cfg := e.config(groupsYAML + sampleProjects + incrementalYAML +
		"guard: {maxRemoveCount: 1}\n" + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	expectSampleSynced(e, 10*time.Second)
	e.removeMembers("runai-alpha-executors", "alice", "bob")
	d.waitMetric("runai_ldap_sync_binding_held_removals", `namespace="runai-alpha"`, 2, propagationBound)
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Errorf("cycles_total = %v, want 1", v)
	}
}

// TestIncrementalServerSwitchForcesFullCycle: USNs are per domain
// controller, so when the poll connection fails over to another DC the
// daemon runs a full cycle instead of trusting the old cursor. The second
// "DC" is the same Samba behind a TLS-terminating proxy that presents
// another dsServiceName (one DC is all this machine can run).
func TestIncrementalServerSwitchForcesFullCycle(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	first := newProxy(t, "127.0.0.1:636")
	second := newRenamingProxy(t, e.samba, "CN=DC1,CN=Servers", "CN=DC2,CN=Servers")
	addr := freeAddr(t)
	cfgPath := filepath.Join(e.dir, "switch.yaml")
	body := fmt.Sprintf(`ldap:
  urls: ["ldaps://127.0.0.1:%s", "ldaps://localhost:%s"]
  caFile: %s
  bindDN: %q
  bindPasswordFile: %s
  baseDN: %q
  timeout: 5s
`, first.port(), second.port(), e.samba.CAFile, e.bindUPN, e.pwFile, e.ou) +
		groupsYAML + sampleProjects + incrementalYAML + fmt.Sprintf("server: {address: %q}\n", addr)
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfgPath, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	expectSampleSynced(e, 10*time.Second)
	d.waitMetric("runai_ldap_sync_directory_polls_total", `result="idle"`, 1, 10*time.Second)
	if v := d.metric("runai_ldap_sync_full_cycles_forced_total", ""); v != 0 {
		t.Fatalf("full_cycles_forced_total = %v before the switch", v)
	}

	// DC1 goes away; the next poll reaches "DC2".
	first.mode.Store(proxyRefuse)
	first.cut()
	d.waitMetric("runai_ldap_sync_full_cycles_forced_total", `reason="server_changed"`, 1, 15*time.Second)
	d.waitMetric("runai_ldap_sync_cycles_total", `result="success"`, 2, 30*time.Second)
	// Incremental sync goes on against the new server.
	start := time.Now()
	e.user("henry", true)
	if err := e.samba.AddMembers(e.groups["runai-beta-executors"], e.users["henry"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "after the switch", betaExec, start, "bob", "frank", "henry")
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 2 {
		t.Errorf("cycles_total = %v, want 2 (start + one forced by the switch)", v)
	}
}

// newRenamingProxy terminates TLS with a certificate from the Samba CA and
// forwards to Samba's LDAPS port, replacing from with to (same length, so
// BER lengths hold) in what Samba answers.
func newRenamingProxy(t *testing.T, s *harness.Samba, from, to string) *proxy {
	t.Helper()
	if len(from) != len(to) {
		t.Fatal("renaming proxy: from and to must have the same length")
	}
	certPEM, keyPEM, err := s.CA.Issue([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			up, err := tls.Dial("tcp", "127.0.0.1:636", s.TLSConfig())
			if err != nil {
				_ = c.Close()
				continue
			}
			p.track(up)
			go p.pipe(c, up, &p.delayUp, &p.upChunks)
			go p.pipeThrough(up, c, &p.delayDown, &p.downChunks, func(b []byte) []byte {
				return bytes.ReplaceAll(b, []byte(from), []byte(to))
			})
		}
	}()
	return p
}

// TestIncrementalOpenLDAP runs against slapd as installed (polls search by
// entryCSN) and with the syncprov overlay of replicated set-ups (idle
// polls read only the suffix's contextCSN).
func TestIncrementalOpenLDAP(t *testing.T) {
	for _, syncProv := range []bool{false, true} {
		t.Run(fmt.Sprintf("syncprov=%v", syncProv), func(t *testing.T) { incrementalOpenLDAP(t, syncProv) })
	}
}

func incrementalOpenLDAP(t *testing.T, syncProv bool) {
	e := newEnv(t)
	s := startSlapd(t, harness.SlapdOptions{SyncProv: syncProv})
	people, err := s.AddOU("people")
	if err != nil {
		t.Fatal(err)
	}
	dn := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		if dn[u], err = s.AddUser(people, u, harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	inner, err := s.AddGroupOfNames(s.Suffix, "runai-alpha-inner", dn["carol"])
	if err != nil {
		t.Fatal(err)
	}
	execs, err := s.AddGroupOfNames(s.Suffix, "runai-alpha-executors", dn["alice"], dn["bob"], inner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddGroupOfNames(s.Suffix, "runai-beta-executors", dn["erin"]); err != nil {
		t.Fatal(err)
	}
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	e.namespace("runai-beta", map[string]string{"runai/queue": "beta"})
	addr := freeAddr(t)
	cfg := e.slapdDaemonConfig(s, "", incrementalYAML+fmt.Sprintf("server: {address: %q}\n", addr))
	alpha, beta := model.ExecutorRef("runai-alpha"), model.ExecutorRef("runai-beta")
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	e.waitUsers(alpha, 10*time.Second, "alice", "bob", "carol")
	betaRV := e.binding(beta).ResourceVersion

	// The first polls may see the seeding again (the cursor starts a few
	// minutes back, as slapd keeps no contextCSN without syncprov); after
	// that, polls are idle and ask nothing of Kubernetes.
	d.waitMetric("runai_ldap_sync_directory_polls_total", `result="idle"`, 1, 10*time.Second)
	kube0 := nonWatchRequests(d)
	idle0 := d.metric("runai_ldap_sync_directory_polls_total", `result="idle"`)
	searches0 := d.metric("runai_ldap_sync_ldap_searches_total", "")
	entries0 := d.metric("runai_ldap_sync_ldap_entries_total", "")
	time.Sleep(3 * time.Second)
	idle := d.metric("runai_ldap_sync_directory_polls_total", `result="idle"`) - idle0
	searches := d.metric("runai_ldap_sync_ldap_searches_total", "") - searches0
	entries := d.metric("runai_ldap_sync_ldap_entries_total", "") - entries0
	t.Logf("idle: %v polls, %v searches, %v entries in 3s", idle, searches, entries)
	if idle < 2 || searches != idle {
		t.Errorf("idle polls: %v polls cost %v searches, want one each", idle, searches)
	}
	// With syncprov each idle poll reads the suffix's contextCSN (one
	// entry); without, it is a subtree search by entryCSN that finds none.
	if want := map[bool]float64{true: idle, false: 0}[syncProv]; entries != want {
		t.Errorf("idle polls read %v entries, want %v", entries, want)
	}
	if v := nonWatchRequests(d) - kube0; v != 0 {
		t.Errorf("idle polls made %v Kubernetes requests", v)
	}

	start := time.Now()
	if err := s.AddMembers(execs, "member", dn["dave"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "member added", alpha, start, "alice", "bob", "carol", "dave")

	start = time.Now()
	if err := s.RemoveMembers(execs, "member", dn["bob"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "member removed", alpha, start, "alice", "carol", "dave")

	start = time.Now()
	if err := s.SetEnabled(dn["alice"], false); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "user disabled", alpha, start, "carol", "dave")

	start = time.Now()
	if err := s.AddMembers(inner, "member", dn["bob"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "nested group changed", alpha, start, "bob", "carol", "dave")

	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Errorf("cycles_total = %v, want 1", v)
	}
	if rv := e.binding(beta).ResourceVersion; rv != betaRV {
		t.Errorf("beta's binding was written though no change touched it")
	}
}

// TestIncrementalNewDirectoryProject: with projects.fromGroups, a group
// created for a new project is seen by a poll, and a full cycle gives the
// project its namespace and its users within seconds.
func TestIncrementalNewDirectoryProject(t *testing.T) {
	e := newEnv(t)
	e.user("alice", true)
	e.user("gus", true)
	e.group("runai-alpha-executors", "alice")
	// alpha's namespace exists, so the first cycle creates none (a created
	// namespace queues another cycle, which would find gamma by itself).
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	addr := freeAddr(t)
	cfg := e.config(`groups:
  executors: ["runai-{project}-executors"]
projects:
  namespaceLabel: runai/queue
  createNamespaces: true
  fromGroups:
    pattern: "runai-{project}-executors"
` + incrementalYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	e.waitUsers(model.ExecutorRef("runai-alpha"), 10*time.Second, "alice")
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Fatalf("cycles_total = %v before the change, want 1", v)
	}

	start := time.Now()
	e.group("runai-gamma-executors", "gus")
	expectPropagated(e, "new directory project", model.ExecutorRef("runai-gamma"), start, "gus")
	if labels, _, ok := e.nsLabels("runai-gamma"); !ok || labels["runai/queue"] != "gamma" {
		t.Errorf("namespace runai-gamma: exists %v, labels %v", ok, labels)
	}
	if v := d.metric("runai_ldap_sync_full_cycles_forced_total", `reason="new_project"`); v < 1 {
		t.Errorf("full_cycles_forced_total{new_project} = %v", v)
	}
	// The namespace the cycle created comes back through the namespace
	// watch; being our own write, it queues no further cycle.
	time.Sleep(3 * time.Second)
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 2 {
		t.Errorf("cycles_total = %v, want 2 (start, and the one the new group forced)", v)
	}
}
