package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// The chart in deploy/chart/runai-ldap-sync, tested with Helm 3 and Helm 4
// (both built from source by `make helm`). Installing it on a real API
// server and running the daemon with its ServiceAccount is tested in
// ../chart_test.go.

var updateChartSchema = flag.Bool("update-chart-schema", false,
	"rewrite the config part of the chart's values.schema.json from config.Config")

// helms are the Helm binaries the chart must work with.
var helms = []string{"helm", "helm4"}

func chartDir(t *testing.T) string {
	return filepath.Join(repoRoot(t), harness.ChartPath)
}

// helm runs a Helm binary with its state in a temporary directory.
func helm(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, bin, "helm"), args...)
	cmd.Env = append(os.Environ(), harness.HelmEnv(t.TempDir())...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, errb.String())
	}
	if args[0] == "lint" {
		return out.String() + errb.String(), nil
	}
	return out.String(), nil
}

// render runs `helm template` on the chart as `helm install runai-ldap-sync
// -n runai` would render it, with extra arguments (--set ...).
func render(t *testing.T, bin string, args ...string) []object {
	t.Helper()
	return renderRelease(t, bin, name, args...)
}

// monitoringOn are the opt-ins the kustomize base has on, and the image it names.
var monitoringOn = []string{"--set", "image.tag=latest", "--set", "serviceMonitor.enabled=true",
	"--set", "prometheusRule.enabled=true", "--set", "dashboard.enabled=true"}

// TestChartMatchesKustomize is the one-source-of-truth check: with default
// values (and the monitoring the base has on) the chart renders the objects
// `kubectl kustomize deploy/` builds, field by field and RBAC rule by rule;
// with provisioning.enabled and labelNamespaces.enabled, those of the base
// with its components. The only differences allowed are the ones each tool
// makes on its own and are listed in normalize.
func TestChartMatchesKustomize(t *testing.T) {
	for _, bin := range helms {
		t.Run(bin, func(t *testing.T) {
			compareObjects(t, render(t, bin, monitoringOn...), build(t), nil)
			withProv := append(append([]string{}, monitoringOn...), "--set", "provisioning.enabled=true")
			compareObjects(t, render(t, bin, withProv...), buildWith(t, "components/provisioning"),
				map[string]any{"template": configDir + "/project-template.yaml"})
			withLabel := append(withProv, "--set", "labelNamespaces.enabled=true")
			compareObjects(t, render(t, bin, withLabel...), buildWith(t, "components/provisioning", "components/label-namespaces"),
				map[string]any{"template": configDir + "/project-template.yaml"})

			// Default values: the same, without the opt-in monitoring objects.
			var got, want []string
			for _, o := range render(t, bin) {
				got = append(got, o.Kind+"/"+o.Metadata.Name)
			}
			for _, o := range build(t) {
				switch o.Kind {
				case "ServiceMonitor", "PrometheusRule":
					continue
				}
				n := hashSuffix.ReplaceAllString(o.Metadata.Name, "")
				if n == name+"-dashboard" {
					continue
				}
				want = append(want, o.Kind+"/"+n)
			}
			sort.Strings(got)
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("with default values the chart renders\n  %v\nwant (the base without its monitoring objects)\n  %v", got, want)
			}
		})
	}
}

// hashSuffix is the hash kustomize appends to generated ConfigMaps.
var hashSuffix = regexp.MustCompile(`-[a-z0-9]{10}$`)

// helmLabels are the labels the chart adds to every object's metadata
// (selectors carry the instance label too); deploy/ has part-of and
// managed-by: kustomize instead.
func helmLabels(t *testing.T) map[string]*regexp.Regexp {
	return map[string]*regexp.Regexp{
		"helm.sh/chart":                regexp.MustCompile(`^runai-ldap-sync-.+$`),
		"app.kubernetes.io/name":       regexp.MustCompile(`^runai-ldap-sync$`),
		"app.kubernetes.io/instance":   regexp.MustCompile(`^runai-ldap-sync$`),
		"app.kubernetes.io/version":    regexp.MustCompile(`^.+$`),
		"app.kubernetes.io/managed-by": regexp.MustCompile(`^Helm$`),
	}
}

