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
	// SkipCopiedLabel: a namespace labelled for a project that is another
	// namespace's (homeNamespace): a copied label, which moves nothing.
	SkipCopiedLabel = "copied_label"
	SkipTerminating = "namespace_terminating"
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
var ProjectSkipReasons = []string{SkipNamespaceMissing, SkipInvalidName, SkipDuplicate, SkipCopiedLabel, SkipConflict, SkipTerminating, SkipCreateFailed,
	SkipFenced, SkipUnlabelled, SkipDeferred}

// SkippedProject is a project that will not be synced this cycle.
type SkippedProject struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Reason    string `json:"reason"`
}

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
//
// It runs in stages, each tested on its own: index the labelled
// namespaces, keep one namespace per project (a copied label moves
// nothing), list the named projects, place each, and finish (the cap on
// new namespaces, terminating namespaces, orphans, order).
func FindProjectsWith(namespaces []model.Namespace, cfg config.Projects, disc Discovered) Found {
	fd := finder{cfg: cfg, projects: map[string]Project{}}
	fd.indexLabelled(namespaces)
	fd.keepOneNamespace()
	for _, w := range fd.named(disc) {
		fd.place(w)
	}
	fd.finish(disc)
	return fd.f
}

// finder is the state FindProjectsWith's stages share.
type finder struct {
	cfg      config.Projects
	f        Found
	exists   map[string]model.Namespace
	labelled map[string][]string // project -> namespaces labelled for it
	projects map[string]Project
	// isStatic and isDiscovered say where a named project comes from.
	isStatic, isDiscovered map[string]bool
}

// indexLabelled indexes the namespaces, and the ones labelled for each
// project; a fenced namespace or an invalid project name is skipped.
func (fd *finder) indexLabelled(namespaces []model.Namespace) {
	fd.exists = map[string]model.Namespace{}
	fd.labelled = map[string][]string{}
	for _, ns := range namespaces {
		fd.exists[ns.Name] = ns
		if fd.cfg.NamespaceLabel == "" {
			continue
		}
		v, ok := ns.Labels[fd.cfg.NamespaceLabel]
		if !ok {
			continue
		}
		if fd.cfg.Fenced(ns.Name) != "" {
			// kube-system labelled runai/queue=x must not get an executor
			// binding: the label is not the only word on what is a project.
			fd.skip(v, ns.Name, SkipFenced)
			continue
		}
		if !config.ValidProjectName(v) {
			fd.skip(v, ns.Name, SkipInvalidName)
			continue
		}
		fd.labelled[v] = append(fd.labelled[v], ns.Name)
	}
}

// keepOneNamespace makes each labelled project one namespace's: where
// several are labelled for it, the one homeNamespace picks; the others
// are reported (SkipCopiedLabel), or all of them when none can be picked
// (SkipDuplicate).
func (fd *finder) keepOneNamespace() {
	for name, nss := range fd.labelled {
		if len(nss) > 1 {
			home := homeNamespace(name, nss, fd.exists)
			reason := SkipCopiedLabel
			if home == "" {
				reason = SkipDuplicate
			}
			for _, n := range nss {
				if n != home {
					fd.skip(name, n, reason)
				}
			}
			if home == "" {
				continue
			}
			fd.labelled[name] = []string{home}
			nss = fd.labelled[name]
		}
		fd.projects[name] = Project{Name: name, Namespace: nss[0]}
	}
}

// namedProject is a project the configuration or the directory names.
type namedProject struct {
	Project
	static bool
}

// named lists the named projects: static first (explicit), then
// discovered ones not already known by a label or the static list.
func (fd *finder) named(disc Discovered) []namedProject {
	var want []namedProject
	fd.isStatic, fd.isDiscovered = map[string]bool{}, map[string]bool{}
	for _, sp := range fd.cfg.Static {
		nsName := sp.Namespace
		if nsName == "" {
			nsName = config.DefaultNamespace(sp.Name)
		}
		want = append(want, namedProject{Project{sp.Name, nsName}, true})
		fd.isStatic[sp.Name] = true
	}
	for _, name := range disc.Names {
		known := fd.isStatic[name] || fd.isDiscovered[name] || len(fd.labelled[name]) > 0
		fd.isDiscovered[name] = true
		if !known {
			want = append(want, namedProject{Project{name, config.DefaultNamespace(name)}, false})
		}
	}
	return want
}

// place decides a named project's namespace: existing (and, when
// enabled, labelled), to be created, or skipped.
func (fd *finder) place(w namedProject) {
	nsName := w.Namespace
	if fd.cfg.Fenced(nsName) != "" {
		if prev, ok := fd.projects[w.Name]; !ok || prev.Namespace == nsName {
			fd.skip(w.Name, nsName, SkipFenced)
		}
		return
	}
	// Another namespace already labelled for this project: creating or
	// labelling this one would make two.
	claimedElsewhere := false
	for _, n := range fd.labelled[w.Name] {
		if n != nsName {
			claimedElsewhere = true
		}
	}
	ns, ok := fd.exists[nsName]
	if !ok {
		fd.placeMissing(w, claimedElsewhere)
		return
	}
	if fd.cfg.NamespaceLabel != "" && !fd.placeExisting(w, ns, claimedElsewhere) {
		return
	}
	if prev, ok := fd.projects[w.Name]; ok && prev.Namespace != nsName {
		// The static entry is explicit; the labelled namespace loses.
		fd.skip(w.Name, prev.Namespace, SkipConflict)
	}
	fd.projects[w.Name] = w.Project
}

// placeMissing plans to create a named project's missing namespace, when
// enabled and no other namespace is labelled for it.
func (fd *finder) placeMissing(w namedProject, claimedElsewhere bool) {
	if !fd.cfg.CreateNamespaces || fd.cfg.NamespaceLabel == "" || claimedElsewhere {
		fd.skip(w.Name, w.Namespace, SkipNamespaceMissing)
		return
	}
	if !validDNSLabel(w.Namespace) {
		fd.skip(w.Name, w.Namespace, SkipInvalidName)
		return
	}
	labels := merge(fd.cfg.NamespaceLabels, provisionedLabels(), map[string]string{fd.cfg.NamespaceLabel: w.Name})
	fd.f.Actions = append(fd.f.Actions, NamespaceAction{Project: w.Name, Namespace: w.Namespace, Create: true, Labels: labels})
	fd.projects[w.Name] = w.Project
}

// placeExisting checks a named project's existing namespace against its
// label, and plans to label it when enabled. It reports whether the
// namespace is the project's.
func (fd *finder) placeExisting(w namedProject, ns model.Namespace, claimedElsewhere bool) bool {
	v, has := ns.Labels[fd.cfg.NamespaceLabel]
	if has && v != w.Name {
		fd.skip(w.Name, ns.Name, SkipConflict)
		return false
	}
	labelling := !has && fd.cfg.LabelExistingNamespaces && !ns.Terminating && !claimedElsewhere
	if labelling {
		labels := map[string]string{}
		for k, v := range merge(fd.cfg.NamespaceLabels, provisionedLabels()) {
			if _, set := ns.Labels[k]; !set {
				labels[k] = v // never overwrite a label someone set
			}
		}
		labels[fd.cfg.NamespaceLabel] = w.Name
		fd.f.Actions = append(fd.f.Actions, NamespaceAction{Project: w.Name, Namespace: ns.Name, Labels: labels, ResourceVersion: ns.ResourceVersion})
	}
	if !has && !labelling && !w.static {
		// A directory group names this project, but the namespace is
		// nobody's project yet: whoever can create a group must not take
		// over an existing namespace (runai-backend...).
		if _, ok := fd.projects[w.Name]; !ok {
			fd.skip(w.Name, ns.Name, SkipUnlabelled)
		}
		return false
	}
	return true
}

// finish applies the cap on new namespaces, drops projects whose
// namespace is going away, reports orphans, and sorts everything.
func (fd *finder) finish(disc Discovered) {
	f := &fd.f
	// A static project's existing namespace is its project with or without
	// the label: deferring the label write does not defer the project.
	deferred := capNew(f, fd.cfg.MaxNewPerCycle, func(a NamespaceAction) bool { return !a.Create && fd.isStatic[a.Project] })
	for _, p := range fd.projects {
		if deferred[p.Namespace] {
			continue
		}
		if fd.exists[p.Namespace].Terminating {
			fd.skip(p.Name, p.Namespace, SkipTerminating)
			continue
		}
		f.Projects = append(f.Projects, p)
		ns, ok := fd.exists[p.Namespace]
		if ok && ns.Labels[config.ProvisionedLabel] == "true" && !fd.isStatic[p.Name] && !disc.Failed && !fd.isDiscovered[p.Name] {
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
}

func (fd *finder) skip(project, ns, reason string) {
	fd.f.Skipped = append(fd.f.Skipped, SkippedProject{Name: project, Namespace: ns, Reason: reason})
}

func provisionedLabels() map[string]string { return map[string]string{config.ProvisionedLabel: "true"} }

// homeNamespace picks the namespace of a project that several namespaces
// are labelled for, so that whoever can label namespaces cannot move a
// project by copying its label (and this tool's provisioned marker, which
// is a label too, so it counts for nothing here): the namespace that
// holds the project's executor binding; else the default name
// runai-<project>; else the oldest. A tie at any step is broken by the
// next; one left at the end picks nothing ("").
func homeNamespace(project string, nss []string, exists map[string]model.Namespace) string {
	cands := nss
	if holding := filter(cands, func(n string) bool { return exists[n].HoldsExecutor }); len(holding) > 0 {
		cands = holding
	}
	if len(cands) > 1 {
		if def := filter(cands, func(n string) bool { return n == config.DefaultNamespace(project) }); len(def) == 1 {
			cands = def
		}
	}
	if len(cands) == 1 {
		return cands[0]
	}
	var oldest string
	tie := false
	for _, n := range cands {
		switch c := exists[n].Created; {
		case c.IsZero():
			return "" // age unknown: nothing guessed
		case oldest == "" || c.Before(exists[oldest].Created):
			oldest, tie = n, false
		case c.Equal(exists[oldest].Created):
			tie = true
		}
	}
	if tie {
		return ""
	}
	return oldest
}

func filter(in []string, keep func(string) bool) []string {
	var out []string
	for _, s := range in {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// InScope reports whether the daemon manages bindings in namespace ns,
// given its labels (model.Scope): the Run:AI namespace (the index map), a
// namespace labelled projects.namespaceLabel, or a static project's, and
// never a fenced one. The daemon keeps nothing else but its identity, so
// a namespace admin elsewhere cannot make it hold or decode anything.
func InScope(cfg config.Projects, runaiNS, ns string, labels map[string]string) bool {
	if ns == runaiNS {
		return true
	}
	if cfg.Fenced(ns) != "" {
		return false
	}
	if _, ok := labels[cfg.NamespaceLabel]; ok && cfg.NamespaceLabel != "" {
		return true
	}
	for _, sp := range cfg.Static {
		if ns == sp.Namespace || (sp.Namespace == "" && ns == config.DefaultNamespace(sp.Name)) {
			return true
		}
	}
	return false
}

// ScopeLabels are the namespace label keys the daemon reads: the project
// label, the provisioned marker, and those projects.namespaceLabels sets.
func ScopeLabels(cfg config.Projects) []string {
	keys := []string{config.ProvisionedLabel}
	if cfg.NamespaceLabel != "" {
		keys = append(keys, cfg.NamespaceLabel)
	}
	for k := range cfg.NamespaceLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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

// Scope is what the daemon reads whole in Kubernetes (kube.Client.SetScope).
func Scope(cfg *config.Config) model.Scope {
	projects, runaiNS := cfg.Projects, cfg.Kubernetes.RunaiNamespace
	return model.Scope{
		Namespace:       func(ns string, labels map[string]string) bool { return InScope(projects, runaiNS, ns, labels) },
		NamespaceLabels: ScopeLabels(projects),
	}
}
