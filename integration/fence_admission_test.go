package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// fencePolicy is the ValidatingAdmissionPolicy in deploy/admission-policy.yaml.
const fencePolicy = "runai-ldap-sync-fence"

// attack is a write a stolen ServiceAccount token could attempt; rbacRefuses
// marks those RBAC alone already refuses.
type attack struct {
	what        string
	rbacRefuses bool
	do          func(dryRun bool) error
}

func dry(dryRun bool) []string {
	if dryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// tokenAttacks are the writes the issue found RBAC lets through (and a few
// it does not), done with the ServiceAccount's client.
func tokenAttacks(ctx context.Context, sa kubernetes.Interface) []attack {
	executor := kube.ExpectedRoleRef(model.ExecutorBinding)
	clusterAdmin := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}
	everyone := rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:authenticated"}
	rb := func(ns, name string, ref rbacv1.RoleRef, labels map[string]string, s ...rbacv1.Subject) func(bool) error {
		return func(dryRun bool) error {
			_, err := sa.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, RoleRef: ref, Subjects: s},
				metav1.CreateOptions{DryRun: dry(dryRun)})
			return err
		}
	}
	template := map[string]string{"runai-ldap-sync.github.io/template": "true"}
	shardOf := map[string]string{model.ShardOfLabel: "x"}
	crb := func(name string, ref rbacv1.RoleRef) func(bool) error {
		return func(dryRun bool) error {
			_, err := sa.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: shardOf}, RoleRef: ref,
				Subjects: []rbacv1.Subject{kube.UserSubject("hacker")}}, metav1.CreateOptions{DryRun: dry(dryRun)})
			return err
		}
	}
	return []attack{
		{what: "ClusterRoleBinding of runai-job-executor for system:authenticated", do: func(dryRun bool) error {
			_, err := sa.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "runai-job-executor-everyone"}, RoleRef: executor,
				Subjects: []rbacv1.Subject{everyone}}, metav1.CreateOptions{DryRun: dry(dryRun)})
			return err
		}},
		{what: "ClusterRoleBinding runai-job-viewer-manual to runai-job-executor", do: func(dryRun bool) error {
			_, err := sa.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: model.ViewerBinding}, RoleRef: executor,
				Subjects: []rbacv1.Subject{kube.UserSubject("hacker")}}, metav1.CreateOptions{DryRun: dry(dryRun)})
			return err
		}},
		{what: "executor RoleBinding in kube-system (labelled runai/queue=sys)",
			do: rb("kube-system", model.ExecutorBinding, executor, nil, kube.UserSubject("hacker"))},
		{what: "executor RoleBinding in the unlabelled runai-backend (the fromGroups attack)",
			do: rb("runai-backend", model.ExecutorBinding, executor, nil, kube.UserSubject("hacker"))},
		{what: "executor RoleBinding in an unlabelled namespace",
			do: rb("unlabelled", model.ExecutorBinding, executor, nil, kube.UserSubject("hacker"))},
		{what: "RoleBinding of another name to runai-job-executor in a project namespace",
			do: rb("runai-alpha", "team-executors", executor, nil, kube.UserSubject("hacker"))},
		{what: "new executor RoleBinding with a Group subject",
			do: rb("ml-beta-2", model.ExecutorBinding, executor, nil, everyone)},
		{what: "new executor RoleBinding for User system:anonymous",
			do: rb("ml-beta-2", model.ExecutorBinding, executor, nil, kube.UserSubject("system:anonymous"))},
		{what: "adding a Group subject to the executor binding", do: func(dryRun bool) error {
			patch := `{"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"hand-added"},` +
				`{"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":"system:authenticated"}]}`
			_, err := sa.RbacV1().RoleBindings("runai-alpha").Patch(ctx, model.ExecutorBinding, types.MergePatchType,
				[]byte(patch), metav1.PatchOptions{DryRun: dry(dryRun)})
			return err
		}},
		{what: "template-labelled RoleBinding to runai-job-executor for system:authenticated",
			do: rb("runai-alpha", "runai-scheduler-rw-2", executor, template, everyone)},
		{what: "template-labelled RoleBinding to cluster-admin", rbacRefuses: true,
			do: rb("runai-alpha", "runai-scheduler-rw-3", clusterAdmin, template, kube.UserSubject("hacker"))},
		{what: "index-map RoleBinding outside runai",
			do: rb("runai-alpha", model.IndexMapBinding, kube.ExpectedRoleRef(model.IndexMapBinding), nil, kube.UserSubject("hacker"))},
		// Shards: <name>-1 … <name>-16 only, to the same role, in the same place.
		{what: "executor RoleBinding named past the last shard (-17) in a project namespace",
			do: rb("runai-alpha", model.ExecutorBinding+"-17", executor, shardOf, kube.UserSubject("hacker"))},
		{what: "executor shard in an unlabelled namespace",
			do: rb("unlabelled", model.ExecutorBinding+"-1", executor, shardOf, kube.UserSubject("hacker"))},
		{what: "index-map shard outside runai",
			do: rb("runai-alpha", model.IndexMapBinding+"-2", kube.ExpectedRoleRef(model.IndexMapBinding), shardOf, kube.UserSubject("hacker"))},
		{what: "ClusterRoleBinding named past the last viewer shard (-17)", do: crb(model.ViewerBinding+"-17", kube.ExpectedRoleRef(model.ViewerBinding))},
		{what: "viewer shard to runai-job-executor", do: crb(model.ViewerBinding+"-1", executor)},
		{what: "patching a RoleBinding named past the last shard", rbacRefuses: true, do: func(dryRun bool) error {
			_, err := sa.RbacV1().RoleBindings("runai-alpha").Patch(ctx, model.ExecutorBinding+"-17", types.MergePatchType,
				[]byte(`{"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"hacker"}]}`), metav1.PatchOptions{DryRun: dry(dryRun)})
			return err
		}},
		{what: "patching a ClusterRoleBinding named like a shard of another role", rbacRefuses: true, do: func(dryRun bool) error {
			_, err := sa.RbacV1().ClusterRoleBindings().Patch(ctx, model.ExecutorBinding+"-1", types.MergePatchType,
				[]byte(`{"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"hacker"}]}`), metav1.PatchOptions{DryRun: dry(dryRun)})
			return err
		}},
	}
}

