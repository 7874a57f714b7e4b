package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	cfg := e.config(groupsYAML + sampleProjects)

	// check-config accepts it.
	if r := e.mustRun("check-config", "--config", cfg); !strings.Contains(r.stdout, "valid") {
		t.Errorf("check-config: %q", r.stdout)
	}

	// diff -o json shows the plan and writes nothing.
	alphaBefore := e.binding(alphaExec)
	plan := decodePlan(t, e.mustRun("diff", "--config", cfg, "-o", "json").stdout)
	wantPlan := map[string]jsonPlan{
		alphaExec.String(): {Add: []string{"alice", "bob", "carol", "erin"}},
		betaExec.String():  {Add: []string{"bob", "frank"}, Create: true},
		viewer.String():    {Add: []string{"gina", "vera"}, Create: true},
		indexMap.String():  {Add: []string{"alice", "bob", "carol", "erin", "frank"}, Create: true},
	}
	if len(plan) != len(wantPlan) {
		t.Errorf("diff lists %d bindings, want %d: %+v", len(plan), len(wantPlan), plan)
	}
	for ref, want := range wantPlan {
		got, ok := plan[ref]
		if !ok {
			t.Errorf("diff misses %s", ref)
			continue
		}
		if strings.Join(got.Add, ",") != strings.Join(want.Add, ",") || len(got.Remove) != 0 || got.Create != want.Create {
			t.Errorf("diff %s = %+v, want add %v create %v", ref, got, want.Add, want.Create)
		}
	}
	if e.binding(betaExec) != nil || e.binding(viewer) != nil || e.binding(indexMap) != nil {
		t.Fatal("diff created a binding")
	}
	if e.binding(alphaExec).ResourceVersion != alphaBefore.ResourceVersion {
		t.Fatal("diff modified a binding")
	}

	// First cycle: creates and patches all bindings. The nested members
	// (two levels) are in, the disabled user is out, the hand-added user kept.
	r := e.mustRun("once", "--config", cfg)
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
	e.expectUsers(betaExec, "bob", "frank")
	e.expectUsers(viewer, "gina", "vera")
	e.expectUsers(indexMap, "alice", "bob", "carol", "erin", "frank")
	for _, ref := range []model.Ref{alphaExec, betaExec, viewer, indexMap} {
		b := e.binding(ref)
		if b.RoleRef != model.ExpectedRoleRef(ref.Name) {
			t.Errorf("%s roleRef = %+v", ref, b.RoleRef)
		}
	}
	if !strings.Contains(r.stderr, `"binding updated"`) || !strings.Contains(r.stderr, `"added":["alice","bob","carol","erin"]`) {
		t.Errorf("no structured change log line for alpha:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, e.password) {
		t.Fatal("the bind password appears in the output")
	}

	// Second cycle: nothing to do, nothing written.
	rvs := map[model.Ref]string{}
	for _, ref := range []model.Ref{alphaExec, betaExec, viewer, indexMap} {
		rvs[ref] = e.binding(ref).ResourceVersion
	}
	e.mustRun("once", "--config", cfg)
	for ref, rv := range rvs {
		if got := e.binding(ref).ResourceVersion; got != rv {
			t.Errorf("idle cycle wrote %s (resourceVersion %s -> %s)", ref, rv, got)
		}
	}
	// Nothing to change; diff still lists the leftover it keeps.
	want := alphaExec.String() + "\n? hand-added (leftover: not granted by the directory, not managed; kept)"
	if out := e.mustRun("diff", "--config", cfg).stdout; strings.TrimSpace(out) != want {
		t.Errorf("diff after sync: %q, want %q", out, want)
	}

	// A user removed from an AD group is removed at the next cycle; the
	// hand-added user stays; bob stays in the index map through beta.
	e.removeMembers("runai-alpha-executors", "bob")
	if out := e.mustRun("diff", "--config", cfg).stdout; !strings.Contains(out, alphaExec.String()) || !strings.Contains(out, "- bob") {
		t.Errorf("text diff does not show the removal:\n%s", out)
	}
	e.mustRun("once", "--config", cfg)
	e.expectUsers(alphaExec, "alice", "carol", "erin", "hand-added")
	e.expectUsers(indexMap, "alice", "bob", "carol", "erin", "frank")

	// A user disabled in AD loses access at the next cycle.
	if err := e.samba.SetEnabled(e.users["frank"], false); err != nil {
		t.Fatal(err)
	}
	e.mustRun("once", "--config", cfg)
	e.expectUsers(betaExec, "bob")
	e.expectUsers(indexMap, "alice", "bob", "carol", "erin")
}

