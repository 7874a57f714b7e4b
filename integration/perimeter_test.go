package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// TestPolicyPinsMetadataLabelsAndSubjects: with the shipped deploy/ (and
// both provisioning components), the ServiceAccount's own token cannot set
// ownerReferences or finalizers on anything it writes, set label values it
// never writes, bind template roles to other ServiceAccounts, make a
// Run:AI or KAI namespace a project, or hold the Lease as anything but a
// replica for longer than configured; a ServiceAccount of the same name in
// another namespace is refused everything. The writes the daemon does
// make still pass.
func TestPolicyPinsMetadataLabelsAndSubjects(t *testing.T) {
	e := newKubeEnv(t)
	ctx := context.Background()
	for ns, project := range map[string]string{"runai-alpha": "alpha", "runai-beta": "beta",
		"runai-scale-adjust": "scale", "kai-scheduler": "kai", "kai-resource-reservation": "kai2", "runai-reservation": "res"} {
		e.namespace(ns, map[string]string{"runai/queue": project})
	}
	e.namespace("monitoring", nil)
	e.namespace("runai-delta", nil)
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding, Labels: map[string]string{"team": "alpha"}},
		RoleRef:    kube.ExpectedRoleRef(model.ExecutorBinding), Subjects: []rbacv1.Subject{kube.UserSubject("hand-added")}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := e.installFenced("components/provisioning", "components/label-namespaces")
	e.setFenceParam("namespaceLabels", "runai/namespace-version=v2", func() error {
		return createNamespace(ctx, sa, "runai-gamma", map[string]string{"runai/queue": "gamma",
			"runai-ldap-sync.github.io/provisioned": "true", "runai/namespace-version": "v2"}, true)
	})

	executor := kube.ExpectedRoleRef(model.ExecutorBinding)
	patchExec := func(patch string) func() error {
		return func() error {
			_, err := sa.RbacV1().RoleBindings("runai-alpha").Patch(ctx, model.ExecutorBinding, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			return err
		}
	}
	createRB := func(ns, name string, ref rbacv1.RoleRef, labels map[string]string, owners []metav1.OwnerReference, s ...rbacv1.Subject) func() error {
		return func() error {
			_, err := sa.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, OwnerReferences: owners}, RoleRef: ref, Subjects: s},
				metav1.CreateOptions{})
			return err
		}
	}
	clusterRole := func(name string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
	}
	saSubject := func(ns, name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	}
	template := map[string]string{"runai-ldap-sync.github.io/template": "true", model.ManagedByLabel: model.ManagedByValue}
	ghost := []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "ghost", UID: "0b1e6c1c-0000-4000-8000-000000000000"}}
	lease := func(name, holder string, seconds int32) func() error {
		return func() error {
			now := metav1.NewMicroTime(time.Now())
			_, err := sa.CoordinationV1().Leases("runai").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(seconds), AcquireTime: &now, RenewTime: &now}},
				metav1.CreateOptions{})
			return err
		}
	}
	refused := []refusal{
		{"ownerReferences to an absent owner on the executor binding (the garbage collector would delete it)",
			patchExec(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"ghost","uid":"0b1e6c1c-0000-4000-8000-000000000000"}]}}`)},
		{"a finalizer on the executor binding", patchExec(`{"metadata":{"finalizers":["example.com/block"]}}`)},
		{"a new executor binding with ownerReferences", createRB("runai-beta", model.ExecutorBinding, executor, nil, ghost, kube.UserSubject("alice"))},
		{"the managed-by label set to another value", patchExec(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":"someone-else"}}}`)},
		{"a label the daemon never writes", patchExec(`{"metadata":{"labels":{"team":"hijacked"}}}`)},
		{"a shard labelled as another binding's", createRB("runai-alpha", model.ExecutorBinding+"-1", executor,
			map[string]string{model.ShardOfLabel: model.IndexMapBinding}, nil, kube.UserSubject("alice"))},
		{"an executor binding in runai-scale-adjust (labelled)", createRB("runai-scale-adjust", model.ExecutorBinding, executor, nil, nil, kube.UserSubject("alice"))},
		{"an executor binding in kai-scheduler (labelled)", createRB("kai-scheduler", model.ExecutorBinding, executor, nil, nil, kube.UserSubject("alice"))},
		{"an executor binding in kai-resource-reservation (labelled)", createRB("kai-resource-reservation", model.ExecutorBinding, executor, nil, nil, kube.UserSubject("alice"))},
		{"an executor binding in runai-reservation (labelled)", createRB("runai-reservation", model.ExecutorBinding, executor, nil, nil, kube.UserSubject("alice"))},
		{"a template binding of runai-scheduler-rw for kube-system's default ServiceAccount", createRB("runai-alpha", "runai-scheduler-rw",
			clusterRole("runai-scheduler-rw"), template, nil, saSubject("kube-system", "default"))},
		{"a template binding of runai-scheduler-rw for another Run:AI ServiceAccount", createRB("runai-alpha", "runai-scheduler-rw",
			clusterRole("runai-scheduler-rw"), template, nil, saSubject("runai", "runai-job-controller-project"))},
		{"a template binding of use-runai-user-psp for another namespace's default ServiceAccount", createRB("runai-alpha", "runai-user-psp",
			clusterRole("use-runai-user-psp"), template, nil, saSubject("runai-beta", "default"))},
		{"a namespace created as another project's", func() error {
			return createNamespace(ctx, sa, "runai-epsilon", map[string]string{"runai/queue": "alpha", "runai-ldap-sync.github.io/provisioned": "true"}, false)
		}},
		{"a namespace created with a namespaceLabels key at another value", func() error {
			return createNamespace(ctx, sa, "runai-epsilon", map[string]string{"runai/queue": "epsilon",
				"runai-ldap-sync.github.io/provisioned": "true", "runai/namespace-version": "v3"}, false)
		}},
		{"a namespace created with ownerReferences", func() error {
			_, err := sa.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "runai-epsilon", OwnerReferences: ghost,
				Labels: map[string]string{"runai/queue": "epsilon", "runai-ldap-sync.github.io/provisioned": "true"}}}, metav1.CreateOptions{})
			return err
		}},
		{"monitoring labelled as project p1 with the provisioned marker (the issue's labeller move, by the token)", func() error {
			return labelNamespace(ctx, sa, "monitoring", `{"runai/queue":"p1","runai-ldap-sync.github.io/provisioned":"true"}`, false)
		}},
		{"runai-delta labelled as project alpha", func() error {
			return labelNamespace(ctx, sa, "runai-delta", `{"runai/queue":"alpha"}`, false)
		}},
		{"the provisioned marker at another value", func() error {
			return labelNamespace(ctx, sa, "runai-delta", `{"runai/queue":"delta","runai-ldap-sync.github.io/provisioned":"yes"}`, false)
		}},
		{"a finalizer on a project namespace", func() error {
			_, err := sa.CoreV1().Namespaces().Patch(ctx, "runai-delta", types.MergePatchType,
				[]byte(`{"metadata":{"labels":{"runai/queue":"delta"},"finalizers":["example.com/block"]}}`), metav1.PatchOptions{})
			return err
		}},
		{"an Event with ownerReferences", func() error {
			_, err := sa.CoreV1().Events("runai").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "x.1", OwnerReferences: ghost},
				InvolvedObject: corev1.ObjectReference{Kind: "RoleBinding", Namespace: "runai", Name: model.IndexMapBinding},
				Reason:         "x", Message: "x", Type: corev1.EventTypeNormal}, metav1.CreateOptions{})
			return err
		}},
		{"a ConfigMap other than the guard's store (RBAC cannot narrow create by name)", func() error {
			_, err := sa.CoreV1().ConfigMaps("runai").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "runai-cli-index"},
				Data: map[string]string{"index": "0"}}, metav1.CreateOptions{})
			return err
		}},
		{"the guard's store with ownerReferences", func() error {
			_, err := sa.CoreV1().ConfigMaps("runai").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "runai-ldap-sync-state", OwnerReferences: ghost}},
				metav1.CreateOptions{})
			return err
		}},
		{"the Lease held by x (not a replica identity)", lease(saName, "x", 15)},
		{"the Lease held for 2147483647 s", lease(saName, "vm_0123abcd", 2147483647)},
		{"the Lease held for 16 s (more than leaseDuration)", lease(saName, "vm_0123abcd", 16)},
		{"another Lease", lease("other", "vm_0123abcd", 15)},
	}
	for _, r := range refused {
		err := r.do()
		switch {
		case err == nil:
			t.Errorf("%s: allowed to the token", r.what)
		case !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), fencePolicy):
			t.Errorf("%s: %v, want refused by %s", r.what, err, fencePolicy)
		default:
			t.Logf("refused: %s: %v", r.what, err)
		}
	}
	rb, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rb.OwnerReferences) != 0 || len(rb.Finalizers) != 0 || rb.Labels["team"] != "alpha" || rb.Labels[model.ManagedByLabel] != "" {
		t.Errorf("the executor binding changed: %+v", rb.ObjectMeta)
	}
	if _, err := e.cs.CoordinationV1().Leases("runai").Get(ctx, saName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Lease exists after the refused grabs: %v", err)
	}

	// What the daemon writes still passes (dry runs).
	dryRB := func(ns, name string, ref rbacv1.RoleRef, labels map[string]string, s ...rbacv1.Subject) func() error {
		return func() error {
			_, err := sa.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, RoleRef: ref, Subjects: s},
				metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}
	}
	now := metav1.NewMicroTime(time.Now())
	for what, do := range map[string]func() error{
		"adding a user and the managed-by label to the executor binding": func() error {
			_, err := sa.RbacV1().RoleBindings("runai-alpha").Patch(ctx, model.ExecutorBinding, types.MergePatchType,
				[]byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":"runai-ldap-sync"}},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"hand-added"},{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"alice"}]}`),
				metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
		"a shard labelled with its own base": dryRB("runai-alpha", model.ExecutorBinding+"-1", executor,
			map[string]string{model.ShardOfLabel: model.ExecutorBinding, model.ManagedByLabel: model.ManagedByValue}, kube.UserSubject("alice")),
		"the template's runai-scheduler-rw": dryRB("runai-alpha", "runai-scheduler-rw", clusterRole("runai-scheduler-rw"), template, saSubject("runai", "runai-scheduler-rw")),
		"the template's runai-user-psp":     dryRB("runai-alpha", "runai-user-psp", clusterRole("use-runai-user-psp"), template, saSubject("runai-alpha", "default")),
		"a project namespace with its namespaceLabels": func() error {
			return createNamespace(ctx, sa, "runai-gamma", map[string]string{"runai/queue": "gamma",
				"runai-ldap-sync.github.io/provisioned": "true", "runai/namespace-version": "v2"}, true)
		},
		"labelling runai-delta as project delta": func() error {
			return labelNamespace(ctx, sa, "runai-delta", `{"runai/queue":"delta","runai-ldap-sync.github.io/provisioned":"true","runai/namespace-version":"v2"}`, true)
		},
		"the guard's store": func() error {
			_, err := sa.CoreV1().ConfigMaps("runai").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "runai-ldap-sync-state"}},
				metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
		"the Lease held by a replica for 15 s": func() error {
			_, err := sa.CoordinationV1().Leases("runai").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: saName},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("runai-ldap-sync-7d9c5b4f6-x2x9q_0123abcd"), LeaseDurationSeconds: ptr.To(int32(15)), AcquireTime: &now, RenewTime: &now}},
				metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
	} {
		if err := do(); err != nil {
			t.Errorf("%s: refused to the token: %v", what, err)
		}
	}

	// A ServiceAccount of the same name in another namespace (a kustomize
	// install elsewhere whose binding still points at runai's parameters)
	// is refused everything, loudly, never left unfenced.
	e.namespace("elsewhere", nil)
	if _, err := e.cs.CoreV1().ServiceAccounts("elsewhere").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: saName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.kubectl("", "create", "clusterrolebinding", "elsewhere-sync", "--clusterrole=runai-ldap-sync", "--serviceaccount=elsewhere:"+saName)
	_, other := e.saToken("elsewhere", saName)
	_, err = other.RbacV1().RoleBindings("runai-beta").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding}, RoleRef: executor, Subjects: []rbacv1.Subject{kube.UserSubject("alice")}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "allows only the ServiceAccount runai-ldap-sync of runai") {
		t.Errorf("a legitimate write by elsewhere's %s: %v, want refused naming the install namespace", saName, err)
	}
}

