package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Fault tests: each injects a fault into the real Samba AD DC or
// kube-apiserver while the daemon runs, and asserts that no subject is
// lost, the daemon keeps running, the metrics show the fault, and it
// recovers by itself once the fault is gone.

// TestDirectoryFaultsRemoveNoOneAndRecover injects the connection-level
// faults with the default configuration (change polls and repairs on).
func TestDirectoryFaultsRemoveNoOneAndRecover(t *testing.T) { directoryFaults(t, true) }

// TestDirectoryFaultsMidCycle adds the faults injected in the middle of a
// cycle's reads. Change polls are off there: the fault is injected at the
// first search after a cycle starts, which must be the cycle's own (polls
// and their faults are covered by the incremental tests).
func TestDirectoryFaultsMidCycle(t *testing.T) { directoryFaults(t, false) }

func directoryFaults(t *testing.T, defaults bool) {
	e := newEnv(t)
	seedSample(e)
	px := newProxy(t, "127.0.0.1:636")
	ca := e.caCopy()
	addr := freeAddr(t)
	extra := ""
	if !defaults {
		extra = "incremental: {enabled: false}\n"
	}
	cfg := e.configVia("ldaps://127.0.0.1:"+px.port(), ca, "2s", groupsYAML+sampleProjects+daemonYAML+
		extra+fmt.Sprintf("server: {address: %q}\n", addr))
	ctx := context.Background()

	// Unreachable at start: the daemon starts anyway, writes nothing,
	// retries with a growing backoff, is healthy but not ready.
	before := e.snapshot(sampleRefs...)
	e.samba.Down()
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	retries := d.waitLog("directory contact backs off after a failure", 3, 60*time.Second)
	if a, b := fmt.Sprint(retries[0]["in"]), fmt.Sprint(retries[2]["in"]); a == b {
		t.Errorf("backoff does not grow: %v then %v", a, b)
	}
	if _, code := d.get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d while the directory is down", code)
	}
	if _, code := d.get("/readyz"); code != 503 {
		t.Errorf("/readyz = %d before any successful cycle, want 503", code)
	}
	if v := d.metric("runai_ldap_sync_cycles_total", `result="failure"`); v < 3 {
		t.Errorf("cycles_total{failure} = %v", v)
	}
	if v := d.metric("runai_ldap_sync_ldap_errors_total", `operation="connect"`); v < 3 {
		t.Errorf("ldap_errors_total{connect} = %v", v)
	}
	if d.count("binding updated") != 0 {
		t.Error("wrote while the directory was unreachable")
	}
	e.expectNoneLost(before, "directory unreachable at start")
	if err := e.samba.Up(ctx); err != nil {
		t.Fatal(err)
	}
	d.waitReady(30 * time.Second) // by its own retry
	expectSampleSynced(e, 10*time.Second)

	trigger := 0
	// fault injects a fault, makes the daemon run a cycle, checks that the
	// cycle failed (nothing could be read) or was partial (groups failed)
	// for the right reason and removed no one, then heals the fault and
	// waits for the daemon's own retry to succeed.
	fault := func(name, result, wantErr, ldapOp string, inject, heal func()) {
		t.Helper()
		t.Logf("fault: %s", name)
		before := e.snapshot(sampleRefs...)
		logMsg := map[string]string{"failure": "cycle failed", "partial": "cycle partial"}[result]
		fails := d.metric("runai_ldap_sync_cycles_total", `result="`+result+`"`)
		ok := d.metric("runai_ldap_sync_cycles_total", `result="success"`)
		ldapErrs := d.metric("runai_ldap_sync_ldap_errors_total", `operation="`+ldapOp+`"`)
		lastOK := d.metric("runai_ldap_sync_last_success_timestamp_seconds", "")
		failedLines := d.count(logMsg)
		inject()
		trigger++
		e.bumpProjects(trigger)
		d.waitMetric("runai_ldap_sync_cycles_total", `result="`+result+`"`, fails+1, 60*time.Second)
		lines := d.waitLog(logMsg, failedLines+1, 10*time.Second)
		if msg := strings.ToLower(fmt.Sprint(lines[failedLines]["error"])); !strings.Contains(msg, strings.ToLower(wantErr)) {
			t.Errorf("%s: cycle error does not say %q: %s", name, wantErr, msg)
		}
		if v := d.metric("runai_ldap_sync_ldap_errors_total", `operation="`+ldapOp+`"`); v <= ldapErrs {
			t.Errorf("%s: ldap_errors_total{operation=%q} did not grow (%v)", name, ldapOp, v)
		}
		e.expectNoneLost(before, name)
		if _, code := d.get("/healthz"); code != 200 || !d.alive() {
			t.Fatalf("%s: daemon not healthy (healthz %d, alive %v)", name, code, d.alive())
		}
		heal()
		d.waitMetric("runai_ldap_sync_cycles_total", `result="success"`, ok+1, 60*time.Second)
		if v := d.metric("runai_ldap_sync_last_success_timestamp_seconds", ""); v < lastOK {
			t.Errorf("%s: last success went back: %v < %v", name, v, lastOK)
		}
		e.expectNoneLost(before, name+" (after recovery)")
		expectSampleSynced(e, 10*time.Second)
	}

	const wrongPassword = "Wrong-Pa55-not-the-one"
	fault("wrong bind password", "failure", "refused", "connect",
		func() { writeFile(t, e.pwFile, []byte(wrongPassword+"\n")) },
		func() { writeFile(t, e.pwFile, []byte(e.password+"\n")) })

	goodCA, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := harness.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	fault("certificate that does not verify", "failure", "unknown authority", "connect",
		func() { writeFile(t, ca, otherCA.CertPEM) },
		func() { writeFile(t, ca, goodCA) })

	fault("server accepts connections but never answers", "failure", "deadline exceeded", "connect",
		func() { px.mode.Store(proxyBlackhole) },
		func() { px.mode.Store(proxyPass); px.cut() })

	if !defaults {
		midCycleFaults(t, e, d, px, fault)
	}

	// Still syncing real changes after all that.
	e.removeMembers("runai-alpha-executors", "bob")
	trigger++
	e.bumpProjects(trigger)
	e.waitUsers(alphaExec, 30*time.Second, "alice", "carol", "erin", "hand-added")
	if !d.alive() {
		t.Fatal("daemon died")
	}

	// No output of any kind carries the bind password, right or wrong.
	metrics, _ := d.get("/metrics")
	events, err := e.cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evJSON, _ := json.Marshal(events)
	if len(events.Items) == 0 {
		t.Error("no Events recorded")
	}
	for name, out := range map[string]string{"logs": d.logs.String(), "metrics": metrics, "events": string(evJSON)} {
		for _, pw := range []string{e.password, wrongPassword} {
			if strings.Contains(out, pw) {
				t.Errorf("a bind password appears in the %s", name)
			}
		}
	}
	if code := d.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

