package integration

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// The ownership rules (docs/concepts.md "Moving from hand-kept bindings",
// docs/safety.md), each in the scenario it is for, against the real
// Samba AD and kube-apiserver with the default policy, guard and
// ownership settings.

const execOnlyYAML = `groups:
  executors: ["runai-{project}-executors"]
projects:
  namespaceLabel: runai/queue
`

// handKept creates the executor binding of a namespace the way an admin
// kept it by hand: users, no ownership record.
func (e *env) handKept(ns string, users ...string) {
	e.t.Helper()
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding, Namespace: ns},
		RoleRef: kube.ExpectedRoleRef(model.ExecutorBinding)}
	for _, u := range users {
		rb.Subjects = append(rb.Subjects, kube.UserSubject(u))
	}
	if _, err := e.cs.RbacV1().RoleBindings(ns).Create(context.Background(), rb, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) expectRecord(ref model.Ref, want ...string) {
	e.t.Helper()
	b := e.binding(ref)
	owned, err := b.Owned()
	if err != nil || !reflect.DeepEqual(append([]string{}, owned...), append([]string{}, want...)) {
		e.t.Errorf("%s ownership record = %v (%v), want %v", ref, owned, err, want)
	}
}

// TestMigrationFromHandKeptBinding: a cluster moving from hand-kept
// bindings. alice was put there by hand and the directory grants her: she
// is adopted, so when she leaves the group she is removed. zed was put
// there by hand and is granted by nothing: a leftover, kept, listed by
// diff and explain.
func TestMigrationFromHandKeptBinding(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"alice", "bob", "carol", "zed"} {
		e.user(u, true)
	}
	e.group("runai-alpha-executors", "alice", "bob", "carol")
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	e.handKept("runai-alpha", "alice", "carol", "zed")
	cfg := e.config(execOnlyYAML)

	plans := decodePlan(t, e.mustRun("diff", "--config", cfg, "-o", "json").stdout)
	p := plans[alphaExec.String()]
	if !reflect.DeepEqual(p.Add, []string{"bob"}) || !reflect.DeepEqual(p.Adopt, []string{"alice", "carol"}) ||
		!reflect.DeepEqual(p.Leftovers, []string{"zed"}) || len(p.Remove) > 0 {
		t.Fatalf("first diff: %+v", p)
	}
	text := e.mustRun("diff", "--config", cfg).stdout
	for _, want := range []string{"= alice (granted by the directory", "? zed (leftover", "+ bob"} {
		if !strings.Contains(text, want) {
			t.Errorf("diff does not show %q:\n%s", want, text)
		}
	}

	r := e.mustRun("once", "--config", cfg)
	if !strings.Contains(r.stderr, "leftovers: users in bindings") || !strings.Contains(r.stderr, alphaExec.String()+": zed") {
		t.Errorf("no leftover summary line:\n%s", tail(r.stderr, 20))
	}
	e.expectUsers(alphaExec, "alice", "bob", "carol", "zed")
	e.expectRecord(alphaExec, "alice", "bob", "carol")
	if out := e.mustRun("explain", "--config", cfg, "--user", "zed").stdout; !strings.Contains(out, "a leftover") {
		t.Errorf("explain does not call zed a leftover:\n%s", out)
	}
	// Nothing to adopt any more: no write.
	if plans := decodePlan(t, e.mustRun("diff", "--config", cfg, "-o", "json").stdout); len(plans[alphaExec.String()].Adopt) > 0 {
		t.Errorf("adopted twice: %+v", plans[alphaExec.String()])
	}

	// alice leaves the group: removed like any user the tool added; zed stays.
	e.removeMembers("runai-alpha-executors", "alice")
	e.mustRun("once", "--config", cfg)
	e.expectUsers(alphaExec, "bob", "carol", "zed")
	e.expectRecord(alphaExec, "bob", "carol")

	// ownership.adopt: false keeps the old rule: a hand-kept user is never
	// the tool's.
	e.handKeptAgain(t, cfg)
}

func (e *env) handKeptAgain(t *testing.T, cfg string) {
	e.namespace("runai-beta", map[string]string{"runai/queue": "beta"})
	e.group("runai-beta-executors", "bob")
	e.handKept("runai-beta", "bob")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(raw), "projects:", "ownership: {adopt: false}\nprojects:", 1)
	offCfg := cfg + ".noadopt"
	writeFile(t, offCfg, []byte(off))
	e.mustRun("once", "--config", offCfg)
	e.expectRecord(model.ExecutorRef("runai-beta"))
}

