package kube

import (
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	corev1 "k8s.io/api/core/v1"
)

// Where an Event lives: a namespaced binding's in its namespace, the
// viewer ClusterRoleBinding's in the Run:AI namespace (never default), a
// namespace's in itself.
func TestEventNamespaces(t *testing.T) {
	for _, tc := range []struct {
		ref      model.Ref
		ns, kind string
	}{
		{model.ExecutorRef("runai-a"), "runai-a", model.KindRoleBinding},
		{model.ViewerRef(), "runai-system", model.KindClusterRoleBinding},
		{model.Ref{Kind: KindNamespace, Name: "monitoring"}, "monitoring", KindNamespace},
	} {
		o := objectReference(tc.ref, "", "runai-system").(*corev1.ObjectReference)
		if o.Namespace != tc.ns || o.Kind != tc.kind || o.Name != tc.ref.Name {
			t.Errorf("%s: event in %q (%s %s)", tc.ref, o.Namespace, o.Kind, o.APIVersion)
		}
	}
}
