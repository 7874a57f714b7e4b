package integration

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// Directory insiders (issue 25, sync side), each driven the way the
// insider would, against Samba AD with the daemon running as installed
// (deploy/, its ServiceAccount's token) with the shipped guard, ownership
// and poll settings (daemonYAML only shortens backoffs and the schedule,
// so that polls, not cycles, carry the changes).

const insiderYAML = `groups:
  executors: ["runai-{project}-executors"]
  viewers: ["runai-{project}-viewers"]
projects:
  namespaceLabel: runai/queue
`

var p1Exec = model.ExecutorRef("runai-p1")

// TestGroupOwnerBurstIsHeldOnlyForItsUsers: the owner of p1's groups nests
// a 25-member group (standing in for Domain Users) into them; at the same
// time zoe joins p2's viewers group. zoe is granted within seconds; the
// burst is held on every binding it reaches, also when p1's namespace
// admin deletes the executor binding to have it recreated; an approval
// annotation that admin puts on the binding approves nothing; `once
// --approve-removals` approves the one binding it names; the key recorded
// in the store approves the viewer binding, and p1's admin (their own
// token) cannot record one there.
func TestGroupOwnerBurstIsHeldOnlyForItsUsers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, u := range []string{"alice", "vera", "zoe"} {
		e.user(u, true)
	}
	staff := e.numberedUsers("staff", 25)
	e.group("all-staff", staff...)
	e.group("runai-p1-executors", "alice")
	e.group("runai-p1-viewers", "vera")
	e.group("runai-p2-viewers")
	e.namespace("runai-p1", map[string]string{"runai/queue": "p1"})
	e.namespace("runai-p2", map[string]string{"runai/queue": "p2"})
	d, cfg := e.insiderDaemon()
	e.waitUsers(viewer, 10*time.Second, "vera")
	e.waitUsers(p1Exec, 10*time.Second, "alice")

	// The burst, and another group's joiner.
	for _, g := range []string{"runai-p1-viewers", "runai-p1-executors"} {
		if err := e.samba.AddMembers(e.groups[g], e.groups["all-staff"]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.samba.AddMembers(e.groups["runai-p2-viewers"], e.users["zoe"]); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(viewer, 20*time.Second, "vera", "zoe")
	ev := e.waitEvent(viewer, controller.ReasonRemovalsHeld, 20*time.Second, "addition held by guard", "group runai-p1-viewers", "staff0")
	viewerKey := approvalKeyIn(t, ev.Message)
	e.waitEvent(p1Exec, controller.ReasonRemovalsHeld, 20*time.Second, "addition held by guard", "group runai-p1-executors")
	d.waitMetric("runai_ldap_sync_binding_held_additions", `name="runai-job-viewer-manual"`, 25, 10*time.Second)
	e.expectUsers(p1Exec, "alice")
	e.expectUsers(indexMap, "alice")

	// p1's namespace admin (their own token) deletes the executor binding:
	// it is recreated, and the burst is still held (the window is in the
	// store).
	p1Admin := e.insider("runai-p1", "p1-admin", true, rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}})
	repairs := d.metric("runai_ldap_sync_repairs_total", `result="success"`)
	if err := p1Admin.RbacV1().RoleBindings("runai-p1").Delete(ctx, model.ExecutorBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d.waitMetric("runai_ldap_sync_repairs_total", `result="success"`, repairs+1, 20*time.Second)
	e.waitUsers(p1Exec, 10*time.Second, "alice")
	d.waitMetric("runai_ldap_sync_binding_held_additions", `namespace="runai-p1"`, 25, 10*time.Second)
	// ... and approves the burst on the binding itself: refused, removed.
	held := decodePlan(t, e.mustRun("diff", "--config", cfg, "-o", "json").stdout)[p1Exec.String()]
	if len(held.HeldAdd) != 25 || held.ApprovalKey == "" {
		t.Fatalf("diff: %+v", held)
	}
	approve := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, plan.ApproveAnnotation, held.ApprovalKey)
	if _, err := p1Admin.RbacV1().RoleBindings("runai-p1").Patch(ctx, model.ExecutorBinding, types.MergePatchType, []byte(approve), metav1.PatchOptions{}); err != nil {
		t.Fatalf("p1's admin annotates the executor binding: %v", err)
	}
	e.waitEvent(p1Exec, controller.ReasonApprovalRemoved, 15*time.Second, "approvals live in the guard's store")
	e.expectUsers(p1Exec, "alice")
	// ... nor can that admin record the key in the store.
	storeApproval := fmt.Sprintf(`{"metadata":{"annotations":{%q:"p1 admin"}}}`, model.ApprovalPrefix+strings.TrimPrefix(held.ApprovalKey, "sha256:"))
	if _, err := p1Admin.CoreV1().ConfigMaps("runai").Patch(ctx, model.StateConfigMap, types.MergePatchType, []byte(storeApproval), metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("p1's admin recording an approval in the store: %v, want Forbidden", err)
	}

	// A platform admin approves p1's executors by name: that binding only.
	e.mustRun("once", "--config", cfg, "--approve-removals", p1Exec.String())
	e.expectUsers(p1Exec, append([]string{"alice"}, staff...)...)
	e.expectUsers(viewer, "vera", "zoe")
	e.expectUsers(indexMap, "alice")

	// The viewer binding's key, recorded in the store.
	e.approve(viewerKey)
	e.waitUsers(viewer, 20*time.Second, append([]string{"vera", "zoe"}, staff...)...)
	e.expectUsers(indexMap, "alice")
}

