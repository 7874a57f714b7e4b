package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// TestDeployLeastPrivilege applies deploy/ to a real API server and runs
// the daemon with the ServiceAccount's own token: a full cycle works with
// exactly the permissions deploy/ grants, and the same identity is refused
// everything else.
func TestDeployLeastPrivilege(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(groupsYAML + sampleProjects)

	// Negative control: the ServiceAccount alone, without deploy/'s RBAC,
	// can do nothing; so what works below is what deploy/ grants.
	if _, err := e.cs.CoreV1().ServiceAccounts("runai").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: saName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc, sa := e.saKubeconfig()
	if r := e.runAs(kc, "once", "--config", cfg); r.code == 0 || !strings.Contains(r.stderr, "forbidden") {
		t.Fatalf("without deploy/'s RBAC the cycle should be forbidden; exit %d\n%s", r.code, r.stderr)
	}

	// Install as docs/install.md says: Run:AI's roles exist (stand-ins from
	// newEnv), the operator creates the Secret, then `kubectl apply -k deploy/`.
	e.kubectl(monitoringCRDs, "apply", "-f", "-")
	e.kubectl("", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	e.kubectl("", "-n", "runai", "create", "secret", "generic", ldapSecret,
		"--from-file=bind-password="+e.pwFile, "--from-file=ca.crt="+e.samba.CAFile)
	out := e.kubectl("", "apply", "-k", filepath.Join(root, "deploy"))
	t.Logf("kubectl apply -k deploy/:\n%s", out)
	for _, want := range []string{"serviceaccount/runai-ldap-sync", "clusterrole.rbac.authorization.k8s.io/runai-ldap-sync",
		"validatingadmissionpolicy.admissionregistration.k8s.io/" + fencePolicy,
		"validatingadmissionpolicybinding.admissionregistration.k8s.io/" + fencePolicy,
		"deployment.apps/runai-ldap-sync", "servicemonitor.monitoring.coreos.com/runai-ldap-sync",
		"prometheusrule.monitoring.coreos.com/runai-ldap-sync", "configmap/runai-ldap-sync-dashboard"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -k deploy/ did not apply %s", want)
		}
	}

	// The admission policy is in force; ml-beta is a static project whose
	// namespace is not labelled, so the operator lists it in its parameters.
	waitForFence(t, ctx, sa)
	e.setFenceParam("staticNamespaces", "ml-beta", func() error {
		_, err := sa.RbacV1().RoleBindings("ml-beta").Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding}, RoleRef: kube.ExpectedRoleRef(model.ExecutorBinding)},
			metav1.CreateOptions{DryRun: dry(true)})
		return err
	})

	// The token authenticates as the ServiceAccount, in its groups.
	ssr, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ui := ssr.Status.UserInfo
	if ui.Username != saUser || !containsAll(ui.Groups, "system:serviceaccounts", "system:serviceaccounts:runai", "system:authenticated") {
		t.Fatalf("the token authenticates as %s %v", ui.Username, ui.Groups)
	}

	// A full cycle with the ServiceAccount's permissions: creates the
	// ClusterRoleBinding, an executor RoleBinding in a project namespace and
	// the index-map RoleBinding in runai; patches the existing one.
	r := e.runAs(kc, "once", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("once as %s exited %d:\n%s", saUser, r.code, r.stderr)
	}
	if strings.Contains(strings.ToLower(r.stderr), "forbidden") {
		t.Errorf("once as %s was refused something:\n%s", saUser, r.stderr)
	}
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
	e.expectUsers(betaExec, "bob", "frank")
	e.expectUsers(viewer, "gina", "vera")
	e.expectUsers(indexMap, "alice", "bob", "carol", "erin", "frank")

	// A second cycle patches all three kinds of binding it created.
	e.user("hank", true)
	if err := e.samba.AddMembers(e.groups["runai-viewers"], e.users["hank"]); err != nil {
		t.Fatal(err)
	}
	if err := e.samba.AddMembers(e.groups["runai-beta-executors"], e.users["hank"]); err != nil {
		t.Fatal(err)
	}
	if r := e.runAs(kc, "diff", "--config", cfg); r.code != 1 || !strings.Contains(r.stdout, "+ hank") {
		t.Fatalf("diff as %s: exit %d\n%s\n%s", saUser, r.code, r.stdout, r.stderr)
	}
	if r := e.runAs(kc, "once", "--config", cfg); r.code != 0 {
		t.Fatalf("second once as %s exited %d:\n%s", saUser, r.code, r.stderr)
	}
	e.expectUsers(betaExec, "bob", "frank", "hank")
	e.expectUsers(viewer, "gina", "hank", "vera")
	e.expectUsers(indexMap, "alice", "bob", "carol", "erin", "frank", "hank")

	// The Events of these cycles were written with the same identity.
	evs, err := e.cs.CoreV1().Events("runai-alpha").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, ev := range evs.Items {
		if ev.Source.Component == kube.EventComponent {
			ours++
		}
	}
	if ours == 0 {
		t.Errorf("no Event from %s in runai-alpha after two cycles (%d events)", kube.EventComponent, len(evs.Items))
	}

	// Two replicas of `run`, as the Deployment runs them: they elect a
	// leader through the Lease, watch the bindings, and the leader repairs a
	// hand edit between cycles.
	replicas := []*replica{e.startReplica(kc), e.startReplica(kc)}
	leader := waitForLeader(t, replicas)
	lease, err := e.cs.CoordinationV1().Leases("runai").Get(ctx, saName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the replicas made no Lease %s: %v", saName, err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("Lease %s has no holder", saName)
	}
	rb0, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb0.Subjects = []rbacv1.Subject{kube.UserSubject("hand-added")}
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Update(ctx, rb0, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the leader repairs "+alphaExec.String(), func() error {
		if got := strings.Join(e.usersOf(alphaExec), ","); got != "alice,bob,carol,erin,hand-added" {
			return fmt.Errorf("users %s\nleader log:\n%s", got, leader.logs.String())
		}
		return nil
	})
	for i, r := range replicas {
		if err := r.stop(); err != nil {
			t.Errorf("replica %d: %v\n%s", i, err, r.logs.String())
		}
		if strings.Contains(strings.ToLower(r.logs.String()), "forbidden") {
			t.Errorf("replica %d was refused something it needs:\n%s", i, r.logs.String())
		}
	}

	// Its own Lease: get and update are allowed (create: the replicas did),
	// as a replica identity (the admission policy refuses any other holder).
	leases := sa.CoordinationV1().Leases("runai")
	holder := "test_0123abcd"
	if lease, err = leases.Get(ctx, saName, metav1.GetOptions{}); err != nil {
		t.Fatalf("get its Lease: %v", err)
	}
	lease.Spec.HolderIdentity = &holder
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update its Lease: %v", err)
	}

	// Everything else is refused.
	e.expectLeastPrivilege(sa)
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
}

func containsAll(have []string, want ...string) bool {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}
