package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validYAML returns a complete, valid configuration whose password file
// exists; tests break one field at a time.
func validYAML(t *testing.T) string { return validYAMLWithPassword(t, "s3cret") }

// validYAMLWithPassword is validYAML with a password file holding password.
func validYAMLWithPassword(t testing.TB, password string) string {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return `schedule: "@every 5m"
mode: enforce
ldap:
  urls: ["ldaps://dc1.example.test:636"]
  bindDN: "svc@EXAMPLE.TEST"
  bindPasswordFile: ` + pw + `
  baseDN: "DC=example,DC=test"
groups:
  executors: ["runai-{project}-executors"]
  viewers: ["runai-{project}-viewers"]
  globalViewers: ["runai-viewers"]
projects:
  namespaceLabel: runai/queue
  static:
  - name: team-a
    namespace: ml-team-a
`
}

func TestParseValidAppliesDefaults(t *testing.T) {
	cfg, err := Parse([]byte(validYAML(t)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.LDAP.UserIDAttribute != "sAMAccountName" || cfg.LDAP.UserIDCase != CaseLower ||
		cfg.LDAP.PageSize != 500 || cfg.LDAP.Timeout != 30*time.Second || cfg.LDAP.GroupNameAttribute != "cn" {
		t.Errorf("LDAP defaults not applied: %+v", cfg.LDAP)
	}
	if cfg.Kubernetes.RunaiNamespace != "runai" || cfg.Kubernetes.MaxBindingShards != 16 || cfg.Server.Address != ":9090" || cfg.Policy != PolicySync {
		t.Errorf("defaults not applied: %+v %+v %q", cfg.Kubernetes, cfg.Server, cfg.Policy)
	}
	if len(cfg.Projects.Static) != 1 || cfg.Projects.Static[0].Namespace != "ml-team-a" {
		t.Errorf("static projects: %+v", cfg.Projects.Static)
	}
	if g := cfg.Guard; g.Window != time.Hour || g.MaxAddCount != DefaultMaxAddCount || g.AllowEmptyBelow != 0 || !cfg.Ownership.Adopt {
		t.Errorf("guard and ownership defaults not applied: %+v %+v", g, cfg.Ownership)
	}
}

func TestParseDaemonDefaultsAndOverrides(t *testing.T) {
	cfg, err := Parse([]byte(validYAML(t)))
	if err != nil {
		t.Fatal(err)
	}
	wantLE := LeaderElection{Enabled: true, LeaseName: "runai-ldap-sync", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	if cfg.LeaderElection != wantLE || cfg.Repair != (Repair{Enabled: true, MinInterval: 5 * time.Second}) ||
		cfg.Retry != (Retry{MinBackoff: 10 * time.Second, MaxBackoff: 5 * time.Minute}) ||
		cfg.Incremental != (Incremental{Enabled: true, PollInterval: 5 * time.Second}) {
		t.Errorf("daemon defaults: %+v %+v %+v %+v", cfg.LeaderElection, cfg.Repair, cfg.Retry, cfg.Incremental)
	}
	src := validYAML(t) + `leaderElection:
  enabled: false
  leaseName: sync-lock
  leaseDuration: 4s
  renewDeadline: 3s
  retryPeriod: 1s
repair:
  enabled: false
  minInterval: 2s
retry:
  minBackoff: 1s
  maxBackoff: 8s
incremental:
  enabled: false
  pollInterval: 2s
`
	if cfg, err = Parse([]byte(src)); err != nil {
		t.Fatal(err)
	}
	wantLE = LeaderElection{LeaseName: "sync-lock", LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}
	if cfg.LeaderElection != wantLE || cfg.Repair != (Repair{MinInterval: 2 * time.Second}) || cfg.Retry != (Retry{MinBackoff: time.Second, MaxBackoff: 8 * time.Second}) ||
		cfg.Incremental != (Incremental{PollInterval: 2 * time.Second}) {
		t.Errorf("daemon overrides: %+v %+v %+v", cfg.LeaderElection, cfg.Repair, cfg.Retry)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name      string
		from, to  string // replace in the valid YAML
		wantField string
		wantText  string
	}{
		{"unknown top-level key", "mode: enforce", "mode: enforce\nmoed: x", "moed", "not found"},
		{"unknown nested key", "  baseDN:", "  baseDn: x\n  baseDN:", "baseDn", "not found"},
		{"bad mode", "mode: enforce", "mode: enforcing", "mode", `got "enforcing"`},
		{"bad policy", "mode: enforce", "mode: enforce\npolicy: yolo", "policy", "yolo"},
		{"bad schedule", `"@every 5m"`, `"every five minutes"`, "schedule", "not a cron spec"},
		{"schedule too fast", `"@every 5m"`, `"@every 1s"`, "schedule", "10s"},
		{"no urls", `  urls: ["ldaps://dc1.example.test:636"]`, `  urls: []`, "ldap.urls", "at least one"},
		{"bad scheme", `ldaps://dc1`, `http://dc1`, "ldap.urls[0]", "scheme"},
		{"plain ldap refused", `ldaps://dc1.example.test:636`, `ldap://dc1.example.test:389`, "ldap.urls[0]", "allowInsecure"},
		{"ldaps with starttls", "  bindDN:", "  startTLS: true\n  bindDN:", "ldap.urls[0]", "already TLS"},
		{"no bind dn", `  bindDN: "svc@EXAMPLE.TEST"`, ``, "ldap.bindDN", "must be set"},
		{"missing password file", "  bindPasswordFile: ", "  bindPasswordFile: /nonexistent", "ldap.bindPasswordFile", "cannot read"},
		{"missing ca file", "  bindDN:", "  caFile: /nonexistent/ca.crt\n  bindDN:", "ldap.caFile", "cannot read"},
		{"bad schema", "  bindDN:", "  schema: novell\n  bindDN:", "ldap.schema", "groupOfNames"},
		{"bad member resolution", "  bindDN:", "  memberResolution: recursive\n  bindDN:", "ldap.memberResolution", "inChain"},
		{"bad nesting depth", "  bindDN:", "  maxNestingDepth: 0\n  bindDN:", "ldap.maxNestingDepth", "between"},
		{"packet cap too small", "  bindDN:", "  maxPacketBytes: 1024\n  bindDN:", "ldap.maxPacketBytes", "between"},
		{"packet cap too large", "  bindDN:", "  maxPacketBytes: 4294967296\n  bindDN:", "ldap.maxPacketBytes", "between"},
		{"bad case", "  bindDN:", "  userIDCase: upper\n  bindDN:", "ldap.userIDCase", "upper"},
		{"too many shards", "mode: enforce", "mode: enforce\nkubernetes:\n  maxBindingShards: 17", "kubernetes.maxBindingShards", "between 0 and 16"},
		{"shard size above 1 MiB", "mode: enforce", "mode: enforce\nkubernetes:\n  bindingShardBytes: 2000000", "kubernetes.bindingShardBytes", "only be lowered"},
		{"negative shards", "mode: enforce", "mode: enforce\nkubernetes:\n  maxBindingShards: -1", "kubernetes.maxBindingShards", "between 0 and 16"},
		{"zero burst", "mode: enforce", "mode: enforce\nkubernetes:\n  burst: 0", "kubernetes.burst", "at least 1"},
		{"zero qps", "mode: enforce", "mode: enforce\nkubernetes:\n  qps: 0", "kubernetes.qps", "must be positive"},
		{"bad page size", "  bindDN:", "  pageSize: 0\n  bindDN:", "ldap.pageSize", "between"},
		{"bad timeout", "  bindDN:", "  timeout: -1s\n  bindDN:", "ldap.timeout", "positive"},
		{"unparsable timeout", "  bindDN:", "  timeout: soon\n  bindDN:", "", "soon"},
		{"bad id attribute", "  bindDN:", "  userIDAttribute: \"sam(x)\"\n  bindDN:", "ldap.userIDAttribute", "attribute"},
		{"unknown placeholder", `runai-{project}-viewers`, `runai-{team}-viewers`, "groups.viewers[0]", "placeholder"},
		{"empty group", `["runai-viewers"]`, `[""]`, "groups.globalViewers[0]", "empty"},
		{"global with placeholder", `["runai-viewers"]`, `["runai-{project}"]`, "groups.globalViewers[0]", "every project"},
		{"executors without placeholder", `["runai-{project}-executors"]`, `["runai-project-executors"]`, "groups.executors[0]", "must contain {project}"},
		{"viewers without placeholder", `["runai-{project}-viewers"]`, `["runai-all-viewers"]`, "groups.viewers[0]", "globalViewers"},
		{"bad static name", "  - name: team-a", "  - name: \"Team*)(cn=*\"", "projects.static[0].name", "not a valid project name"},
		{"duplicate static", "    namespace: ml-team-a", "    namespace: ml-team-a\n  - name: team-a", "projects.static[1].name", "already listed"},
		{"bad namespace", "namespace: ml-team-a", "namespace: ML_A", "projects.static[0].namespace", "namespace"},
		{"bad label", "namespaceLabel: runai/queue", "namespaceLabel: \"runai queue\"", "projects.namespaceLabel", "label key"},
		{"bad runai namespace", "projects:", "kubernetes:\n  runaiNamespace: Run.AI\nprojects:", "kubernetes.runaiNamespace", "namespace"},
		{"bad guard", "projects:", "guard:\n  maxRemovePercent: 150\nprojects:", "guard.maxRemovePercent", "between"},
		{"negative window", "projects:", "guard:\n  window: -1h\nprojects:", "guard.window", "negative"},
		{"negative add count", "projects:", "guard:\n  maxAddCount: -1\nprojects:", "guard.maxAddCount", "negative"},
		{"negative allow empty", "projects:", "guard:\n  allowEmptyBelow: -2\nprojects:", "guard.allowEmptyBelow", "negative"},
		{"unknown ownership key", "projects:", "ownership:\n  adoptAll: true\nprojects:", "adoptAll", "not found"},
		{"bad address", "projects:", "server:\n  address: \"9090\"\nprojects:", "server.address", "host:port"},
		{"wrong type", "  bindDN:", "  pageSize: lots\n  bindDN:", "", "lots"},
		{"bad lease name", "projects:", "leaderElection:\n  leaseName: Run_AI\nprojects:", "leaderElection.leaseName", "Lease name"},
		{"lease shorter than renew", "projects:", "leaderElection:\n  leaseDuration: 10s\n  renewDeadline: 10s\nprojects:", "leaderElection.leaseDuration", "longer than renewDeadline"},
		{"renew too close to retry", "projects:", "leaderElection:\n  renewDeadline: 2s\n  retryPeriod: 2s\nprojects:", "leaderElection.renewDeadline", "1.2"},
		{"zero retry period", "projects:", "leaderElection:\n  retryPeriod: 0s\nprojects:", "leaderElection.retryPeriod", "positive"},
		{"repair too often", "projects:", "repair:\n  minInterval: 100ms\nprojects:", "repair.minInterval", "at least 1s"},
		{"poll too often", "projects:", "incremental:\n  pollInterval: 200ms\nprojects:", "incremental.pollInterval", "at least 1s"},
		{"unknown repair key", "projects:", "repair:\n  interval: 5s\nprojects:", "interval", "not found"},
		{"zero backoff", "projects:", "retry:\n  minBackoff: 0s\nprojects:", "retry.minBackoff", "positive"},
		{"max below min backoff", "projects:", "retry:\n  minBackoff: 1m\n  maxBackoff: 10s\nprojects:", "retry.maxBackoff", "at least"},
		{"create without label", "namespaceLabel: runai/queue", "namespaceLabel: \"\"\n  createNamespaces: true", "projects.createNamespaces", "needs projects.namespaceLabel"},
		{"label existing without label", "namespaceLabel: runai/queue", "namespaceLabel: \"\"\n  labelExistingNamespaces: true", "projects.labelExistingNamespaces", "needs projects.namespaceLabel"},
		{"discovery without label", "namespaceLabel: runai/queue", "namespaceLabel: \"\"\n  fromGroups: {pattern: \"runai-{project}-executors\"}", "projects.fromGroups", "needs projects.namespaceLabel"},
		{"extra labels unused", "  static:", "  namespaceLabels: {team: ml}\n  static:", "projects.namespaceLabels", "no effect"},
		{"bad extra label key", "  static:", "  createNamespaces: true\n  namespaceLabels: {\"bad key\": x}\n  static:", "projects.namespaceLabels.bad key", "label key"},
		{"bad extra label value", "  static:", "  createNamespaces: true\n  namespaceLabels: {team: \"a b\"}\n  static:", "projects.namespaceLabels.team", "label value"},
		{"extra label is the project label", "  static:", "  createNamespaces: true\n  namespaceLabels: {runai/queue: x}\n  static:", "projects.namespaceLabels.runai/queue", "always the project name"},
		{"extra label reserved", "  static:", "  createNamespaces: true\n  namespaceLabels: {runai-ldap-sync.github.io/provisioned: x}\n  static:", "projects.namespaceLabels.runai-ldap-sync.github.io/provisioned", "reserved"},
		{"pattern without placeholder", "  static:", "  fromGroups: {pattern: runai-executors}\n  static:", "projects.fromGroups.pattern", "exactly once"},
		{"pattern with two placeholders", "  static:", "  fromGroups: {pattern: \"{project}-{project}\"}\n  static:", "projects.fromGroups.pattern", "exactly once"},
		{"pattern is only the placeholder", "  static:", "  fromGroups: {pattern: \"{project}\"}\n  static:", "projects.fromGroups.pattern", "every group"},
		{"pattern with unknown placeholder", "  static:", "  fromGroups: {pattern: \"runai-{project}-{role}\"}\n  static:", "projects.fromGroups.pattern", "placeholder"},
		{"unknown fromGroups key", "  static:", "  fromGroups: {patern: x}\n  static:", "patern", "not found"},
		{"default namespace too long", "    namespace: ml-team-a", "    namespace: ml-team-a\n  - name: " + strings.Repeat("a", 60) + "\n  createNamespaces: true", "projects.static[1].namespace", "longer than 63"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := validYAML(t)
			if !strings.Contains(src, tc.from) {
				t.Fatalf("test bug: %q not in valid YAML", tc.from)
			}
			src = strings.Replace(src, tc.from, tc.to, 1)
			_, err := Parse([]byte(src))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", src)
			}
			if tc.wantField != "" && !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error does not name field %q: %v", tc.wantField, err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error does not say %q: %v", tc.wantText, err)
			}
			var verr ValidationError
			if tc.wantField != "" && errors.As(err, &verr) {
				found := false
				for _, fe := range verr {
					if fe.Field == tc.wantField || strings.Contains(fe.Error(), tc.wantField) {
						found = true
					}
				}
				if !found {
					t.Errorf("no FieldError for %q in %v", tc.wantField, verr)
				}
			}
		})
	}
}