// midCycleFaults makes the directory fail in the middle of a cycle's reads:
// the cycle is partial (its groups failed), removes no one, and recovers.
func midCycleFaults(t *testing.T, e *env, d *daemon, px *proxy, fault func(name, result, wantErr, ldapOp string, inject, heal func())) {
	ctx := context.Background()
	// searching waits until the daemon has sent a search (so it is bound,
	// and in the middle of reading the directory), then runs fn.
	searching := func(fn func()) chan struct{} {
		base := d.metric("runai_ldap_sync_ldap_searches_total", "")
		done := make(chan struct{})
		go func() {
			defer close(done)
			for d.metric("runai_ldap_sync_ldap_searches_total", "") <= base {
				time.Sleep(2 * time.Millisecond)
			}
			fn()
		}()
		return done
	}

	// Slow beyond the timeout in the middle of the cycle: once the first
	// search is sent, every answer takes longer than ldap.timeout.
	var slowDone chan struct{}
	fault("answers slower than the timeout after the bind", "partial", "group", "group",
		func() {
			// Slow answers first keep the cycle in its directory phase, so
			// the switch to answers beyond the timeout lands inside it.
			px.setDelay(0, 150*time.Millisecond)
			slowDone = searching(func() { px.setDelay(0, 4*time.Second) })
		},
		func() { <-slowDone; px.setDelay(0, 0); px.cut() })

	// Samba stopped in the middle of a cycle: slow answers keep the cycle
	// in the directory phase; Samba stops once the searches have begun.
	var downDone chan struct{}
	fault("directory stopped mid-cycle", "partial", "group", "group",
		func() {
			px.setDelay(0, 150*time.Millisecond)
			downDone = searching(e.samba.Down)
		},
		func() {
			<-downDone
			px.setDelay(0, 0)
			if err := e.samba.Up(ctx); err != nil {
				t.Fatal(err)
			}
		})
}

