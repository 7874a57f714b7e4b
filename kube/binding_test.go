package kube

import (
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// A binding whose record cannot be read is still returned, with the error
// kept on it: only that binding is affected, and only if it is planned.
func TestUnreadableRecordIsTheBindingsError(t *testing.T) {
	rb := &rbacv1.RoleBinding{}
	rb.Namespace, rb.Name = "team", ExecutorBinding
	rb.Annotations = map[string]string{ManagedAnnotation: `["alice"`}
	b := fromRoleBinding(rb)
	if b.ManagedErr == nil || b.Managed != nil || !strings.Contains(b.ManagedErr.Error(), "team") {
		t.Errorf("got managed %v, err %v", b.Managed, b.ManagedErr)
	}
	rb.Annotations[ManagedAnnotation] = `["Smith, John"]`
	if b := fromRoleBinding(rb); b.ManagedErr != nil || !reflect.DeepEqual(b.Managed, []string{"Smith, John"}) {
		t.Errorf("got managed %v, err %v", b.Managed, b.ManagedErr)
	}
}