func TestProvisioningKeys(t *testing.T) {
	cfg, err := Parse([]byte(validYAML(t)))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Projects
	if p.CreateNamespaces || p.LabelExistingNamespaces || p.FromGroups != nil || p.Template != "" || p.Provisioning() {
		t.Errorf("provisioning is on by default: %+v", p)
	}
	tmpl := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(tmpl, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: runai-scheduler-rw, namespace: <NAMESPACE>}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: runai-scheduler-rw}
subjects: [{kind: ServiceAccount, name: runai-scheduler, namespace: runai}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	src := validYAML(t) + `  createNamespaces: true
  labelExistingNamespaces: true
  namespaceLabels: {runai/namespace-version: v2}
  fromGroups: {pattern: "runai-{project}-executors", baseDN: "OU=Groups,DC=example,DC=test"}
  template: ` + tmpl + "\n"
	if cfg, err = Parse([]byte(src)); err != nil {
		t.Fatal(err)
	}
	p = cfg.Projects
	if !p.CreateNamespaces || !p.LabelExistingNamespaces || p.NamespaceLabels["runai/namespace-version"] != "v2" ||
		p.FromGroups == nil || p.FromGroups.Pattern != "runai-{project}-executors" || p.FromGroups.BaseDN == "" || !p.Provisioning() {
		t.Errorf("provisioning keys: %+v", p)
	}
	if pre, suf := SplitPattern(p.FromGroups.Pattern); pre != "runai-" || suf != "-executors" {
		t.Errorf("SplitPattern = %q, %q", pre, suf)
	}

}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse([]byte("mode: x\npolicy: y\n"))
	var verr ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want ValidationError, got %v", err)
	}
	for _, f := range []string{"mode", "policy", "ldap.urls", "ldap.bindDN", "ldap.baseDN", "groups"} {
		if !strings.Contains(err.Error(), f+":") {
			t.Errorf("missing %s in %v", f, err)
		}
	}
}

