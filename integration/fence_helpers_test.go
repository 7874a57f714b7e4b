// The admission policy that fences the daemon's token (deploy/'s
// ValidatingAdmissionPolicy): the writes it must refuse, and waiting for it
// and its parameters to take effect.

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

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
