package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// exampleTemplate is the template shipped in deploy/, parsed.
func exampleTemplate(t *testing.T) (string, *template.Template) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "deploy/components/provisioning/project-template.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return path, tmpl
}

// templateBindings are the RoleBindings the template puts in a namespace
// (the executor binding apart), as the API server should hold them.
func templateBindings(tmpl *template.Template, project, ns string) map[string]*rbacv1.RoleBinding {
	out := map[string]*rbacv1.RoleBinding{}
	for _, u := range tmpl.Render(project, ns, nil) {
		var rb rbacv1.RoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rb); err == nil && u.GetKind() == "RoleBinding" {
			out[rb.Name] = &rb
		}
	}
	return out
}

// expectTemplate checks that every template binding is in ns, as the
// template says, applied by runai-ldap-sync.
func (e *env) expectTemplate(tmpl *template.Template, project, ns string) {
	e.t.Helper()
	for name, want := range templateBindings(tmpl, project, ns) {
		got, err := e.cs.RbacV1().RoleBindings(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			e.t.Errorf("template binding %s/%s: %v", ns, name, err)
			continue
		}
		if got.RoleRef != want.RoleRef || !reflect.DeepEqual(got.Subjects, want.Subjects) {
			e.t.Errorf("template binding %s/%s = %+v %+v, want %+v %+v", ns, name, got.RoleRef, got.Subjects, want.RoleRef, want.Subjects)
		}
		if got.Labels[model.ManagedByLabel] != model.ManagedByValue || got.Labels[controller.TemplateLabel] != "true" {
			e.t.Errorf("template binding %s/%s labels %v, want %s=%s and %s=true", ns, name, got.Labels, model.ManagedByLabel, model.ManagedByValue, controller.TemplateLabel)
		}
		applied := false
		for _, mf := range got.ManagedFields {
			if mf.Manager == model.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply {
				applied = true
			}
		}
		if !applied {
			e.t.Errorf("template binding %s/%s was not server-side applied by %s: %+v", ns, name, model.FieldManager, got.ManagedFields)
		}
	}
}

// seedProvisioning: alpha is an existing, labelled project; gamma is a new
// static project and delta a new group in the directory, neither with a
// namespace yet.
func seedProvisioning(e *env) {
	for _, u := range []string{"alice", "gus", "dora"} {
		e.user(u, true)
	}
	e.group("runai-alpha-executors", "alice")
	e.group("runai-gamma-executors", "gus")
	e.group("runai-delta-executors", "dora")
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
}

const provisionProjects = `projects:
  namespaceLabel: runai/queue
  createNamespaces: true
  namespaceLabels: {runai/namespace-version: v2}
  static:
  - name: gamma
  fromGroups:
    pattern: "runai-{project}-executors"
  template: %s
`

