package template

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

const exampleTemplate = "../../deploy/components/provisioning/project-template.yaml"

func TestExampleTemplateParses(t *testing.T) {
	data, err := os.ReadFile(exampleTemplate)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse(data)
	if err != nil {
		t.Fatalf("the shipped example template does not parse: %v", err)
	}
	if tmpl.Executor == nil {
		t.Error("the example's executor binding was not recognised")
	}
	if len(tmpl.Objects) != 6 {
		t.Errorf("want 6 applied objects (the executor binding apart), got %d", len(tmpl.Objects))
	}
	wantRoles := []string{"researcher-service", "runai-admission-controller-project", "runai-job-controller-project",
		"runai-job-executor", "runai-project-controller-project", "runai-scheduler-rw", "use-runai-user-psp"}
	if got := tmpl.ClusterRoles(); !reflect.DeepEqual(got, wantRoles) {
		t.Errorf("ClusterRoles = %v, want %v", got, wantRoles)
	}
	objs := tmpl.Render("vision", "runai-vision", map[string]string{"app.kubernetes.io/managed-by": "runai-ldap-sync"})
	for _, o := range objs {
		if o.GetNamespace() != "runai-vision" || o.GetLabels()["app.kubernetes.io/managed-by"] != "runai-ldap-sync" {
			t.Errorf("%s: namespace %q labels %v", o.GetName(), o.GetNamespace(), o.GetLabels())
		}
		if o.GetName() == model.ExecutorBinding {
			t.Error("the executor binding is rendered: its subjects would be applied over the directory's")
		}
	}
	psp := find(t, objs, "runai-user-psp")
	subjects, _, _ := unstructured.NestedSlice(psp.Object, "subjects")
	if ns := subjects[0].(map[string]any)["namespace"]; ns != "runai-vision" {
		t.Errorf("<NAMESPACE> in a subject rendered as %v", ns)
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no object %s", name)
	return nil
}

const rb = `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: %s
  namespace: <NAMESPACE>
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}
subjects:
- {kind: ServiceAccount, name: sa, namespace: runai}
`

func TestParseErrorsNameTheDocumentAndLine(t *testing.T) {
	good := strings.Replace(rb, "%s", "a", 1)
	tests := []struct {
		name, data string
		want       []string
	}{
		{"unsupported kind", good + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n", []string{"document 2 (line 10)", "apps/v1 Deployment is not supported"}},
		{"other namespace", good + "---\n" + strings.Replace(strings.Replace(rb, "%s", "b", 1), "<NAMESPACE>", "kube-system", 1), []string{"document 2", "metadata.namespace is kube-system"}},
		{"misspelt field", strings.Replace(good, "subjects:", "subject:", 1), []string{"document 1 (line 1)", "unknown field", "subject"}},
		{"no name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n", []string{"document 1", "metadata.name must be set"}},
		{"bad name", strings.Replace(rb, "%s", "Bad_Name", 1), []string{"document 1", "not a valid name"}},
		{"duplicate", good + "---\n" + good, []string{"document 2", "RoleBinding/a is already defined by document 1"}},
		{"unknown placeholder", strings.Replace(good, "name: sa", "name: <USER>", 1), []string{"document 1", "unknown placeholder <USER>"}},
		{"not yaml", good + "---\nkind: [\n", []string{"document 2", "not YAML"}},
		{"not a mapping", "- a\n- b\n", []string{"document 1", "not a Kubernetes object"}},
		{"no roleRef", "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: x}\n", []string{"roleRef must name"}},
		{"executor with subjects", strings.Replace(strings.Replace(good, "name: a", "name: runai-job-executor-manual", 1), "name: r}", "name: runai-job-executor}", 1), []string{"must have no subjects"}},
		{"executor with another role", strings.Replace(strings.Replace(good, "name: a", "name: runai-job-executor-manual", 1), "subjects:\n- {kind: ServiceAccount, name: sa, namespace: runai}\n", "", 1), []string{"must refer to ClusterRole runai-job-executor"}},
		{"server fields", strings.Replace(good, "name: a\n", "name: a\n  resourceVersion: \"5\"\n", 1), []string{"metadata.resourceVersion cannot be part"}},
		{"empty", "---\n# nothing\n", []string{"no objects"}},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.data))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
			}
		}
	}
}

