package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

const (
	saName     = "runai-ldap-sync"
	saUser     = "system:serviceaccount:runai:" + saName
	ldapSecret = "runai-ldap-sync-ldap"
)

// monitoringCRDs stand in for the Prometheus Operator's CRDs (no operator
// here), so that the whole of deploy/ applies as it would in a cluster.
const monitoringCRDs = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: servicemonitors, singular: servicemonitor, kind: ServiceMonitor, listKind: ServiceMonitorList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: prometheusrules, singular: prometheusrule, kind: PrometheusRule, listKind: PrometheusRuleList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// kubectl runs the kubectl built by `make tools` as the cluster admin.
func (e *env) kubectl(stdin string, args ...string) string {
	e.t.Helper()
	dir, err := harness.BinDir()
	if err != nil {
		e.t.Fatal(err)
	}
	bin := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		e.t.Fatalf("kubectl missing at %s: run `make tools`: %v", bin, err)
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", e.kubeconfig()}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// saKubeconfig returns a kubeconfig holding a token of the ServiceAccount
// runai/runai-ldap-sync, issued by the API server (TokenRequest), and a
// clientset using it.
func (e *env) saKubeconfig() (string, kubernetes.Interface) {
	e.t.Helper()
	token, cs := e.saToken("runai", saName)
	path := filepath.Join(e.dir, "sa-kubeconfig")
	if err := e.api.WriteKubeconfig(path, token); err != nil {
		e.t.Fatal(err)
	}
	return path, cs
}

// saToken returns a token of the ServiceAccount ns/name, issued by the API
// server (TokenRequest, valid an hour), and a clientset using it.
func (e *env) saToken(ns, name string) (string, kubernetes.Interface) {
	e.t.Helper()
	exp := int64(3600)
	tr, err := e.cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("request a token for ServiceAccount %s/%s: %v", ns, name, err)
	}
	cs, err := kubernetes.NewForConfig(e.api.RestConfigFor(tr.Status.Token))
	if err != nil {
		e.t.Fatal(err)
	}
	return tr.Status.Token, cs
}

