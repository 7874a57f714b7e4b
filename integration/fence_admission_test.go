package integration

import (
	"context"
	"path/filepath"
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

// TestAdmissionPolicyFencesTheToken reproduces, on the real kube-apiserver
// and with the ServiceAccount's own token, the writes the issue found the
// base RBAC allows (a ClusterRoleBinding of runai-job-executor for
// system:authenticated, a RoleBinding in kube-system or an unlabelled
// namespace, a Group subject, template-labelled bindings): RBAC alone lets
// each through; with deploy/'s admission policy each is refused, and the
// daemon's own cycle still works with the same token.
func TestAdmissionPolicyFencesTheToken(t *testing.T) {
	executor := func() rbacv1.RoleRef { return kube.ExpectedRoleRef(model.ExecutorBinding) }
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	e.namespace("unlabelled", nil)
	e.namespace("runai-backend", nil)
	e.namespace("ml-beta-2", map[string]string{"runai/queue": "beta2"})
	if _, err := e.cs.CoreV1().Namespaces().Patch(ctx, "kube-system", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"runai/queue":"sys"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.CoreV1().ServiceAccounts("runai").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: saName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, sa := e.saKubeconfig()
	attacks := tokenAttacks(ctx, sa)

	// The base RBAC alone: every attack but the marked ones gets through
	// (as a dry run: nothing is written).
	e.kubectl("", "apply", "-n", "runai", "-f", filepath.Join(root, "deploy/rbac.yaml"))
	for _, a := range attacks {
		err := a.do(true)
		switch {
		case a.rbacRefuses && !apierrors.IsForbidden(err):
			t.Errorf("premise: RBAC alone should refuse %s, got %v", a.what, err)
		case !a.rbacRefuses && err != nil:
			t.Errorf("premise: RBAC alone lets %s through, but it was refused: %v", a.what, err)
		}
	}

	// deploy/, with its admission policy: every attack is refused, by it.
	e.installDeploy()
	waitForFence(t, ctx, sa)
	for _, a := range attacks {
		err := a.do(false)
		switch {
		case err == nil:
			t.Errorf("%s: allowed with the admission policy", a.what)
		case !apierrors.IsForbidden(err):
			t.Errorf("%s: %v, want Forbidden", a.what, err)
		case !a.rbacRefuses && !strings.Contains(err.Error(), fencePolicy):
			t.Errorf("%s: refused, but not by %s: %v", a.what, fencePolicy, err)
		default:
			t.Logf("refused: %s: %v", a.what, err)
		}
	}
	// Nothing was written.
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Get(ctx, "runai-job-executor-everyone", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the ClusterRoleBinding for system:authenticated exists: %v", err)
	}
	for _, ns := range []string{"kube-system", "runai-backend", "unlabelled"} {
		if _, err := e.cs.RbacV1().RoleBindings(ns).Get(ctx, model.ExecutorBinding, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("an executor binding exists in %s: %v", ns, err)
		}
	}

	// The shards the daemon writes, -1 … -16, are allowed to the token.
	for _, name := range []string{model.ExecutorBinding + "-1", model.ExecutorBinding + "-16"} {
		if _, err := sa.RbacV1().RoleBindings("runai-alpha").Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{model.ShardOfLabel: model.ExecutorBinding}},
			RoleRef:    executor(), Subjects: []rbacv1.Subject{kube.UserSubject("alice")}},
			metav1.CreateOptions{DryRun: dry(true)}); err != nil {
			t.Errorf("the token may not create the shard %s: %v", name, err)
		}
	}
	if _, err := sa.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: model.ViewerBinding + "-16"}, RoleRef: kube.ExpectedRoleRef(model.ViewerBinding),
		Subjects: []rbacv1.Subject{kube.UserSubject("vera")}}, metav1.CreateOptions{DryRun: dry(true)}); err != nil {
		t.Errorf("the token may not create the viewer shard -16: %v", err)
	}

	// kubernetes.maxBindingShards, through the policy's parameter, lowers
	// the shards the token may create (RBAC cannot narrow create by name).
	viewerShard := func(name string) func() error {
		return func() error {
			_, err := sa.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: kube.ExpectedRoleRef(model.ViewerBinding),
				Subjects: []rbacv1.Subject{kube.UserSubject("vera")}}, metav1.CreateOptions{DryRun: dry(true)})
			return err
		}
	}
	e.setFenceParam("maxBindingShards", "2", refusedByFence(viewerShard(model.ViewerBinding+"-3")))
	if err := viewerShard(model.ViewerBinding + "-2")(); err != nil {
		t.Errorf("maxBindingShards=2 refuses the viewer shard -2: %v", err)
	}
	if err := viewerShard(model.ViewerBinding)(); err != nil {
		t.Errorf("maxBindingShards=2 refuses the viewer binding itself: %v", err)
	}
	e.setFenceParam("maxBindingShards", "0", refusedByFence(viewerShard(model.ViewerBinding+"-1")))
	e.setFenceParam("maxBindingShards", "16", viewerShard(model.ViewerBinding+"-16"))

	// The policy applies to the ServiceAccount only: the admin still may.
	if _, err := e.cs.RbacV1().RoleBindings("unlabelled").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "admin-made"}, RoleRef: kube.ExpectedRoleRef(model.ExecutorBinding),
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "team"}}},
		metav1.CreateOptions{DryRun: dry(true)}); err != nil {
		t.Errorf("the policy refused the cluster admin: %v", err)
	}

	// projects.excludeNamespaces and namespacePattern reach the policy
	// through its parameters (globs, as the daemon reads them): a labelled
	// namespace they fence is refused to the token too.
	bindIn := func(ns string) func() error {
		return func() error {
			_, err := sa.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding}, RoleRef: kube.ExpectedRoleRef(model.ExecutorBinding)},
				metav1.CreateOptions{DryRun: dry(true)})
			return err
		}
	}
	if err := bindIn("ml-beta-2")(); err != nil {
		t.Fatalf("premise: ml-beta-2 is labelled, the token may bind there: %v", err)
	}
	e.setFenceParam("excludeNamespaces", "team-x, ml-*-[0-9]", refusedByFence(bindIn("ml-beta-2")))
	e.setFenceParam("excludeNamespaces", "ml-beta-[3-9]", bindIn("ml-beta-2"))
	e.setFenceParam("namespacePattern", "runai-*", refusedByFence(bindIn("ml-beta-2")))
	e.setFenceParam("namespacePattern", "ml-beta-?", bindIn("ml-beta-2"))
	e.setFenceParam("excludeNamespaces", "", bindIn("ml-beta-2"))
	e.setFenceParam("namespacePattern", "", bindIn("ml-beta-2"))

	// kube-system's label goes (the daemon's own fence is tested apart).
	if _, err := e.cs.CoreV1().Namespaces().Patch(ctx, "kube-system", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"runai/queue":null}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	// The daemon's own cycle, with the same token: ml-beta is a static
	// project whose namespace is not labelled, so the operator lists it.
	cfg := e.config(groupsYAML + sampleProjects)
	kc, _ := e.saKubeconfig()
	e.setFenceParam("staticNamespaces", "ml-beta", func() error {
		_, err := sa.RbacV1().RoleBindings("ml-beta").Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding}, RoleRef: kube.ExpectedRoleRef(model.ExecutorBinding)},
			metav1.CreateOptions{DryRun: dry(true)})
		return err
	})
	r := e.runAs(kc, "once", "--config", cfg)
	if r.code != 0 || strings.Contains(r.stderr, fencePolicy) || strings.Contains(strings.ToLower(r.stderr), "forbidden") {
		t.Fatalf("once as %s with the admission policy: exit %d\n%s", saUser, r.code, r.stderr)
	}
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
	e.expectUsers(betaExec, "bob", "frank")
	e.expectUsers(viewer, "gina", "vera")
	e.expectUsers(indexMap, "alice", "bob", "carol", "erin", "frank")

	// A Group subject an admin put on a managed binding is kept through the
	// daemon's patches, and the token cannot take it away.
	rb0, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb0.Subjects = append(rb0.Subjects, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "alpha-leads"})
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Update(ctx, rb0, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.removeMembers("runai-alpha-executors", "bob")
	if r := e.runAs(kc, "once", "--config", cfg); r.code != 0 {
		t.Fatalf("second once: exit %d\n%s", r.code, r.stderr)
	}
	e.expectUsers(alphaExec, "alice", "carol", "erin", "hand-added")
	dropGroup := `{"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"alice"}]}`
	_, err = sa.RbacV1().RoleBindings("runai-alpha").Patch(ctx, model.ExecutorBinding, types.MergePatchType, []byte(dropGroup), metav1.PatchOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), fencePolicy) {
		t.Errorf("removing the admin's Group subject with the token: %v, want refused by %s", err, fencePolicy)
	}
	rb1, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept := false
	for _, s := range rb1.Subjects {
		if s.Kind == rbacv1.GroupKind && s.Name == "alpha-leads" {
			kept = true
		}
	}
	if !kept {
		t.Errorf("the admin's Group subject is gone: %+v", rb1.Subjects)
	}
}