// compareObjects compares the chart's objects with kustomize's, after
// normalize. projectsExtra are keys the chart adds to the configuration's
// projects (config.projects.template with provisioning).
func compareObjects(t *testing.T, chart, base []object, projectsExtra map[string]any) {
	t.Helper()
	c := normalize(t, chart, true, nil)
	b := normalize(t, base, false, projectsExtra)
	var ids []string
	for id := range b {
		ids = append(ids, id)
		if _, ok := c[id]; !ok {
			t.Errorf("the chart does not render %s", id)
		}
	}
	for id := range c {
		if _, ok := b[id]; !ok {
			t.Errorf("the chart renders %s, which kustomize does not build", id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if cv, ok := c[id]; ok {
			for _, d := range diffTree(cv, b[id], id) {
				t.Errorf("chart and kustomize differ: %s", d)
			}
		}
	}
}

// normalize decodes the objects into generic trees keyed by kind/name,
// removing what each tool adds by design:
//   - kustomize: managed-by: kustomize, the hash suffix of generated
//     ConfigMaps (the chart rolls the pods with a checksum annotation);
//   - Helm: its standard labels (checked, then removed), the checksum
//     annotations of the pod template (checked, then removed);
//   - config.yaml is compared parsed (the chart writes it with toYaml; the
//     base is a commented file).
func normalize(t *testing.T, objs []object, isChart bool, projectsExtra map[string]any) map[string]map[string]any {
	t.Helper()
	renames := map[string]string{}
	for _, o := range objs {
		if o.Kind == "ConfigMap" && !isChart {
			renames[o.Metadata.Name] = hashSuffix.ReplaceAllString(o.Metadata.Name, "")
		}
	}
	out := map[string]map[string]any{}
	for _, o := range objs {
		var m map[string]any
		if err := yaml.Unmarshal(o.raw, &m); err != nil {
			t.Fatal(err)
		}
		m = rename(m, renames).(map[string]any)
		meta := m["metadata"].(map[string]any)
		labels, _ := meta["labels"].(map[string]any)
		if labels == nil {
			t.Errorf("%s has no labels", o.id())
			labels = map[string]any{}
		}
		if labels["app.kubernetes.io/part-of"] != name {
			t.Errorf("%s lacks app.kubernetes.io/part-of=%s", o.id(), name)
		}
		if isChart {
			for k, re := range helmLabels(t) {
				v, _ := labels[k].(string)
				if !re.MatchString(v) {
					t.Errorf("chart: %s label %s=%q, want %s", o.id(), k, v, re)
				}
			}
		} else if labels["app.kubernetes.io/managed-by"] != "kustomize" {
			t.Errorf("kustomize: %s label managed-by=%v", o.id(), labels["app.kubernetes.io/managed-by"])
		}
		for k := range helmLabels(t) {
			// The base labels some objects with app.kubernetes.io/name, the chart all.
			delete(labels, k)
		}
		stripInstance(m)
		if o.Kind == "Deployment" {
			tm := m["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)
			ann, _ := tm["annotations"].(map[string]any)
			if isChart {
				if v, _ := ann["checksum/config"].(string); !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(v) {
					t.Errorf("chart: the pod template has no checksum/config annotation (a config change would not roll the pods): %v", ann)
				}
				for k := range ann {
					if strings.HasPrefix(k, "checksum/") {
						delete(ann, k)
					}
				}
			}
			if len(ann) == 0 {
				delete(tm, "annotations")
			}
		}
		if o.Kind == "ConfigMap" && meta["name"] == name+"-config" {
			data := m["data"].(map[string]any)
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(data["config.yaml"].(string)), &cfg); err != nil {
				t.Fatalf("%s: config.yaml: %v", o.id(), err)
			}
			if !isChart && projectsExtra != nil {
				p := cfg["projects"].(map[string]any)
				for k, v := range projectsExtra {
					p[k] = v
				}
			}
			data["config.yaml"] = cfg
		}
		out[o.Kind+"/"+meta["name"].(string)] = m
	}
	return out
}

// rename replaces every string equal to a key of renames.
func rename(v any, renames map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = rename(e, renames)
		}
	case []any:
		for i, e := range x {
			x[i] = rename(e, renames)
		}
	case string:
		if r, ok := renames[x]; ok {
			return r
		}
	}
	return v
}

