// Package deploy tests what operators install and run, without servers:
// the kustomize base in deploy/ as `kubectl kustomize` builds it (strictly
// decoded, its example configuration parsed by the real config loader, its
// RBAC compared rule by rule with the least privilege the daemon needs), the
// alert rules under `promtool test rules`, the Grafana dashboard's queries,
// the documentation of every metric and alert, and the image built by
// `make image`. The kustomize base applied to a real API server, and the
// daemon running with its ServiceAccount's permissions, are tested in
// ../deploy_test.go. A missing tool (kubectl, promtool) fails, never skips.
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

const (
	namespace  = "runai"
	name       = "runai-ldap-sync"
	secretName = "runai-ldap-sync-ldap"
	configDir  = "/etc/runai-ldap-sync"
)

// repoRoot is the repository holding deploy/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool returns a binary built into .cache/bin, failing loudly if missing.
func tool(t *testing.T, name, makeTarget string) string {
	t.Helper()
	dir, err := harness.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing at %s: run `make %s` (it builds it from source into .cache/bin)", name, path, makeTarget)
	}
	return path
}

// object is one document of the kustomize output.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	raw []byte
}

func (o object) id() string { return o.Kind + "/" + o.Metadata.Name }

// decode strictly decodes the document into v: a misspelt or misplaced
// field is an error, as it would be for `kubectl apply --validate=strict`.
func (o object) decode(t *testing.T, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(o.raw, v); err != nil {
		t.Fatalf("%s does not decode strictly as %T: %v", o.id(), v, err)
	}
}

var (
	buildOnce sync.Once
	built     []object
	buildErr  error
)

// decodeObjects splits a multi-document manifest (kustomize or helm
// output) into objects, keeping each document's text.
func decodeObjects(manifests []byte) ([]object, error) {
	docs, err := harness.SplitManifests(manifests)
	if err != nil {
		return nil, err
	}
	objs := make([]object, 0, len(docs))
	for _, doc := range docs {
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			return nil, err
		}
		o.raw = doc
		objs = append(objs, o)
	}
	return objs, nil
}