// TestUserPutBackByHandIsNotRemoved: the tool added bob; someone removed
// him by hand, and he left the group (nothing to write: only the record
// still named him). Ownership ended when he was gone from the binding, so
// when someone puts him back by hand, he stays.
func TestUserPutBackByHandIsNotRemoved(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"alice", "bob", "carol", "erin"} {
		e.user(u, true)
	}
	e.group("runai-alpha-executors", "alice", "bob", "carol", "erin")
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	cfg := e.config(execOnlyYAML)
	e.mustRun("once", "--config", cfg)
	e.expectRecord(alphaExec, "alice", "bob", "carol", "erin")

	e.setSubjects("runai-alpha", "alice", "carol", "erin") // bob removed by hand
	e.removeMembers("runai-alpha-executors", "bob")        // and left the group
	p := decodePlan(t, e.mustRun("diff", "--config", cfg, "-o", "json").stdout)[alphaExec.String()]
	if !reflect.DeepEqual(p.Disown, []string{"bob"}) || len(p.Add)+len(p.Remove) > 0 {
		t.Fatalf("diff: %+v", p)
	}
	rv := e.binding(alphaExec).ResourceVersion
	e.mustRun("once", "--config", cfg)
	after := e.binding(alphaExec)
	if after.ResourceVersion == rv {
		t.Fatal("the record was not updated")
	}
	e.expectRecord(alphaExec, "alice", "carol", "erin")
	e.expectUsers(alphaExec, "alice", "carol", "erin")

	e.setSubjects("runai-alpha", "alice", "carol", "erin", "bob") // put back by hand
	e.mustRun("once", "--config", cfg)
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin")
	e.expectRecord(alphaExec, "alice", "carol", "erin")
	p = decodePlan(t, e.mustRun("diff", "--config", cfg, "-o", "json").stdout)[alphaExec.String()]
	if !reflect.DeepEqual(p.Leftovers, []string{"bob"}) {
		t.Errorf("bob is not listed as a leftover: %+v", p)
	}
}

// TestApprovalsLiveInTheStore: an approval annotation on the binding
// (which the project's namespace admin may write) is removed within
// seconds and approves nothing, even with the right key; the wipe of the
// binding is held, and only its key recorded in the guard's store in the
// Run:AI namespace approves it.
func TestApprovalsLiveInTheStore(t *testing.T) {
	e := newEnv(t)
	names := []string{"alice", "bob", "carol", "erin"}
	for _, u := range names {
		e.user(u, true)
	}
	e.group("runai-alpha-executors", names...)
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	addr := freeAddr(t)
	cfg := e.config(execOnlyYAML + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	e.waitUsers(alphaExec, 10*time.Second, names...)

	e.patchExec("runai-alpha", fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, plan.ApproveAnnotation))
	e.waitEvent(alphaExec, controller.ReasonApprovalRemoved, 15*time.Second, "approvals live in the guard's store")
	if _, ok := e.binding(alphaExec).Annotations[plan.ApproveAnnotation]; ok {
		t.Fatal("approval annotation left on the binding")
	}

	// Later, the group is emptied (a botched edit): held.
	e.removeMembers("runai-alpha-executors", names...)
	ev := e.waitEvent(alphaExec, controller.ReasonRemovalsHeld, 30*time.Second, "it would remove every user", "annotate configmap "+model.StateConfigMap)
	e.expectUsers(alphaExec, names...)
	key := approvalKeyIn(t, ev.Message)
	// The right key, on the binding: removed again, approves nothing.
	e.patchExec("runai-alpha", fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, plan.ApproveAnnotation, key))
	e.waitEvent(alphaExec, controller.ReasonApprovalRemoved, 15*time.Second, "what is held now is approved with", strings.TrimPrefix(key, "sha256:"))
	e.expectUsers(alphaExec, names...)
	// The key in the store approves the wipe.
	e.approve(key)
	e.waitUsers(alphaExec, 15*time.Second)
}

