// Access to the test's kube-apiserver: kubeconfigs, ServiceAccount tokens,
// kubectl, deploy/ installed as docs/install.md says, insiders with narrow
// RBAC, and what a token must be refused.

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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

func (e *env) kubeconfig() string {
	path := filepath.Join(e.dir, "kubeconfig")
	if _, err := os.Stat(path); err != nil {
		if err := e.api.WriteKubeconfig(path, e.api.AdminToken); err != nil {
			e.t.Fatal(err)
		}
	}
	return path
}

// kubeconfigVia writes a kubeconfig whose server is addr (a proxy in front
// of this env's API server; its certificate is valid for 127.0.0.1).
func (e *env) kubeconfigVia(addr string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, "kubeconfig-"+strings.ReplaceAll(addr, ":", "-"))
	if err := e.api.WriteKubeconfig(path, e.api.AdminToken); err != nil {
		e.t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), e.api.URL, "https://"+addr, 1))
	writeFile(e.t, path, data)
	return path
}

// apiAddr is host:port of this env's API server.
func (e *env) apiAddr() string { return strings.TrimPrefix(e.api.URL, "https://") }

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

// monitoringCRDs stand in for the Prometheus Operator's CRDs (no operator
// here), so that the whole of deploy/ applies as it would in a cluster.
var monitoringCRDs = monitoringCRD("servicemonitors", "servicemonitor", "ServiceMonitor") + "---\n" +
	monitoringCRD("prometheusrules", "prometheusrule", "PrometheusRule")

// monitoringCRD is a schemaless CustomResourceDefinition of
// monitoring.coreos.com.
func monitoringCRD(plural, singular, kind string) string {
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %[1]s.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: %[1]s, singular: %[2]s, kind: %[3]s, listKind: %[3]sList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, plural, singular, kind)
}

// installDeploy applies deploy/ (with components) as docs/install.md says.
func (e *env) installDeploy(components ...string) {
	e.t.Helper()
	e.kubectl(monitoringCRDs, "apply", "-f", "-")
	e.kubectl("", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	if _, err := e.cs.CoreV1().Secrets("runai").Get(context.Background(), ldapSecret, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		e.kubectl("", "-n", "runai", "create", "secret", "generic", ldapSecret,
			"--from-file=bind-password="+e.pwFile, "--from-file=ca.crt="+e.samba.CAFile)
	}
	dir, err := harness.DeployWithComponents(e.t.TempDir(), components...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("", "apply", "-k", dir)
}

// installFenced installs deploy/ (with components) on a cluster without
// Samba: the Secret the Deployment mounts is made of stand-in files. It
// returns the ServiceAccount's client once the policy is enforced.
func (e *env) installFenced(components ...string) kubernetes.Interface {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.cs.CoreV1().ServiceAccounts("runai").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: saName}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatal(err)
	}
	if e.samba == nil {
		if _, err := e.cs.CoreV1().Secrets("runai").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: ldapSecret},
			StringData: map[string]string{"bind-password": "x\n", "ca.crt": "x\n"}}, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
	e.installDeploy(components...)
	_, sa := e.saKubeconfig()
	waitForFence(e.t, ctx, sa)
	return sa
}

// insider returns a clientset for a new ServiceAccount ns/name holding
// rules (in ns when namespaced, else cluster-wide), with a token the API
// server issued: the insider's own identity, checked by real RBAC.
func (e *env) insider(ns, name string, namespaced bool, rules ...rbacv1.PolicyRule) kubernetes.Interface {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		e.namespace(ns, nil)
	}
	if _, err := e.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}
	meta := metav1.ObjectMeta{Name: "insider-" + name}
	var err error
	if namespaced {
		meta.Namespace = ns
		if _, err = e.cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{}); err == nil {
			_, err = e.cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: meta.Name}}, metav1.CreateOptions{})
		}
	} else {
		if _, err = e.cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{}); err == nil {
			_, err = e.cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: meta.Name}}, metav1.CreateOptions{})
		}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	_, cs := e.saToken(ns, name)
	return cs
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
