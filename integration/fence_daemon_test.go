package integration

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// TestFenceRefusesTheIssuesAttacks replays the two attacks of the issue
// against the real Samba AD and kube-apiserver, with the daemon's default
// configuration plus projects.fromGroups (both provisioning keys off):
//
//   - a directory group runai-backend-executors with its creator in it
//     used to put that member into a new executor binding in the existing,
//     unlabelled runai-backend (Run:AI's control plane);
//   - kube-system labelled runai/queue=sys used to get an executor binding
//     with the sys project's members.
//
// Neither gets a binding now; both are reported, and the genuine project
// next to them is synced as before.
func TestFenceRefusesTheIssuesAttacks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user("mallory", true)
	e.user("alice", true)
	e.group("runai-backend-executors", "mallory")
	e.group("runai-sys-executors", "mallory")
	e.group("runai-legacy-executors", "mallory")
	e.group("runai-alpha-executors", "alice")
	e.namespace("runai-backend", nil)
	e.namespace("runai-legacy", nil) // an existing namespace nobody made a project
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	if _, err := e.cs.CoreV1().Namespaces().Patch(ctx, "kube-system", "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"runai/queue":"sys"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(`groups:
  executors: ["runai-{project}-executors"]
projects:
  fromGroups:
    pattern: "runai-{project}-executors"
`)
	r := e.run("once", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("once exited %d:\n%s", r.code, r.stderr)
	}
	e.expectUsers(alphaExec, "alice")
	for _, ns := range []string{"runai-backend", "kube-system", "runai-legacy"} {
		if _, err := e.cs.RbacV1().RoleBindings(ns).Get(ctx, model.ExecutorBinding, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("an executor binding exists in %s: %v", ns, err)
		}
	}
	idx := e.usersOf(indexMap)
	if strings.Contains(strings.Join(idx, ","), "mallory") {
		t.Errorf("mallory reached the index-map binding: %v", idx)
	}
	// Reported with their reasons.
	for _, want := range []string{
		`"namespace":"runai-backend","reason":"namespace_fenced","fence":"builtin"`,
		`"namespace":"kube-system","reason":"namespace_fenced","fence":"builtin"`,
		`"namespace":"runai-legacy","reason":"namespace_unlabelled"`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log does not report %s:\n%s", want, r.stderr)
		}
	}
}