// stripInstance removes the chart's instance label from every selector and
// label map (the base selects by app.kubernetes.io/name alone).
func stripInstance(v any) {
	switch x := v.(type) {
	case map[string]any:
		if x["app.kubernetes.io/instance"] == name {
			delete(x, "app.kubernetes.io/instance")
		}
		for _, e := range x {
			stripInstance(e)
		}
	case []any:
		for _, e := range x {
			stripInstance(e)
		}
	}
}

// diffTree lists the paths where a (chart) and b (kustomize) differ.
func diffTree(a, b any, path string) []string {
	switch bx := b.(type) {
	case map[string]any:
		ax, ok := a.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: chart %s, kustomize %s", path, short(a), short(b))}
		}
		var out []string
		keys := map[string]bool{}
		for k := range ax {
			keys[k] = true
		}
		for k := range bx {
			keys[k] = true
		}
		var sorted []string
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			av, aok := ax[k]
			bv, bok := bx[k]
			switch {
			case !aok:
				out = append(out, fmt.Sprintf("%s.%s: only kustomize has it: %s", path, k, short(bv)))
			case !bok:
				out = append(out, fmt.Sprintf("%s.%s: only the chart has it: %s", path, k, short(av)))
			default:
				out = append(out, diffTree(av, bv, path+"."+k)...)
			}
		}
		return out
	case []any:
		ax, ok := a.([]any)
		if !ok || len(ax) != len(bx) {
			return []string{fmt.Sprintf("%s: chart %s, kustomize %s", path, short(a), short(b))}
		}
		var out []string
		for i := range bx {
			out = append(out, diffTree(ax[i], bx[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	default:
		if !reflect.DeepEqual(a, b) {
			return []string{fmt.Sprintf("%s: chart %s, kustomize %s", path, short(a), short(b))}
		}
		return nil
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// TestChartFilesAreCopies: the chart cannot read files outside its
// directory, so it carries copies of the base's alert rules, dashboard and
// example project template; they must be the same bytes.
func TestChartFilesAreCopies(t *testing.T) {
	root := repoRoot(t)
	for copyPath, src := range harness.ChartFiles {
		a, err := os.ReadFile(filepath.Join(root, harness.ChartPath, copyPath))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s/%s differs from %s: run `make chart-files` (the base's file is the one to edit)", harness.ChartPath, copyPath, src)
		}
	}
}

// TestChartLint: `helm lint --strict` is clean with the defaults and with
// every opt-in on.
func TestChartLint(t *testing.T) {
	for _, bin := range helms {
		for _, args := range [][]string{nil, append(append([]string{}, monitoringOn...), "--set", "provisioning.enabled=true",
			"--set", "labelNamespaces.enabled=true", "--set", "logLevel=debug")} {
			// -n runai: the chart refuses any other namespace (config.kubernetes.runaiNamespace).
			out, err := helm(t, bin, append([]string{"lint", "--strict", "-n", namespace, chartDir(t)}, args...)...)
			if err != nil {
				t.Errorf("%v\n%s", err, out)
				continue
			}
			// [INFO] icon is recommended: the project has no icon.
			if !strings.Contains(out, "0 chart(s) failed") || strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") || strings.Contains(out, "Fail:") {
				t.Errorf("%s lint --strict %v is not clean:\n%s", bin, args, out)
			}
		}
	}
}

// TestChartRefusesBadValues: values.schema.json refuses unknown keys (in the
// chart's values and in the daemon's config), wrong types and a missing
// Secret name, naming the key; the chart's own checks refuse a
// configuration its objects could not serve.
func TestChartRefusesBadValues(t *testing.T) {
	cases := []struct {
		what string
		args []string
		want []string // all in the error
	}{
		{"unknown top-level key", []string{"--set", "replicas=3"}, []string{"replicas"}},
		{"unknown nested key", []string{"--set", "image.registry=x"}, []string{"registry"}},
		{"unknown config key (a typo)", []string{"--set", "config.ldap.bindDn=x"}, []string{"bindDn"}},
		{"wrong type", []string{"--set-string", "replicaCount=two"}, []string{"replicaCount"}},
		{"wrong type in config", []string{"--set-string", "config.guard.maxRemoveCount=many"}, []string{"maxRemoveCount"}},
		{"bad enum in config", []string{"--set", "config.mode=yolo"}, []string{"mode"}},
		{"bad duration in config", []string{"--set", "config.ldap.timeout=30 seconds"}, []string{"timeout"}},
		{"missing Secret name", []string{"--set", "existingSecret=null"}, []string{"existingSecret"}},
		{"empty Secret name", []string{"--set", "existingSecret="}, []string{"existingSecret"}},
		{"wildcard in extra rules", []string{"--set", "provisioning.extraRules[0].verbs[0]=*"}, []string{"verbs"}},
		// The chart's checks (fail), not the schema's.
		{"release namespace is not runaiNamespace", []string{"--set", "config.kubernetes.runaiNamespace=other"}, []string{"config.kubernetes.runaiNamespace"}},
		{"password file elsewhere", []string{"--set", "config.ldap.bindPasswordFile=/pw"}, []string{"config.ldap.bindPasswordFile must be /etc/runai-ldap-sync/bind-password"}},
		{"createNamespaces without provisioning", []string{"--set", "config.projects.createNamespaces=true"}, []string{"provisioning.enabled"}},
		{"labelling without its RBAC", []string{"--set", "config.projects.labelExistingNamespaces=true"}, []string{"labelNamespaces.enabled"}},
		{"two replicas without leader election", []string{"--set", "config.leaderElection.enabled=false"}, []string{"config.leaderElection.enabled"}},
		{"more shards than the names RBAC and the policy allow", []string{"--set", "config.kubernetes.maxBindingShards=17"}, []string{"config.kubernetes.maxBindingShards"}},
		{"no port in server.address", []string{"--set", "config.server.address=localhost"}, []string{"config.server.address"}},
		{"existing template ConfigMap without names", []string{"--set", "provisioning.enabled=true", "--set", "provisioning.existingConfigMap=mine"}, []string{"provisioning.bindingNames"}},
	}
	for _, bin := range helms {
		for _, c := range cases {
			out, err := helm(t, bin, append([]string{"template", name, chartDir(t), "-n", namespace}, c.args...)...)
			if err == nil {
				t.Errorf("%s: %s %v rendered, want an error:\n%.500s", bin, c.what, c.args, out)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: %s: the error does not name %q:\n%v", bin, c.what, w, err)
				}
			}
			t.Logf("%s: %s: %s", bin, c.what, lastLines(err.Error(), 3))
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// TestChartAlertRules runs deploy/alerts_test.yaml under promtool on the
// chart's PrometheusRule, as TestAlertRules does on the base's.
func TestChartAlertRules(t *testing.T) {
	for _, bin := range helms {
		t.Run(bin, func(t *testing.T) {
			var pr struct {
				APIVersion string   `json:"apiVersion"`
				Kind       string   `json:"kind"`
				Metadata   any      `json:"metadata"`
				Spec       ruleFile `json:"spec"`
			}
			find(t, render(t, bin, monitoringOn...), "PrometheusRule", name).decode(t, &pr)
			if len(alertNames(pr.Spec)) == 0 {
				t.Fatal("the chart's PrometheusRule has no alerts")
			}
			testAlertRules(t, pr.Spec)
		})
	}
}

// TestChartConfigIsValid: the configuration the chart renders with its
// default values, and with provisioning on, is accepted by the real loader
// once the mounted files exist.
func TestChartConfigIsValid(t *testing.T) {
	for _, args := range [][]string{nil, {"--set", "provisioning.enabled=true", "--set", "config.projects.createNamespaces=true"}} {
		objs := render(t, "helm", args...)
		var cm corev1.ConfigMap
		find(t, objs, "ConfigMap", name+"-config").decode(t, &cm)
		dir := t.TempDir()
		files := map[string][]byte{"bind-password": []byte("x\n"), "ca.crt": []byte("x\n")}
		for _, o := range objs {
			var tc corev1.ConfigMap
			if o.Kind == "ConfigMap" && o.Metadata.Name == name+"-project-template" {
				o.decode(t, &tc)
				files["project-template.yaml"] = []byte(tc.Data["project-template.yaml"])
			}
		}
		for f, data := range files {
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		local := strings.ReplaceAll(cm.Data["config.yaml"], configDir+"/", dir+"/")
		cfg, err := config.Parse([]byte(local))
		if err != nil {
			t.Fatalf("with %v the chart's configuration is invalid: %v\n%s", args, err, cm.Data["config.yaml"])
		}
		tmpl, err := template.Load(cfg.Projects)
		if err != nil {
			t.Fatalf("with %v the chart's project template is invalid: %v", args, err)
		}
		if args != nil && (tmpl == nil || len(tmpl.Objects) == 0) {
			t.Errorf("with provisioning the configuration names no template: %+v", cfg.Projects)
		}
	}
}

// TestChartPackage: `make chart` writes dist/runai-ldap-sync-<version>.tgz
// with version and appVersion from the release version, and it lints.
func TestChartPackage(t *testing.T) {
	dist := t.TempDir()
	for version, chartVersion := range map[string]string{"v1.2.3": "1.2.3", "0123abc": "0.0.0-g0123abc", "v1.2.3-4-gabcdef0-dirty": "1.2.3-4-gabcdef0-dirty"} {
		cmd := exec.Command("make", "--no-print-directory", "chart", "VERSION="+version, "DIST_DIR="+dist)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), harness.HelmEnv(t.TempDir())...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make chart VERSION=%s: %v\n%s", version, err, out)
		}
		tgz := filepath.Join(dist, "runai-ldap-sync-"+chartVersion+".tgz")
		if _, err := os.Stat(tgz); err != nil {
			t.Fatalf("make chart VERSION=%s did not write %s:\n%s", version, tgz, out)
		}
		checkPackagedChart(t, tgz, chartVersion, version)
	}
}

// checkPackagedChart: the packaged chart's version is chartVersion, its
// appVersion appVersion, it lints strictly with Helm 3 and 4 and renders
// (for Kubernetes 1.30) with the image of appVersion. It returns the
// chart's kubeVersion.
func checkPackagedChart(t *testing.T, tgz, chartVersion, appVersion string) string {
	t.Helper()
	show, err := helm(t, "helm", "show", "chart", tgz)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Version     string `json:"version"`
		AppVersion  string `json:"appVersion"`
		KubeVersion string `json:"kubeVersion"`
	}
	if err := yaml.Unmarshal([]byte(show), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version != chartVersion || meta.AppVersion != appVersion {
		t.Errorf("%s: chart version %q appVersion %q, want %q and %q", tgz, meta.Version, meta.AppVersion, chartVersion, appVersion)
	}
	for _, bin := range helms {
		if out, err := helm(t, bin, "lint", "--strict", "-n", namespace, tgz); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
	out, err := helm(t, "helm", "template", name, tgz, "-n", namespace, "--kube-version", "1.30.0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "image: "+defaultImageRepository+":"+appVersion+"\n") {
		t.Errorf("%s: the packaged chart's image is not tagged %s (%s)", tgz, appVersion, defaultImageRepository)
	}
	return meta.KubeVersion
}

// TestChartSchemaFollowsConfig: the schema's config property lists exactly
// the keys of config.Config, with their types, so a typo fails at `helm
// install` rather than when the pod starts. After adding a configuration
// key, regenerate it with
//
//	go test ./integration/deploy/ -run TestChartSchemaFollowsConfig -update-chart-schema
func TestChartSchemaFollowsConfig(t *testing.T) {
	path := filepath.Join(chartDir(t), "values.schema.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	enumUsed = map[string]bool{}
	want := configSchema(reflect.TypeOf(config.Config{}), "")
	for k := range enums {
		if !enumUsed[k] {
			t.Errorf("enum for %s: config.Config has no such key", k)
		}
	}
	want["description"] = "The daemon's configuration file, as in docs/configuration.md. Generated from config.Config: go test ./integration/deploy/ -run TestChartSchemaFollowsConfig -update-chart-schema"
	var wantJSON any // through JSON, as the file is read
	b, _ := json.Marshal(want)
	_ = json.Unmarshal(b, &wantJSON)
	props := schema["properties"].(map[string]any)
	if *updateChartSchema {
		props["config"] = wantJSON
		out, err := json.MarshalIndent(schema, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, d := range diffTree(props["config"], wantJSON, "properties.config") {
		t.Errorf("values.schema.json is stale (run: go test ./integration/deploy/ -run TestChartSchemaFollowsConfig -update-chart-schema): %s", d)
	}
}

// enums are the configuration keys with a fixed set of values.
var enums = map[string][]string{
	"mode":                  {config.ModeEnforce, config.ModeDryRun},
	"policy":                {config.PolicySync, config.PolicyUpsertOnly, config.PolicyAuthoritative},
	"ldap.schema":           {config.SchemaActiveDirectory, config.SchemaGroupOfNames, config.SchemaRFC2307},
	"ldap.userIDCase":       {config.CaseLower, config.CasePreserve},
	"ldap.memberResolution": {config.ResolveInChain, config.ResolveExpand},
}

var enumUsed = map[string]bool{}

// durationPattern accepts what time.ParseDuration does (as YAML strings).
const durationPattern = `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`

func configSchema(ty reflect.Type, path string) map[string]any {
	if ty == reflect.TypeOf(time.Duration(0)) {
		return map[string]any{"type": "string", "pattern": durationPattern}
	}
	switch ty.Kind() {
	case reflect.Pointer:
		return configSchema(ty.Elem(), path)
	case reflect.Struct:
		props := map[string]any{}
		for i := 0; i < ty.NumField(); i++ {
			f := ty.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			p := tag
			if path != "" {
				p = path + "." + tag
			}
			props[tag] = configSchema(f.Type, p)
		}
		return map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": configSchema(ty.Elem(), path)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": configSchema(ty.Elem(), path)}
	case reflect.String:
		if e, ok := enums[path]; ok {
			enumUsed[path] = true
			return map[string]any{"type": "string", "enum": e}
		}
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	}
	panic(fmt.Sprintf("config schema: no JSON type for %s (%s)", ty, path))
}

// TestChartDerivesProvisioningRBAC: with a template of your own, the
// provisioning ClusterRole may patch exactly its RoleBindings and bind
// exactly the ClusterRoles they refer to (the executor binding and role are
// the base's); other kinds need provisioning.extraRules.
func TestChartDerivesProvisioningRBAC(t *testing.T) {
	dir := t.TempDir()
	values := filepath.Join(dir, "values.yaml")
	tmpl := `provisioning:
  enabled: true
  template: |
    # a comment-only document first
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: team-tools, namespace: <NAMESPACE>}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: tools-user}
    subjects: [{kind: ServiceAccount, name: tools, namespace: runai}]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: runai-job-executor-manual, namespace: <NAMESPACE>}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: runai-job-executor}
    subjects: []
  bindingNames: [extra-binding]
  clusterRoles: [extra-role]
`
	if err := os.WriteFile(values, []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bin := range helms {
		var cr rbacv1.ClusterRole
		find(t, render(t, bin, "-f", values), "ClusterRole", name+"-provisioning").decode(t, &cr)
		want := []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}},
			{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, ResourceNames: []string{"team-tools", "extra-binding"}, Verbs: []string{"patch"}},
			{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, ResourceNames: []string{"tools-user", "extra-role"}, Verbs: []string{"bind"}},
		}
		if !reflect.DeepEqual(cr.Rules, want) {
			t.Errorf("%s: provisioning rules\n%s\nwant\n%s", bin, dump(cr.Rules), dump(want))
		}
		var params corev1.ConfigMap
		find(t, render(t, bin, "-f", values), "ConfigMap", "runai-ldap-sync-fence").decode(t, &params)
		if got := params.Data["templateSubjects"]; got != "tools-user:runai/tools" {
			t.Errorf("%s: the policy's templateSubjects = %q, want the template's tools-user:runai/tools", bin, got)
		}
		// A Role in the template needs rules the chart cannot guess.
		withRole := tmpl + "  extraRules: []\n"
		withRole = strings.Replace(withRole, "    ---\n    apiVersion: rbac.authorization.k8s.io/v1\n    kind: RoleBinding\n    metadata: {name: runai-job-executor-manual",
			"    ---\n    apiVersion: rbac.authorization.k8s.io/v1\n    kind: Role\n    metadata: {name: tools, namespace: <NAMESPACE>}\n    rules: []\n    ---\n    apiVersion: rbac.authorization.k8s.io/v1\n    kind: RoleBinding\n    metadata: {name: runai-job-executor-manual", 1)
		if err := os.WriteFile(values, []byte(withRole), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := helm(t, bin, "template", name, chartDir(t), "-n", namespace, "-f", values); err == nil || !strings.Contains(err.Error(), "provisioning.extraRules") {
			t.Errorf("%s: a template with a Role and no extraRules: want an error naming provisioning.extraRules, got %v", bin, err)
		}
		if err := os.WriteFile(values, []byte(tmpl), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChartValuesReachTheObjects: the values for labels, annotations, the
// image, scheduling and the Secret's keys end up where Kubernetes reads them.
func TestChartValuesReachTheObjects(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	for _, bin := range helms {
		objs := render(t, bin, "--set", "commonLabels.team=ml", "--set", "commonAnnotations.owner=sre",
			"--set", "image.digest="+digest, "--set", "imagePullSecrets[0].name=reg",
			"--set", "tolerations[0].key=gpu", "--set", "nodeSelector.pool=cpu", "--set", "priorityClassName=high",
			"--set", "podLabels.tier=sync", "--set", "podAnnotations.note=x", "--set", "replicaCount=3",
			"--set", "goMemLimit=800MiB", "--set", "resources.limits.memory=1Gi",
			"--set", "existingSecret=ad-bind", "--set", "existingSecretPasswordKey=password", "--set", "existingSecretCAKey=ca",
			"--set", "logLevel=debug", "--set", "config.server.address=:8443",
			"--set", "config.leaderElection.leaseName=ldap-sync-lease", "--set", "affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
			"--set", "affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey=zone",
			"--set", "config.projects.excludeNamespaces={team-x,ml-*-infra}", "--set", "config.projects.namespacePattern=ml-*")
		for _, o := range objs {
			var m struct {
				Metadata struct {
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(o.raw, &m); err != nil {
				t.Fatal(err)
			}
			if m.Metadata.Labels["team"] != "ml" || m.Metadata.Annotations["owner"] != "sre" {
				t.Errorf("%s: %s lacks commonLabels/commonAnnotations: %v %v", bin, o.id(), m.Metadata.Labels, m.Metadata.Annotations)
			}
		}
		d := find(t, objs, "Deployment", name)
		var dep appsv1.Deployment
		d.decode(t, &dep)
		pod := dep.Spec.Template
		c := pod.Spec.Containers[0]
		checks := map[string]bool{
			"image by digest":   c.Image == defaultImageRepository+"@"+digest,
			"pull secret":       len(pod.Spec.ImagePullSecrets) == 1 && pod.Spec.ImagePullSecrets[0].Name == "reg",
			"tolerations":       len(pod.Spec.Tolerations) == 1 && pod.Spec.Tolerations[0].Key == "gpu",
			"nodeSelector":      pod.Spec.NodeSelector["pool"] == "cpu",
			"priorityClassName": pod.Spec.PriorityClassName == "high",
			"affinity replaced": pod.Spec.Affinity != nil && pod.Spec.Affinity.PodAntiAffinity == nil && pod.Spec.Affinity.PodAffinity != nil,
			"pod labels":        pod.Labels["tier"] == "sync" && pod.Labels["app.kubernetes.io/name"] == name,
			"pod annotations":   pod.Annotations["note"] == "x",
			"replicas":          dep.Spec.Replicas != nil && *dep.Spec.Replicas == 3,
			"memory limit":      c.Resources.Limits.Memory().String() == "1Gi",
			"port from config":  len(c.Ports) == 1 && c.Ports[0].ContainerPort == 8443,
			"log level":         slices.Equal(c.Args, []string{"run", "--config", configDir + "/config.yaml", "--log-level", "debug"}),
		}
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				checks["GOMEMLIMIT"] = e.Value == "800MiB"
			}
		}
		for _, v := range pod.Spec.Volumes {
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					checks["Secret keys"] = s.Secret.Name == "ad-bind" && len(s.Secret.Items) == 2 &&
						s.Secret.Items[0] == corev1.KeyToPath{Key: "password", Path: "bind-password"} &&
						s.Secret.Items[1] == corev1.KeyToPath{Key: "ca", Path: "ca.crt"}
				}
			}
		}
		var svc corev1.Service
		find(t, objs, "Service", name).decode(t, &svc)
		checks["Service port from config"] = svc.Spec.Ports[0].Port == 8443
		var role rbacv1.Role
		find(t, objs, "Role", name).decode(t, &role)
		checks["Role allows the configured Lease"] = reflect.DeepEqual(role.Rules[1].ResourceNames, []string{"ldap-sync-lease"})
		find(t, objs, "PodDisruptionBudget", name)
		var fence corev1.ConfigMap
		find(t, objs, "ConfigMap", "runai-ldap-sync-fence").decode(t, &fence)
		checks["fence parameters from config.projects"] = fence.Data["excludeNamespaces"] == "team-x,ml-*-infra" && fence.Data["namespacePattern"] == "ml-*"
		for what, ok := range checks {
			if !ok {
				t.Errorf("%s: %s not applied:\n%s", bin, what, d.raw)
			}
		}
		if len(checks) != 17 {
			t.Errorf("%s: %d checks ran, want 17 (GOMEMLIMIT or the Secret source missing)", bin, len(checks))
		}
	}
}

// TestChartShardRBACFollowsConfig: config.kubernetes.maxBindingShards
// lowers the shard names the ClusterRole may patch, to exactly <name>-1 …
// <name>-N (none at 0).
func TestChartShardRBACFollowsConfig(t *testing.T) {
	for _, n := range []int{0, 2} {
		objs := render(t, "helm", "--set", fmt.Sprintf("config.kubernetes.maxBindingShards=%d", n))
		var cr rbacv1.ClusterRole
		find(t, objs, "ClusterRole", name).decode(t, &cr)
		var got []string
		for _, r := range cr.Rules {
			if slices.Contains(r.Verbs, "patch") && slices.Contains(r.APIGroups, rbacv1.GroupName) {
				got = append(got, r.ResourceNames...)
			}
		}
		var want []string
		for _, base := range []string{model.ExecutorBinding, model.IndexMapBinding, model.ViewerBinding} {
			want = append(want, base)
			want = append(want, model.ShardNames(base)[:n]...)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("maxBindingShards=%d: patch allowed on %v, want %v", n, got, want)
		}
		var fence corev1.ConfigMap
		find(t, objs, "ConfigMap", "runai-ldap-sync-fence").decode(t, &fence)
		if fence.Data["maxBindingShards"] != strconv.Itoa(n) {
			t.Errorf("maxBindingShards=%d: the admission policy's parameter is %q", n, fence.Data["maxBindingShards"])
		}
	}
}

// TestChartFenceFollowsConfig: the policy's parameters, its ServiceAccount
// match and the NetworkPolicy's LDAP ports follow the values: static
// projects in their own namespaces, namespaceLabels' values, the lease
// duration, a renamed ServiceAccount, a DC on another port.
func TestChartFenceFollowsConfig(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`serviceAccount: {name: sync-sa}
provisioning: {enabled: true}
config:
  ldap:
    urls: ["ldaps://dc1.example.com:1636"]
  projects:
    createNamespaces: true
    namespaceLabels: {runai/namespace-version: v2, tier: gpu}
    static:
    - {name: team-a, namespace: ml-team-a}
    - {name: team-b}
  leaderElection: {enabled: true, leaseName: runai-ldap-sync, leaseDuration: 20s, renewDeadline: 15s, retryPeriod: 2s}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bin := range helms {
		objs := render(t, bin, "-f", values)
		var params corev1.ConfigMap
		find(t, objs, "ConfigMap", "runai-ldap-sync-fence").decode(t, &params)
		for k, want := range map[string]string{"staticProjects": "ml-team-a=team-a", "namespaceLabels": "runai/namespace-version=v2,tier=gpu",
			"leaseName": "runai-ldap-sync", "leaseDuration": "20s"} {
			if got := params.Data[k]; got != want {
				t.Errorf("%s: fence parameter %s = %q, want %q", bin, k, got, want)
			}
		}
		policy := strings.Join(strings.Fields(string(find(t, objs, "ValidatingAdmissionPolicy", "runai-ldap-sync-fence").raw)), " ")
		if !strings.Contains(policy, ":sync-sa$')") || !strings.Contains(policy, "variables.home + ':sync-sa'") || strings.Contains(policy, ":runai-ldap-sync'") {
			t.Errorf("%s: the policy does not match the ServiceAccount sync-sa", bin)
		}
		var np networkingv1.NetworkPolicy
		find(t, objs, "NetworkPolicy", name).decode(t, &np)
		found := false
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				found = found || p.Port.IntValue() == 1636
			}
		}
		if !found {
			t.Errorf("%s: the NetworkPolicy does not let out to the DC's port 1636", bin)
		}
	}
}