func createNamespace(ctx context.Context, cs kubernetes.Interface, name string, labels map[string]string, dryRun bool) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}},
		metav1.CreateOptions{DryRun: dry(dryRun)})
	return err
}

func labelNamespace(ctx context.Context, cs kubernetes.Interface, name, labels string, dryRun bool) error {
	_, err := cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, []byte(`{"metadata":{"labels":`+labels+`}}`),
		metav1.PatchOptions{DryRun: dry(dryRun)})
	return err
}

// TestLeaseStallIsReported is the Lease grab, on the shipped
// install: the ServiceAccount's token cannot take the Lease (holder x, a
// lease of 2147483647 s); when someone the policy does not fence (here the
// admin) leaves it held that way, the replica, running as shipped with its
// own token, reports the stall (metric, /readyz, log) instead of standing
// by in silence; once the Lease is gone it takes over, and the policy lets
// its own Lease writes through.
func TestLeaseStallIsReported(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()
	sa := e.installFenced()
	now := metav1.NewMicroTime(time.Now())
	grab := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: saName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x"), LeaseDurationSeconds: ptr.To(int32(2147483647)), AcquireTime: &now, RenewTime: &now}}
	if _, err := sa.CoordinationV1().Leases("runai").Create(ctx, grab, metav1.CreateOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), fencePolicy) {
		t.Fatalf("the token grabbing the Lease: %v, want refused by %s", err, fencePolicy)
	}
	if _, err := e.cs.CoordinationV1().Leases("runai").Create(ctx, grab, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	kc, _ := e.saKubeconfig()
	addr := freeAddr(t)
	cfg := e.config(groupsYAML + sampleProjects + fmt.Sprintf(`schedule: "@every 1h"
server: {address: %q}
leaderElection: {enabled: true, leaseName: %s, leaseDuration: 3s, renewDeadline: 2s, retryPeriod: 1s}
`, addr, saName))
	r := &replica{logs: &syncBuffer{}, metrics: "http://" + addr}
	r.cmd = exec.Command(binary, "run", "--config", cfg, "--kubeconfig", kc)
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })

	waitFor(t, 60*time.Second, "the replica reports the stalled Lease", func() error {
		m, _ := get(r.metrics + "/metrics")
		if !strings.Contains(m, "\nrunai_ldap_sync_leader_stalled 1\n") {
			return fmt.Errorf("runai_ldap_sync_leader_stalled is not 1")
		}
		if body, code := get(r.metrics + "/readyz"); code != 503 || !strings.Contains(body, `"x"`) {
			return fmt.Errorf("/readyz %d %q, want 503 naming x", code, body)
		}
		if !strings.Contains(r.logs.String(), "leader lease held but not renewed") {
			return fmt.Errorf("no log line")
		}
		return nil
	})
	// A second token grab, updating the held Lease, is refused too.
	l, err := sa.CoordinationV1().Leases("runai").Get(ctx, saName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Spec.RenewTime = &now
	if _, err := sa.CoordinationV1().Leases("runai").Update(ctx, l, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the token renewing x's Lease: %v, want Forbidden", err)
	}

	if err := e.cs.CoordinationV1().Leases("runai").Delete(ctx, saName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the replica leads and syncs", func() error {
		m, _ := get(r.metrics + "/metrics")
		if !strings.Contains(m, "\nrunai_ldap_sync_leader 1\n") || !strings.Contains(m, "\nrunai_ldap_sync_leader_stalled 0\n") {
			return fmt.Errorf("not leading, or still stalled")
		}
		if body, code := get(r.metrics + "/readyz"); code != 200 {
			return fmt.Errorf("/readyz %d %q", code, body)
		}
		return nil
	})
	l, err = e.cs.CoordinationV1().Leases("runai").Get(ctx, saName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(l.Spec.HolderIdentity, ""); !strings.Contains(h, "_") || ptr.Deref(l.Spec.LeaseDurationSeconds, 0) != 3 {
		t.Errorf("Lease held by %q for %d s, want the replica for 3 s", h, ptr.Deref(l.Spec.LeaseDurationSeconds, 0))
	}
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
	if err := r.stop(); err != nil {
		t.Errorf("stop: %v\n%s", err, r.logs.String())
	}
}

