// Package template holds Run:AI's project template
// (projects.template): read and parsed once at start-up (Load), rendered
// per project, and the comparison that decides whether a template object
// in the cluster needs to be applied again. It never talks to a server.
package template

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Load reads and parses the template projects.template names; nil, nil
// when none is set. Its errors name the field and the file, like the
// configuration's own, as the file is part of the configuration.
func Load(p config.Projects) (*Template, error) {
	if p.Template == "" {
		return nil, nil
	}
	data, err := os.ReadFile(p.Template)
	if err != nil {
		return nil, config.ValidationError{{Field: "projects.template",
			Message: fmt.Sprintf("cannot read %q: %v", p.Template, errors.Unwrap(err))}}
	}
	t, err := Parse(data)
	if err != nil {
		return nil, config.ValidationError{{Field: "projects.template", Message: fmt.Sprintf("%s: %v", p.Template, err)}}
	}
	return t, nil
}

// Placeholders of Run:AI's k8s-project-create.yaml.template.
const (
	NamespacePlaceholder = "<NAMESPACE>"
	ProjectPlaceholder   = "<PROJECT>"
)

// Kind is an object kind a template may hold, and its API resource.
type Kind struct {
	GVK      schema.GroupVersionKind
	Resource string
}

// GVR is the kind's API resource.
func (k Kind) GVR() schema.GroupVersionResource { return k.GVK.GroupVersion().WithResource(k.Resource) }

// Kinds are the kinds a template may hold: all namespaced, all plain
// objects whose apply is understood. A fixed table rather than discovery:
// an unsupported kind is a start-up error, not a surprise at the first cycle.
var Kinds = []Kind{
	{GVK: rbacv1.SchemeGroupVersion.WithKind("RoleBinding"), Resource: "rolebindings"},
	{GVK: rbacv1.SchemeGroupVersion.WithKind("Role"), Resource: "roles"},
	{GVK: corev1.SchemeGroupVersion.WithKind("ServiceAccount"), Resource: "serviceaccounts"},
	{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Resource: "configmaps"},
}

// KindOf returns the supported kind of an object, if it is one.
func KindOf(u *unstructured.Unstructured) (Kind, bool) { return kindOf(u.GroupVersionKind()) }

func kindOf(gvk schema.GroupVersionKind) (Kind, bool) {
	for _, k := range Kinds {
		if k.GVK == gvk {
			return k, true
		}
	}
	return Kind{}, false
}

// Object is one document of a template, placeholders unreplaced.
type Object struct {
	// Doc is the document's position in the file (1-based) and Line the
	// line it starts on, for messages.
	Doc, Line int
	Kind      Kind
	// Name is metadata.name as written (it may hold placeholders).
	Name string
	obj  map[string]any
}

// Template is a parsed project template.
type Template struct {
	Objects []Object
	// Executor is the document holding the executor binding
	// (runai-job-executor-manual), if any: its subjects are the directory's,
	// so it is created and kept by the binding sync, not applied from here.
	Executor *Object
}

// Key names one object in the cluster.
type Key struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (k Key) String() string { return k.Kind + "/" + k.Namespace + "/" + k.Name }

// KeyOf is the key of an object.
func KeyOf(u *unstructured.Unstructured) Key {
	return Key{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

var placeholderRE = regexp.MustCompile(`<[A-Z][A-Z0-9_]*>`)

// Parse reads a multi-document YAML template. Every error names the
// document and the line it starts on.
func Parse(data []byte) (*Template, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	t := &Template{}
	seen := map[string]int{}
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: not YAML: %w", doc, err)
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue // an empty document, e.g. after a leading ---
		}
		o, err := parseObject(doc, n.Content[0])
		if err != nil {
			return nil, fmt.Errorf("document %d (line %d): %w", doc, n.Content[0].Line, err)
		}
		id := o.Kind.GVK.Kind + "/" + o.Name
		if prev, ok := seen[id]; ok {
			return nil, fmt.Errorf("document %d (line %d): %s is already defined by document %d", doc, o.Line, id, prev)
		}
		seen[id] = doc
		if o.Kind.GVK.Kind == "RoleBinding" && o.Name == model.ExecutorBinding {
			t.Executor = &o
			continue
		}
		t.Objects = append(t.Objects, o)
	}
	if len(t.Objects) == 0 && t.Executor == nil {
		return nil, errors.New("the template holds no objects")
	}
	return t, nil
}

