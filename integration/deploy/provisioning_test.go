package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// buildWith copies deploy/ and adds components to its kustomization, as
// docs/install.md tells operators to, then builds it.
func buildWith(t *testing.T, components ...string) []object {
	t.Helper()
	kubectl := tool(t, "kubectl", "tools")
	dir, err := harness.DeployWithComponents(t.TempDir(), components...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize with %v: %v: %s", components, err, stderrOf(err))
	}
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatalf("kustomize output with %v: %v", components, err)
	}
	return objs
}

// TestProvisioningComponents checks the opt-in components against the
// example template they ship: exactly the permissions provisioning needs
// (bind on the template's ClusterRoles, patch on its binding names, create
// namespaces; patch namespaces only with label-namespaces), and the
// template mounted where the configuration can name it.
func TestProvisioningComponents(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "deploy/components/provisioning/project-template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.Parse(data)
	if err != nil {
		t.Fatalf("the example template does not parse: %v", err)
	}
	var bindRoles, bindingNames []string
	for _, r := range tmpl.ClusterRoles() {
		if r != model.ExecutorRole { // the base binds it already
			bindRoles = append(bindRoles, r)
		}
	}
	for _, o := range tmpl.Objects {
		if o.Kind.GVK.Kind != "RoleBinding" {
			t.Errorf("the example template holds a %s; the component grants RoleBindings only", o.Kind.GVK.Kind)
		}
		bindingNames = append(bindingNames, o.Name)
	}
	sort.Strings(bindingNames)

	objs := buildWith(t, "components/provisioning")
	for _, o := range objs {
		if o.Metadata.Labels["app.kubernetes.io/part-of"] != name {
			t.Errorf("%s lacks the label app.kubernetes.io/part-of=%s", o.id(), name)
		}
		if (o.Kind == "ConfigMap") && o.Metadata.Namespace != namespace {
			t.Errorf("%s is in namespace %q", o.id(), o.Metadata.Namespace)
		}
	}
	var cr rbacv1.ClusterRole
	find(t, objs, "ClusterRole", name+"-provisioning").decode(t, &cr)
	rules := cr.Rules
	for i := range rules {
		sort.Strings(rules[i].ResourceNames)
	}
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}},
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, ResourceNames: bindingNames, Verbs: []string{"patch"}},
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, ResourceNames: bindRoles, Verbs: []string{"bind"}},
	}
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("provisioning ClusterRole rules:\n%s\nwant (from the example template):\n%s", dump(rules), dump(want))
	}
	var crb rbacv1.ClusterRoleBinding
	find(t, objs, "ClusterRoleBinding", name+"-provisioning").decode(t, &crb)
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}
	if crb.RoleRef.Name != name+"-provisioning" || !reflect.DeepEqual(crb.Subjects, []rbacv1.Subject{sa}) {
		t.Errorf("provisioning ClusterRoleBinding = %+v %+v", crb.RoleRef, crb.Subjects)
	}
	for _, o := range objs {
		if o.Kind != "ClusterRole" {
			continue
		}
		var c rbacv1.ClusterRole
		o.decode(t, &c)
		for _, r := range c.Rules {
			if contains(r.Resources, "namespaces") && (contains(r.Verbs, "patch") || contains(r.Verbs, "update") || contains(r.Verbs, "delete")) {
				t.Errorf("%s may change or delete namespaces without the label-namespaces component: %+v", o.id(), r)
			}
		}
	}

	// The template is mounted next to config.yaml, from a generated
	// ConfigMap holding exactly the shipped file.
	var d appsv1.Deployment
	find(t, objs, "Deployment", name).decode(t, &d)
	var cm corev1.ConfigMap
	find(t, objs, "ConfigMap", name+"-project-template-").decode(t, &cm)
	if cm.Data["project-template.yaml"] != string(data) {
		t.Error("the generated ConfigMap does not hold project-template.yaml")
	}
	mounted := false
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ConfigMap != nil && s.ConfigMap.Name == cm.Name && len(s.ConfigMap.Items) == 1 && s.ConfigMap.Items[0].Path == "project-template.yaml" {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("the Deployment does not mount ConfigMap %s as %s/project-template.yaml", cm.Name, configDir)
	}

	// The configuration the component's comment shows is valid.
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	tf := filepath.Join(dir, "project-template.yaml")
	if err := os.WriteFile(pw, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`ldap: {urls: ["ldaps://dc:636"], bindDN: x, bindPasswordFile: %s, baseDN: "DC=x"}
groups: {executors: ["runai-{project}-executors"]}
projects:
  createNamespaces: true
  template: %s
`, pw, tf)
	if _, err := config.Parse([]byte(cfg)); err != nil {
		t.Errorf("the component's configuration example is invalid: %v", err)
	}

	// label-namespaces adds patch on namespaces, and nothing else.
	objs = buildWith(t, "components/provisioning", "components/label-namespaces")
	var lr rbacv1.ClusterRole
	find(t, objs, "ClusterRole", name+"-label-namespaces").decode(t, &lr)
	if want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"patch"}}}; !reflect.DeepEqual(lr.Rules, want) {
		t.Errorf("label-namespaces rules:\n%s", dump(lr.Rules))
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestFenceParamsAgree: the admission policy's parameters match what the
// daemon is configured with (the label key of config.yaml, the Run:AI
// namespace), the policy's ServiceAccount is the one deploy/ creates, and
// the provisioning component lists exactly the ClusterRoles the example
// template binds (the same list as its `bind` rule).
func TestFenceParamsAgree(t *testing.T) {
	root := repoRoot(t)
	objs := build(t)
	var params corev1.ConfigMap
	find(t, objs, "ConfigMap", "runai-ldap-sync-fence").decode(t, &params)
	var cfgMap corev1.ConfigMap
	find(t, objs, "ConfigMap", "runai-ldap-sync-config").decode(t, &cfgMap)
	var raw struct {
		Projects struct {
			NamespaceLabel    string   `json:"namespaceLabel"`
			ExcludeNamespaces []string `json:"excludeNamespaces"`
			NamespacePattern  string   `json:"namespacePattern"`
		} `json:"projects"`
		Kubernetes struct {
			RunaiNamespace string `json:"runaiNamespace"`
		} `json:"kubernetes"`
	}
	if err := yaml.Unmarshal([]byte(cfgMap.Data["config.yaml"]), &raw); err != nil {
		t.Fatal(err)
	}
	label, runaiNS := raw.Projects.NamespaceLabel, raw.Kubernetes.RunaiNamespace
	if label == "" {
		label = config.Default().Projects.NamespaceLabel
	}
	if runaiNS == "" {
		runaiNS = config.Default().Kubernetes.RunaiNamespace
	}
	if params.Data["namespaceLabel"] != label || params.Data["runaiNamespace"] != runaiNS {
		t.Errorf("fence parameters %v disagree with config.yaml (namespaceLabel %s, runaiNamespace %s)", params.Data, label, runaiNS)
	}
	if params.Data["excludeNamespaces"] != strings.Join(raw.Projects.ExcludeNamespaces, ",") || params.Data["namespacePattern"] != raw.Projects.NamespacePattern {
		t.Errorf("fence parameters excludeNamespaces=%q namespacePattern=%q disagree with config.yaml (%q, %q)",
			params.Data["excludeNamespaces"], params.Data["namespacePattern"], raw.Projects.ExcludeNamespaces, raw.Projects.NamespacePattern)
	}
	if params.Data["maxBindingShards"] != strconv.Itoa(model.MaxShards) {
		t.Errorf("fence parameter maxBindingShards=%q, want %d (config.yaml keeps the default)", params.Data["maxBindingShards"], model.MaxShards)
	}
	if _, ok := params.Data["excludeNamespaces"]; !ok {
		t.Error("the fence parameters lack excludeNamespaces")
	}
	if _, ok := params.Data["namespacePattern"]; !ok {
		t.Error("the fence parameters lack namespacePattern")
	}
	if params.Data["templateRoles"] != "" {
		t.Errorf("the base allows template RoleBindings: templateRoles=%q", params.Data["templateRoles"])
	}
	// The policy matches the ServiceAccount by name in every namespace and
	// allows only the one of the namespace holding its parameters, which the
	// binding names.
	policy := find(t, objs, "ValidatingAdmissionPolicy", "runai-ldap-sync-fence")
	if text := strings.Join(strings.Fields(string(policy.raw)), " "); !strings.Contains(text, ":"+name+"$')") ||
		!strings.Contains(text, "variables.home + ':"+name+"'") {
		t.Errorf("the policy does not match requests of the ServiceAccount %s", name)
	}
	var binding admissionv1.ValidatingAdmissionPolicyBinding
	find(t, objs, "ValidatingAdmissionPolicyBinding", "runai-ldap-sync-fence").decode(t, &binding)
	if binding.Spec.ParamRef == nil || binding.Spec.ParamRef.Namespace != namespace {
		t.Errorf("the policy binding reads its parameters in %+v, want namespace %s", binding.Spec.ParamRef, namespace)
	}
	if params.Data["leaseName"] != name || params.Data["leaseDuration"] != config.Default().LeaderElection.LeaseDuration.String() {
		t.Errorf("fence parameters leaseName=%q leaseDuration=%q, want config.yaml's %s and %s", params.Data["leaseName"], params.Data["leaseDuration"],
			name, config.Default().LeaderElection.LeaseDuration)
	}

	data, err := os.ReadFile(filepath.Join(root, "deploy/components/provisioning/project-template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, r := range tmpl.ClusterRoles() {
		if r != model.ExecutorRole {
			roles = append(roles, r)
		}
	}
	sort.Strings(roles)
	find(t, buildWith(t, "components/provisioning"), "ConfigMap", "runai-ldap-sync-fence").decode(t, &params)
	got := strings.Split(params.Data["templateRoles"], ",")
	sort.Strings(got)
	if !reflect.DeepEqual(got, roles) {
		t.Errorf("provisioning templateRoles = %v, want the template's ClusterRoles %v", got, roles)
	}
	// templateSubjects: <ClusterRole>:<namespace>/<ServiceAccount> of every
	// subject the template renders, <NAMESPACE> for the project's own.
	var subjects []string
	for _, o := range tmpl.Render("p", "ns-of-p", nil) {
		if o.GetKind() != "RoleBinding" {
			continue
		}
		var rb rbacv1.RoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &rb); err != nil {
			t.Fatal(err)
		}
		if rb.RoleRef.Name == model.ExecutorRole {
			continue
		}
		for _, s := range rb.Subjects {
			ns := s.Namespace
			if ns == "ns-of-p" {
				ns = "<NAMESPACE>"
			}
			subjects = append(subjects, rb.RoleRef.Name+":"+ns+"/"+s.Name)
		}
	}
	sort.Strings(subjects)
	got = strings.Split(params.Data["templateSubjects"], ",")
	sort.Strings(got)
	if !reflect.DeepEqual(got, subjects) {
		t.Errorf("provisioning templateSubjects = %v, want the template's subjects %v", got, subjects)
	}
}

// TestKustomizeInstallElsewhereIsFenced: kustomize's namespace moves the
// policy's parameters, and the binding follows them (and the RBAC bindings
// follow the ServiceAccount), so an install into
// another namespace fences that namespace's ServiceAccount (the policy
// allows only the one of the parameters' namespace).
func TestKustomizeInstallElsewhereIsFenced(t *testing.T) {
	dir := t.TempDir()
	dst, err := harness.DeployWithComponents(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(dst, "kustomization.yaml")
	data, err := os.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k, bytes.Replace(data, []byte("\nnamespace: runai\n"), []byte("\nnamespace: ml-sync\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool(t, "kubectl", "tools"), "kustomize", dst).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderrOf(err))
	}
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatal(err)
	}
	p := find(t, objs, "ConfigMap", "runai-ldap-sync-fence")
	for _, o := range objs {
		if o.Kind != "ValidatingAdmissionPolicyBinding" {
			continue
		}
		var binding admissionv1.ValidatingAdmissionPolicyBinding
		o.decode(t, &binding)
		if p.Metadata.Namespace != "ml-sync" || binding.Spec.ParamRef == nil || binding.Spec.ParamRef.Namespace != "ml-sync" {
			t.Errorf("parameters in %q, binding %s reads them in %+v; want both ml-sync", p.Metadata.Namespace, o.Metadata.Name, binding.Spec.ParamRef)
		}
	}
	// The RBAC bindings grant the ServiceAccount of that namespace.
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		var rb rbacv1.RoleBinding
		find(t, objs, kind, name).decode(t, &rb)
		if len(rb.Subjects) != 1 || rb.Subjects[0].Namespace != "ml-sync" {
			t.Errorf("%s %s grants %+v, want the ServiceAccount of ml-sync", kind, name, rb.Subjects)
		}
	}
}

// TestFenceListsAgree: the policy's built-in never-project namespaces are
// the daemon's (config.BuiltinFence), every Run:AI and KAI one included.
func TestFenceListsAgree(t *testing.T) {
	policy := string(find(t, build(t), "ValidatingAdmissionPolicy", "runai-ldap-sync-fence").raw)
	for _, ns := range config.BuiltinFence {
		want := "'" + ns + "'"
		if prefix, ok := strings.CutSuffix(ns, "*"); ok {
			want = "variables.target.startsWith('" + prefix + "')"
		}
		if !strings.Contains(policy, want) {
			t.Errorf("the admission policy does not fence %s (no %s)", ns, want)
		}
	}
	cfg := config.Default()
	for _, ns := range []string{"runai", "runai-backend", "runai-reservation", "runai-scale-adjust"} {
		if cfg.Fenced(ns, "") == "" {
			t.Errorf("the daemon does not fence Run:AI's %s", ns)
		}
	}
}
