package sync

import (
	"sort"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
)

// Reasons a project is skipped.
const (
	SkipNamespaceMissing = "namespace_missing"
	SkipInvalidName      = "invalid_name"
	SkipDuplicate        = "duplicate_namespace"
	SkipConflict         = "label_conflict"
	SkipTerminating      = "namespace_terminating"
)

// ProjectSkipReasons lists every reason, so metrics can report zeros.
var ProjectSkipReasons = []string{SkipNamespaceMissing, SkipInvalidName, SkipDuplicate, SkipConflict, SkipTerminating}

// SkippedProject is a project that will not be synced this cycle.
type SkippedProject struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Reason    string `json:"reason"`
}

// DefaultNamespace is Run:AI's namespace for a project.
func DefaultNamespace(project string) string { return "runai-" + project }

// FindProjects derives the projects from the namespaces (those labelled
// <namespaceLabel>=<project>) and the static list. It is pure: everything
// odd is returned as a skipped project rather than guessed at.
func FindProjects(namespaces []kube.Namespace, cfg config.Projects) ([]Project, []SkippedProject) {
	var skipped []SkippedProject
	exists := map[string]kube.Namespace{}
	labelled := map[string][]string{} // project -> namespaces
	for _, ns := range namespaces {
		exists[ns.Name] = ns
		if cfg.NamespaceLabel == "" {
			continue
		}
		v, ok := ns.Labels[cfg.NamespaceLabel]
		if !ok {
			continue
		}
		if !config.ValidProjectName(v) {
			skipped = append(skipped, SkippedProject{Name: v, Namespace: ns.Name, Reason: SkipInvalidName})
			continue
		}
		labelled[v] = append(labelled[v], ns.Name)
	}

	projects := map[string]Project{}
	for name, nss := range labelled {
		if len(nss) > 1 {
			// Two namespaces claim one project: either could be wrong.
			sort.Strings(nss)
			for _, n := range nss {
				skipped = append(skipped, SkippedProject{Name: name, Namespace: n, Reason: SkipDuplicate})
			}
			continue
		}
		projects[name] = Project{Name: name, Namespace: nss[0]}
	}

	for _, sp := range cfg.Static {
		nsName := sp.Namespace
		if nsName == "" {
			nsName = DefaultNamespace(sp.Name)
		}
		ns, ok := exists[nsName]
		if !ok {
			skipped = append(skipped, SkippedProject{Name: sp.Name, Namespace: nsName, Reason: SkipNamespaceMissing})
			continue
		}
		if cfg.NamespaceLabel != "" {
			if v, ok := ns.Labels[cfg.NamespaceLabel]; ok && v != sp.Name {
				skipped = append(skipped, SkippedProject{Name: sp.Name, Namespace: nsName, Reason: SkipConflict})
				continue
			}
		}
		if prev, ok := projects[sp.Name]; ok && prev.Namespace != nsName {
			// The static entry is explicit; the labelled namespace loses.
			skipped = append(skipped, SkippedProject{Name: sp.Name, Namespace: prev.Namespace, Reason: SkipConflict})
		}
		projects[sp.Name] = Project{Name: sp.Name, Namespace: nsName}
	}

	out := make([]Project, 0, len(projects))
	for _, p := range projects {
		if exists[p.Namespace].Terminating {
			skipped = append(skipped, SkippedProject{Name: p.Name, Namespace: p.Namespace, Reason: SkipTerminating})
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	sort.Slice(skipped, func(i, j int) bool {
		if skipped[i].Name != skipped[j].Name {
			return skipped[i].Name < skipped[j].Name
		}
		return skipped[i].Namespace < skipped[j].Namespace
	})
	return out, skipped
}