func TestAPIServerRestartDuringCycle(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	// Slow directory answers keep the first cycle busy long enough to stop
	// the API server under it.
	px := newProxy(t, "127.0.0.1:636")
	px.setDelay(0, 100*time.Millisecond)
	addr := freeAddr(t)
	cfg := e.configVia("ldaps://127.0.0.1:"+px.port(), e.samba.CAFile, "5s", groupsYAML+sampleProjects+
		"schedule: \"@every 1h\"\nretry: {minBackoff: 1s, maxBackoff: 4s}\nrepair: {minInterval: 1s}\n"+
		fmt.Sprintf("server: {address: %q}\n", addr))
	before := e.snapshot(sampleRefs...)
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitMetric("runai_ldap_sync_ldap_searches_total", "", 1, 60*time.Second)
	e.api.Stop()
	t.Log("kube-apiserver stopped during the cycle's directory phase")
	// The cycle fails after its directory phase at its first API request:
	// reading the guard's store, before any binding is planned (a partial
	// cycle: the directory was read, nothing written).
	failed := d.waitLog("cycle failed", 1, 60*time.Second)
	if err := fmt.Sprint(failed[0]["error"]); !strings.Contains(err, "read the guard state") {
		t.Errorf("the cycle failed on %q, want on reading the guard's store", err)
	}
	if d.count("binding updated")+d.count("binding write failed") != 0 {
		t.Error("a binding write was tried with the API server down and the store unread")
	}
	if err := e.api.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Log("kube-apiserver restarted")
	d.waitMetric("runai_ldap_sync_cycles_total", `result="success"`, 1, 60*time.Second)
	e.expectNoneLost(before, "API server restart")
	expectSampleSynced(e, 30*time.Second)
	e.expectNoDuplicates(sampleRefs...)
	if !d.alive() {
		t.Fatal("daemon died")
	}
	// The informers reconnected: a hand deletion is repaired within seconds.
	if err := e.cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), model.ViewerBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// After a long outage the informers re-list within their backoff (up
	// to a minute); the re-list reports the deletion, which is repaired.
	start := time.Now()
	e.waitUsers(viewer, 90*time.Second, "gina", "vera")
	t.Logf("deleted binding repaired in %v after the restart", time.Since(start).Round(time.Millisecond))
	if code := d.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