func parseObject(doc int, root *yaml.Node) (Object, error) {
	o := Object{Doc: doc, Line: root.Line}
	obj, err := decodeObject(root)
	if err != nil {
		return o, err
	}
	if o.Kind, err = supportedKind(obj); err != nil {
		return o, err
	}
	if o.Name, err = checkMetadata(obj); err != nil {
		return o, err
	}
	if bad := unknownPlaceholders(obj); len(bad) > 0 {
		return o, fmt.Errorf("unknown placeholder %s; only %s and %s are replaced", strings.Join(bad, ", "), NamespacePlaceholder, ProjectPlaceholder)
	}
	o.obj = obj
	return o, checkRendered(o)
}

// decodeObject reads one YAML document as an unstructured object.
func decodeObject(root *yaml.Node) (map[string]any, error) {
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("not a Kubernetes object (expected a mapping with apiVersion, kind and metadata)")
	}
	var raw map[string]any
	if err := root.Decode(&raw); err != nil {
		return nil, err
	}
	// Round-trip through JSON: the apimachinery decoder gives int64 numbers
	// and string keys, as unstructured objects require.
	js, err := jsonOf(raw)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(js, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// supportedKind is the object's kind, if a template may hold it.
func supportedKind(obj map[string]any) (Kind, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kindName, _ := obj["kind"].(string)
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil || apiVersion == "" || kindName == "" {
		return Kind{}, fmt.Errorf("apiVersion %q / kind %q: both must be set", apiVersion, kindName)
	}
	k, ok := kindOf(gv.WithKind(kindName))
	if !ok {
		var names []string
		for _, k := range Kinds {
			names = append(names, k.GVK.GroupVersion().String()+" "+k.GVK.Kind)
		}
		return Kind{}, fmt.Errorf("%s %s is not supported; a template may hold %s", apiVersion, kindName, strings.Join(names, ", "))
	}
	return k, nil
}

// checkMetadata returns the object's name, and drops what the server sets
// and a template must not keep.
func checkMetadata(obj map[string]any) (string, error) {
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		return "", errors.New("metadata is missing")
	}
	name, _ := meta["name"].(string)
	if name == "" {
		return "", errors.New("metadata.name must be set (generateName cannot be kept present)")
	}
	if ns, ok := meta["namespace"]; ok && ns != NamespacePlaceholder {
		return name, fmt.Errorf("metadata.namespace is %v: template objects live in the project namespace; write %s or leave it out", ns, NamespacePlaceholder)
	}
	for _, f := range []string{"generateName", "resourceVersion", "uid", "managedFields", "selfLink", "ownerReferences", "finalizers", "deletionTimestamp"} {
		if _, ok := meta[f]; ok {
			return name, fmt.Errorf("metadata.%s cannot be part of a template (export it without server-set fields)", f)
		}
	}
	delete(meta, "creationTimestamp") // kubectl writes "creationTimestamp: null"
	delete(obj, "status")
	return name, nil
}

// checkRendered renders o with a sample project to check what the API
// server will see: fields (strictly), names, and the binding's role.
func checkRendered(o Object) error {
	sample := o.render("sample", "runai-sample")
	if msgs := validation.IsDNS1123Subdomain(sample.GetName()); len(msgs) > 0 {
		return fmt.Errorf("metadata.name %q is not a valid name: %s", o.Name, strings.Join(msgs, "; "))
	}
	sjs, err := sample.MarshalJSON()
	if err != nil {
		return err
	}
	switch o.Kind.GVK.Kind {
	case "RoleBinding":
		var rb rbacv1.RoleBinding
		if err := sigsyaml.UnmarshalStrict(sjs, &rb); err != nil {
			return fmt.Errorf("not a valid RoleBinding: %w", err)
		}
		return checkRoleBinding(o.Name, &rb)
	case "Role":
		err = sigsyaml.UnmarshalStrict(sjs, &rbacv1.Role{})
	case "ServiceAccount":
		err = sigsyaml.UnmarshalStrict(sjs, &corev1.ServiceAccount{})
	case "ConfigMap":
		err = sigsyaml.UnmarshalStrict(sjs, &corev1.ConfigMap{})
	}
	if err != nil {
		return fmt.Errorf("not a valid %s: %w", o.Kind.GVK.Kind, err)
	}
	return nil
}

