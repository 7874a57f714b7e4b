package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// defaultImageRepository is values.yaml's image.repository.
const defaultImageRepository = "ghcr.io/runai-ldap-sync/runai-ldap-sync"

// renderRelease is render for a release of another name.
func renderRelease(t *testing.T, bin, release string, args ...string) []object {
	t.Helper()
	out, err := helm(t, bin, append([]string{"template", release, chartDir(t), "-n", namespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects([]byte(out))
	if err != nil {
		t.Fatalf("helm template output: %v", err)
	}
	return objs
}

// TestChartAlertsFollowTheRelease: with a release named other than
// runai-ldap-sync, RunaiLdapSyncDown selects that release's Service (the job
// label the ServiceMonitor gives its targets) and no rule names the base's
// job; deploy/alerts_test.yaml, with its job renamed the same way, passes
// under promtool on those rules, so the alert fires for the release's
// replicas and not for a job of the default name.
func TestChartAlertsFollowTheRelease(t *testing.T) {
	const release = "acme"
	const job = release + "-" + name
	for _, bin := range helms {
		t.Run(bin, func(t *testing.T) {
			objs := renderRelease(t, bin, release, monitoringOn...)
			find(t, objs, "Service", job) // the job the ServiceMonitor's targets get
			rules := prometheusRule(t, objs, job).Spec
			var down string
			for _, g := range rules.Groups {
				for _, r := range g.Rules {
					if strings.Contains(r.Expr, `job="`+name+`"`) {
						t.Errorf("%s selects job=%q, the base's name, in release %s: %s", r.Alert, name, release, r.Expr)
					}
					if r.Alert == "RunaiLdapSyncDown" {
						down = r.Expr
					}
				}
			}
			if !strings.Contains(down, `up{job="`+job+`"}`) || !strings.Contains(down, `absent(up{job="`+job+`"})`) {
				t.Errorf("RunaiLdapSyncDown does not select job %s:\n%s", job, down)
			}
			tests, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "alerts_test.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			renamed := strings.NewReplacer(`job="`+name+`"`, `job="`+job+`"`, "job: "+name+"}", "job: "+job+"}",
				"job: "+name+",", "job: "+job+",", "(job "+name+")", "(job "+job+")").Replace(string(tests))
			if renamed == string(tests) {
				t.Fatal("deploy/alerts_test.yaml names no job to rename")
			}
			testAlertRulesWith(t, rules, []byte(renamed))
		})
	}
}

// TestChartAlertSwitches: prometheusRule.alerts lists exactly the alerts of
// deploy/prometheusrule.yaml, each on by default; turning one off drops it
// alone; a misspelt name fails the install.
func TestChartAlertSwitches(t *testing.T) {
	base := alertNames(alertRules(t))
	values := chartValuesFile(t)
	pr := values["prometheusRule"].(map[string]any)
	var listed []string
	for n, v := range pr["alerts"].(map[string]any) {
		listed = append(listed, n)
		if on, _ := v.(map[string]any)["enabled"].(bool); !on {
			t.Errorf("values.yaml: prometheusRule.alerts.%s.enabled is not true", n)
		}
	}
	sort.Strings(listed)
	want := slices.Sorted(slices.Values(base))
	if !slices.Equal(listed, want) {
		t.Errorf("values.yaml prometheusRule.alerts lists\n  %v\nwant the alerts of deploy/prometheusrule.yaml\n  %v", listed, want)
	}
	for _, bin := range helms {
		got := alertNames(prometheusRule(t, render(t, bin, append(slices.Clone(monitoringOn),
			"--set", "prometheusRule.alerts.RunaiLdapSyncLeaderElection.enabled=false")...), name).Spec)
		wantOff := slices.DeleteFunc(slices.Clone(base), func(s string) bool { return s == "RunaiLdapSyncLeaderElection" })
		if !slices.Equal(got, wantOff) {
			t.Errorf("%s: with RunaiLdapSyncLeaderElection off the chart renders %v, want %v", bin, got, wantOff)
		}
		var off []string
		for _, a := range base {
			off = append(off, "--set", "prometheusRule.alerts."+a+".enabled=false")
		}
		for _, o := range render(t, bin, append(slices.Clone(monitoringOn), off...)...) {
			if o.Kind == "PrometheusRule" {
				t.Errorf("%s: with every alert off the chart still renders a PrometheusRule", bin)
			}
		}
		if out, err := helm(t, bin, "template", name, chartDir(t), "-n", namespace, "--set", "prometheusRule.alerts.RunaiLdapSyncDwon.enabled=false"); err == nil ||
			!strings.Contains(err.Error(), "RunaiLdapSyncDwon") {
			t.Errorf("%s: a misspelt alert name was not refused by name: %v\n%.300s", bin, err, out)
		}
	}
}

