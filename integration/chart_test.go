package integration

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// The Helm chart on a real kube-apiserver, with Helm 3 and with Helm 4.
// There is no kubelet here, so the Deployment never runs a pod: the test
// does the kubelet's part, writing the pod's /etc/runai-ldap-sync from the
// Deployment's projected volume (the chart's ConfigMap and the operator's
// Secret, read back from the API server) and running the daemon binary
// with the container's arguments and the ServiceAccount's own token.

func TestChartHelm3(t *testing.T) { testChart(t, "helm") }
func TestChartHelm4(t *testing.T) { testChart(t, "helm4") }

// helm runs a Helm binary built by `make helm` against this env's cluster
// as its admin.
func (e *env) helm(bin string, args ...string) (string, error) {
	e.t.Helper()
	dir, err := harness.BinDir()
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(dir, bin)
	if _, err := os.Stat(path); err != nil {
		e.t.Fatalf("%s missing at %s: run `make helm` (it builds Helm 3 and 4 from source)", bin, path)
	}
	cmd := exec.Command(path, append(args, "--kubeconfig", e.kubeconfig())...)
	cmd.Env = append(os.Environ(), harness.HelmEnv(filepath.Join(e.dir, "helm-home"))...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (e *env) mustHelm(bin string, args ...string) string {
	e.t.Helper()
	out, err := e.helm(bin, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// chartValues are an operator's values for this env: the directory, the
// sample's projects, and everything opt-in that needs no Run:AI template.
func (e *env) chartValues() string {
	e.t.Helper()
	values := fmt.Sprintf(`image:
  repository: registry.example.com/runai-ldap-sync
  tag: v1.2.3
config:
  ldap:
    urls: [%q]
    bindDN: %q
    baseDN: %q
    groupBaseDN: null # the example's OU does not exist in the test domain
    timeout: 10s
  projects:
    namespaceLabel: runai/queue
    static:
    - name: beta
      namespace: ml-beta
# ml-beta is a static project's namespace without the project label.
admissionPolicy:
  staticNamespaces: [ml-beta]
serviceMonitor:
  enabled: true
prometheusRule:
  enabled: true
dashboard:
  enabled: true
podDisruptionBudget:
  enabled: true
`, e.samba.LDAPSURL, e.bindUPN, e.ou)
	path := filepath.Join(e.dir, "my-values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// pod writes what the kubelet would mount for the Deployment's container
// into a directory, and returns the container's arguments with the mount
// path replaced by it (in the arguments and in the mounted config.yaml).
// The server address is moved to a free loopback port, the one thing two
// "pods" on one host cannot share.
func (e *env) pod(deployment string) (args []string, dir string) {
	e.t.Helper()
	ctx := context.Background()
	d, err := e.cs.AppsV1().Deployments("runai").Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get the chart's Deployment: %v", err)
	}
	spec := d.Spec.Template.Spec
	if spec.ServiceAccountName != saName {
		e.t.Fatalf("the pods run as ServiceAccount %q, want %s", spec.ServiceAccountName, saName)
	}
	c := spec.Containers[0]
	// The configuration's mount; the other one is the projected API token,
	// which this emulation replaces with --kubeconfig.
	var mounts []corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" {
			mounts = append(mounts, m)
		}
	}
	if len(mounts) != 1 || len(c.VolumeMounts) != 2 {
		e.t.Fatalf("want the configuration's mount and the token's, got %+v", c.VolumeMounts)
	}
	mount := mounts[0]
	dir = filepath.Join(e.dir, fmt.Sprintf("pod-%d", time.Now().UnixNano()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	files := map[string][]byte{}
	project := func(data map[string][]byte, items []corev1.KeyToPath, what string) {
		if len(items) == 0 {
			for k, v := range data {
				files[k] = v
			}
			return
		}
		for _, it := range items {
			v, ok := data[it.Key]
			if !ok {
				e.t.Fatalf("%s has no key %s: the pod would not start", what, it.Key)
			}
			files[it.Path] = v
		}
	}
	for _, v := range spec.Volumes {
		if v.Name != mount.Name {
			continue
		}
		if v.Projected == nil {
			e.t.Fatalf("volume %s is not projected", v.Name)
		}
		for _, s := range v.Projected.Sources {
			switch {
			case s.ConfigMap != nil:
				cm, err := e.cs.CoreV1().ConfigMaps("runai").Get(ctx, s.ConfigMap.Name, metav1.GetOptions{})
				if err != nil {
					e.t.Fatalf("the pod mounts ConfigMap %s: %v", s.ConfigMap.Name, err)
				}
				data := map[string][]byte{}
				for k, v := range cm.Data {
					data[k] = []byte(v)
				}
				project(data, s.ConfigMap.Items, "ConfigMap "+cm.Name)
			case s.Secret != nil:
				sec, err := e.cs.CoreV1().Secrets("runai").Get(ctx, s.Secret.Name, metav1.GetOptions{})
				if err != nil {
					e.t.Fatalf("the pod mounts Secret %s: %v", s.Secret.Name, err)
				}
				project(sec.Data, s.Secret.Items, "Secret "+sec.Name)
			default:
				e.t.Fatalf("unexpected volume source %+v", s)
			}
		}
	}
	addr := freeAddr(e.t)
	for name, data := range files {
		if name == "config.yaml" {
			s := strings.ReplaceAll(string(data), mount.MountPath+"/", dir+"/")
			if !strings.Contains(s, "\n  address: :9090\n") {
				e.t.Fatalf("config.yaml has no server.address :9090 to move to a free port:\n%s", s)
			}
			s = strings.Replace(s, "\n  address: :9090\n", "\n  address: "+addr+"\n", 1)
			data = []byte(s)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, a := range c.Args {
		args = append(args, strings.Replace(a, mount.MountPath+"/", dir+"/", 1))
	}
	return args, dir
}

// chartObject is an object the chart installs.
type chartObject struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

var chartObjects = []chartObject{
	{schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, "runai", "runai-ldap-sync"},
	{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "runai", "runai-ldap-sync-config"},
	{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "runai", "runai-ldap-sync-dashboard"},
	{schema.GroupVersionResource{Version: "v1", Resource: "services"}, "runai", "runai-ldap-sync"},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "runai", "runai-ldap-sync"},
	{schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}, "runai", "runai-ldap-sync"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, "", "runai-ldap-sync"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, "", "runai-ldap-sync"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, "runai", "runai-ldap-sync"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, "runai", "runai-ldap-sync"},
	{schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}, "runai", "runai-ldap-sync"},
	{schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheusrules"}, "runai", "runai-ldap-sync"},
}

// chartSnapshot reads every chart object: its content without the fields the
// API server maintains, and its UID; missing objects are absent.
func (e *env) chartSnapshot(dyn dynamic.Interface) map[string]*unstructured.Unstructured {
	e.t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, o := range chartObjects {
		u, err := dyn.Resource(o.gvr).Namespace(o.namespace).Get(context.Background(), o.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			e.t.Fatalf("get %s %s: %v", o.gvr.Resource, o.name, err)
		}
		for _, f := range []string{"resourceVersion", "managedFields", "generation", "creationTimestamp"} {
			unstructured.RemoveNestedField(u.Object, "metadata", f)
		}
		unstructured.RemoveNestedField(u.Object, "status")
		out[o.gvr.Resource+"/"+o.name] = u
	}
	return out
}

// allBindings reads every RoleBinding and ClusterRoleBinding in the cluster
// as it is stored (resourceVersion included: any write changes it).
func (e *env) allBindings() map[string]any {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	rbs, err := e.cs.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, rb := range rbs.Items {
		out["RoleBinding/"+rb.Namespace+"/"+rb.Name] = rb
	}
	crbs, err := e.cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, crb := range crbs.Items {
		out["ClusterRoleBinding/"+crb.Name] = crb
	}
	return out
}

func testChart(t *testing.T, bin string) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(root, harness.ChartPath)
	dyn, err := dynamic.NewForConfig(e.api.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	e.kubectl(monitoringCRDs, "apply", "-f", "-")
	e.kubectl("", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	values := e.chartValues()

	// Bad values are refused before anything reaches the cluster, naming the key.
	for _, bad := range []struct{ set, key string }{
		{"replicas=3", "replicas"},
		{"config.ldap.bindDn=x", "bindDn"},
		{"existingSecret=null", "existingSecret"},
	} {
		out, err := e.helm(bin, "install", "runai-ldap-sync", chart, "-n", "runai", "-f", values, "--set", bad.set)
		if err == nil || !strings.Contains(err.Error(), bad.key) || !strings.Contains(strings.ToLower(err.Error()), "schema") {
			t.Errorf("%s install --set %s: want a schema error naming %s, got %v\n%s", bin, bad.set, bad.key, err, out)
		}
	}
	// Without the operator's Secret the pods could not start: the install says so.
	if out, err := e.helm(bin, "install", "runai-ldap-sync", chart, "-n", "runai", "-f", values); err == nil ||
		!strings.Contains(err.Error(), "existingSecret: Secret "+ldapSecret+" not found in namespace runai") {
		t.Errorf("%s install without the Secret: want an error naming it, got %v\n%s", bin, err, out)
	}
	if got := e.chartSnapshot(dyn); len(got) != 0 {
		t.Fatalf("refused installs left objects behind: %v", slices.Sorted(maps.Keys(got)))
	}

	// Install as docs/install.md says: the operator creates the Secret, then helm install.
	e.kubectl("", "-n", "runai", "create", "secret", "generic", ldapSecret,
		"--from-file=bind-password="+e.pwFile, "--from-file=ca.crt="+e.samba.CAFile)
	out := e.mustHelm(bin, "install", "runai-ldap-sync", chart, "-n", "runai", "-f", values)
	t.Logf("%s install:\n%s", bin, out)
	before := e.chartSnapshot(dyn)
	if len(before) != len(chartObjects) {
		t.Fatalf("%s install created %v, want all of %d chart objects", bin, slices.Sorted(maps.Keys(before)), len(chartObjects))
	}

	// A full cycle as the ServiceAccount, with the pod's files.
	kc, sa := e.saKubeconfig()
	args, _ := e.pod("runai-ldap-sync")
	if !reflect.DeepEqual(args[:2], []string{"run", "--config"}) {
		t.Fatalf("container args %v", args)
	}
	once := append([]string{"once"}, args[1:]...)
	r := e.runAs(kc, once...)
	if r.code != 0 || strings.Contains(strings.ToLower(r.stderr), "forbidden") {
		t.Fatalf("once with the chart's config as %s: exit %d\n%s", saUser, r.code, r.stderr)
	}
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
	e.expectUsers(betaExec, "bob", "frank")
	e.expectUsers(viewer, "gina", "vera")
	e.expectUsers(indexMap, "alice", "bob", "carol", "erin", "frank")

	// `run` as the Deployment runs it: it takes the Lease the chart's Role
	// allows, becomes ready, and is refused nothing.
	rep := &replica{logs: &syncBuffer{}}
	cmd := exec.Command(binary, append(args, "--kubeconfig", kc)...)
	cmd.Stderr = rep.logs
	cfg, err := os.ReadFile(args[2])
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Server struct {
			Address string `json:"address"`
		} `json:"server"`
	}
	if err := yaml.Unmarshal(cfg, &parsed); err != nil {
		t.Fatal(err)
	}
	rep.metrics = "http://" + parsed.Server.Address
	rep.cmd = cmd
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitForLeader(t, []*replica{rep})
	if err := rep.stop(); err != nil {
		t.Errorf("run: %v\n%s", err, rep.logs.String())
	}
	if strings.Contains(strings.ToLower(rep.logs.String()), "forbidden") {
		t.Errorf("run was refused something it needs:\n%s", rep.logs.String())
	}
	if _, err := e.cs.CoordinationV1().Leases("runai").Get(ctx, saName, metav1.GetOptions{}); err != nil {
		t.Errorf("no Lease %s after run: %v", saName, err)
	}

	// The chart's RBAC refuses what deploy/'s does.
	e.expectLeastPrivilege(sa)

	// helm upgrade with a changed configuration rolls the pod template and
	// changes nothing else.
	bindings := e.allBindings()
	var d0 appsv1.Deployment
	if err := runtimeFrom(before["deployments/runai-ldap-sync"], &d0); err != nil {
		t.Fatal(err)
	}
	out = e.mustHelm(bin, "upgrade", "runai-ldap-sync", chart, "-n", "runai", "-f", values, "--set", "config.mode=dry-run")
	t.Logf("%s upgrade:\n%s", bin, out)
	after := e.chartSnapshot(dyn)
	var d1 appsv1.Deployment
	if err := runtimeFrom(after["deployments/runai-ldap-sync"], &d1); err != nil {
		t.Fatal(err)
	}
	sum0, sum1 := d0.Spec.Template.Annotations["checksum/config"], d1.Spec.Template.Annotations["checksum/config"]
	if sum0 == "" || sum0 == sum1 {
		t.Errorf("the pod template's checksum/config did not change with the configuration (%q -> %q): the pods would not roll", sum0, sum1)
	}
	cm0, _, _ := unstructured.NestedString(before["configmaps/runai-ldap-sync-config"].Object, "data", "config.yaml")
	cm1, _, _ := unstructured.NestedString(after["configmaps/runai-ldap-sync-config"].Object, "data", "config.yaml")
	if !strings.Contains(cm0, "mode: enforce") || !strings.Contains(cm1, "mode: dry-run") {
		t.Errorf("the ConfigMap did not follow the upgrade:\nbefore:\n%s\nafter:\n%s", cm0, cm1)
	}
	for k, b := range before {
		a, ok := after[k]
		switch {
		case !ok:
			t.Errorf("helm upgrade removed %s", k)
			continue
		case a.GetUID() != b.GetUID():
			t.Errorf("helm upgrade recreated %s", k)
		}
		switch k {
		case "configmaps/runai-ldap-sync-config":
			unstructured.RemoveNestedField(a.Object, "data")
			unstructured.RemoveNestedField(b.Object, "data")
		case "deployments/runai-ldap-sync":
			for _, u := range []*unstructured.Unstructured{a, b} {
				unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "annotations", "checksum/config")
			}
		}
		for _, u := range []*unstructured.Unstructured{a, b} {
			// Helm's bookkeeping of the release revision.
			unstructured.RemoveNestedField(u.Object, "metadata", "annotations", "meta.helm.sh/release-revision")
		}
		if !reflect.DeepEqual(a.Object, b.Object) {
			ay, _ := yaml.Marshal(a.Object)
			by, _ := yaml.Marshal(b.Object)
			t.Errorf("helm upgrade changed %s beyond the configuration:\nbefore:\n%s\nafter:\n%s", k, by, ay)
		}
	}
	if got := e.allBindings(); !reflect.DeepEqual(got, bindings) {
		t.Errorf("helm upgrade changed role bindings")
	}
	// The new configuration is the one the pod gets: dry-run writes nothing.
	e.user("hank", true)
	if err := e.samba.AddMembers(e.groups["runai-viewers"], e.users["hank"]); err != nil {
		t.Fatal(err)
	}
	args, _ = e.pod("runai-ldap-sync")
	if r := e.runAs(kc, append([]string{"once"}, args[1:]...)...); r.code != 0 {
		t.Fatalf("once after the upgrade: exit %d\n%s", r.code, r.stderr)
	}
	e.expectUsers(viewer, "gina", "vera")

	// helm uninstall removes the daemon and its permissions, and leaves
	// every binding (and the operator's Secret) exactly as it was.
	bindings = e.allBindings()
	managed := []model.Ref{alphaExec, betaExec, viewer, indexMap}
	for _, ref := range managed {
		if e.binding(ref) == nil {
			t.Fatalf("%s does not exist before uninstall", ref)
		}
	}
	out = e.mustHelm(bin, "uninstall", "runai-ldap-sync", "-n", "runai")
	t.Logf("%s uninstall:\n%s", bin, out)
	if left := e.chartSnapshot(dyn); len(left) != 0 {
		t.Errorf("helm uninstall left %v", slices.Sorted(maps.Keys(left)))
	}
	gone := e.allBindings()
	for k := range bindings {
		if strings.HasSuffix(k, "/runai-ldap-sync") {
			if _, ok := gone[k]; ok {
				t.Errorf("helm uninstall left the chart's %s", k)
			}
			delete(bindings, k)
		}
	}
	if !reflect.DeepEqual(gone, bindings) {
		var was, is []string
		for k := range bindings {
			was = append(was, k)
		}
		for k := range gone {
			is = append(is, k)
		}
		sort.Strings(was)
		sort.Strings(is)
		t.Errorf("helm uninstall changed role bindings other than its own:\nbefore %v\nafter  %v", was, is)
	}
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "hand-added")
	e.expectUsers(viewer, "gina", "vera")
	if _, err := e.cs.CoreV1().Secrets("runai").Get(ctx, ldapSecret, metav1.GetOptions{}); err != nil {
		t.Errorf("helm uninstall removed the operator's Secret: %v", err)
	}
	// The ServiceAccount is gone, and with it its token (the API server
	// checks the ServiceAccount through its informer: allow it to catch up).
	waitFor(t, 30*time.Second, "the ServiceAccount's token stops working after uninstall", func() error {
		if _, err := sa.RbacV1().RoleBindings("runai-alpha").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			return fmt.Errorf("still answered: %v", errString(err))
		}
		return nil
	})
}

// runtimeFrom converts an unstructured object into a typed one.
func runtimeFrom(u *unstructured.Unstructured, into any) error {
	if u == nil {
		return fmt.Errorf("object missing")
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

// TestChartProvisioning: with provisioning.enabled the chart mounts its
// example template where the configuration it writes names it, and grants
// what provisioning needs: one cycle as the ServiceAccount creates a static
// project's namespace, applies the template and binds its users; deleting a
// namespace is still refused.
func TestChartProvisioning(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	seedProvisioning(e)
	_, tmpl := exampleTemplate(t)
	for _, role := range tmpl.ClusterRoles() {
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
		if _, err := e.cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	values := filepath.Join(e.dir, "provisioning-values.yaml")
	writeFile(t, values, []byte(fmt.Sprintf(`config:
  ldap: {urls: [%q], bindDN: %q, baseDN: %q, groupBaseDN: null, timeout: 10s}
  projects:
    namespaceLabel: runai/queue
    createNamespaces: true
    static:
    - name: gamma
provisioning:
  enabled: true
`, e.samba.LDAPSURL, e.bindUPN, e.ou)))
	e.kubectl("", "-n", "runai", "create", "secret", "generic", ldapSecret,
		"--from-file=bind-password="+e.pwFile, "--from-file=ca.crt="+e.samba.CAFile)
	e.mustHelm("helm", "install", "runai-ldap-sync", filepath.Join(root, harness.ChartPath), "-n", "runai", "-f", values)

	kc, sa := e.saKubeconfig()
	args, _ := e.pod("runai-ldap-sync")
	r := e.runAs(kc, append([]string{"once"}, args[1:]...)...)
	if r.code != 0 || strings.Contains(strings.ToLower(r.stderr), "forbidden") {
		t.Fatalf("once with provisioning as %s: exit %d\n%s", saUser, r.code, r.stderr)
	}
	if labels, _, ok := e.nsLabels("runai-gamma"); !ok || labels["runai/queue"] != "gamma" {
		t.Fatalf("runai-gamma: exists %v, labels %v", ok, labels)
	}
	e.expectTemplate(tmpl, "gamma", "runai-gamma")
	e.expectTemplate(tmpl, "alpha", "runai-alpha")
	e.expectUsers(model.ExecutorRef("runai-gamma"), "gus")
	expectForbidden(t, saUser, []refusal{
		{"delete a namespace it created", func() error {
			return sa.CoreV1().Namespaces().Delete(ctx, "runai-gamma", metav1.DeleteOptions{})
		}},
		{"label a namespace (labelNamespaces is off)", func() error {
			_, err := sa.CoreV1().Namespaces().Patch(ctx, "runai-alpha", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}},
	})
}