func TestConcurrentHandEditsAreNeverLost(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	addr := freeAddr(t)
	cfg := e.config(groupsYAML + sampleProjects + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	expectSampleSynced(e, 10*time.Second)

	// Four humans edit alpha's binding at once, each adding users of its
	// own and now and then removing a user the daemon manages (which the
	// daemon repairs), while full cycles run too.
	ctx := context.Background()
	const humans, edits = 4, 25
	backoff := wait.Backoff{Steps: 100, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Cap: 300 * time.Millisecond}
	var wg sync.WaitGroup
	errs := make(chan error, humans*edits+100)
	for h := range humans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range edits {
				err := retry.RetryOnConflict(backoff, func() error {
					rb, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
					if err != nil {
						return err
					}
					rb.Subjects = append(rb.Subjects, kube.UserSubject(fmt.Sprintf("human-%d-%d", h, i)))
					if h == 0 && i == 0 {
						rb.Subjects = append(rb.Subjects, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "oidc:ml-admins"})
					}
					if i%3 == h%3 {
						var keep []rbacv1.Subject
						for _, s := range rb.Subjects {
							if s.Name != "alice" && s.Name != "carol" {
								keep = append(keep, s)
							}
						}
						rb.Subjects = keep
					}
					_, err = e.cs.RbacV1().RoleBindings("runai-alpha").Update(ctx, rb, metav1.UpdateOptions{})
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("human %d edit %d: %w", h, i, err)
				}
				time.Sleep(time.Duration(150+h*30) * time.Millisecond)
			}
		}()
	}
	// Meanwhile full cycles run, and one-off `once` runs write too (a
	// second writer using the same code path, without leader election).
	stop := make(chan struct{})
	var others sync.WaitGroup
	others.Add(2)
	go func() {
		defer others.Done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(700 * time.Millisecond):
				e.bumpProjects(n)
			}
		}
	}()
	onceRuns := 0
	go func() {
		defer others.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := exec.Command(binary, "once", "--config", cfg, "--kubeconfig", e.kubeconfig()).CombinedOutput()
			if err != nil {
				errs <- fmt.Errorf("once next to the daemon: %v\n%s", err, out)
			}
			onceRuns++
		}
	}()
	wg.Wait()
	close(stop)
	others.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	want := []string{"alice", "bob", "carol", "erin", "hand-added"}
	for h := range humans {
		for i := range edits {
			want = append(want, fmt.Sprintf("human-%d-%d", h, i))
		}
	}
	e.waitUsers(alphaExec, 30*time.Second, want...)
	e.expectNoDuplicates(sampleRefs...)
	b := e.binding(alphaExec)
	group := false
	for _, s := range b.Subjects {
		group = group || (s.Kind == rbacv1.GroupKind && s.Name == "oidc:ml-admins")
	}
	if !group {
		t.Error("the human's Group subject was lost")
	}
	owned, err := b.Owned()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range owned {
		if strings.HasPrefix(m, "human-") {
			t.Errorf("a human's user %q is recorded as managed by the tool", m)
		}
	}
	repairs := d.metric("runai_ldap_sync_repairs_total", `result="success"`)
	if repairs < 1 {
		t.Errorf("no repair ran (repairs_total = %v)", repairs)
	}
	t.Logf("%d hand edits and %d `once` runs; daemon: %v repairs, %v full cycles, %v write conflicts re-applied",
		humans*edits, onceRuns, repairs, d.metric("runai_ldap_sync_cycles_total", `result="success"`), d.metric("runai_ldap_sync_kube_conflicts_total", ""))
	// A later cycle keeps the humans' users (policy sync never removes them).
	e.bumpProjects(1000)
	d.waitLog("cycle done", 1, 10*time.Second)
	e.waitUsers(alphaExec, 10*time.Second, want...)
}