// TestConfigFilesConfinedAndPublicRoots: the binary refuses a
// configuration naming a file outside its directory (the ConfigMap
// editor's way to the ServiceAccount token), naming the key, the path and
// the rule, and warns when the DCs' certificates are checked against the
// public roots.
func TestConfigFilesConfinedAndPublicRoots(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	token := filepath.Join(outside, "token")
	pw := filepath.Join(dir, "bind-password")
	for _, f := range []string{token, pw} {
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write := func(pwFile string) string {
		path := filepath.Join(dir, "config.yaml")
		body := fmt.Sprintf("ldap:\n  urls: [\"ldaps://dc1.example.test:636\"]\n  bindDN: svc@example.test\n  bindPasswordFile: %s\n  baseDN: DC=example,DC=test\n%s", pwFile, groupsYAML+sampleProjects)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	out, err := exec.Command(binary, "check-config", "--config", write(token)).CombinedOutput()
	if code := exitStatus(err); code != 2 || !strings.Contains(string(out), "ldap.bindPasswordFile") || !strings.Contains(string(out), token) ||
		!strings.Contains(string(out), "outside "+dir) {
		t.Errorf("bindPasswordFile outside the directory: exit %d\n%s", code, out)
	}
	out, err = exec.Command(binary, "check-config", "--config", write(pw)).CombinedOutput()
	if code := exitStatus(err); code != 0 || !strings.Contains(string(out), "warning: ldap.caFile") || !strings.Contains(string(out), "public") {
		t.Errorf("caFile unset: exit %d, want 0 with a warning about the public roots\n%s", code, out)
	}
}

// TestLabellerCannotMakeRunaiNamespacesProjects: someone allowed only to
// label namespaces (their own token) labels Run:AI's runai-scale-adjust and
// KAI's kai-scheduler as projects whose directory groups exist; the
// daemon, run as shipped with its own token, binds no one there (its own
// fence decides, before the admission policy would have to) and syncs the
// real projects.
func TestLabellerCannotMakeRunaiNamespacesProjects(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()
	e.group("runai-scale-executors", "alice")
	e.group("runai-kai-executors", "bob")
	e.namespace("runai-scale-adjust", nil)
	e.namespace("kai-scheduler", nil)
	e.installFenced()

	// The labeller: a ServiceAccount that may only read and patch namespaces.
	labeller := e.insider("ops", "labeller", false, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "patch"}})
	for ns, project := range map[string]string{"runai-scale-adjust": "scale", "kai-scheduler": "kai"} {
		if err := labelNamespace(ctx, labeller, ns, `{"runai/queue":"`+project+`"}`, false); err != nil {
			t.Fatalf("the labeller labelling %s: %v", ns, err)
		}
	}

	kc, _ := e.saKubeconfig()
	r := e.runAs(kc, "once", "--config", e.config(groupsYAML+"projects:\n  namespaceLabel: runai/queue\n"))
	if r.code != 0 || strings.Contains(strings.ToLower(r.stderr), "forbidden") {
		t.Fatalf("once as %s: exit %d (a refusal means the daemon tried)\n%s", saUser, r.code, r.stderr)
	}
	for _, ns := range []string{"runai-scale-adjust", "kai-scheduler"} {
		if _, err := e.cs.RbacV1().RoleBindings(ns).Get(ctx, model.ExecutorBinding, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("an executor binding exists in %s: %v", ns, err)
		}
		if !strings.Contains(r.stderr, ns) {
			t.Errorf("the cycle's log does not report the fenced %s:\n%s", ns, r.stderr)
		}
	}
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
}