// TestFailedGroupHoldsOnlyItsUsers: a second runai-p3-viewers in another
// OU makes p3's viewers group ambiguous, and the daemon restarts; dave,
// disabled in AD and only in p1's viewers group, leaves the viewer
// binding, while p3's last known viewer (val, from the store) stays and
// the squatter's member (mallory) gains nothing.
func TestFailedGroupHoldsOnlyItsUsers(t *testing.T) { p3MadeAmbiguous(t, false) }

// TestAmbiguousGroupWithoutLastKnownHoldsOnlyItsCandidates: as above, but
// the daemon starts with no store (no last known members). The ambiguous
// name still holds back only whom its candidates might grant: val (in the
// real p3 group) keeps access, mallory (in the squatted one) gets none,
// and dave, disabled and only in p1's group, is removed rather than the
// whole viewer binding being held.
func TestAmbiguousGroupWithoutLastKnownHoldsOnlyItsCandidates(t *testing.T) {
	e := p3MadeAmbiguous(t, true)
	if g := e.store().State.Groups["runai-p3-viewers"]; g != nil && len(g.Members) != 0 {
		t.Errorf("the fresh store knows p3's viewers already: %v", g.Members)
	}
}

// p3MadeAmbiguous syncs p1's and p3's viewers, stops the daemon, [deletes
// the store,] squats runai-p3-viewers in a sandbox OU, disables dave, and
// restarts the daemon: the viewer binding holds val and vera, and the
// failure logged is the ambiguity.
func p3MadeAmbiguous(t *testing.T, forgetStore bool) *env {
	e := newEnv(t)
	for _, u := range []string{"vera", "dave", "val", "mallory"} {
		e.user(u, true)
	}
	e.group("runai-p1-viewers", "vera", "dave")
	e.group("runai-p3-viewers", "val")
	e.namespace("runai-p1", map[string]string{"runai/queue": "p1"})
	e.namespace("runai-p3", map[string]string{"runai/queue": "p3"})
	d, _ := e.insiderDaemon()
	e.waitUsers(viewer, 10*time.Second, "dave", "val", "vera")
	if code := d.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if forgetStore {
		if err := e.cs.CoreV1().ConfigMaps("runai").Delete(context.Background(), model.StateConfigMap, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete the store: %v", err)
		}
	}

	other, err := e.samba.AddOUUnder(e.ou, "Sandbox")
	if err != nil {
		t.Fatal(err)
	}
	e.squatGroup(other, "runai-p3-viewers", "mallory")
	if err := e.samba.SetEnabled(e.users["dave"], false); err != nil {
		t.Fatal(err)
	}
	d2, _ := e.insiderDaemon()
	e.waitUsers(viewer, 20*time.Second, "val", "vera")
	lines := d2.waitLog("group lookup failed; bindings it feeds lose no one", 1, 10*time.Second)
	if !strings.Contains(fmt.Sprint(lines[0]["error"]), "ambiguous") {
		t.Errorf("the failure is not the ambiguity: %v", lines[0])
	}
	return e
}