// runAs runs the daemon binary with the given kubeconfig.
func (e *env) runAs(kubeconfig string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--kubeconfig", kubeconfig)...)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

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
	deadline := time.Now().Add(60 * time.Second)
	for strings.Join(e.usersOf(alphaExec), ",") != "alice,bob,carol,erin,hand-added" {
		if time.Now().After(deadline) {
			t.Fatalf("the leader did not repair %s within 60s: %v\nleader log:\n%s", alphaExec, e.usersOf(alphaExec), leader.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
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

// expectLeastPrivilege checks that sa, the daemon's ServiceAccount as
// deploy/ (or the chart) binds it, is refused everything the daemon does
// not need: other bindings, escalation, deleting managed bindings, Secrets,
// Pods, tokens, namespace labels and other Leases. Needs seedSample's
// runai-alpha and ml-beta, and the managed bindings of a first cycle.
func (e *env) expectLeastPrivilege(sa kubernetes.Interface) {
	e.t.Helper()
	ctx := context.Background()
	holder := "test"
	other := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "team-admins", Namespace: "runai-alpha"},
		RoleRef: kube.ExpectedRoleRef(model.ExecutorBinding), Subjects: []rbacv1.Subject{kube.UserSubject("someone")}}
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	adminRole := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "admin-standin"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets", "pods"}, Verbs: []string{"get", "list", "create", "delete"}}}}
	if _, err := e.cs.RbacV1().ClusterRoles().Create(ctx, adminRole, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	otherLease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "kube-scheduler", Namespace: "runai"}}
	if _, err := e.cs.CoordinationV1().Leases("runai").Create(ctx, otherLease, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	addHacker := []byte(`{"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"hacker"}]}`)
	bindTo := func(role string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}
	}
	refused := []refusal{
		{"patch another RoleBinding", func() error {
			_, err := sa.RbacV1().RoleBindings("runai-alpha").Patch(ctx, "team-admins", types.MergePatchType, addHacker, metav1.PatchOptions{})
			return err
		}},
		{"patch its own ClusterRoleBinding (to escalate)", func() error {
			_, err := sa.RbacV1().ClusterRoleBindings().Patch(ctx, saName, types.MergePatchType, addHacker, metav1.PatchOptions{})
			return err
		}},
		{"update its own ClusterRole (to escalate)", func() error {
			cr, err := e.cs.RbacV1().ClusterRoles().Get(ctx, saName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}})
			_, err = sa.RbacV1().ClusterRoles().Update(ctx, cr, metav1.UpdateOptions{})
			return err
		}},
		{"create a RoleBinding to another ClusterRole (admin stand-in)", func() error {
			_, err := sa.RbacV1().RoleBindings("ml-beta").Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "escalate"}, RoleRef: bindTo("admin-standin"),
				Subjects: []rbacv1.Subject{kube.UserSubject("hacker")}}, metav1.CreateOptions{})
			return err
		}},
		{"create a ClusterRoleBinding to cluster-admin", func() error {
			_, err := sa.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "escalate"}, RoleRef: bindTo("cluster-admin"),
				Subjects: []rbacv1.Subject{kube.UserSubject("hacker")}}, metav1.CreateOptions{})
			return err
		}},
		{"create a binding with a managed name to cluster-admin", func() error {
			_, err := sa.RbacV1().RoleBindings("ml-beta").Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "runai-job-executor-manual-2"}, RoleRef: bindTo("cluster-admin"),
				Subjects: []rbacv1.Subject{kube.UserSubject("hacker")}}, metav1.CreateOptions{})
			return err
		}},
		{"delete a managed RoleBinding", func() error {
			return sa.RbacV1().RoleBindings("runai-alpha").Delete(ctx, model.ExecutorBinding, metav1.DeleteOptions{})
		}},
		{"delete the managed ClusterRoleBinding", func() error {
			return sa.RbacV1().ClusterRoleBindings().Delete(ctx, model.ViewerBinding, metav1.DeleteOptions{})
		}},
		{"read the bind password Secret", func() error {
			_, err := sa.CoreV1().Secrets("runai").Get(ctx, ldapSecret, metav1.GetOptions{})
			return err
		}},
		{"list Secrets in all namespaces", func() error {
			_, err := sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"create a Pod", func() error {
			_, err := sa.CoreV1().Pods("runai").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
			return err
		}},
		{"request ServiceAccount tokens", func() error {
			_, err := sa.CoreV1().ServiceAccounts("runai").CreateToken(ctx, saName, &authnv1.TokenRequest{}, metav1.CreateOptions{})
			return err
		}},
		{"label a namespace (to make it a project)", func() error {
			_, err := sa.CoreV1().Namespaces().Patch(ctx, "ml-beta", types.MergePatchType, []byte(`{"metadata":{"labels":{"runai/queue":"x"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"update another Lease", func() error {
			l, err := e.cs.CoordinationV1().Leases("runai").Get(ctx, "kube-scheduler", metav1.GetOptions{})
			if err != nil {
				return err
			}
			l.Spec.HolderIdentity = &holder
			_, err = sa.CoordinationV1().Leases("runai").Update(ctx, l, metav1.UpdateOptions{})
			return err
		}},
		{"read another Lease", func() error {
			_, err := sa.CoordinationV1().Leases("runai").Get(ctx, "kube-scheduler", metav1.GetOptions{})
			return err
		}},
	}
	expectForbidden(e.t, saUser, refused)
	// Nothing refused above happened.
	rb, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, "team-admins", metav1.GetOptions{})
	if err != nil || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "someone" {
		e.t.Errorf("team-admins changed: %+v %v", rb, err)
	}
}

// replica is a `run` process with the ServiceAccount's kubeconfig.
type replica struct {
	cmd     *exec.Cmd
	logs    *syncBuffer
	metrics string // http://127.0.0.1:port
}

func (e *env) startReplica(kubeconfig string) *replica {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := e.config(groupsYAML + sampleProjects + fmt.Sprintf(`schedule: "@every 1h"
server:
  address: %q
leaderElection:
  enabled: true
  leaseName: %s
`, addr, saName))
	r := &replica{logs: &syncBuffer{}, metrics: "http://" + addr}
	r.cmd = exec.Command(binary, "run", "--config", cfg, "--kubeconfig", kubeconfig)
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	return r
}

// stop sends SIGTERM and waits for a clean exit.
func (r *replica) stop() error {
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("did not stop within 30s of SIGTERM")
	}
}

// waitForLeader waits until both replicas are ready and exactly one leads.
func waitForLeader(t *testing.T, rs []*replica) *replica {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var leaders []*replica
		ready := 0
		for _, r := range rs {
			if body, code := get(r.metrics + "/readyz"); code == 200 && strings.HasPrefix(body, "ok") {
				ready++
			}
			if m, _ := get(r.metrics + "/metrics"); strings.Contains(m, "\nrunai_ldap_sync_leader 1\n") {
				leaders = append(leaders, r)
			}
		}
		if ready == len(rs) && len(leaders) == 1 {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for i, r := range rs {
				fmt.Fprintf(&logs, "replica %d:\n%s\n", i, r.logs.String())
			}
			t.Fatalf("after 90s: %d of %d replicas ready, %d leaders; want all ready and one leader\n%s", ready, len(rs), len(leaders), logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
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

// refusal is an action a ServiceAccount must not be allowed.
type refusal struct {
	what string
	do   func() error
}

// expectForbidden runs each action and fails unless the API server
// refused it with Forbidden.
func expectForbidden(t *testing.T, user string, refused []refusal) {
	t.Helper()
	for _, c := range refused {
		err := c.do()
		switch {
		case err == nil:
			t.Errorf("%s as %s: allowed, want Forbidden", c.what, user)
		case !apierrors.IsForbidden(err):
			t.Errorf("%s as %s: %v, want Forbidden", c.what, user, err)
		default:
			t.Logf("refused as expected: %s", c.what)
		}
	}
}