// checkRoleBinding checks a template RoleBinding's role, and that the
// executor binding is Run:AI's, without subjects.
func checkRoleBinding(name string, rb *rbacv1.RoleBinding) error {
	if rb.RoleRef.Name == "" || (rb.RoleRef.Kind != "ClusterRole" && rb.RoleRef.Kind != "Role") || rb.RoleRef.APIGroup != rbacv1.GroupName {
		return fmt.Errorf("roleRef must name a ClusterRole or Role of apiGroup %s, got %+v", rbacv1.GroupName, rb.RoleRef)
	}
	if name != model.ExecutorBinding {
		return nil
	}
	if rb.RoleRef != kube.ExpectedRoleRef(model.ExecutorBinding) {
		return fmt.Errorf("%s must refer to ClusterRole %s, as Run:AI's template does; got %s %s", model.ExecutorBinding, model.ExecutorRole, rb.RoleRef.Kind, rb.RoleRef.Name)
	}
	if len(rb.Subjects) > 0 {
		return fmt.Errorf("%s must have no subjects in the template: its users come from the directory (groups.executors)", model.ExecutorBinding)
	}
	return nil
}

func jsonOf(v any) ([]byte, error) {
	js, err := sigsyaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return sigsyaml.YAMLToJSON(js)
}

// unknownPlaceholders lists the <PLACEHOLDER>s in v's strings and keys
// that are not replaced, sorted.
func unknownPlaceholders(v any) []string {
	set := map[string]struct{}{}
	var walk func(v any)
	check := func(s string) {
		for _, m := range placeholderRE.FindAllString(s, -1) {
			if m != NamespacePlaceholder && m != ProjectPlaceholder {
				set[m] = struct{}{}
			}
		}
	}
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				check(k)
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		case string:
			check(x)
		}
	}
	walk(v)
	return slices.Sorted(maps.Keys(set))
}

// ClusterRoles lists the ClusterRoles the template's RoleBindings refer to,
// sorted: the daemon needs `bind` on each of them.
func (t *Template) ClusterRoles() []string {
	set := map[string]struct{}{}
	for _, o := range t.all() {
		if o.Kind.GVK.Kind != "RoleBinding" {
			continue
		}
		if rr, ok := o.obj["roleRef"].(map[string]any); ok && rr["kind"] == "ClusterRole" {
			if n, ok := rr["name"].(string); ok {
				set[n] = struct{}{}
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func (t *Template) all() []Object {
	out := append([]Object(nil), t.Objects...)
	if t.Executor != nil {
		out = append(out, *t.Executor)
	}
	return out
}

// Kinds returns the kinds the applied objects have (not counting the
// executor binding), in the order of Kinds.
func (t *Template) Kinds() []Kind {
	var out []Kind
	for _, k := range Kinds {
		for _, o := range t.Objects {
			if o.Kind == k {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

// Render returns the template's objects for one project, placeholders
// replaced, in the project's namespace, with labels added (they mark the
// objects so one LIST per kind finds them all). The executor binding is
// not among them.
func (t *Template) Render(project, namespace string, labels map[string]string) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(t.Objects))
	for _, o := range t.Objects {
		u := o.render(project, namespace)
		if len(labels) > 0 {
			l := u.GetLabels()
			if l == nil {
				l = map[string]string{}
			}
			for k, v := range labels {
				l[k] = v
			}
			u.SetLabels(l)
		}
		out = append(out, u)
	}
	return out
}

func (o Object) render(project, namespace string) *unstructured.Unstructured {
	r := strings.NewReplacer(NamespacePlaceholder, namespace, ProjectPlaceholder, project)
	obj := replaceAll(o.obj, r).(map[string]any)
	u := &unstructured.Unstructured{Object: obj}
	u.SetNamespace(namespace)
	return u
}

// replaceAll copies v, replacing placeholders in every string and map key.
func replaceAll(v any, r *strings.Replacer) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[r.Replace(k)] = replaceAll(val, r)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = replaceAll(val, r)
		}
		return out
	case string:
		return r.Replace(x)
	default:
		return v
	}
}