// TestChartPDBFollowsReplicas: a PodDisruptionBudget allowing one eviction
// at a time whenever there is more than one replica, none for one replica
// (it could only block drains), none when switched off.
func TestChartPDBFollowsReplicas(t *testing.T) {
	for _, bin := range helms {
		for _, c := range []struct {
			args []string
			want bool
		}{
			{nil, true},
			{[]string{"--set", "replicaCount=3"}, true},
			{[]string{"--set", "replicaCount=1"}, false},
			{[]string{"--set", "podDisruptionBudget.enabled=false"}, false},
		} {
			var pdb *object
			for _, o := range render(t, bin, c.args...) {
				if o.Kind == "PodDisruptionBudget" {
					pdb = &o
				}
			}
			if (pdb != nil) != c.want {
				t.Errorf("%s %v: PodDisruptionBudget rendered %v, want %v", bin, c.args, pdb != nil, c.want)
				continue
			}
			if pdb == nil {
				continue
			}
			var p policyv1.PodDisruptionBudget
			pdb.decode(t, &p)
			if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 || p.Spec.Selector == nil ||
				p.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != name || p.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != name {
				t.Errorf("%s %v: PodDisruptionBudget spec %+v", bin, c.args, p.Spec)
			}
		}
	}
}

func chartValuesFile(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	return v
}

// schemaKeys are the documented keys of values.schema.json: every property
// down to the leaves, where an object with fixed properties is not a leaf
// (config is one key: docs/configuration.md documents it, and
// TestChartSchemaFollowsConfig keeps its schema in step with config.Config;
// prometheusRule.alerts is one key too: its names are the alerts').
func schemaKeys(node map[string]any, path string, out map[string]bool) {
	props, _ := node["properties"].(map[string]any)
	if path == "config" || path == "prometheusRule.alerts" || (len(props) == 0 && path != "") {
		out[path] = true
		return
	}
	for k, v := range props {
		p := k
		if path != "" {
			p = path + "." + k
		}
		schemaKeys(v.(map[string]any), p, out)
	}
}

// valueAt returns the value at a dotted path of values.yaml.
func valueAt(v map[string]any, path string) (any, bool) {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// readmeRow is `| `key` | `default` | description |`.
var readmeRow = regexp.MustCompile("^\\| `([A-Za-z0-9.]+)` \\| (.*?) \\| (.+) \\|$")

// TestChartValuesREADME: the chart's README.md documents every key of
// values.schema.json, no other, each with values.yaml's default (as compact
// JSON, or "(see below)" for config and prometheusRule.alerts, or "(unset)"
// for a key values.yaml leaves out) and a description.
func TestChartValuesREADME(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	schemaKeys(schema, "", keys)
	delete(keys, "global") // Helm's own, for subcharts
	values := chartValuesFile(t)

	f, err := os.Open(filepath.Join(chartDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	documented := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := readmeRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		key, def, desc := m[1], m[2], m[3]
		if documented[key] {
			t.Errorf("README.md documents %s twice", key)
		}
		documented[key] = true
		if !keys[key] {
			t.Errorf("README.md documents %s, which values.schema.json does not have", key)
			continue
		}
		if strings.TrimSpace(desc) == "" {
			t.Errorf("README.md: %s has no description", key)
		}
		want := "(unset)"
		if key == "config" || key == "prometheusRule.alerts" {
			want = "(see below)"
		} else if v, ok := valueAt(values, key); ok {
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			want = "`" + string(j) + "`"
		}
		if def != want {
			t.Errorf("README.md: %s defaults to %s, values.yaml says %s", key, def, want)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for k := range keys {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README.md does not document %v (a row `| `key` | `default` | description |` each)", missing)
	}
	if len(documented) < 40 {
		t.Errorf("README.md documents only %d keys: the table did not parse", len(documented))
	}
	t.Logf("%d keys documented", len(documented))
}