func TestParseEmptyAndMultiDocument(t *testing.T) {
	if _, err := Parse(nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
	if _, err := Parse([]byte(validYAML(t) + "---\nmode: dry-run\n")); err == nil || !strings.Contains(err.Error(), "more than one") {
		t.Errorf("two documents: %v", err)
	}
}

func TestParseSchedule(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 3, 0, 0, time.UTC)
	tests := []struct {
		spec string
		next time.Time
		ok   bool
	}{
		{"@every 5m", now.Add(5 * time.Minute), true},
		{"*/10 * * * *", time.Date(2026, 1, 1, 10, 10, 0, 0, time.UTC), true},
		{"@hourly", time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC), true},
		{"0 3 * * *", time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), true},
		{"@every 2s", time.Time{}, false},
		{"* * * *", time.Time{}, false},
		{"61 * * * *", time.Time{}, false},
		{"@daily extra", time.Time{}, false},
	}
	for _, tc := range tests {
		s, err := ParseSchedule(tc.spec)
		if tc.ok != (err == nil) {
			t.Errorf("%q: ok=%v err=%v", tc.spec, tc.ok, err)
			continue
		}
		if tc.ok && !s.Next(now).Equal(tc.next) {
			t.Errorf("%q: next after %v = %v, want %v", tc.spec, now, s.Next(now), tc.next)
		}
	}
}

func TestExpandGroup(t *testing.T) {
	if got := ExpandGroup("runai-{project}-executors", "alpha"); got != "runai-alpha-executors" {
		t.Errorf("got %q", got)
	}
	if got := ExpandGroup("all-{project}-{project}", "b"); got != "all-b-b" {
		t.Errorf("got %q", got)
	}
}

func TestOptOuts(t *testing.T) {
	safe := Default()
	safe.LDAP.URLs = []string{"ldaps://dc1.example.com:636"}
	safe.LDAP.CAFile = "/etc/runai-ldap-sync/ca.crt"
	if got := safe.OptOuts(); len(got) != 0 {
		t.Errorf("defaults turn off no protection, got %v", got)
	}
	// Without caFile the public roots vouch for the domain controllers.
	safe.LDAP.CAFile = ""
	if got := safe.OptOuts(); len(got) != 1 || got[0].Key != "ldap.caFile" || !strings.Contains(got[0].Risk, "public") {
		t.Errorf("caFile unset: opt-outs %v, want one for ldap.caFile", got)
	}
	c := Default()
	c.LDAP.URLs = []string{"ldaps://dc1.example.com:636", "ldap://dc2.example.com:389"}
	c.LDAP.InsecureSkipVerify = true
	c.LDAP.AllowInsecure = true
	c.Policy = PolicyAuthoritative
	c.Guard.MaxRemovePercent = 100
	c.Projects.LabelExistingNamespaces = true
	c.Projects.FromGroups = &FromGroups{Pattern: "runai-{project}-executors", BaseDN: "DC=example,DC=com"}
	c.LDAP.AllowWellKnownGroups = true
	c.LDAP.BaseDN = "DC=example,DC=com"
	var keys []string
	for _, o := range c.OptOuts() {
		if o.Risk == "" {
			t.Errorf("%s: no risk stated", o.Key)
		}
		keys = append(keys, o.Key)
	}
	want := "ldap.insecureSkipVerify ldap.allowInsecure policy guard.maxRemovePercent projects.labelExistingNamespaces ldap.allowWellKnownGroups ldap.groupBaseDN projects.fromGroups.baseDN"
	if strings.Join(keys, " ") != want {
		t.Errorf("opt-outs = %v, want %s", keys, want)
	}
	// allowInsecure with StartTLS on every ldap:// URL sends nothing in clear.
	c.LDAP.StartTLS = true
	for _, o := range c.OptOuts() {
		if o.Key == "ldap.allowInsecure" {
			t.Errorf("allowInsecure with startTLS reported: %v", o)
		}
	}
}

// TestGroupBaseWarning: groups searched from the domain root are a
// warning (anyone who may create a group in any OU can name one like a
// project's); a dedicated OU is not.
func TestGroupBaseWarning(t *testing.T) {
	for _, tc := range []struct {
		base, groupBase string
		warn            bool
	}{
		{"DC=example,DC=com", "", true},
		{"dc=example, dc=com", "", true},
		{"DC=example,DC=com", "DC=Example,DC=com", true},
		{"DC=example,DC=com", "OU=Run:AI Groups,OU=IT,DC=example,DC=com", false},
		{"OU=Corp,DC=example,DC=com", "", false},
	} {
		c := Default()
		c.LDAP.URLs = []string{"ldaps://dc1.example.com:636"}
		c.LDAP.BaseDN, c.LDAP.GroupBaseDN = tc.base, tc.groupBase
		got := false
		for _, o := range c.OptOuts() {
			got = got || o.Key == "ldap.groupBaseDN"
		}
		if got != tc.warn {
			t.Errorf("baseDN %q groupBaseDN %q: warned %v, want %v", tc.base, tc.groupBase, got, tc.warn)
		}
	}
}

func TestFenced(t *testing.T) {
	c := Default()
	c.Projects.ExcludeNamespaces = []string{"team-*-infra", "legacy"}
	for ns, want := range map[string]string{
		"kube-system": FenceBuiltin, "kube-public": FenceBuiltin, "openshift-monitoring": FenceBuiltin,
		"default": FenceBuiltin, "runai": FenceBuiltin, "runai-backend": FenceBuiltin, "runai-reservation": FenceBuiltin,
		"runai-scale-adjust": FenceBuiltin, "kai-scheduler": FenceBuiltin, "kai-resource-reservation": FenceBuiltin,
		"kai-scale-adjust": FenceBuiltin, "ops": FenceOwn, "team-a-infra": FenceExcluded, "legacy": FenceExcluded,
		"runai-alpha": "", "ml-beta": "", "kubeflow": "", "legacy-2": "",
	} {
		if got := c.Fenced(ns, "ops"); got != want {
			t.Errorf("Fenced(%q) = %q, want %q", ns, got, want)
		}
	}
	c.Projects.NamespacePattern = "runai-*"
	if got := c.Fenced("ml-beta", "ops"); got != FencePattern {
		t.Errorf("ml-beta outside runai-*: %q", got)
	}
	if got := c.Fenced("runai-alpha", "ops"); got != "" {
		t.Errorf("runai-alpha inside runai-*: %q", got)
	}
	// The Run:AI namespace is fenced whatever it is called.
	c.Kubernetes.RunaiNamespace = "runai-ctl"
	if got := c.Fenced("runai-ctl", ""); got != FenceBuiltin {
		t.Errorf("kubernetes.runaiNamespace: %q", got)
	}
}

func TestFenceKeysValidated(t *testing.T) {
	c := Default()
	c.Projects.ExcludeNamespaces = []string{"ok-*", "[bad", "", "team.x", "Team-*", "ok-[a-c]?-[^z]"}
	c.Projects.NamespacePattern = "[x"
	c.Projects.MaxNewPerCycle = 0
	c.Projects.Static = []StaticProject{{Name: "backend", Namespace: "runai-backend"}, {Name: "sys", Namespace: "kube-system"}, {Name: "fine"}}
	err := c.Validate()
	for _, field := range []string{"projects.excludeNamespaces[1]", "projects.excludeNamespaces[2]",
		"projects.excludeNamespaces[3]", "projects.excludeNamespaces[4]", "projects.namespacePattern",
		"projects.maxNewPerCycle", "projects.static[0]", "projects.static[1]"} {
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("no error for %s in %v", field, err)
		}
	}
	if strings.Contains(err.Error(), "excludeNamespaces[0]") || strings.Contains(err.Error(), "excludeNamespaces[5]") {
		t.Errorf("valid entries reported: %v", err)
	}
	c.Projects.NamespacePattern = "runai-*"
	if err := c.Validate(); strings.Contains(err.Error(), "projects.static[2]") {
		t.Errorf("static project fine (runai-fine) is inside runai-*: %v", err)
	}
	if Default().Projects.MaxNewPerCycle != 10 {
		t.Errorf("maxNewPerCycle default = %d, want 10", Default().Projects.MaxNewPerCycle)
	}
}

// A bad burst is one error, not one per check that sees it.
func TestBadBurstIsOneError(t *testing.T) {
	for _, burst := range []string{"0", "-5"} {
		src := strings.Replace(validYAML(t), "mode: enforce", "mode: enforce\nkubernetes:\n  burst: "+burst, 1)
		_, err := Parse([]byte(src))
		var verr ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("burst %s: %v", burst, err)
		}
		var got []string
		for _, fe := range verr {
			if fe.Field == "kubernetes.burst" {
				got = append(got, fe.Message)
			}
		}
		if len(got) != 1 || !strings.Contains(got[0], "at least 1") {
			t.Errorf("burst %s: kubernetes.burst errors %q, want one saying \"at least 1\"", burst, got)
		}
	}
}

func TestSearchBasesDefaultToBaseDN(t *testing.T) {
	l := LDAP{BaseDN: "DC=example,DC=com"}
	if l.GroupBase() != l.BaseDN || l.UserBase() != l.BaseDN {
		t.Errorf("without their own DNs: group base %q, user base %q, want %q", l.GroupBase(), l.UserBase(), l.BaseDN)
	}
	l.GroupBaseDN, l.UserBaseDN = "OU=Groups,DC=example,DC=com", "OU=People,DC=example,DC=com"
	if l.GroupBase() != l.GroupBaseDN || l.UserBase() != l.UserBaseDN {
		t.Errorf("with their own DNs: group base %q, user base %q", l.GroupBase(), l.UserBase())
	}
}