// build runs `kubectl kustomize deploy/` once and splits its output.
func build(t *testing.T) []object {
	t.Helper()
	kubectl := tool(t, "kubectl", "tools")
	root := repoRoot(t)
	buildOnce.Do(func() {
		out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, "deploy")).Output()
		if err != nil {
			buildErr = fmt.Errorf("kubectl kustomize deploy/: %w: %s", err, stderrOf(err))
			return
		}
		if built, err = decodeObjects(out); err != nil {
			buildErr = fmt.Errorf("kustomize output: %w", err)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// find returns the one object of this kind whose name starts with prefix
// (generated ConfigMaps carry a hash suffix).
func find(t *testing.T, objs []object, kind, prefix string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind && strings.HasPrefix(o.Metadata.Name, prefix) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s named %s*, got %d", kind, prefix, len(found))
	}
	return found[0]
}

func TestKustomizeBuildsTheExpectedObjects(t *testing.T) {
	objs := build(t)
	var got []string
	for _, o := range objs {
		n := o.Metadata.Name
		if strings.HasPrefix(n, "runai-ldap-sync-config-") {
			n = "runai-ldap-sync-config" // kustomize adds a hash of config.yaml
		}
		got = append(got, o.Kind+"/"+n)
		switch o.Kind {
		case "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			if o.Metadata.Namespace != "" {
				t.Errorf("%s has a namespace", o.id())
			}
		case "Namespace":
			t.Errorf("deploy/ ships Namespace %s: runai belongs to Run:AI, and `kubectl delete -k` would delete it", o.Metadata.Name)
		case "Secret":
			t.Errorf("deploy/ ships Secret %s: the bind password is the operator's to create", o.Metadata.Name)
		default:
			if o.Metadata.Namespace != namespace {
				t.Errorf("%s is in namespace %q, want %s", o.id(), o.Metadata.Namespace, namespace)
			}
		}
		if o.Metadata.Labels["app.kubernetes.io/part-of"] != name {
			t.Errorf("%s lacks the label app.kubernetes.io/part-of=%s", o.id(), name)
		}
	}
	sort.Strings(got)
	want := []string{
		"ClusterRole/runai-ldap-sync", "ClusterRoleBinding/runai-ldap-sync",
		"ConfigMap/runai-ldap-sync-config", "ConfigMap/runai-ldap-sync-dashboard", "ConfigMap/runai-ldap-sync-fence",
		"Deployment/runai-ldap-sync", "NetworkPolicy/runai-ldap-sync", "PodDisruptionBudget/runai-ldap-sync", "PrometheusRule/runai-ldap-sync",
		"Role/runai-ldap-sync", "RoleBinding/runai-ldap-sync",
		"Service/runai-ldap-sync", "ServiceAccount/runai-ldap-sync", "ServiceMonitor/runai-ldap-sync",
		"ValidatingAdmissionPolicy/runai-ldap-sync-fence", "ValidatingAdmissionPolicy/runai-ldap-sync-state",
		"ValidatingAdmissionPolicyBinding/runai-ldap-sync-fence", "ValidatingAdmissionPolicyBinding/runai-ldap-sync-state",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kustomize builds\n  %v\nwant\n  %v", got, want)
	}
	// Every object decodes strictly into its Go type.
	for _, o := range objs {
		var v any
		switch o.Kind {
		case "ServiceAccount":
			v = &corev1.ServiceAccount{}
		case "ConfigMap":
			v = &corev1.ConfigMap{}
		case "Service":
			v = &corev1.Service{}
		case "Deployment":
			v = &appsv1.Deployment{}
		case "PodDisruptionBudget":
			v = &policyv1.PodDisruptionBudget{}
		case "ClusterRole":
			v = &rbacv1.ClusterRole{}
		case "ClusterRoleBinding":
			v = &rbacv1.ClusterRoleBinding{}
		case "Role":
			v = &rbacv1.Role{}
		case "RoleBinding":
			v = &rbacv1.RoleBinding{}
		case "ValidatingAdmissionPolicy":
			v = &admissionregistrationv1.ValidatingAdmissionPolicy{}
		case "ValidatingAdmissionPolicyBinding":
			v = &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
		default:
			continue // CRDs: decoded in their own tests
		}
		o.decode(t, v)
	}
}

func deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	find(t, build(t), "Deployment", name).decode(t, &d)
	return &d
}