// TestProvisionNewProjectsInOneCycle is the proof: with the
// features off a cycle creates nothing; diff shows the namespace and
// template changes and writes nothing; one cycle gives a new static
// project and a new directory group each a labelled namespace, every
// template binding and their users; a hand-deleted or hand-edited
// template binding is brought back; a project that disappears keeps its
// namespace and is reported.
func TestProvisionNewProjectsInOneCycle(t *testing.T) {
	e := newEnv(t)
	seedProvisioning(e)
	ctx := context.Background()
	tmplPath, tmpl := exampleTemplate(t)
	tmplPath = e.inDir(tmplPath)
	gammaExec, deltaExec := model.ExecutorRef("runai-gamma"), model.ExecutorRef("runai-delta")

	// Features off (today's configuration plus the static project): nothing
	// is created; gamma is reported as missing its namespace.
	off := e.config(groupsYAML + "projects:\n  namespaceLabel: runai/queue\n  static:\n  - name: gamma\n")
	r := e.mustRun("once", "--config", off)
	for _, ns := range []string{"runai-gamma", "runai-delta"} {
		if _, _, ok := e.nsLabels(ns); ok {
			t.Errorf("with provisioning off, a cycle created namespace %s", ns)
		}
	}
	rbs, err := e.cs.RbacV1().RoleBindings("runai-alpha").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rbs.Items) != 1 || rbs.Items[0].Name != model.ExecutorBinding {
		t.Errorf("with provisioning off, runai-alpha holds %d RoleBindings, want only the executor binding", len(rbs.Items))
	}
	if !strings.Contains(r.stderr, `"reason":"namespace_missing"`) {
		t.Errorf("the missing namespace of gamma is not reported:\n%s", r.stderr)
	}

	cfg := e.config(groupsYAML + fmt.Sprintf(provisionProjects, tmplPath))

	// diff: the namespaces and template objects to create, and the new
	// projects' executor bindings; nothing written.
	alphaRV := e.binding(alphaExec).ResourceVersion
	plan := decodePlan(t, e.mustRun("diff", "--config", cfg, "-o", "json").stdout)
	for _, ns := range []string{"runai-gamma", "runai-delta"} {
		p, ok := plan["Namespace/"+ns]
		if !ok || !p.Create {
			t.Errorf("diff does not show namespace %s to create: %+v", ns, plan)
		}
		for name := range templateBindings(tmpl, "x", ns) {
			if p, ok := plan["RoleBinding/"+ns+"/"+name]; !ok || !p.Create {
				t.Errorf("diff does not show template binding %s/%s to create", ns, name)
			}
		}
	}
	for name := range templateBindings(tmpl, "alpha", "runai-alpha") {
		if _, ok := plan["RoleBinding/runai-alpha/"+name]; !ok {
			t.Errorf("diff does not show template binding runai-alpha/%s", name)
		}
	}
	if p := plan[deltaExec.String()]; !p.Create || strings.Join(p.Add, ",") != "dora" {
		t.Errorf("diff for the new directory project's executor binding: %+v", p)
	}
	text := e.mustRun("diff", "--config", cfg).stdout
	for _, want := range []string{"Namespace/runai-gamma (create)", "+ label runai/queue=gamma", "+ label runai/namespace-version=v2",
		"RoleBinding/runai-delta/runai-scheduler-rw (create from the project template)"} {
		if !strings.Contains(text, want) {
			t.Errorf("diff text lacks %q:\n%s", want, text)
		}
	}
	for _, ns := range []string{"runai-gamma", "runai-delta"} {
		if _, _, ok := e.nsLabels(ns); ok {
			t.Fatalf("diff created namespace %s", ns)
		}
	}
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, "runai-scheduler-rw", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("diff created a template binding: %v", err)
	}
	if e.binding(alphaExec).ResourceVersion != alphaRV {
		t.Fatal("diff wrote a binding")
	}

	// One cycle provisions both new projects completely.
	r = e.mustRun("once", "--config", cfg)
	for _, p := range []struct{ project, ns string }{{"gamma", "runai-gamma"}, {"delta", "runai-delta"}} {
		labels, _, ok := e.nsLabels(p.ns)
		if !ok {
			t.Fatalf("namespace %s was not created:\n%s", p.ns, r.stderr)
		}
		want := map[string]string{"runai/queue": p.project, "runai/namespace-version": "v2", config.ProvisionedLabel: "true"}
		for k, v := range want {
			if labels[k] != v {
				t.Errorf("namespace %s labels %v, want %s=%s", p.ns, labels, k, v)
			}
		}
		e.expectTemplate(tmpl, p.project, p.ns)
	}
	e.expectTemplate(tmpl, "alpha", "runai-alpha")
	e.expectUsers(gammaExec, "gus")
	e.expectUsers(deltaExec, "dora")
	e.expectUsers(alphaExec, "alice")
	e.expectUsers(indexMap, "alice", "dora", "gus")
	if b := e.binding(deltaExec); b.RoleRef != model.ExpectedRoleRef(model.ExecutorBinding) {
		t.Errorf("executor binding roleRef %+v", b.RoleRef)
	}
	for _, want := range []string{`"namespace provisioned"`, `"action":"create"`, `"template object applied"`, `"namespaces_provisioned":2`, `"template_objects_applied":18`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the cycle's log lacks %s:\n%s", want, r.stderr)
		}
	}

	// The next cycle writes nothing at all.
	rv := func() map[string]string {
		out := map[string]string{}
		for _, ns := range []string{"runai-alpha", "runai-gamma", "runai-delta"} {
			_, v, _ := e.nsLabels(ns)
			out["ns/"+ns] = v
			list, err := e.cs.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, rb := range list.Items {
				out[ns+"/"+rb.Name] = rb.ResourceVersion
			}
		}
		return out
	}
	before := rv()
	r = e.mustRun("once", "--config", cfg)
	if after := rv(); !reflect.DeepEqual(before, after) {
		t.Errorf("a second cycle wrote:\nbefore %v\nafter  %v", before, after)
	}
	if !strings.Contains(r.stderr, `"template_objects_applied":0`) || !strings.Contains(r.stderr, `"namespaces_provisioned":0`) {
		t.Errorf("second cycle log:\n%s", r.stderr)
	}

	// A template binding deleted by hand, and one edited by hand, are brought
	// back by the next cycle; a subject someone added goes.
	e.handChangeTemplate()
	text = e.mustRun("diff", "--config", cfg).stdout
	for _, want := range []string{"RoleBinding/runai-gamma/runai-scheduler-rw (create from the project template)",
		"RoleBinding/runai-alpha/researcher-service-rw (bring back to the project template: subjects differs)"} {
		if !strings.Contains(text, want) {
			t.Errorf("diff after hand changes lacks %q:\n%s", want, text)
		}
	}
	r = e.mustRun("once", "--config", cfg)
	e.expectTemplate(tmpl, "gamma", "runai-gamma")
	e.expectTemplate(tmpl, "alpha", "runai-alpha")
	if !strings.Contains(r.stderr, `"template_objects_applied":2`) {
		t.Errorf("restoring two objects should apply exactly two:\n%s", r.stderr)
	}

	// delta's group is deleted from the directory: the project is reported,
	// nothing is torn down.
	if err := e.samba.Delete(e.groups["runai-delta-executors"]); err != nil {
		t.Fatal(err)
	}
	r = e.mustRun("once", "--config", cfg)
	if !strings.Contains(r.stderr, "no longer configured or discovered") || !strings.Contains(r.stderr, `"project":"delta"`) {
		t.Errorf("the vanished project is not reported:\n%s", r.stderr)
	}
	if labels, _, ok := e.nsLabels("runai-delta"); !ok || labels["runai/queue"] != "delta" {
		t.Errorf("runai-delta was deleted or unlabelled: %v %v", ok, labels)
	}
	e.expectTemplate(tmpl, "delta", "runai-delta")
	if e.binding(deltaExec) == nil {
		t.Error("the vanished project's executor binding was deleted")
	}
}

