// Package model is the domain vocabulary of runai-ldap-sync: the bindings
// it manages and their names, the subjects in them, the ownership record,
// shard naming, projects, namespaces, resolved directory groups and the
// changes a plan asks for. It imports no client library (client-go, LDAP,
// logging), so the pure plan and everything that only needs the words can
// be read, built and tested without the adapters.
package model

// Run:AI's binding and role names (BRIEF §2).
const (
	ViewerBinding   = "runai-job-viewer-manual"
	ExecutorBinding = "runai-job-executor-manual"
	IndexMapBinding = "runai-cli-index-map-editor"

	ViewerRole   = "runai-job-viewer"
	ExecutorRole = "runai-job-executor"
	IndexMapRole = "runai-cli-index-map-editor"
)

// Kinds of binding.
const (
	KindClusterRoleBinding = "ClusterRoleBinding"
	KindRoleBinding        = "RoleBinding"
)

// RBACGroup is the API group of RBAC objects and of user subjects.
const RBACGroup = "rbac.authorization.k8s.io"

// Ref names one binding.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// ViewerRef, IndexMapRef and ExecutorRef name the managed bindings.
func ViewerRef() Ref { return Ref{Kind: KindClusterRoleBinding, Name: ViewerBinding} }

// IndexMapRef is the index-map RoleBinding in the Run:AI namespace.
func IndexMapRef(runaiNS string) Ref {
	return Ref{Kind: KindRoleBinding, Namespace: runaiNS, Name: IndexMapBinding}
}

// ExecutorRef is a project's executor RoleBinding.
func ExecutorRef(ns string) Ref {
	return Ref{Kind: KindRoleBinding, Namespace: ns, Name: ExecutorBinding}
}

// RoleRef is the role a binding grants (immutable in Kubernetes).
type RoleRef struct {
	APIGroup string
	Kind     string
	Name     string
}

// ExpectedRoleRef is the roleRef Run:AI's templates give each binding; a
// shard has the roleRef of the binding it extends.
func ExpectedRoleRef(name string) RoleRef {
	if base, _, ok := ShardBase(Ref{Name: name}); ok {
		name = base.Name
	}
	role := map[string]string{ViewerBinding: ViewerRole, ExecutorBinding: ExecutorRole, IndexMapBinding: IndexMapRole}[name]
	return RoleRef{APIGroup: RBACGroup, Kind: "ClusterRole", Name: role}
}