func TestDeploymentIsHardened(t *testing.T) {
	d := deployment(t)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2 (leader election)", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != name {
		t.Errorf("serviceAccountName = %q", pod.ServiceAccountName)
	}
	// The token is not automounted but projected, at the path client-go's
	// in-cluster configuration reads, outside the configuration directory
	// (the only one whose files the configuration may name).
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false: the token is projected (kube-api-access)")
	}
	const tokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	tokenVolume := ""
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.MountPath == tokenDir && m.ReadOnly {
			tokenVolume = m.Name
		}
		if strings.HasPrefix(tokenDir+"/", m.MountPath+"/") && m.MountPath != tokenDir || strings.HasPrefix(m.MountPath+"/", configDir+"/") && m.MountPath != configDir {
			t.Errorf("mount %s overlaps the token or the configuration directory", m.MountPath)
		}
	}
	projected := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.Name == tokenVolume && v.Projected != nil {
			for _, src := range v.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil && src.ServiceAccountToken.Path == "token" && src.ServiceAccountToken.ExpirationSeconds != nil:
					projected["token"] = true
				case src.ConfigMap != nil && src.ConfigMap.Name == "kube-root-ca.crt":
					projected["ca.crt"] = true
				case src.DownwardAPI != nil:
					projected["namespace"] = true
				}
			}
		}
	}
	if !projected["token"] || !projected["ca.crt"] || !projected["namespace"] {
		t.Errorf("no read-only projected token volume (token, ca.crt, namespace) at %s: %v", tokenDir, projected)
	}
	var sa corev1.ServiceAccount
	find(t, build(t), "ServiceAccount", name).decode(t, &sa)
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the ServiceAccount must not automount its token")
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext must run as a non-root user: %+v", psc)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	if psc == nil || psc.FSGroup == nil || psc.RunAsUser == nil || *psc.FSGroup != *psc.RunAsUser {
		t.Error("fsGroup must be the user's group, or the user cannot read the mounted Secret")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container has no securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("capabilities = %+v, want drop [ALL] and nothing added", sc.Capabilities)
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("privileged")
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("no memory limit")
	}
	wantArgs := []string{"run", "--config", configDir + "/config.yaml", "--log-level", "info"}
	if !reflect.DeepEqual(c.Args, wantArgs) || len(c.Command) > 0 {
		t.Errorf("command %v args %v, want the image's entrypoint with args %v", c.Command, c.Args, wantArgs)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 9090 {
		t.Errorf("ports = %+v, want metrics 9090", c.Ports)
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe is not an HTTP GET", what)
			return
		}
		if p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("metrics") {
			t.Errorf("%s probe = %s on %s, want %s on the metrics port", what, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	if d.Spec.Template.Labels["app.kubernetes.io/name"] != name || d.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != name {
		t.Errorf("selector %v / pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
}

// TestConfigAndMountsAgree checks that the files the example configuration
// names are the files the Deployment mounts, and that the embedded
// configuration is valid for the real loader once they exist.
func TestConfigAndMountsAgree(t *testing.T) {
	objs := build(t)
	d := deployment(t)
	c := d.Spec.Template.Spec.Containers[0]
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if m.MountPath == configDir && m.ReadOnly {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("volumeMounts = %+v, want a read-only mount at %s", c.VolumeMounts, configDir)
	}
	var vol *corev1.Volume
	for i := range d.Spec.Template.Spec.Volumes {
		if d.Spec.Template.Spec.Volumes[i].Name == mount.Name {
			vol = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.Projected == nil {
		t.Fatalf("volume %s is not a projected volume", mount.Name)
	}
	var cm corev1.ConfigMap
	cmObj := find(t, objs, "ConfigMap", "runai-ldap-sync-config")
	cmObj.decode(t, &cm)
	var cmRef, secretRef bool
	files := map[string]bool{}
	for _, s := range vol.Projected.Sources {
		switch {
		case s.ConfigMap != nil:
			cmRef = s.ConfigMap.Name == cm.Name
			for _, it := range s.ConfigMap.Items {
				files[configDir+"/"+it.Path] = true
			}
		case s.Secret != nil:
			secretRef = s.Secret.Name == secretName && len(s.Secret.Items) == 0 && (s.Secret.Optional == nil || !*s.Secret.Optional)
			files[configDir+"/bind-password"] = true // every key of the Secret is a file
			files[configDir+"/ca.crt"] = true
		}
	}
	if !cmRef {
		t.Errorf("the volume does not project the generated ConfigMap %s", cm.Name)
	}
	if !secretRef {
		t.Errorf("the volume does not project all keys of the (required) Secret %s", secretName)
	}
	data, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yaml", cm.Name)
	}
	configArg := ""
	if i := slices.Index(c.Args, "--config"); i >= 0 && i+1 < len(c.Args) {
		configArg = c.Args[i+1]
	}
	if !files[configArg] {
		t.Errorf("--config %q is not a mounted file (%v)", configArg, files)
	}

	// The real loader accepts it once the Secret's files exist; point them at
	// temporary files.
	dir := t.TempDir()
	pw, ca := filepath.Join(dir, "bind-password"), filepath.Join(dir, "ca.crt")
	for _, f := range []string{pw, ca} {
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{configDir + "/bind-password", configDir + "/ca.crt"} {
		if !strings.Contains(data, path) {
			t.Errorf("the example configuration does not use %s", path)
		}
	}
	local := strings.NewReplacer(configDir+"/bind-password", pw, configDir+"/ca.crt", ca).Replace(data)
	cfg, err := config.Parse([]byte(local))
	if err != nil {
		t.Fatalf("the example configuration in ConfigMap %s is invalid:\n%v", cm.Name, err)
	}
	if !strings.Contains(data, "\n# ") {
		t.Error("the example configuration has no comments")
	}
	// And `check-config` agrees, through the real binary's code path.
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cfg.Server.Address, ":9090") {
		t.Errorf("server.address %q does not serve on the probed and scraped port 9090", cfg.Server.Address)
	}
	if cfg.Kubernetes.RunaiNamespace != namespace {
		t.Errorf("kubernetes.runaiNamespace = %q, want %s", cfg.Kubernetes.RunaiNamespace, namespace)
	}
	if !cfg.LeaderElection.Enabled || cfg.LeaderElection.LeaseName != name {
		t.Errorf("leaderElection = %+v: two replicas need it, with the Lease named %s that the Role allows", cfg.LeaderElection, name)
	}
}

func TestServiceAndServiceMonitorSelectThePods(t *testing.T) {
	objs := build(t)
	d := deployment(t)
	var svc corev1.Service
	find(t, objs, "Service", name).decode(t, &svc)
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pods", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort != intstr.FromString("metrics") {
		t.Errorf("Service ports = %+v", svc.Spec.Ports)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("the standby replica is never ready (it does not sync); publishNotReadyAddresses keeps its metrics scraped")
	}
	var sm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name, Namespace string
			Labels          map[string]string
		} `json:"metadata"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port        string `json:"port"`
				Path        string `json:"path"`
				Interval    string `json:"interval"`
				HonorLabels bool   `json:"honorLabels"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	o := find(t, objs, "ServiceMonitor", name)
	o.decode(t, &sm)
	if sm.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %s", sm.APIVersion)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %s=%s does not match the Service", k, v)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints = %+v", sm.Spec.Endpoints)
	} else if !sm.Spec.Endpoints[0].HonorLabels {
		t.Error("honorLabels must be true: the alerts group by the binding's namespace label, which Prometheus would rename to exported_namespace")
	}
}

// TestRBACIsLeastPrivilege compares every rule with what the daemon needs
// (BRIEF §2), so a widened rule fails here before it ships.
func TestRBACIsLeastPrivilege(t *testing.T) {
	objs := build(t)
	rbacGroup := rbacv1.GroupName
	var cr rbacv1.ClusterRole
	find(t, objs, "ClusterRole", name).decode(t, &cr)
	wantCR := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{rbacGroup}, Resources: []string{"rolebindings", "clusterrolebindings"}, Verbs: []string{"get", "list", "watch", "create"}},
		// The binding names and their shards <name>-1 … <name>-16, nothing else.
		{APIGroups: []string{rbacGroup}, Resources: []string{"rolebindings"}, ResourceNames: append(append(append([]string{model.ExecutorBinding}, model.ShardNames(model.ExecutorBinding)...),
			model.IndexMapBinding), model.ShardNames(model.IndexMapBinding)...), Verbs: []string{"patch", "update"}},
		{APIGroups: []string{rbacGroup}, Resources: []string{"clusterrolebindings"}, ResourceNames: append([]string{model.ViewerBinding}, model.ShardNames(model.ViewerBinding)...), Verbs: []string{"patch", "update"}},
		{APIGroups: []string{rbacGroup}, Resources: []string{"clusterroles"}, ResourceNames: []string{model.ViewerRole, model.ExecutorRole, model.IndexMapRole}, Verbs: []string{"bind"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
	if !reflect.DeepEqual(cr.Rules, wantCR) {
		t.Errorf("ClusterRole rules:\n%s\nwant:\n%s", dump(cr.Rules), dump(wantCR))
	}
	if cr.AggregationRule != nil {
		t.Error("the ClusterRole must not aggregate others")
	}
	var role rbacv1.Role
	find(t, objs, "Role", name).decode(t, &role)
	wantRole := []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{name}, Verbs: []string{"get", "update"}},
		// The guard's store: one ConfigMap by name (create cannot be narrowed by name).
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{name + "-state"}, Verbs: []string{"get", "update"}},
	}
	if !reflect.DeepEqual(role.Rules, wantRole) {
		t.Errorf("Role rules:\n%s\nwant:\n%s", dump(role.Rules), dump(wantRole))
	}
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}
	var crb rbacv1.ClusterRoleBinding
	find(t, objs, "ClusterRoleBinding", name).decode(t, &crb)
	if crb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "ClusterRole", Name: name}) || !reflect.DeepEqual(crb.Subjects, []rbacv1.Subject{sa}) {
		t.Errorf("ClusterRoleBinding = %+v %+v", crb.RoleRef, crb.Subjects)
	}
	var rb rbacv1.RoleBinding
	find(t, objs, "RoleBinding", name).decode(t, &rb)
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "Role", Name: name}) || !reflect.DeepEqual(rb.Subjects, []rbacv1.Subject{sa}) {
		t.Errorf("RoleBinding = %+v %+v", rb.RoleRef, rb.Subjects)
	}
	// No wildcard anywhere in the output.
	for _, o := range objs {
		if o.Kind == "ClusterRole" || o.Kind == "Role" {
			if bytes.Contains(o.raw, []byte("'*'")) || bytes.Contains(o.raw, []byte(`"*"`)) || bytes.Contains(o.raw, []byte("- *")) {
				t.Errorf("%s has a wildcard", o.id())
			}
		}
	}
}