func TestHandEditsArePreservedAndRepaired(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	cfg := e.config(groupsYAML + sampleProjects)
	e.mustRun("once", "--config", cfg)

	// A human adds a user and a group, and removes a managed user by hand.
	ctx := context.Background()
	rb, err := e.cs.RbacV1().RoleBindings("ml-beta").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb.Subjects = []rbacv1.Subject{kube.UserSubject("bob"), kube.UserSubject("contractor"),
		{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "oidc:ml-admins"}}
	if _, err := e.cs.RbacV1().RoleBindings("ml-beta").Update(ctx, rb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("once", "--config", cfg)
	e.expectUsers(betaExec, "bob", "contractor", "frank")
	b := e.binding(betaExec)
	hasGroup := false
	for _, s := range b.Subjects {
		hasGroup = hasGroup || (s.Kind == rbacv1.GroupKind && s.Name == "oidc:ml-admins")
	}
	if !hasGroup {
		t.Errorf("hand-added group lost: %+v", b.Subjects)
	}

	// A deleted binding is recreated.
	if err := e.cs.RbacV1().ClusterRoleBindings().Delete(ctx, model.ViewerBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("once", "--config", cfg)
	e.expectUsers(viewer, "gina", "vera")
}

func TestMissingGroupAndMissingNamespaceAreReported(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	cfg := e.config(groupsYAML + sampleProjects + `  - name: gamma
`)
	// gamma's namespace runai-gamma does not exist; beta has no viewer
	// group. Neither stops the cycle.
	r := e.mustRun("once", "--config", cfg)
	for _, want := range []string{`"project skipped"`, `"project":"gamma"`, `"reason":"namespace_missing"`,
		`"groups not found in the directory`, `runai-beta-viewers`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log lacks %s:\n%s", want, r.stderr)
		}
	}
	e.expectUsers(betaExec, "bob", "frank")
}

func TestRoleRefMismatchIsLeftAlone(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()
	if err := e.cs.RbacV1().RoleBindings("runai-alpha").Delete(ctx, model.ExecutorBinding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wrong := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding, Namespace: "runai-alpha"},
		RoleRef:    kube.ExpectedRoleRef(model.ViewerBinding),
		Subjects:   []rbacv1.Subject{kube.UserSubject("someone")},
	}
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Create(ctx, wrong, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(groupsYAML + sampleProjects)
	r := e.run("once", "--config", cfg)
	if r.code == 0 {
		t.Error("a binding with the wrong roleRef must fail the cycle")
	}
	if !strings.Contains(r.stderr, "roleRef") {
		t.Errorf("no roleRef report:\n%s", r.stderr)
	}
	e.expectUsers(alphaExec, "someone")
	e.expectUsers(betaExec, "bob", "frank") // others still sync
}

func TestDaemonServesMetricsAndStopsCleanly(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := e.config(groupsYAML + sampleProjects + fmt.Sprintf("schedule: \"@every 1h\"\nserver:\n  address: %q\n", addr))

	cmd := exec.Command(binary, "run", "--config", cfg, "--kubeconfig", e.kubeconfig())
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck

	base := "http://" + addr
	waitFor(t, 60*time.Second, "the daemon is ready", func() error {
		// A lone replica leads: ready means its first cycle succeeded, never
		// "standby".
		if body, code := get(base + "/readyz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
			return fmt.Errorf("/readyz %d %q; logs:\n%s", code, body, logs.String())
		}
		return nil
	})
	if _, code := get(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	e.expectUsers(indexMap, "alice", "bob", "carol", "erin", "frank")

	metrics, _ := get(base + "/metrics")
	for _, want := range []string{
		`runai_ldap_sync_binding_drift_missing_subjects{kind="RoleBinding",name="runai-cli-index-map-editor",namespace="runai"} 5`,
		`runai_ldap_sync_binding_desired_subjects{kind="ClusterRoleBinding",name="runai-job-viewer-manual",namespace=""} 2`,
		`runai_ldap_sync_cycles_total{result="success"} 1`,
		`runai_ldap_sync_members_skipped{reason="disabled"} 1`,
		`runai_ldap_sync_groups_missing 1`,
		`runai_ldap_sync_changes_total{action="create",kind="ClusterRoleBinding"} 1`,
		`runai_ldap_sync_last_success_timestamp_seconds `,
		`runai_ldap_sync_cycle_duration_seconds_count 1`,
		`runai_ldap_sync_ldap_searches_total `,
		`runai_ldap_sync_kube_requests_total{verb="PATCH"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(metrics, e.password) || strings.Contains(logs.String(), e.password) {
		t.Fatal("the bind password leaked into metrics or logs")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop within 30s of SIGTERM")
	}
}
