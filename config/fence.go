package config

import (
	"fmt"
	"path"
	"strings"
)

// Reasons a namespace is fenced: never a project, whatever its labels.
const (
	FenceBuiltin  = "builtin"          // a system or Run:AI namespace
	FenceExcluded = "excluded"         // projects.excludeNamespaces
	FencePattern  = "outside_pattern"  // does not match projects.namespacePattern
	FenceOwn      = "daemon_namespace" // the namespace the daemon runs in
)

// FenceReasons lists every reason, so metrics can report zeros.
var FenceReasons = []string{FenceBuiltin, FenceExcluded, FencePattern, FenceOwn}

// BuiltinFence are namespaces that are never projects: Kubernetes' and
// OpenShift's own, every namespace a Run:AI install creates (the cluster's
// runai, runai-reservation and, with autoscaling, runai-scale-adjust; the
// control plane's runai-backend) and their KAI scheduler counterparts. A
// binding there would hand a directory group the control plane's pods,
// Secrets and tokens. The admission policy lists the same (a test checks).
var BuiltinFence = []string{"kube-*", "openshift-*", "openshift", "default",
	"runai", "runai-backend", "runai-reservation", "runai-scale-adjust",
	"kai-scheduler", "kai-resource-reservation", "kai-scale-adjust"}

// DefaultMaxNewPerCycle caps the projects one cycle may add.
const DefaultMaxNewPerCycle = 10

// Fenced says why namespace ns can never be a project, or "" when it may
// be one. Pure: ownNamespace is the namespace the daemon runs in ("" when
// unknown).
func (c *Config) Fenced(ns, ownNamespace string) string {
	p := c.Projects
	p.runaiNamespace, p.OwnNamespace = c.Kubernetes.RunaiNamespace, ownNamespace
	return p.Fenced(ns)
}

// Fenced says why namespace ns can never be a project, or "" when it may
// be one: the built-in list, kubernetes.runaiNamespace (once Validate has
// run), OwnNamespace, excludeNamespaces and namespacePattern.
func (p *Projects) Fenced(ns string) string {
	for _, g := range BuiltinFence {
		if ok, _ := path.Match(g, ns); ok {
			return FenceBuiltin
		}
	}
	if p.runaiNamespace != "" && ns == p.runaiNamespace {
		return FenceBuiltin
	}
	if p.OwnNamespace != "" && ns == p.OwnNamespace {
		return FenceOwn
	}
	for _, g := range p.ExcludeNamespaces {
		if ok, _ := path.Match(g, ns); ok {
			return FenceExcluded
		}
	}
	if p.NamespacePattern != "" {
		if ok, _ := path.Match(p.NamespacePattern, ns); !ok {
			return FencePattern
		}
	}
	return ""
}

// validateFence checks projects.excludeNamespaces, namespacePattern and
// maxNewPerCycle.
func (p *Projects) validateFence(add func(field, format string, args ...any)) {
	for i, g := range p.ExcludeNamespaces {
		if err := checkGlob(g); err != nil {
			add(fmt.Sprintf("projects.excludeNamespaces[%d]", i), "%v", err)
		}
	}
	if p.NamespacePattern != "" {
		if err := checkGlob(p.NamespacePattern); err != nil {
			add("projects.namespacePattern", "%v", err)
		}
	}
	if p.MaxNewPerCycle < 1 {
		add("projects.maxNewPerCycle", "must be at least 1 (it caps how many projects one cycle adds), got %d", p.MaxNewPerCycle)
	}
}

func checkGlob(g string) error {
	if strings.TrimSpace(g) == "" {
		return fmt.Errorf("is empty")
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("%q is not a glob (names with *, ? and [a-z]): %v", g, err)
	}
	// Namespace names hold only a-z, 0-9 and '-'. Refusing anything else
	// keeps the admission policy's regex form of the glob equal to it.
	for _, r := range g {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-*?[]^", r)) {
			return fmt.Errorf("%q holds %q: namespace globs use only a-z, 0-9, '-', '*', '?' and [...] classes", g, r)
		}
	}
	return nil
}

// validateStaticFence refuses a static project whose namespace is fenced:
// the configuration says two contradicting things.
func (c *Config) validateStaticFence(add func(field, format string, args ...any)) {
	for i, sp := range c.Projects.Static {
		ns := sp.Namespace
		if ns == "" {
			ns = DefaultNamespace(sp.Name)
		}
		if why := c.Fenced(ns, ""); why != "" {
			add(fmt.Sprintf("projects.static[%d]", i), "namespace %s can never be a project (%s): a system or Run:AI namespace, or one in projects.excludeNamespaces or outside projects.namespacePattern", ns, why)
		}
	}
}
