package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// store reads the guard's store in the runai namespace.
func (e *env) store() *model.StateSnapshot {
	e.t.Helper()
	snap, err := kube.NewStateStore(e.cs, "runai").Load(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return snap
}

// approve records an approval key in the guard's store, as the printed
// kubectl annotate command does (as admin).
func (e *env) approve(key string) {
	e.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"approved by the test"}}}`, model.ApprovalPrefix+strings.TrimPrefix(key, "sha256:"))
	if _, err := e.cs.CoreV1().ConfigMaps("runai").Patch(context.Background(), model.StateConfigMap, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatalf("approve %s: %v", key, err)
	}
}

var approvalRE = regexp.MustCompile(`approve\.runai-ldap-sync\.github\.io/([0-9a-f]{16})=`)

// approvalKeyIn finds the approval key in a printed approve command.
func approvalKeyIn(t *testing.T, msg string) string {
	t.Helper()
	m := approvalRE.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no approve command in %q", msg)
	}
	return "sha256:" + m[1]
}