// TestReplacedGroupIsHeldUntilApproved: someone creates another
// runai-p1-viewers (with mallory) in a sandbox OU and deletes the real
// one. The name now resolves to another entry than the one pinned in the
// store: held as a failed group (vera and walt keep access, mallory gets
// none) until the printed key is recorded in the store.
func TestReplacedGroupIsHeldUntilApproved(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"vera", "walt", "mallory"} {
		e.user(u, true)
	}
	e.group("runai-p1-viewers", "vera", "walt")
	e.namespace("runai-p1", map[string]string{"runai/queue": "p1"})
	d, _ := e.insiderDaemon()
	e.waitUsers(viewer, 10*time.Second, "vera", "walt")
	if g := e.store().State.Groups["runai-p1-viewers"]; g == nil || g.ID == "" {
		t.Fatalf("no pin in the store: %+v", g)
	}

	sandbox, err := e.samba.AddOUUnder(e.ou, "Sandbox")
	if err != nil {
		t.Fatal(err)
	}
	old := e.groups["runai-p1-viewers"]
	e.squatGroup(sandbox, "runai-p1-viewers", "vera", "walt", "mallory")
	if err := e.samba.Delete(old); err != nil {
		t.Fatal(err)
	}
	e.bumpProjects(1) // a full cycle too: a deletion may be invisible to polls
	held := d.waitLog("group name resolves to another entry than before", 1, 60*time.Second)
	key := fmt.Sprint(held[0]["approvalKey"])
	if !strings.HasPrefix(key, "sha256:") || !strings.Contains(fmt.Sprint(held[0]["approve"]), "annotate configmap "+model.StateConfigMap) {
		t.Fatalf("hold line: %v", held[0])
	}
	e.expectUsers(viewer, "vera", "walt")

	e.approve(key)
	e.waitUsers(viewer, 30*time.Second, "mallory", "vera", "walt")
}

// TestHandGrantIsNeverAdopted: a platform admin grants carol viewer by
// hand in the binding the tool manages; the owner of p1's viewers group
// adds carol to it and removes her again: the hand grant stays, never
// recorded as the tool's.
func TestHandGrantIsNeverAdopted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, u := range []string{"vera", "carol"} {
		e.user(u, true)
	}
	e.group("runai-p1-viewers", "vera")
	e.namespace("runai-p1", map[string]string{"runai/queue": "p1"})
	d, _ := e.insiderDaemon()
	e.waitUsers(viewer, 10*time.Second, "vera")

	crb, err := e.cs.RbacV1().ClusterRoleBindings().Get(ctx, model.ViewerBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crb.Subjects = append(crb.Subjects, kube.UserSubject("carol"))
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Update(ctx, crb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	polls := func() float64 {
		return d.metric("runai_ldap_sync_incremental_syncs_total", `result="success"`)
	}
	n := polls()
	if err := e.samba.AddMembers(e.groups["runai-p1-viewers"], e.users["carol"]); err != nil {
		t.Fatal(err)
	}
	d.waitMetric("runai_ldap_sync_incremental_syncs_total", `result="success"`, n+1, 20*time.Second)
	if b := e.binding(viewer); strings.Contains(strings.Join(b.Managed, ","), "carol") {
		t.Errorf("hand grant adopted: record %v", b.Managed)
	}
	n = polls()
	e.removeMembers("runai-p1-viewers", "carol")
	d.waitMetric("runai_ldap_sync_incremental_syncs_total", `result="success"`, n+1, 20*time.Second)
	e.expectUsers(viewer, "carol", "vera")
}

// insiderDaemon starts the daemon as installed (deploy/'s RBAC and
// admission policies, its ServiceAccount's own token, which may consume
// approvals but never add one) with insiderYAML and daemonYAML, waits
// until it is ready, and returns it and its configuration file.
func (e *env) insiderDaemon() (*daemon, string) {
	e.t.Helper()
	e.installDeploy()
	kubeconfig, _ := e.saKubeconfig()
	addr := freeAddr(e.t)
	cfg := e.config(insiderYAML + daemonYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(e.t, cfg, kubeconfig, addr)
	d.waitReady(60 * time.Second)
	return d, cfg
}

// squatGroup creates, under parent, a group of another group's cn, as a
// group creator would: sAMAccountName is unique in the domain, cn only in
// its container, so it is created under another name and renamed.
func (e *env) squatGroup(parent, cn string, members ...string) string {
	e.t.Helper()
	tmp := e.addGroupUnder(parent, cn+"-squat", members...)
	if err := e.samba.Rename(tmp, "CN="+cn, parent); err != nil {
		e.t.Fatalf("rename %s to CN=%s: %v", tmp, cn, err)
	}
	return "CN=" + cn + "," + parent
}
