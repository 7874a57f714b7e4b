package kube

import (
	"reflect"
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	rbacv1 "k8s.io/api/rbac/v1"
)

// A binding whose record cannot be read is still returned, with the error
// kept on it: only that binding is affected, and only if it is planned.
func TestUnreadableRecordIsTheBindingsError(t *testing.T) {
	rb := &rbacv1.RoleBinding{}
	rb.Namespace, rb.Name = "team", model.ExecutorBinding
	rb.Annotations = map[string]string{model.ManagedAnnotation: `["alice"`}
	b := fromRoleBinding(rb)
	if owned, err := b.Owned(); err == nil || owned != nil || !strings.Contains(err.Error(), "team") {
		t.Errorf("got managed %v, err %v", owned, err)
	}
	rb.Annotations[model.ManagedAnnotation] = `["Smith, John"]`
	if owned, err := fromRoleBinding(rb).Owned(); err != nil || !reflect.DeepEqual(owned, []string{"Smith, John"}) {
		t.Errorf("got managed %v, err %v", owned, err)
	}
}