// TestRemovalsOneAtATimeThroughPollsAreGuarded: a runaway connector
// removes eight of ten members one at a time, seconds apart. Each poll
// sees one removal, but the guard counts them over guard.window: the
// sixth is over half of the binding and is held, so the binding keeps
// five users instead of emptying down to two.
func TestRemovalsOneAtATimeThroughPollsAreGuarded(t *testing.T) {
	e := newEnv(t)
	names := e.numberedUsers("m", 10)
	e.group("runai-alpha-executors", names...)
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	addr := freeAddr(t)
	// Default incremental polling (every 5s) and guard.
	cfg := e.config(execOnlyYAML + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	e.waitUsers(alphaExec, 10*time.Second, names...)

	kept := func(from int) []string { return append([]string{"m0", "m1"}, names[from:]...) }
	for i, n := range names[2:] {
		e.removeMembers("runai-alpha-executors", n)
		if i < 5 {
			// Seen by a poll and removed.
			e.waitUsers(alphaExec, 20*time.Second, kept(i+3)...)
			continue
		}
		// Held: the window already counts five of ten.
		d.waitMetric("runai_ldap_sync_binding_held_removals", `namespace="runai-alpha"`, float64(i-4), 20*time.Second)
	}
	e.expectUsers(alphaExec, kept(7)...)
	e.expectUsers(indexMap, kept(7)...)
	e.waitEvent(alphaExec, controller.ReasonRemovalsHeld, 10*time.Second, "counting 5 removed in the last guard.window=1h0m0s", "m7, m8, m9")
	// The history is kept by the minute: the creation and the removals may
	// fall in one entry or in several.
	removed := 0
	b := e.store().State.Bindings[alphaExec.String()]
	if b != nil {
		for _, h := range b.History {
			removed += h.Removed
		}
	}
	if removed != 5 {
		t.Errorf("the guard's history in the store counts %d removals, want the 5 made: %+v", removed, b)
	}

	// A restarted daemon (or another leader) reads the window from the
	// store and still holds.
	d.stop(syscall.SIGTERM, 20*time.Second)
	addr2 := freeAddr(t)
	cfg2 := e.config(execOnlyYAML + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr2))
	d2 := startDaemon(t, cfg2, e.kubeconfig(), addr2)
	d2.waitReady(60 * time.Second)
	d2.waitMetric("runai_ldap_sync_binding_held_removals", `namespace="runai-alpha"`, 3, 10*time.Second)
	e.expectUsers(alphaExec, kept(7)...)
}

// TestCorruptRecordStopsNothing: a RoleBinding named like ours in a
// namespace that is no project, with an ownership record that cannot be
// read, is not even looked at; on a project's binding, it is that
// binding's error only (left untouched, Event, metric), never the cycle's.
func TestCorruptRecordStopsNothing(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	e.namespace("scratch", nil)
	e.handKept("scratch", "mallory")
	e.patchExec("scratch", fmt.Sprintf(`{"metadata":{"annotations":{%q:"[\"broken"}}}`, model.ManagedAnnotation))
	cfg := e.config(groupsYAML + sampleProjects)
	e.mustRun("once", "--config", cfg)
	expectSampleSynced(e, 10*time.Second)
	e.expectUsers(model.ExecutorRef("scratch"), "mallory")

	// The same on a project's binding: only that binding stops.
	e.patchExec("runai-alpha", fmt.Sprintf(`{"metadata":{"annotations":{%q:"[\"broken"}}}`, model.ManagedAnnotation))
	e.removeMembers("runai-beta-executors", "frank")
	e.user("henry", true)
	if err := e.samba.AddMembers(e.groups["runai-alpha-executors"], e.users["henry"]); err != nil {
		t.Fatal(err)
	}
	before := e.usersOf(alphaExec)
	r := e.mustRun("once", "--config", cfg)
	if !strings.Contains(r.stderr, "binding left untouched") {
		t.Errorf("no left-untouched line:\n%s", tail(r.stderr, 20))
	}
	if got := e.usersOf(alphaExec); !reflect.DeepEqual(got, before) {
		t.Errorf("binding with an unreadable record was written: %v -> %v", before, got)
	}
	e.waitEvent(alphaExec, controller.ReasonLeftUntouched, 10*time.Second, "ownership record unreadable", "fix or remove the annotation")
	e.expectUsers(model.ExecutorRef("ml-beta"), "bob")
}
