package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// TestDeployProvisioning runs the daemon with the ServiceAccount's own
// token: with deploy/ alone a cycle configured to provision cannot create a
// namespace (and creates none); with the provisioning component it
// provisions a new project in one cycle — and still cannot escalate,
// delete, or change namespaces it did not create.
func TestDeployProvisioning(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	seedProvisioning(e)
	tmplPath, tmpl := exampleTemplate(t)
	tmplPath = e.inDir(tmplPath)
	// Stand-ins for the ClusterRoles the template names (bind is checked
	// against them by name; they exist in a Run:AI cluster).
	for _, role := range tmpl.ClusterRoles() {
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
		if _, err := e.cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	e.namespace("runai-other", map[string]string{"runai/queue": "other"})
	cfg := e.config(groupsYAML + fmt.Sprintf(`projects:
  namespaceLabel: runai/queue
  createNamespaces: true
  static:
  - name: gamma
  template: %s
`, tmplPath))

	// deploy/ alone, installed as docs/install.md says.
	e.kubectl(monitoringCRDs, "apply", "-f", "-")
	e.kubectl("", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	e.kubectl("", "-n", "runai", "create", "secret", "generic", ldapSecret,
		"--from-file=bind-password="+e.pwFile, "--from-file=ca.crt="+e.samba.CAFile)
	base, err := harness.DeployWithComponents(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.kubectl("", "apply", "-k", base)
	kc, sa := e.saKubeconfig()
	r := e.runAs(kc, "once", "--config", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, "create namespace runai-gamma") || !strings.Contains(r.stderr, "forbidden") {
		t.Fatalf("without the component, creating a namespace must be forbidden; exit %d\n%s", r.code, r.stderr)
	}
	if _, _, ok := e.nsLabels("runai-gamma"); ok {
		t.Fatal("a namespace was created without the provisioning component")
	}
	// The rest of the cycle still ran: the existing project is synced.
	e.expectUsers(alphaExec, "alice")

	// With the component: one cycle provisions gamma completely.
	with, err := harness.DeployWithComponents(t.TempDir(), "components/provisioning")
	if err != nil {
		t.Fatal(err)
	}
	out := e.kubectl("", "apply", "-k", with)
	if !strings.Contains(out, "clusterrole.rbac.authorization.k8s.io/runai-ldap-sync-provisioning") {
		t.Errorf("kubectl apply -k with the component did not apply its ClusterRole:\n%s", out)
	}
	// The admission policy is in force, with the component's templateRoles.
	waitForFence(t, ctx, sa)
	waitUntil(t, "admission sees the component's templateRoles", func() error {
		_, err := sa.RbacV1().RoleBindings("runai-alpha").Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "runai-scheduler-rw", Labels: map[string]string{"runai-ldap-sync.github.io/template": "true"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "runai-scheduler-rw"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "runai-scheduler-rw", Namespace: "runai"}}},
			metav1.CreateOptions{DryRun: dry(true)})
		return err
	})
	r = e.runAs(kc, "once", "--config", cfg)
	if r.code != 0 || strings.Contains(strings.ToLower(r.stderr), "forbidden") {
		t.Fatalf("once with the provisioning component as %s: exit %d\n%s", saUser, r.code, r.stderr)
	}
	if labels, _, ok := e.nsLabels("runai-gamma"); !ok || labels["runai/queue"] != "gamma" {
		t.Fatalf("runai-gamma: exists %v, labels %v", ok, labels)
	}
	for _, p := range []struct{ project, ns string }{{"gamma", "runai-gamma"}, {"alpha", "runai-alpha"}, {"other", "runai-other"}} {
		e.expectTemplate(tmpl, p.project, p.ns)
	}
	e.expectUsers(model.ExecutorRef("runai-gamma"), "gus")

	// A hand-deleted template binding is restored with these permissions.
	if err := e.cs.RbacV1().RoleBindings("runai-alpha").Delete(ctx, "runai-user-psp", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if r = e.runAs(kc, "once", "--config", cfg); r.code != 0 {
		t.Fatalf("restoring cycle: exit %d\n%s", r.code, r.stderr)
	}
	e.expectTemplate(tmpl, "alpha", "runai-alpha")

	// Still refused: everything the component does not need.
	other := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "team-admins", Namespace: "runai-alpha"},
		RoleRef: kube.ExpectedRoleRef(model.ExecutorBinding), Subjects: []rbacv1.Subject{kube.UserSubject("someone")}}
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clusterAdmin := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}
	addHacker := []byte(`{"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"hacker"}]}`)
	refused := []refusal{
		{"delete a namespace it created", func() error {
			return sa.CoreV1().Namespaces().Delete(ctx, "runai-gamma", metav1.DeleteOptions{})
		}},
		{"label a namespace (no label-namespaces component)", func() error {
			_, err := sa.CoreV1().Namespaces().Patch(ctx, "runai-other", types.MergePatchType, []byte(`{"metadata":{"labels":{"runai/queue":"x"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"create a template-named RoleBinding to cluster-admin", func() error {
			_, err := sa.RbacV1().RoleBindings("runai-gamma").Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "runai-scheduler-rw-2"}, RoleRef: clusterAdmin,
				Subjects: []rbacv1.Subject{kube.UserSubject("hacker")}}, metav1.CreateOptions{})
			return err
		}},
		{"patch another RoleBinding", func() error {
			_, err := sa.RbacV1().RoleBindings("runai-alpha").Patch(ctx, "team-admins", types.MergePatchType, addHacker, metav1.PatchOptions{})
			return err
		}},
		{"delete a template binding", func() error {
			return sa.RbacV1().RoleBindings("runai-alpha").Delete(ctx, "runai-scheduler-rw", metav1.DeleteOptions{})
		}},
		{"create a Secret in a namespace it created", func() error {
			_, err := sa.CoreV1().Secrets("runai-gamma").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{})
			return err
		}},
	}
	expectForbidden(t, saUser, refused)
	if labels, _, _ := e.nsLabels("runai-other"); labels["runai/queue"] != "other" {
		t.Errorf("runai-other labels changed: %v", labels)
	}
}