func dump(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

// TestNetworkPolicy: deploy/ ships a NetworkPolicy selecting the pods that
// lets in only the metrics port (scrapes, probes) and lets out only the
// DCs' LDAP ports, the API server and DNS.
func TestNetworkPolicy(t *testing.T) {
	var np networkingv1.NetworkPolicy
	find(t, build(t), "NetworkPolicy", name).decode(t, &np)
	d := deployment(t)
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("the NetworkPolicy selects %s=%s, which the pods lack", k, v)
		}
	}
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
		t.Errorf("policyTypes = %v, want both", np.Spec.PolicyTypes)
	}
	port := func(p networkingv1.NetworkPolicyPort) string {
		return fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String())
	}
	var in []string
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			in = append(in, port(p))
		}
		if len(r.Ports) == 0 {
			t.Error("an ingress rule without ports lets in every port")
		}
	}
	if !reflect.DeepEqual(in, []string{"TCP/9090"}) {
		t.Errorf("ingress ports %v, want only TCP/9090 (metrics, probes)", in)
	}
	var out []string
	for _, r := range np.Spec.Egress {
		if len(r.Ports) == 0 {
			t.Error("an egress rule without ports lets out every port")
		}
		for _, p := range r.Ports {
			out = append(out, port(p))
		}
	}
	sort.Strings(out)
	want := []string{"TCP/3268", "TCP/3269", "TCP/389", "TCP/443", "TCP/53", "TCP/636", "TCP/6443", "UDP/53"}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("egress ports %v, want %v (DCs, API server, DNS)", out, want)
	}
}

// TestShippedFilesApproveThroughTheStore: no shipped file tells an admin to
// approve a hold with the binding annotation of earlier versions, which the
// daemon removes unread (approvals live in the guard's store).
func TestShippedFilesApproveThroughTheStore(t *testing.T) {
	root := filepath.Join(repoRoot(t), "deploy")
	n := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(data, []byte("runai-ldap-sync.github.io/approve-removals")) {
			t.Errorf("%s names the retired approval annotation runai-ldap-sync.github.io/approve-removals; approvals are annotations on ConfigMap runai-ldap-sync-state", path)
		}
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("read %d files under %s: %v", n, root, err)
	}
}