// TestProvisionNeverTouchesAnotherProjectsNamespace: a namespace labelled
// for another project is never changed and is reported; an existing
// unlabelled namespace is labelled only with labelExistingNamespaces, and
// keeps its own labels.
func TestProvisionNeverTouchesAnotherProjectsNamespace(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user("tina", true)
	e.user("bea", true)
	e.group("runai-taken-executors", "tina")
	e.group("runai-bare-executors", "bea")
	e.namespace("runai-taken", map[string]string{"runai/queue": "someone-else", "team": "theirs"})
	e.namespace("runai-bare", map[string]string{"team": "keep-me", "runai/namespace-version": "v1"})
	_, takenRV, _ := e.nsLabels("runai-taken")

	base := groupsYAML + `projects:
  namespaceLabel: runai/queue
  createNamespaces: true
  namespaceLabels: {runai/namespace-version: v2, tier: gpu}
  static:
  - name: taken
  - name: bare
`
	// labelExistingNamespaces off: runai-bare stays unlabelled (still synced
	// as the static project's namespace), runai-taken is reported.
	r := e.mustRun("once", "--config", e.config(base))
	if labels, _, _ := e.nsLabels("runai-bare"); labels["runai/queue"] != "" || labels["tier"] != "" {
		t.Errorf("runai-bare was labelled without labelExistingNamespaces: %v", labels)
	}
	e.expectUsers(model.ExecutorRef("runai-bare"), "bea")
	if !strings.Contains(r.stderr, `"project":"taken","namespace":"runai-taken","reason":"label_conflict"`) {
		t.Errorf("the conflict is not reported:\n%s", r.stderr)
	}

	// labelExistingNamespaces on: runai-bare gets the project label and the
	// extra labels it lacks; its own labels stay. runai-taken is untouched.
	r = e.mustRun("once", "--config", e.config(base+"  labelExistingNamespaces: true\n"))
	labels, _, _ := e.nsLabels("runai-bare")
	want := map[string]string{"runai/queue": "bare", "team": "keep-me", "runai/namespace-version": "v1", "tier": "gpu", config.ProvisionedLabel: "true"}
	if !reflect.DeepEqual(labels, mergeLabels(want, labels)) || len(labels) != len(want)+1 {
		t.Errorf("runai-bare labels %v, want %v (plus kubernetes.io/metadata.name)", labels, want)
	}
	if !strings.Contains(r.stderr, `"action":"label"`) {
		t.Errorf("no label log line:\n%s", r.stderr)
	}
	labels, rv, _ := e.nsLabels("runai-taken")
	if rv != takenRV || labels["runai/queue"] != "someone-else" || labels[config.ProvisionedLabel] != "" {
		t.Errorf("runai-taken was changed: rv %s → %s, labels %v", takenRV, rv, labels)
	}
	if !strings.Contains(r.stderr, `"reason":"label_conflict"`) {
		t.Errorf("the conflict is not reported on the second cycle:\n%s", r.stderr)
	}
	// Only someone-else's own (empty) binding may be in runai-taken: tina,
	// of the static project "taken", is not bound there.
	if b := e.binding(model.ExecutorRef("runai-taken")); b != nil && len(b.Users()) > 0 {
		t.Errorf("users of another project bound in runai-taken: %v", b.Users())
	}
	ns, err := e.cs.CoreV1().Namespaces().Get(ctx, "runai-taken", metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceActive {
		t.Errorf("runai-taken: %v %v", ns.Status.Phase, err)
	}
}

// mergeLabels returns want with got's kubernetes.io/metadata.name, which
// the API server sets on every namespace.
func mergeLabels(want, got map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range want {
		out[k] = v
	}
	if v, ok := got[corev1.LabelMetadataName]; ok {
		out[corev1.LabelMetadataName] = v
	}
	return out
}

// TestProvisionDaemonRepairsTemplateWithinSeconds: in `run`, a template
// binding deleted or edited by hand is brought back within
// repair.minInterval, without waiting for the (hourly) schedule.
func TestProvisionDaemonRepairsTemplateWithinSeconds(t *testing.T) {
	e := newEnv(t)
	seedProvisioning(e)
	// Every project namespace exists already: the first cycle creates none
	// (a created namespace queues another full cycle, which would restore
	// the template by itself), so only the template repair can.
	e.namespace("runai-gamma", map[string]string{"runai/queue": "gamma"})
	e.namespace("runai-delta", map[string]string{"runai/queue": "delta"})
	ctx := context.Background()
	tmplPath, tmpl := exampleTemplate(t)
	tmplPath = e.inDir(tmplPath)
	addr := freeAddr(t)
	cfg := e.config(groupsYAML + fmt.Sprintf(provisionProjects, tmplPath) + incrementalYAML + fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	e.waitUsers(model.ExecutorRef("runai-gamma"), 10*time.Second, "gus")
	e.expectTemplate(tmpl, "gamma", "runai-gamma")

	start := time.Now()
	e.handChangeTemplate()
	waitFor(t, 10*time.Second, "template bindings restored", func() error {
		_, errDel := e.cs.RbacV1().RoleBindings("runai-gamma").Get(ctx, "runai-scheduler-rw", metav1.GetOptions{})
		got, errEd := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, "researcher-service-rw", metav1.GetOptions{})
		if errDel == nil && errEd == nil && len(got.Subjects) == len(templateBindings(tmpl, "alpha", "runai-alpha")["researcher-service-rw"].Subjects) {
			return nil
		}
		return fmt.Errorf("deleted: %v, edited: %+v", errDel, got)
	})
	t.Logf("template bindings restored %v after the hand changes", time.Since(start).Round(10*time.Millisecond))
	e.expectTemplate(tmpl, "gamma", "runai-gamma")
	e.expectTemplate(tmpl, "alpha", "runai-alpha")
	// Restored by the template repair, not by a full cycle.
	if lines := d.logLines("template objects checked after a change by someone else"); len(lines) == 0 {
		t.Error("no template repair logged")
	}
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Errorf("cycles_total = %v, want 1: the restore must not wait for or need a full cycle", v)
	}
}

// handChangeTemplate deletes gamma's runai-scheduler-rw and adds a user to
// alpha's researcher-service-rw, as a human might.
func (e *env) handChangeTemplate() {
	e.t.Helper()
	ctx := context.Background()
	if err := e.cs.RbacV1().RoleBindings("runai-gamma").Delete(ctx, "runai-scheduler-rw", metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
	rb, err := e.cs.RbacV1().RoleBindings("runai-alpha").Get(ctx, "researcher-service-rw", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	rb.Subjects = append(rb.Subjects, kube.UserSubject("mallory"))
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Update(ctx, rb, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}
