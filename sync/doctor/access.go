package doctor

import (
	"fmt"
	"strings"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Check names.
const (
	CheckDaemonRBAC   = "rbac.daemon"
	CheckBind         = "rbac.bind"
	CheckClusterRoles = "runai.clusterroles"
	CheckGrants       = "grants"
)

// Access is one permission, checked with a (Self)SubjectAccessReview.
type Access struct {
	Verb, Group, Resource, Subresource, Namespace, Name string
}

func (a Access) String() string {
	res := a.resource()
	if a.Name != "" {
		res += " " + a.Name
	}
	if a.Namespace != "" {
		res += " in " + a.Namespace
	}
	return a.Verb + " " + res
}

// resource is RESOURCE[.GROUP][/SUBRESOURCE], as kubectl names it.
func (a Access) resource() string {
	res := a.Resource
	if a.Group != "" {
		res += "." + a.Group
	}
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	return res
}

// CanI is the kubectl command that asks the same question.
func (a Access) CanI(as string) string {
	res := a.resource()
	if a.Name != "" {
		res += "/" + a.Name
	}
	cmd := "kubectl auth can-i " + a.Verb + " " + res
	if a.Namespace != "" {
		cmd += " -n " + a.Namespace
	}
	if as != "" {
		cmd += " --as " + as
	}
	return cmd
}

const rbacGroup = "rbac.authorization.k8s.io"

// RunaiRoles are Run:AI's three ClusterRoles the managed bindings grant.
var RunaiRoles = []string{model.ViewerRole, model.ExecutorRole, model.IndexMapRole}

// DaemonAccess is what the daemon's token needs for cfg (deploy/rbac.yaml
// and its components grant it; the integration test of a healthy setup
// holds the two together), bind on Run:AI's roles excepted (BindAccess).
// projectNS is a project namespace to ask about namespaced writes in (""
// when there is none yet: cluster-wide); templateRoles are the ClusterRoles
// the project template's RoleBindings name, which the daemon must bind.
func DaemonAccess(cfg *config.Config, projectNS string, templateRoles []string) []Access {
	runaiNS := cfg.Kubernetes.RunaiNamespace
	var out []Access
	for _, v := range []string{"list", "watch"} {
		out = append(out, Access{Verb: v, Resource: "namespaces"})
	}
	for _, r := range []string{"rolebindings", "clusterrolebindings"} {
		for _, v := range []string{"get", "list", "watch", "create"} {
			out = append(out, Access{Verb: v, Group: rbacGroup, Resource: r})
		}
	}
	for _, v := range []string{"patch", "update"} {
		out = append(out,
			Access{Verb: v, Group: rbacGroup, Resource: "clusterrolebindings", Name: model.ViewerBinding},
			Access{Verb: v, Group: rbacGroup, Resource: "rolebindings", Namespace: projectNS, Name: model.ExecutorBinding},
			Access{Verb: v, Group: rbacGroup, Resource: "rolebindings", Namespace: runaiNS, Name: model.IndexMapBinding})
	}
	// The guard's store (windows, approvals, group pins).
	out = append(out, Access{Verb: "create", Resource: "configmaps", Namespace: runaiNS})
	for _, v := range []string{"get", "update"} {
		out = append(out, Access{Verb: v, Resource: "configmaps", Namespace: runaiNS, Name: model.StateConfigMap})
	}
	if cfg.Mode == config.ModeEnforce {
		out = append(out, Access{Verb: "create", Resource: "events", Namespace: runaiNS})
	}
	if cfg.LeaderElection.Enabled {
		out = append(out, Access{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: runaiNS})
		for _, v := range []string{"get", "update"} {
			out = append(out, Access{Verb: v, Group: "coordination.k8s.io", Resource: "leases", Namespace: runaiNS, Name: cfg.LeaderElection.LeaseName})
		}
	}
	if cfg.Projects.CreateNamespaces {
		out = append(out, Access{Verb: "create", Resource: "namespaces"})
	}
	if cfg.Projects.LabelExistingNamespaces {
		out = append(out, Access{Verb: "patch", Resource: "namespaces"})
	}
	for _, r := range templateRoles {
		out = append(out, Access{Verb: "bind", Group: rbacGroup, Resource: "clusterroles", Name: r})
	}
	return out
}

// BindAccess is `bind` on each of Run:AI's ClusterRoles: without it the
// API server refuses every binding the daemon writes to them.
func BindAccess() []Access {
	var out []Access
	for _, r := range RunaiRoles {
		out = append(out, Access{Verb: "bind", Group: rbacGroup, Resource: "clusterroles", Name: r})
	}
	return out
}

// GrantKind is one kind of managed binding and what Run:AI's CLI needs
// the users it grants to be allowed.
type GrantKind struct {
	Binding string // model.ViewerBinding, ...
	Role    string
	// Needs, in the namespace given to For.
	needs []Access
}

// GrantKinds are the three managed bindings. A viewer lists jobs and
// pods (`runai list jobs`); an executor submits, so creates pods and execs
// into them in its project; every executor bumps the job index in the
// ConfigMap runai-cli-index of the Run:AI namespace.
var GrantKinds = []GrantKind{
	{Binding: model.ViewerBinding, Role: model.ViewerRole, needs: []Access{
		{Verb: "list", Resource: "pods"}, {Verb: "list", Group: "batch", Resource: "jobs"}}},
	{Binding: model.ExecutorBinding, Role: model.ExecutorRole, needs: []Access{
		{Verb: "create", Resource: "pods"}, {Verb: "create", Resource: "pods", Subresource: "exec"}}},
	{Binding: model.IndexMapBinding, Role: model.IndexMapRole, needs: []Access{
		{Verb: "update", Resource: "configmaps", Name: "runai-cli-index"}}},
}

// For returns the accesses in namespace ns.
func (g GrantKind) For(ns string) []Access {
	out := make([]Access, len(g.needs))
	for i, a := range g.needs {
		a.Namespace = ns
		out[i] = a
	}
	return out
}

// Denied is an access a review refused, and the reviewer's reason.
type Denied struct {
	Access Access
	Reason string
}

// DaemonRBACCheck turns the daemon's reviews into one line.
func DaemonRBACCheck(who string, asked int, denied []Denied) Check {
	c := Check{Name: CheckDaemonRBAC}
	if len(denied) == 0 {
		c.Status, c.Message = OK, fmt.Sprintf("%s may do the %d things the daemon does", who, asked)
		return c
	}
	c.Status = Fail
	c.Message = fmt.Sprintf("%s may not %s", who, deniedList(denied))
	c.Fix = "apply deploy/rbac.yaml (with the components your config uses) or the chart, bound to this identity; check with: " + denied[0].Access.CanI(who)
	return c
}

// BindCheck is the line for `bind` on one ClusterRole.
func BindCheck(who string, a Access, allowed bool, reason string) Check {
	c := Check{Name: CheckBind}
	if allowed {
		c.Status, c.Message = OK, fmt.Sprintf("%s may bind ClusterRole %s", who, a.Name)
		return c
	}
	c.Status = Fail
	c.Message = fmt.Sprintf("%s may not bind ClusterRole %s%s: the API server refuses every binding the daemon writes to it", who, a.Name, because(reason))
	c.Fix = fmt.Sprintf("grant verb bind on clusterroles %s (deploy/rbac.yaml does); check with: %s", a.Name, a.CanI(who))
	return c
}

func deniedList(denied []Denied) string {
	parts := make([]string, len(denied))
	for i, d := range denied {
		parts[i] = d.Access.String()
	}
	return strings.Join(parts, "; ")
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}
