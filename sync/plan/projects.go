package plan

import (
	"sort"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Reasons a project is skipped.
const (
	SkipNamespaceMissing = "namespace_missing"
	SkipInvalidName      = "invalid_name"
	SkipDuplicate        = "duplicate_namespace"
	SkipConflict         = "label_conflict"
	SkipTerminating      = "namespace_terminating"
	// SkipCreateFailed: the project's namespace was to be created, and the
	// write failed (or it appeared meanwhile); it is tried again next cycle.
	SkipCreateFailed = "namespace_create_failed"
	// SkipFenced: the namespace can never be a project (a system or Run:AI
	// namespace, projects.excludeNamespaces, outside
	// projects.namespacePattern, the daemon's own); config's Fenced says which.
	SkipFenced = "namespace_fenced"
	// SkipUnlabelled: a project found through projects.fromGroups whose
	// namespace exists but is not labelled for it; it is used only when
	// this tool labels it (projects.labelExistingNamespaces).
	SkipUnlabelled = "namespace_unlabelled"
	// SkipDeferred: more new projects than projects.maxNewPerCycle; this
	// one waits for a later cycle.
	SkipDeferred = "deferred_max_new"
)

// ProjectSkipReasons lists every reason, so metrics can report zeros.
var ProjectSkipReasons = []string{SkipNamespaceMissing, SkipInvalidName, SkipDuplicate, SkipConflict, SkipTerminating, SkipCreateFailed,
	SkipFenced, SkipUnlabelled, SkipDeferred}

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
func FindProjects(namespaces []model.Namespace, cfg config.Projects) ([]Project, []SkippedProject) {
	f := FindProjectsWith(namespaces, cfg, Discovered{})
	return f.Projects, f.Skipped
}

// Discovered are the projects named by directory groups (projects.fromGroups).
type Discovered struct {
	Names []string
	// Failed: discovery is configured but its search failed, so which
	// projects it names is unknown this cycle.
	Failed bool
}

// NamespaceAction is a namespace to create, or an existing one to label.
type NamespaceAction struct {
	Project   string `json:"project"`
	Namespace string `json:"namespace"`
	// Create: the namespace does not exist; otherwise it is labelled.
	Create bool `json:"create"`
	// Labels are the labels to add (on a label action, only those the
	// namespace lacks).
	Labels map[string]string `json:"labels"`
	// ResourceVersion is the label write's precondition.
	ResourceVersion string `json:"-"`
}

// Found is what FindProjectsWith derived.
type Found struct {
	// Projects include those whose namespace an action creates.
	Projects []Project
	Skipped  []SkippedProject
	// Actions are empty unless projects.createNamespaces or
	// projects.labelExistingNamespaces is on.
	Actions []NamespaceAction
	// Orphaned are labelled projects whose namespace this tool provisioned
	// but which are no longer static or discovered. They keep their
	// namespace and stay projects (the label says so): reported only.
	Orphaned []Project
}

// FindProjectsWith is FindProjects with provisioning: discovered projects
// count like static ones with the default namespace, and, when enabled, a
// missing namespace is to be created and an unlabelled one labelled. It
// never plans to change a namespace labelled for another project, to give
// a project a second namespace, or to delete or unlabel anything.
func FindProjectsWith(namespaces []model.Namespace, cfg config.Projects, disc Discovered) Found {
	var f Found
	exists := map[string]model.Namespace{}
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
		if cfg.Fenced(ns.Name) != "" {
			// kube-system labelled runai/queue=x must not get an executor
			// binding: the label is not the only word on what is a project.
			f.Skipped = append(f.Skipped, SkippedProject{Name: v, Namespace: ns.Name, Reason: SkipFenced})
			continue
		}
		if !config.ValidProjectName(v) {
			f.Skipped = append(f.Skipped, SkippedProject{Name: v, Namespace: ns.Name, Reason: SkipInvalidName})
			continue
		}
		labelled[v] = append(labelled[v], ns.Name)
	}

	projects := map[string]Project{}
	for name, nss := range labelled {
		if len(nss) > 1 {
			win := duplicateWinner(name, nss, exists)
			sort.Strings(nss)
			for _, n := range nss {
				if n != win {
					f.Skipped = append(f.Skipped, SkippedProject{Name: name, Namespace: n, Reason: SkipDuplicate})
				}
			}
			if win == "" {
				continue
			}
			labelled[name] = []string{win}
			nss = labelled[name]
		}
		projects[name] = Project{Name: name, Namespace: nss[0]}
	}

	// Named projects: static first (explicit), then discovered ones not
	// already known by a label or the static list.
	type named struct {
		Project
		static bool
	}
	var want []named
	isStatic := map[string]bool{}
	for _, sp := range cfg.Static {
		nsName := sp.Namespace
		if nsName == "" {
			nsName = DefaultNamespace(sp.Name)
		}
		want = append(want, named{Project{sp.Name, nsName}, true})
		isStatic[sp.Name] = true
	}
	isDiscovered := map[string]bool{}
	for _, name := range disc.Names {
		if isStatic[name] || isDiscovered[name] || len(labelled[name]) > 0 {
			isDiscovered[name] = true
			continue
		}
		isDiscovered[name] = true
		want = append(want, named{Project{name, DefaultNamespace(name)}, false})
	}

	provisioned := map[string]string{config.ProvisionedLabel: "true"}
	for _, w := range want {
		nsName := w.Namespace
		if cfg.Fenced(nsName) != "" {
			if prev, ok := projects[w.Name]; !ok || prev.Namespace == nsName {
				f.Skipped = append(f.Skipped, SkippedProject{Name: w.Name, Namespace: nsName, Reason: SkipFenced})
			}
			continue
		}
		// Another namespace already labelled for this project: creating or
		// labelling this one would make two.
		claimedElsewhere := false
		for _, n := range labelled[w.Name] {
			if n != nsName {
				claimedElsewhere = true
			}
		}
		ns, ok := exists[nsName]
		if !ok {
			if cfg.CreateNamespaces && cfg.NamespaceLabel != "" && !claimedElsewhere {
				if !validDNSLabel(nsName) {
					f.Skipped = append(f.Skipped, SkippedProject{Name: w.Name, Namespace: nsName, Reason: SkipInvalidName})
					continue
				}
				labels := merge(cfg.NamespaceLabels, provisioned, map[string]string{cfg.NamespaceLabel: w.Name})
				f.Actions = append(f.Actions, NamespaceAction{Project: w.Name, Namespace: nsName, Create: true, Labels: labels})
				projects[w.Name] = w.Project
				continue
			}
			f.Skipped = append(f.Skipped, SkippedProject{Name: w.Name, Namespace: nsName, Reason: SkipNamespaceMissing})
			continue
		}
		if cfg.NamespaceLabel != "" {
			v, has := ns.Labels[cfg.NamespaceLabel]
			if has && v != w.Name {
				f.Skipped = append(f.Skipped, SkippedProject{Name: w.Name, Namespace: nsName, Reason: SkipConflict})
				continue
			}
			labelling := !has && cfg.LabelExistingNamespaces && !ns.Terminating && !claimedElsewhere
			if labelling {
				labels := map[string]string{}
				for k, v := range merge(cfg.NamespaceLabels, provisioned) {
					if _, set := ns.Labels[k]; !set {
						labels[k] = v // never overwrite a label someone set
					}
				}
				labels[cfg.NamespaceLabel] = w.Name
				f.Actions = append(f.Actions, NamespaceAction{Project: w.Name, Namespace: nsName, Labels: labels, ResourceVersion: ns.ResourceVersion})
			}
			if !has && !labelling && !w.static {
				// A directory group names this project, but the namespace
				// is nobody's project yet: whoever can create a group must
				// not take over an existing namespace (runai-backend...).
				if _, ok := projects[w.Name]; !ok {
					f.Skipped = append(f.Skipped, SkippedProject{Name: w.Name, Namespace: nsName, Reason: SkipUnlabelled})
				}
				continue
			}
		}
		if prev, ok := projects[w.Name]; ok && prev.Namespace != nsName {
			// The static entry is explicit; the labelled namespace loses.
			f.Skipped = append(f.Skipped, SkippedProject{Name: w.Name, Namespace: prev.Namespace, Reason: SkipConflict})
		}
		projects[w.Name] = w.Project
	}

	// A static project's existing namespace is its project with or without
	// the label: deferring the label write does not defer the project.
	deferred := capNew(&f, cfg.MaxNewPerCycle, func(a NamespaceAction) bool { return !a.Create && isStatic[a.Project] })
	for _, p := range projects {
		if deferred[p.Namespace] {
			continue
		}
		if exists[p.Namespace].Terminating {
			f.Skipped = append(f.Skipped, SkippedProject{Name: p.Name, Namespace: p.Namespace, Reason: SkipTerminating})
			continue
		}
		f.Projects = append(f.Projects, p)
		ns, ok := exists[p.Namespace]
		if ok && ns.Labels[config.ProvisionedLabel] == "true" && !isStatic[p.Name] && !disc.Failed && !isDiscovered[p.Name] {
			f.Orphaned = append(f.Orphaned, p)
		}
	}
	sort.Slice(f.Projects, func(i, j int) bool { return f.Projects[i].Name < f.Projects[j].Name })
	sort.Slice(f.Orphaned, func(i, j int) bool { return f.Orphaned[i].Name < f.Orphaned[j].Name })
	sort.Slice(f.Actions, func(i, j int) bool { return f.Actions[i].Namespace < f.Actions[j].Namespace })
	sort.Slice(f.Skipped, func(i, j int) bool {
		if f.Skipped[i].Name != f.Skipped[j].Name {
			return f.Skipped[i].Name < f.Skipped[j].Name
		}
		return f.Skipped[i].Namespace < f.Skipped[j].Namespace
	})
	return f
}