// waitUntil retries fn until it returns nil, for a policy or its
// parameters to reach the API server's admission (they load asynchronously).
func waitUntil(t *testing.T, what string, fn func() error) {
	t.Helper()
	waitFor(t, 60*time.Second, what, fn)
}

// waitFor retries cond until it returns nil or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitForFence waits until the admission policy refuses the first attack.
func waitForFence(t *testing.T, ctx context.Context, sa kubernetes.Interface) {
	t.Helper()
	probe := tokenAttacks(ctx, sa)[0]
	waitUntil(t, "the admission policy "+fencePolicy+" refuses "+probe.what, func() error {
		if err := probe.do(true); err == nil || !strings.Contains(err.Error(), fencePolicy) {
			return &fenceNotActive{err}
		}
		return nil
	})
}

type fenceNotActive struct{ err error }

func (e *fenceNotActive) Error() string {
	return "policy not enforced yet (last answer: " + errString(e.err) + ")"
}

func errString(err error) string {
	if err == nil {
		return "allowed"
	}
	return err.Error()
}

// setFenceParam sets one parameter of the policy (as the operator would
// edit admission-policy-params.yaml) and waits until admission sees it:
// check passes once it does.
func (e *env) setFenceParam(key, value string, check func() error) {
	e.t.Helper()
	patch := `{"data":{"` + key + `":"` + value + `"}}`
	if _, err := e.cs.CoreV1().ConfigMaps("runai").Patch(context.Background(), fencePolicy, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatalf("set %s in ConfigMap %s: %v", key, fencePolicy, err)
	}
	waitUntil(e.t, "admission sees "+key+"="+value, check)
}

// refusedByFence turns a write into a condition for setFenceParam: nil
// once the admission policy refuses it.
func refusedByFence(do func() error) func() error {
	return func() error {
		if err := do(); err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), fencePolicy) {
			return fmt.Errorf("not refused by %s: %v", fencePolicy, err)
		}
		return nil
	}
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