func TestRenderReplacesPlaceholdersEverywhere(t *testing.T) {
	data := `apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg-<PROJECT>
  labels: {project: <PROJECT>}
data:
  <PROJECT>.txt: "namespace <NAMESPACE>"
  count: "1"
`
	tmpl, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	o := tmpl.Render("vision", "ml-vision", nil)[0]
	if o.GetName() != "cfg-vision" || o.GetNamespace() != "ml-vision" || o.GetLabels()["project"] != "vision" {
		t.Errorf("rendered %v", o.Object)
	}
	d, _, _ := unstructured.NestedStringMap(o.Object, "data")
	if d["vision.txt"] != "namespace ml-vision" {
		t.Errorf("data = %v", d)
	}
	// Rendering twice gives independent copies.
	o2 := tmpl.Render("other", "runai-other", nil)[0]
	if o.GetName() == o2.GetName() {
		t.Error("renders share state")
	}
	if ks := tmpl.Kinds(); len(ks) != 1 || ks[0].Resource != "configmaps" {
		t.Errorf("Kinds = %+v", ks)
	}
}

func TestDiffers(t *testing.T) {
	tmpl, err := Parse([]byte(strings.Replace(rb, "%s", "a", 1)))
	if err != nil {
		t.Fatal(err)
	}
	desired := tmpl.Render("p", "runai-p", map[string]string{"managed": "yes"})[0]
	// What the API server returns: our fields plus its own.
	live := func() *unstructured.Unstructured {
		u := desired.DeepCopy()
		u.SetUID("123")
		u.SetResourceVersion("7")
		u.SetAnnotations(map[string]string{"other": "x"})
		u.SetLabels(map[string]string{"managed": "yes", "team": "ml"})
		return u
	}
	if d, path := Differs(desired, live()); d {
		t.Errorf("an unchanged object differs at %s", path)
	}
	tests := []struct {
		name string
		edit func(u *unstructured.Unstructured)
		path string
	}{
		{"missing label", func(u *unstructured.Unstructured) { u.SetLabels(nil) }, "metadata.labels"},
		{"subject added by hand", func(u *unstructured.Unstructured) {
			s, _, _ := unstructured.NestedSlice(u.Object, "subjects")
			_ = unstructured.SetNestedSlice(u.Object, append(s, map[string]any{"kind": "User", "name": "mallory"}), "subjects")
		}, "subjects"},
		{"subject renamed", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"kind": "ServiceAccount", "name": "x", "namespace": "runai"}}, "subjects")
		}, "subjects[0].name"},
		{"roleRef changed", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, "other", "roleRef", "name")
		}, "roleRef.name"},
	}
	for _, tc := range tests {
		u := live()
		tc.edit(u)
		d, path := Differs(desired, u)
		if !d || path != tc.path {
			t.Errorf("%s: differs=%v at %q, want true at %q", tc.name, d, path, tc.path)
		}
	}
	if d, path := Differs(desired, nil); !d || path != "missing" {
		t.Errorf("missing object: %v %q", d, path)
	}
	// Empty values the server omits are no drift; a value where the
	// template wants none is.
	cm := &unstructured.Unstructured{Object: map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"name": "c"}, "data": map[string]any{}, "immutable": false}}
	if d, path := Differs(cm, &unstructured.Unstructured{Object: map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"name": "c"}}}); d {
		t.Errorf("omitted empty fields differ at %s", path)
	}
	if d, _ := Differs(cm, &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{}, "immutable": true}}); !d {
		t.Error("immutable: true where the template says false does not differ")
	}
	if d, _ := Differs(&unstructured.Unstructured{Object: map[string]any{"n": int64(3)}}, &unstructured.Unstructured{Object: map[string]any{"n": float64(3)}}); d {
		t.Error("equal numbers of different Go types differ")
	}
}