// duplicateWinner picks the namespace of a project that several
// namespaces are labelled for, so that a copied label on another team's
// namespace cannot take the project away (nor make both be skipped): the
// one this tool provisioned wins, else the default name runai-<project>;
// with neither, or with two provisioned, nothing is guessed ("").
func duplicateWinner(project string, nss []string, exists map[string]model.Namespace) string {
	var marked []string
	for _, n := range nss {
		if exists[n].Labels[config.ProvisionedLabel] == "true" {
			marked = append(marked, n)
		}
	}
	switch len(marked) {
	case 1:
		return marked[0]
	case 0:
		for _, n := range nss {
			if n == DefaultNamespace(project) {
				return n
			}
		}
	}
	return ""
}

// capNew keeps the first max namespace actions (by namespace name, so the
// same ones are kept from cycle to cycle) and defers the rest: whoever can
// create directory groups cannot make one cycle create or label thousands
// of namespaces. It returns the namespaces whose project waits too; when
// keepsProject says so, only the write waits and the project stays.
func capNew(f *Found, max int, keepsProject func(NamespaceAction) bool) map[string]bool {
	if max <= 0 || len(f.Actions) <= max {
		return nil
	}
	sort.Slice(f.Actions, func(i, j int) bool { return f.Actions[i].Namespace < f.Actions[j].Namespace })
	deferred := map[string]bool{}
	for _, a := range f.Actions[max:] {
		if keepsProject(a) {
			continue
		}
		deferred[a.Namespace] = true
		f.Skipped = append(f.Skipped, SkippedProject{Name: a.Project, Namespace: a.Namespace, Reason: SkipDeferred})
	}
	f.Actions = f.Actions[:max]
	return deferred
}

// merge returns the union of label maps; later maps win.
func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func validDNSLabel(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }
