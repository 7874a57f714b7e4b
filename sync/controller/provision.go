package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// Discoverer finds projects named by directory groups (ldapsrc.Source).
type Discoverer interface {
	DiscoverProjects(ctx context.Context, fg config.FromGroups) (*ldapsrc.Discovery, error)
}

// Provisioner creates and labels namespaces and applies template objects
// (kube.Client). It has no delete.
type Provisioner interface {
	CreateNamespace(ctx context.Context, name string, labels map[string]string) error
	LabelNamespace(ctx context.Context, name, resourceVersion string, labels map[string]string) error
	ListObjects(ctx context.Context, gvr schema.GroupVersionResource, selector string) ([]unstructured.Unstructured, error)
	GetObject(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error)
	ApplyObject(ctx context.Context, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) (*unstructured.Unstructured, error)
}

// provisioner is the provisioning step of a cycle (the opt-in projects.*
// features): it discovers projects from directory groups, creates and
// labels namespaces and keeps the project template's objects present, and
// keeps what it learnt doing so.
type provisioner struct {
	s          *Pipeline // the term's logger, metrics and configuration
	discoverer Discoverer
	prov       Provisioner
	// tmpl is the project template (WithTemplate); nil: none.
	tmpl *template.Template
	// provisioned maps the namespaces this process created or labelled to
	// their project, until the informer reports the write.
	provisioned map[string]string
	// discovered are the project names of the last successful discovery
	// (projects.fromGroups): a failed discovery keeps them.
	discovered []string
}

// WithProvisioning gives the Pipeline what the opt-in projects.* features
// need: the directory's project discovery and the namespace and template
// writer. Call it before the first cycle.
func (s *Pipeline) WithProvisioning(d Discoverer, p Provisioner) *Pipeline {
	s.provisioning.discoverer, s.provisioning.prov = d, p
	return s
}

// WithTemplate gives the Pipeline Run:AI's project template
// (projects.template, read at start-up by template.Load); nil: none.
func (s *Pipeline) WithTemplate(t *template.Template) *Pipeline {
	s.provisioning.tmpl = t
	return s
}

// TemplateChange is one template object a cycle creates or brings back.
type TemplateChange struct {
	template.Key
	Project string `json:"project"`
	// Create: the object is missing; otherwise it differs at Field.
	Create bool   `json:"create"`
	Field  string `json:"field,omitempty"`

	gvr schema.GroupVersionResource
	obj *unstructured.Unstructured
}

// ProvisionReport is what a cycle found and did for the projects.*
// provisioning features; empty when they are off.
type ProvisionReport struct {
	// Discovered are the projects named by directory groups.
	Discovered []string
	// Namespaces are the namespaces created or labelled (planned, in a dry run).
	Namespaces      []plan.NamespaceAction
	NamespaceErrors map[string]error
	// Orphaned projects are no longer static or discovered but keep the
	// namespace this tool provisioned: reported, never torn down.
	Orphaned []plan.Project
	// TemplateObjects counts the template objects that should exist.
	TemplateObjects int
	// Templates are the objects created or brought back (planned, in a dry run).
	Templates      []TemplateChange
	TemplateErrors map[template.Key]error
}

// projectsFound is what a cycle's project step found: the projects, those
// skipped, the names discovery found, and the namespaces to create or
// label and the orphaned projects (projects.*).
type projectsFound struct {
	projects []plan.Project
	// placed are the projects the namespaces' labels skip (placement,
	// fence); skipped adds the discovered names that are not valid ones.
	placed, skipped []plan.SkippedProject
	discovered      []string
	actions         []plan.NamespaceAction
	orphaned        []plan.Project
}

// provisioned is what a cycle's provisioning did: the projects kept (a
// project whose namespace could not be created is dropped from the
// cycle), and the namespaces and template objects written or failed.
type provisioned struct {
	ran      bool
	projects []plan.Project
	skipped  []plan.SkippedProject
	nsErrors map[string]error
	tmpl     templateResult
	errs     []error
}

// templateResult is what a template check found and did.
type templateResult struct {
	objects int
	changes []TemplateChange
	errors  map[template.Key]error
	errs    []error
}

// report is the ProvisionReport of what a cycle found and did.
func (v provisioned) report(f projectsFound) ProvisionReport {
	r := ProvisionReport{Discovered: f.discovered, Namespaces: f.actions, Orphaned: f.orphaned,
		NamespaceErrors: v.nsErrors, TemplateObjects: v.tmpl.objects, Templates: v.tmpl.changes, TemplateErrors: v.tmpl.errors}
	if r.NamespaceErrors == nil {
		r.NamespaceErrors = map[string]error{}
	}
	if r.TemplateErrors == nil {
		r.TemplateErrors = map[template.Key]error{}
	}
	return r
}

// findProjects discovers projects (if configured) and derives the cycle's
// projects and namespace actions. A failed discovery is returned, and the
// cycle goes on with the projects it knows.
func (v *provisioner) findProjects(ctx context.Context, nss []model.Namespace) (projectsFound, error) {
	var disc plan.Discovered
	var derr error
	var found projectsFound
	var invalid []plan.SkippedProject
	if fg := v.s.cfg.Projects.FromGroups; fg != nil {
		var d *ldapsrc.Discovery
		err := errors.New("project discovery is not available (no directory wired for it)")
		if v.discoverer != nil {
			d, err = v.discoverer.DiscoverProjects(ctx, *fg)
		}
		if err != nil {
			// Keep the projects of the last successful discovery (this
			// term): a failed search must not drop them from the cycle.
			disc.Failed, disc.Names = true, v.discovered
			derr = fmt.Errorf("discover projects from directory groups: %w", err)
			if v.s.obs.m != nil {
				v.s.obs.m.LDAPErrors.WithLabelValues("discover").Inc()
			}
			v.s.log.Error("project discovery failed; the projects of the last successful discovery are kept and none is reported gone this cycle",
				zap.Int("kept", len(v.discovered)), zap.Error(err))
		} else {
			disc.Names = d.Names()
			v.discovered = disc.Names
			found.discovered = disc.Names
			for _, p := range d.Invalid {
				invalid = append(invalid, plan.SkippedProject{Name: p.Name, Reason: plan.SkipInvalidName})
				v.s.log.Warn("group matches projects.fromGroups but does not name a valid project (lower-case letters, digits and '-'); skipped",
					zap.String("group", p.Group), zap.String("dn", p.DN))
			}
		}
	}
	f := plan.FindProjectsWith(nss, v.s.cfg.Projects, disc)
	found.projects, found.placed, found.skipped = f.Projects, f.Skipped, append(f.Skipped, invalid...)
	found.actions, found.orphaned = f.Actions, f.Orphaned
	return found, derr
}

// provision creates and labels the namespaces found, then keeps the
// template objects present in every project namespace. Nothing happens in
// a dry run but the report. A project whose namespace could not be created
// is dropped from this cycle.
func (v *provisioner) provision(ctx context.Context, opts CycleOptions, found projectsFound) provisioned {
	out := provisioned{ran: true, projects: found.projects, nsErrors: map[string]error{}}
	if len(found.actions) == 0 && v.tmpl == nil {
		return out
	}
	if v.prov == nil {
		out.errs = []error{errors.New("projects.createNamespaces, labelExistingNamespaces or template is set, but no Kubernetes writer is wired for them")}
		return out
	}
	failed := map[string]bool{}
	for _, a := range found.actions {
		if opts.DryRun {
			continue
		}
		if err := ctx.Err(); err != nil {
			out.errs = append(out.errs, fmt.Errorf("%s interrupted before provisioning namespace %s: %w", TriggerCycle, a.Namespace, err))
			failed[a.Namespace] = a.Create
			continue
		}
		if err := v.writeNamespace(ctx, a); err != nil {
			out.nsErrors[a.Namespace] = err
			out.errs = append(out.errs, err)
			if a.Create {
				failed[a.Namespace] = true
			}
		}
	}
	if len(failed) > 0 {
		kept := found.projects[:0:0]
		for _, p := range found.projects {
			if failed[p.Namespace] {
				out.skipped = append(out.skipped, plan.SkippedProject{Name: p.Name, Namespace: p.Namespace, Reason: plan.SkipCreateFailed})
				continue
			}
			kept = append(kept, p)
		}
		out.projects = kept
	}
	if t := v.tmpl; t != nil {
		out.tmpl = v.applyTemplate(ctx, opts, TriggerCycle, out.projects, found.actions, t)
		out.errs = append(out.errs, out.tmpl.errs...)
	}
	return out
}

func (v *provisioner) writeNamespace(ctx context.Context, a plan.NamespaceAction) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	action, op := "label", "label_namespace"
	// The informer's echo of this write needs no cycle: this one handles
	// the project already. Recorded before the write, as the echo can
	// arrive before the write returns.
	v.provisioned[a.Namespace] = a.Project
	var err error
	if a.Create {
		action, op = "create", "create_namespace"
		err = v.prov.CreateNamespace(wctx, a.Namespace, a.Labels)
	} else {
		err = v.prov.LabelNamespace(wctx, a.Namespace, a.ResourceVersion, a.Labels)
	}
	if err != nil {
		delete(v.provisioned, a.Namespace)
		v.s.obs.kubeError(op)
		v.s.log.Error("namespace not provisioned; tried again next cycle", zap.String("namespace", a.Namespace),
			zap.String("project", a.Project), zap.String("action", action), zap.Error(err))
		return fmt.Errorf("%s namespace %s for project %s: %w", action, a.Namespace, a.Project, err)
	}
	v.s.log.Info("namespace provisioned", zap.String("namespace", a.Namespace), zap.String("project", a.Project),
		zap.String("action", action), zap.Any("labels", a.Labels))
	if v.s.obs.m != nil {
		v.s.obs.m.NamespacesProvisioned.WithLabelValues(action).Inc()
	}
	return nil
}

// TemplateLabel marks the template objects this tool applied, so one LIST
// per kind reads them all (and nothing else).
const TemplateLabel = "runai-ldap-sync.github.io/template"

var templateSelector = TemplateLabel + "=true"

// applyTemplate compares every project's template objects with the
// cluster and applies only those missing or changed: one LIST per kind
// per cycle, a GET for an object the LIST did not return (made before us,
// or its label removed), and one apply per object that needs it.
func (v *provisioner) applyTemplate(ctx context.Context, opts CycleOptions, trigger string, projects []plan.Project,
	actions []plan.NamespaceAction, t *template.Template) templateResult {
	res := templateResult{errors: map[template.Key]error{}}
	live := map[template.Key]*unstructured.Unstructured{}
	for _, k := range t.Kinds() {
		items, err := v.prov.ListObjects(ctx, k.GVR(), templateSelector)
		if err != nil {
			v.s.obs.kubeError("list")
			res.errs = []error{fmt.Errorf("read template objects: %w", err)}
			return res
		}
		for i := range items {
			live[template.KeyOf(&items[i])] = &items[i]
		}
	}
	creating := map[string]bool{}
	for _, a := range actions {
		if a.Create && opts.DryRun {
			creating[a.Namespace] = true
		}
	}
	labels := map[string]string{model.ManagedByLabel: model.ManagedByValue, TemplateLabel: "true"}
	for _, p := range projects {
		for _, obj := range t.Render(p.Name, p.Namespace, labels) {
			key := template.KeyOf(obj)
			kind, _ := template.KindOf(obj)
			res.objects++
			cur := live[key]
			if cur == nil && !creating[p.Namespace] {
				var err error
				if cur, err = v.prov.GetObject(ctx, kind.GVR(), key.Namespace, key.Name); err != nil {
					v.s.obs.kubeError("get")
					res.errors[key] = err
					res.errs = append(res.errs, err)
					continue
				}
			}
			differs, field := template.Differs(obj, cur)
			if !differs {
				continue
			}
			ch := TemplateChange{Key: key, Project: p.Name, Create: cur == nil, gvr: kind.GVR(), obj: obj}
			if !ch.Create {
				ch.Field = field
			}
			res.changes = append(res.changes, ch)
		}
	}
	if opts.DryRun {
		return res
	}
	for _, ch := range res.changes {
		if err := ctx.Err(); err != nil {
			res.errs = append(res.errs, fmt.Errorf("%s interrupted before applying %s: %w", trigger, ch.Key, err))
			break
		}
		if err := v.applyObject(ctx, ch); err != nil {
			res.errors[ch.Key] = err
			res.errs = append(res.errs, err)
		}
	}
	return res
}

func (v *provisioner) applyObject(ctx context.Context, ch TemplateChange) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	action := "update"
	if ch.Create {
		action = "create"
	}
	if _, err := v.prov.ApplyObject(wctx, ch.gvr, ch.obj); err != nil {
		v.s.obs.kubeError("apply")
		v.s.log.Error("template object not applied; tried again next cycle", zap.String("object", ch.Key.String()),
			zap.String("project", ch.Project), zap.String("action", action), zap.Error(err))
		return fmt.Errorf("apply template object %s: %w", ch.Key, err)
	}
	fields := []zap.Field{zap.String("object", ch.Key.String()), zap.String("kind", ch.Kind), zap.String("namespace", ch.Namespace),
		zap.String("name", ch.Name), zap.String("project", ch.Project), zap.String("action", action)}
	if ch.Field != "" {
		fields = append(fields, zap.String("changed_field", ch.Field))
	}
	v.s.log.Info("template object applied", fields...)
	if v.s.obs.m != nil {
		v.s.obs.m.TemplateApplied.WithLabelValues(action).Inc()
	}
	return nil
}

// TemplateSelector selects the template objects this tool applied.
func TemplateSelector() string { return templateSelector }

// TemplateChanged is the informer handler for the template's RoleBindings:
// one was changed or deleted (by anyone), so the template is checked again
// (RepairTemplate) within repair.minInterval: it reports whether a check
// is wanted. It never blocks.
func (s *Pipeline) TemplateChanged() bool {
	// Before the first cycle nothing was applied: nothing to check.
	return s.provisioning.tmpl != nil && s.desired != nil
}

// RepairTemplate brings back the template objects of the last cycle's
// projects, without reading the directory: the same comparison and apply
// as a cycle's, so an object that matches is not written.
func (s *Pipeline) RepairTemplate(ctx context.Context, opts CycleOptions) *Report {
	rep := newReport(TriggerRepair)
	t := s.provisioning.tmpl
	if t == nil || s.provisioning.prov == nil || s.lastProjects == nil {
		return rep
	}
	res := s.provisioning.applyTemplate(ctx, opts, TriggerRepair, s.lastProjects, nil, t)
	rep.Projects, rep.Err = s.lastProjects, errors.Join(res.errs...)
	rep.Provision.TemplateObjects, rep.Provision.Templates, rep.Provision.TemplateErrors = res.objects, res.changes, res.errors
	rep.Duration = time.Since(rep.Started)
	return rep
}
