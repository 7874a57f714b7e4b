package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// TestStateStoreFence: with deploy/'s RBAC and admission policy on the
// real kube-apiserver, the daemon's token creates and writes its guard
// store and consumes an approval, but cannot add one (it cannot approve
// its own holds); an admin of the Run:AI namespace (their own token) may
// approve and may write the state (their own `once`).
func TestStateStoreFence(t *testing.T) {
	e := newKubeEnv(t)
	ctx := context.Background()
	sa := e.installFenced()

	daemon := kube.NewStateStore(sa, "runai")
	st := &model.State{Bindings: map[string]*model.BindingState{model.ViewerRef().String(): {Known: true}}}
	waitUntil(t, "the daemon's token creates its store", func() error { _, err := daemon.Save(ctx, st, nil); return err })
	patch := func(c func() (*corev1.ConfigMap, error)) error { _, err := c(); return err }
	refused := func(err error) error {
		switch {
		case err == nil:
			return errors.New("allowed")
		case !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "runai-ldap-sync-state"):
			return fmt.Errorf("not refused by the policy: %w", err)
		}
		return nil
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.kubectl("", "get", "validatingadmissionpolicy", "runai-ldap-sync-state", "-o", "yaml"))
		}
	})
	// The daemon adding an approval: refused (once the policy is loaded).
	try := 0
	waitUntil(t, "the policy refuses the daemon's token an approval", func() error {
		try++
		return refused(patch(func() (*corev1.ConfigMap, error) {
			return sa.CoreV1().ConfigMaps("runai").Patch(ctx, model.StateConfigMap, types.MergePatchType,
				[]byte(fmt.Sprintf(`{"metadata":{"annotations":{"%s%016x":"self"}}}`, model.ApprovalPrefix, try)), metav1.PatchOptions{})
		}))
	})
	// An admin of the Run:AI namespace writing the state (`once` run with
	// their own credentials, e.g. a migration): allowed, then the daemon
	// writes its own again.
	runaiAdmin := e.insider("runai", "runai-admin", true, rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}})
	admin := kube.NewStateStore(runaiAdmin, "runai")
	if _, err := admin.Save(ctx, st, nil); err != nil {
		t.Fatalf("an admin's once cannot save the state: %v", err)
	}
	if _, err := daemon.Save(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	// An admin approving (their own token): allowed.
	if _, err := runaiAdmin.CoreV1().ConfigMaps("runai").Patch(ctx, model.StateConfigMap, types.MergePatchType,
		[]byte(fmt.Sprintf(`{"metadata":{"annotations":{"%s00000000000000aa":"approved"}}}`, model.ApprovalPrefix)), metav1.PatchOptions{}); err != nil {
		t.Fatalf("an admin of the Run:AI namespace cannot approve: %v", err)
	}
	// The daemon consuming the admin's approval, with its state: allowed.
	snap, err := daemon.Load(ctx)
	if err != nil || len(snap.Approvals) != 1 {
		t.Fatalf("load: %+v, %v", snap, err)
	}
	if _, err := daemon.Save(ctx, &snap.State, []string{"sha256:00000000000000aa"}); err != nil {
		t.Fatalf("the daemon cannot consume an approval: %v", err)
	}
	if snap, err := daemon.Load(ctx); err != nil || len(snap.Approvals) != 0 || !snap.State.Bindings[model.ViewerRef().String()].Known {
		t.Errorf("after consuming: %+v, %v", snap, err)
	}
	// The token reads no other ConfigMap (RBAC: get by name only).
	if _, err := sa.CoreV1().ConfigMaps("runai").Get(ctx, "runai-ldap-sync-fence", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the token reads another ConfigMap: %v", err)
	}
}