func TestTwoReplicasExactlyOneWrites(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	addrA, addrB := freeAddr(t), freeAddr(t)
	body := groupsYAML + sampleProjects + daemonYAML
	cfgA := e.config(body + fmt.Sprintf("server: {address: %q}\n", addrA))
	cfgB := e.config(body + fmt.Sprintf("server: {address: %q}\n", addrB))
	ctx := context.Background()

	a := startDaemon(t, cfgA, e.kubeconfig(), addrA)
	idA := fmt.Sprint(a.waitLog("became leader", 1, 60*time.Second)[0]["identity"])
	a.waitReady(60 * time.Second)
	expectSampleSynced(e, 10*time.Second)
	b := startDaemon(t, cfgB, e.kubeconfig(), addrB)
	b.waitLog("standing by", 1, 30*time.Second)
	if body, code := b.get("/readyz"); code != 200 || !strings.Contains(body, "standby") {
		t.Errorf("standby /readyz = %d %q, want 200 standby", code, body)
	}
	if v := b.metric("runai_ldap_sync_leader", ""); v != 0 {
		t.Errorf("standby leader gauge = %v", v)
	}
	if v := a.metric("runai_ldap_sync_leader", ""); v != 1 {
		t.Errorf("leader gauge = %v", v)
	}
	lease, err := e.cs.CoordinationV1().Leases("runai").Get(ctx, "runai-ldap-sync", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != idA {
		t.Fatalf("lease holder %v, want %s", lease.Spec.HolderIdentity, idA)
	}

	// Drift and a full cycle: only the leader acts.
	if err := e.cs.RbacV1().ClusterRoleBindings().Delete(ctx, model.ViewerBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(viewer, 20*time.Second, "gina", "vera")
	e.bumpProjects(1)
	a.waitLog("cycle done", 2, 20*time.Second)
	time.Sleep(2 * time.Second) // give the standby every chance to misbehave
	if n := b.count("binding updated") + b.count("cycle done") + b.count("cycle failed") + b.count("repair"); n != 0 {
		t.Errorf("the standby ran %d cycles, repairs or writes", n)
	}
	ev := e.waitEvent(viewer, controller.ReasonCreated, 10*time.Second, "drift repair")
	if ev.Source.Host != idA {
		t.Errorf("repair Event from %q, want the leader %q", ev.Source.Host, idA)
	}

	// The leader dies without releasing the lease: the standby takes over
	// within the lease duration (4s) and writes from then on.
	killed := time.Now()
	a.stop(syscall.SIGKILL, 10*time.Second)
	idB := fmt.Sprint(b.waitLog("became leader", 1, 20*time.Second)[0]["identity"])
	took := time.Since(killed)
	t.Logf("failover took %v", took.Round(time.Millisecond))
	if took > 4*time.Second+4*time.Second {
		t.Errorf("failover took %v, more than the lease duration (4s) and slack", took)
	}
	b.waitReady(30 * time.Second)
	if err := e.cs.RbacV1().RoleBindings("runai").Delete(ctx, model.IndexMapBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(indexMap, 20*time.Second, "alice", "bob", "carol", "erin", "frank")
	if ev := e.waitEvent(indexMap, controller.ReasonCreated, 10*time.Second, "drift repair"); ev.Source.Host != idB {
		t.Errorf("repair Event from %q, want the new leader %q", ev.Source.Host, idB)
	}

	// A clean shutdown releases the lease at once.
	if code := b.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	lease, err = e.cs.CoordinationV1().Leases("runai").Get(ctx, "runai-ldap-sync", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		t.Errorf("lease still held by %q after SIGTERM", *lease.Spec.HolderIdentity)
	}
}

func TestSIGTERMFinishesTheWriteInFlight(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	kpx := newProxy(t, e.apiAddr())
	addr := freeAddr(t)
	cfg := e.config(groupsYAML + sampleProjects + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfigVia(kpx.addr()), addr)
	d.waitReady(60 * time.Second)
	expectSampleSynced(e, 10*time.Second)

	// zoe joins: alpha, beta, the viewers and the index map must change,
	// and the trigger project's binding be created: five writes, each made
	// slow by the proxy in front of the API server.
	e.user("zoe", true)
	for _, g := range []string{"runai-alpha-executors", "runai-beta-executors", "runai-alpha-viewers"} {
		if err := e.samba.AddMembers(e.groups[g], e.users["zoe"]); err != nil {
			t.Fatal(err)
		}
	}
	refs := append(sampleRefs, model.ExecutorRef("trigger"))
	rvs := map[model.Ref]string{}
	for _, ref := range refs {
		if b := e.binding(ref); b != nil {
			rvs[ref] = b.ResourceVersion
		}
	}
	base := d.count("binding updated")
	kpx.setDelay(time.Second, 0)
	e.bumpProjects(1)
	d.waitLog("binding updated", base+1, 60*time.Second)
	if code := d.stop(syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	kpx.setDelay(0, 0)

	lines := d.logLines("binding updated")[base:]
	written := map[string]bool{}
	for _, l := range lines {
		written[fmt.Sprint(l["binding"])] = true
	}
	t.Logf("%d of 5 writes done when the process exited: %v", len(lines), written)
	if len(lines) < 2 {
		t.Errorf("the write in flight at SIGTERM did not complete (%d writes logged)", len(lines))
	}
	if len(lines) >= 5 {
		t.Errorf("writes went on after SIGTERM (%d logged)", len(lines))
	}
	if d.count("cycle failed") == 0 || !strings.Contains(d.logs.String(), "interrupted before writing") {
		t.Error("no log of the writes not started")
	}
	// Every binding is either fully written (and logged) or untouched.
	for _, ref := range refs {
		b := e.binding(ref)
		changed := b != nil && b.ResourceVersion != rvs[ref]
		if changed != written[ref.String()] {
			t.Errorf("%s changed=%v but logged=%v", ref, changed, written[ref.String()])
		}
		if changed && ref != model.ExecutorRef("trigger") {
			has := false
			for _, u := range b.Users() {
				has = has || u == "zoe"
			}
			if !has {
				t.Errorf("%s was written without its change", ref)
			}
		}
	}
	e.expectNoDuplicates(refs...)
}

func TestRemovalGuardEndToEnd(t *testing.T) {
	e := newEnv(t)
	names := e.numberedUsers("g", 10)
	e.group("runai-alpha-executors", names...)
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	addr := freeAddr(t)
	cfg := e.config(`groups:
  executors: ["runai-{project}-executors"]
projects:
  namespaceLabel: runai/queue
` + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	e.waitUsers(alphaExec, 10*time.Second, names...)

	// Eight of ten leave the group (a botched group edit): held.
	e.removeMembers("runai-alpha-executors", names[2:]...)
	e.bumpProjects(1)
	held := d.waitLog("changes held by the guard", 2, 30*time.Second) // alpha and the index map
	found := false
	for _, l := range held {
		if l["binding"] == alphaExec.String() && l["reason"] == "too_large" && fmt.Sprint(l["held"]) == fmt.Sprint(toAny(names[2:])) {
			found = true
		}
	}
	if !found {
		t.Errorf("no held-removal log line for alpha: %v", held)
	}
	e.waitEvent(alphaExec, controller.ReasonRemovalsHeld, 10*time.Second, "removal held by guard (8 removals, more than guard.maxRemovePercent=50%", "g2, g3", "annotate configmap "+model.StateConfigMap)
	d.waitMetric("runai_ldap_sync_binding_held_removals", `namespace="runai-alpha",reason="too_large"`, 8, 10*time.Second)
	e.expectUsers(alphaExec, names...)

	// Approve in the guard's store, with the key diff prints for exactly
	// these removals: the next poll finds it and the repair applies it.
	key := decodePlan(t, e.mustRun("diff", "--config", cfg, "-o", "json").stdout)[alphaExec.String()].ApprovalKey
	if !strings.HasPrefix(key, "sha256:") {
		t.Fatalf("diff prints no approval key: %q", key)
	}
	e.approve(key)
	e.waitUsers(alphaExec, 15*time.Second, "g0", "g1")
	if snap := e.store(); len(snap.Approvals) != 0 {
		t.Errorf("used approval left in the store: %v", snap.Approvals)
	}
	e.waitEvent(alphaExec, controller.ReasonChanged, 10*time.Second, "removed by group sync", "the guard's hold was approved", "g2, g3, g4, g5, g6, g7, g8, g9")
	if v := d.metric("runai_ldap_sync_binding_held_removals", `namespace="runai-alpha"`); v != 0 {
		t.Errorf("held removals still reported for alpha: %v", v)
	}

	// The index map is still held; a one-off run approves it, by name,
	// from the command line.
	e.expectUsers(indexMap, names...)
	e.mustRun("once", "--config", cfg, "--approve-removals", indexMap.String())
	e.waitUsers(indexMap, 10*time.Second, "g0", "g1")
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// TestStaleLeaseIsTakenOver: a lease left by a replica that died while
// leading is taken over once it expires, with no manual clean-up.
func TestStaleLeaseIsTakenOver(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()
	addr := freeAddr(t)
	cfg := e.config(groupsYAML + sampleProjects + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	// A replica that died while leading left this lease behind.
	holder := "dead-replica_1234"
	dur := int32(4)
	now := metav1.NowMicro()
	lease := map[string]any{
		"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
		"metadata": map[string]any{"name": "runai-ldap-sync", "namespace": "runai"},
		"spec":     map[string]any{"holderIdentity": holder, "leaseDurationSeconds": dur, "acquireTime": now, "renewTime": now},
	}
	raw, _ := json.Marshal(lease)
	if err := e.cs.CoordinationV1().RESTClient().Post().Namespace("runai").Resource("leases").Body(raw).Do(ctx).Error(); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	start := time.Now()
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitLog("became leader", 1, 30*time.Second)
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("took over a live lease after %v", took)
	}
	expectSampleSynced(e, 30*time.Second)
}

// TestApplyUnderConflictsLosesNothing drives kube.Client.Apply (the only
// write path) against humans editing the same binding, each Apply starting
// from a stale read so that it must go through the conflict path: every
// write that succeeds is there at the end, exactly once, and only the
// tool's users are recorded as the tool's.
func TestApplyUnderConflictsLosesNothing(t *testing.T) {
	ctx := context.Background()
	api, err := harness.StartAPIServer(ctx, etcd, t.TempDir())
	if err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	t.Cleanup(api.Stop)
	kc, err := kube.NewClient(api.RestConfig(), 1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	cs := kc.Clientset()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := model.ExecutorRef("p")
	if _, err := kc.Apply(ctx, model.Change{Ref: ref, Create: true, Add: []string{"seed"}}, nil); err != nil {
		t.Fatal(err)
	}
	stale, err := kc.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}

	const writers, each = 3, 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied, failed := map[string]bool{}, 0
	humanAdded := map[string]bool{}
	backoff := wait.Backoff{Steps: 100, Duration: 5 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Cap: 200 * time.Millisecond}
	for w := range writers {
		wg.Add(2)
		go func() { // the tool
			defer wg.Done()
			for i := range each {
				u := fmt.Sprintf("bot-%d-%d", w, i)
				_, err := kc.Apply(ctx, model.Change{Ref: ref, Add: []string{u}}, stale)
				mu.Lock()
				if err == nil {
					applied[u] = true
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
		go func() { // a human
			defer wg.Done()
			for i := range each {
				u := fmt.Sprintf("human-%d-%d", w, i)
				err := retry.RetryOnConflict(backoff, func() error {
					rb, err := cs.RbacV1().RoleBindings("p").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
					if err != nil {
						return err
					}
					rb.Subjects = append(rb.Subjects, kube.UserSubject(u))
					_, err = cs.RbacV1().RoleBindings("p").Update(ctx, rb, metav1.UpdateOptions{})
					return err
				})
				mu.Lock()
				if err == nil {
					humanAdded[u] = true
				} else {
					t.Errorf("human edit %s: %v", u, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b, err := kc.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]int{}
	for _, u := range b.Users() {
		present[u]++
	}
	for _, s := range b.Subjects {
		present[s.Name+"#subjects"]++
		if present[s.Name+"#subjects"] > 1 {
			t.Errorf("%s listed twice", s.Name)
		}
	}
	for u := range applied {
		if present[u] == 0 {
			t.Errorf("lost update: the tool's %s was applied but is gone", u)
		}
	}
	for u := range humanAdded {
		if present[u] == 0 {
			t.Errorf("lost update: the human's %s is gone", u)
		}
	}
	managed := map[string]bool{}
	owned, err := b.Owned()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range owned {
		managed[u] = true
		if strings.HasPrefix(u, "human-") {
			t.Errorf("the human's %s is recorded as the tool's", u)
		}
	}
	for u := range applied {
		if !managed[u] {
			t.Errorf("the tool's %s is not recorded as the tool's", u)
		}
	}
	conflicts := kc.Stats.Conflicts()
	t.Logf("%d tool writes applied (%d gave up after repeated conflicts), %d human edits, %d conflicts re-read and re-applied",
		len(applied), failed, len(humanAdded), conflicts)
	if conflicts < writers {
		t.Errorf("only %d conflicts: the test did not exercise the conflict path", conflicts)
	}
	if failed > 0 {
		t.Errorf("%d tool writes gave up after %s", failed, "repeated conflicts (the daemon would retry them, but the backoff should make this rare)")
	}
}

// TestDriftRepairedWithinSecondsWithoutTheDirectory: a hand edit or
// deletion of a managed binding is repaired by the running daemon within
// seconds, from the last desired state (the directory may be down), while
// edits the plan does not care about and the daemon's own writes cause no
// write at all; cycles read the bindings from the informers, not the API.
func TestDriftRepairedWithinSecondsWithoutTheDirectory(t *testing.T) {
	apiOpts, audit := withAuditLog(t)
	e := newEnvWith(t, apiOpts)
	seedSample(e)
	ctx := context.Background()
	addr := freeAddr(t)
	cfg := e.config(groupsYAML + sampleProjects + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	expectSampleSynced(e, 10*time.Second)
	time.Sleep(2 * time.Second)
	// The first cycle's own writes were not taken for drift.
	if v := d.metric("runai_ldap_sync_drift_events_total", ""); v != 0 {
		t.Errorf("own writes counted as drift: drift_events_total = %v", v)
	}
	if v := d.metric("runai_ldap_sync_repairs_total", ""); v != 0 {
		t.Errorf("own writes repaired: repairs_total = %v", v)
	}

	// A full cycle reads the bindings from the informers: no LIST, and no
	// GET but the guard store's one read (approvals may have been added;
	// its writes go from that copy and re-read only on a conflict).
	mark := len(audit.requests(t, daemonUserAgent))
	e.bumpProjects(1)
	d.waitLog("cycle done", 2, 20*time.Second)
	// (A request's audit line is written as it completes: wait for the last.)
	waitFor(t, 5*time.Second, "the cycle's reads in the audit log", func() error {
		storeReads, storeWrites := 0, 0
		var others []string
		for _, r := range audit.requests(t, daemonUserAgent)[mark:] {
			store := r.ObjectRef.Resource == "configmaps" && r.ObjectRef.Namespace == "runai" && r.ObjectRef.Name == model.StateConfigMap
			switch {
			case store && r.Verb == "get":
				storeReads++
			case store && (r.Verb == "update" || r.Verb == "create"):
				storeWrites++
			case r.Verb == "get" || r.Verb == "list":
				others = append(others, r.Verb+" "+r.RequestURI)
			}
		}
		if len(others) > 0 || storeReads != 1 {
			return fmt.Errorf("the cycle read the guard's store %d times (want 1) and wrote it %d times, and read %v", storeReads, storeWrites, others)
		}
		t.Logf("the cycle read the guard's store once and wrote it %d times", storeWrites)
		return nil
	})

	// From here on the directory is down: repairs must not need it.
	e.samba.Down()
	searches := d.metric("runai_ldap_sync_ldap_searches_total", "")

	// A hand-added user and a Group: nothing to repair, nothing written.
	rb, err := e.cs.RbacV1().RoleBindings("ml-beta").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb.Subjects = append(rb.Subjects, kube.UserSubject("contractor"), rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "oidc:ml-admins"})
	rb, err = e.cs.RbacV1().RoleBindings("ml-beta").Update(ctx, rb, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if b := e.binding(betaExec); b.ResourceVersion != rb.ResourceVersion {
		t.Errorf("a harmless hand edit was rewritten")
	}

	// A managed user removed by hand is put back within seconds.
	rb.Subjects = []rbacv1.Subject{kube.UserSubject("contractor"), {APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "oidc:ml-admins"}}
	if _, err := e.cs.RbacV1().RoleBindings("ml-beta").Update(ctx, rb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.waitUsers(betaExec, 10*time.Second, "bob", "contractor", "frank")
	t.Logf("hand removal repaired in %v", time.Since(start).Round(time.Millisecond))
	e.waitEvent(betaExec, controller.ReasonChanged, 10*time.Second, "drift repair after a change by someone else", "added by group sync: bob, frank")

	// A deleted binding is recreated within seconds.
	if err := e.cs.RbacV1().RoleBindings("runai").Delete(ctx, model.IndexMapBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	e.waitUsers(indexMap, 10*time.Second, "alice", "bob", "carol", "erin", "frank")
	t.Logf("deleted binding recreated in %v", time.Since(start).Round(time.Millisecond))

	// A burst of edits coalesces: at most one repair per repair.minInterval.
	repairs := d.metric("runai_ldap_sync_repairs_total", `result="success"`)
	burst := time.Now()
	for i := range 10 {
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			rb, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
			if err != nil {
				return err
			}
			var keep []rbacv1.Subject
			for _, s := range rb.Subjects {
				if s.Name != "alice" {
					keep = append(keep, s)
				}
			}
			rb.Subjects = append(keep, kube.UserSubject(fmt.Sprintf("burst-%d", i)))
			_, err = e.cs.RbacV1().RoleBindings("runai-alpha").Update(ctx, rb, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.waitUsers(alphaExec, 10*time.Second, "alice", "bob", "carol", "erin", "hand-added",
		"burst-0", "burst-1", "burst-2", "burst-3", "burst-4", "burst-5", "burst-6", "burst-7", "burst-8", "burst-9")
	time.Sleep(1500 * time.Millisecond)
	n := d.metric("runai_ldap_sync_repairs_total", `result="success"`) - repairs
	window := time.Since(burst).Seconds()
	t.Logf("10 edits in %.1fs caused %v repairs (repair.minInterval 1s)", window, n)
	if n < 1 || n > window+1 {
		t.Errorf("%v repairs for a burst over %.1fs: not rate-limited to one per second", n, window)
	}
	if v := d.metric("runai_ldap_sync_ldap_searches_total", ""); v != searches {
		t.Errorf("repairs read the directory (%v searches)", v-searches)
	}
	if err := e.samba.Up(ctx); err != nil {
		t.Fatal(err)
	}
}
