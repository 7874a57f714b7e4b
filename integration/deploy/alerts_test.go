package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
)

const runbookBase = "https://github.com/runai-ldap-sync/runai-ldap-sync/blob/main/docs/operations.md#"

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

// alertRules returns the PrometheusRule's spec as kustomize builds it: the
// one copy of the rules.
func alertRules(t *testing.T) ruleFile {
	t.Helper()
	pr := prometheusRule(t, build(t), name)
	if pr.APIVersion != "monitoring.coreos.com/v1" {
		t.Fatalf("PrometheusRule apiVersion %s", pr.APIVersion)
	}
	if len(pr.Spec.Groups) == 0 {
		t.Fatal("the PrometheusRule has no rule groups")
	}
	return pr.Spec
}

// prometheusRule decodes the PrometheusRule prName among objs.
func prometheusRule(t *testing.T, objs []object, prName string) (pr struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   any      `json:"metadata"`
	Spec       ruleFile `json:"spec"`
}) {
	t.Helper()
	find(t, objs, "PrometheusRule", prName).decode(t, &pr)
	return pr
}

// promtool runs promtool in dir and fails the test with its output on error.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool(t, "promtool", "promtool"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules extracts the rules from the PrometheusRule into the plain
// rule file promtool reads and runs deploy/alerts_test.yaml against them.
func TestAlertRules(t *testing.T) {
	testAlertRules(t, alertRules(t))
}

// testAlertRules runs promtool's checks and deploy/alerts_test.yaml on rules
// (the base's, or the chart's).
func testAlertRules(t *testing.T, rules ruleFile) {
	t.Helper()
	tests, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	testAlertRulesWith(t, rules, tests)
}

// testAlertRulesWith is testAlertRules with the test file's content.
func testAlertRulesWith(t *testing.T, rules ruleFile, tests []byte) {
	t.Helper()
	dir := t.TempDir()
	data, err := yaml.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	out := promtool(t, dir, "check", "rules", "rules.yaml")
	t.Logf("promtool check rules:\n%s", out)
	out = promtool(t, dir, "test", "rules", "alerts_test.yaml")
	t.Logf("promtool test rules:\n%s", out)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}

	// Every alert is tested both ways: some series fire it, some leave it silent.
	var suite struct {
		Tests []struct {
			Name  string `json:"name"`
			Cases []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &suite); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]int{}, map[string]int{}
	for _, tg := range suite.Tests {
		for _, c := range tg.Cases {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname]++
			} else {
				silent[c.Alertname]++
			}
		}
	}
	for _, a := range alertNames(rules) {
		if fires[a] == 0 || silent[a] == 0 {
			t.Errorf("alert %s: %d cases where it fires and %d where it stays silent in deploy/alerts_test.yaml; want both", a, fires[a], silent[a])
		}
	}
}

func alertNames(rf ruleFile) []string {
	var out []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r.Alert)
			}
		}
	}
	return out
}

// TestAlertsHaveRunbooks checks each alert's labels, annotations and its
// runbook section in docs/operations.md.
func TestAlertsHaveRunbooks(t *testing.T) {
	rules := alertRules(t)
	docs := operationsDoc(t)
	want := []string{
		"RunaiLdapSyncDriftPersists", "RunaiLdapSyncNoSuccessfulCycle", "RunaiLdapSyncLDAPUnreachable",
		"RunaiLdapSyncRemovalsHeld", "RunaiLdapSyncAdditionsHeld", "RunaiLdapSyncKubernetesWriteErrors", "RunaiLdapSyncInvalidMembersSkipped",
		"RunaiLdapSyncPartialCycles", "RunaiLdapSyncLeaderStalled",
	}
	got := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			got[r.Alert] = true
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			for _, k := range []string{"summary", "description"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s has no %s", r.Alert, k)
				}
			}
			if want := runbookBase + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !strings.Contains(docs, "\n### "+r.Alert+"\n") {
				t.Errorf("docs/operations.md has no runbook section \"### %s\"", r.Alert)
			}
			if strings.Contains(r.Expr, "binding_") && !strings.Contains(r.Annotations["summary"], "$labels.name") {
				t.Errorf("%s is about a binding but its summary does not name it", r.Alert)
			}
		}
	}
	for _, a := range want {
		if !got[a] {
			t.Errorf("no alert %s", a)
		}
	}
}

func operationsDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	fqNameRE  = regexp.MustCompile(`fqName: "([^"]+)"`)
	metricRE  = regexp.MustCompile(`\brunai_ldap_sync_[a-z_]+[a-z]\b`)
	histSuffs = []string{"_bucket", "_sum", "_count"}
)

// exportedMetrics lists the names the daemon registers, from the real
// metrics.NewMetrics (histogram names are listed with their series suffixes).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.NewMetrics("test")
	m.WatchStats(&ldapsrc.Stats{}, &kube.RequestStats{})
	ch := make(chan *prometheus.Desc, 256)
	go func() { m.Registry.Describe(ch); close(ch) }()
	names := map[string]bool{}
	for d := range ch {
		sub := fqNameRE.FindStringSubmatch(d.String())
		if sub == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		if strings.HasPrefix(sub[1], "runai_ldap_sync_") {
			names[sub[1]] = true
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d runai_ldap_sync_* metrics: %v", len(names), names)
	}
	return names
}

func knownMetric(exported map[string]bool, n string) bool {
	if exported[n] {
		return true
	}
	for _, s := range histSuffs {
		if b, ok := strings.CutSuffix(n, s); ok && exported[b] {
			return true
		}
	}
	return false
}

// TestAlertsAndDashboardUseExportedMetrics catches an alert or a panel
// that reads a metric the daemon does not export (a silent alert).
func TestAlertsAndDashboardUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	rules := alertRules(t)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, n := range metricRE.FindAllString(r.Expr, -1) {
				if !knownMetric(exported, n) {
					t.Errorf("alert %s reads %s, which the daemon does not export", r.Alert, n)
				}
			}
		}
	}
	for _, q := range dashboardQueries(t) {
		for _, n := range metricRE.FindAllString(q.expr, -1) {
			if !knownMetric(exported, n) {
				t.Errorf("dashboard panel %q reads %s, which the daemon does not export", q.panel, n)
			}
		}
	}
}

// TestEveryMetricIsDocumented: docs/operations.md explains every metric.
func TestEveryMetricIsDocumented(t *testing.T) {
	docs := operationsDoc(t)
	var names []string
	for n := range exportedMetrics(t) {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !strings.Contains(docs, "`"+n) {
			t.Errorf("docs/operations.md does not explain %s: add it to the metrics table", n)
		}
	}
}

type dashQuery struct{ panel, ref, expr string }

// dashboardQueries reads the dashboard from the generated ConfigMap.
func dashboardQueries(t *testing.T) []dashQuery {
	t.Helper()
	var cm corev1.ConfigMap
	find(t, build(t), "ConfigMap", "runai-ldap-sync-dashboard").decode(t, &cm)
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Error("the dashboard ConfigMap lacks the label grafana_dashboard=1 that Grafana's sidecar looks for")
	}
	raw, ok := cm.Data["runai-ldap-sync.json"]
	if !ok {
		t.Fatalf("dashboard ConfigMap keys: %v", cm.Data)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard has no uid or title")
	}
	var out []dashQuery
	for _, p := range dash.Panels {
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the dashboard's datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, dashQuery{panel: p.Title, ref: tg.RefID, expr: tg.Expr})
		}
	}
	return out
}

// TestDashboard checks the panels the issue asks for and that every query
// is valid PromQL (promtool parses them as recording rules).
func TestDashboard(t *testing.T) {
	queries := dashboardQueries(t)
	need := map[string][]string{ // panel title -> metric it must show
		"Drift per binding":           {"runai_ldap_sync_binding_drift_missing_subjects", "runai_ldap_sync_binding_drift_unexpected_subjects"},
		"Cycle duration":              {"runai_ldap_sync_cycle_duration_seconds_bucket"},
		"Since last successful cycle": {"runai_ldap_sync_last_success_timestamp_seconds"},
		"Errors":                      {"runai_ldap_sync_ldap_errors_total", "runai_ldap_sync_kube_errors_total", "runai_ldap_sync_binding_sync_errors"},
		"Removals held per binding":   {"runai_ldap_sync_binding_held_removals"},
	}
	for title, metrics := range need {
		var exprs []string
		for _, q := range queries {
			if q.panel == title {
				exprs = append(exprs, q.expr)
			}
		}
		if len(exprs) == 0 {
			t.Errorf("dashboard has no panel %q", title)
		}
		for _, m := range metrics {
			if !strings.Contains(strings.Join(exprs, "\n"), m) {
				t.Errorf("panel %q does not show %s", title, m)
			}
		}
	}
	vars := strings.NewReplacer("$job", "runai-ldap-sync", "$__rate_interval", "2m", "$__range", "1h", "$__interval", "1m")
	var rf ruleFile
	g := ruleGroup{Name: "dashboard"}
	for i, q := range queries {
		if q.expr == "" {
			t.Errorf("panel %q query %s is empty", q.panel, q.ref)
			continue
		}
		g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: vars.Replace(q.expr)})
	}
	rf.Groups = append(rf.Groups, g)
	data, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-queries.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := promtool(t, dir, "check", "rules", "dashboard-queries.yaml"); !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules on the dashboard's queries:\n%s", out)
	}
	// The file under deploy/ is what the ConfigMap carries.
	file, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "dashboards", "runai-ldap-sync.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(file) || !bytes.Contains(file, []byte(`"uid": "runai-ldap-sync"`)) {
		t.Error("deploy/dashboards/runai-ldap-sync.json is not the dashboard")
	}
}
