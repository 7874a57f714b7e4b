package config

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic or
// hang, and whatever it accepts must satisfy every invariant the daemon
// relies on. `go test` runs the seed corpus; `go test -fuzz FuzzParse
// ./config` explores further.
func FuzzParse(f *testing.F) {
	const secret = "fuzz-s3cret-Pa55"
	valid := validYAMLWithPassword(f, secret)
	for _, seed := range []string{
		valid,
		"",
		"---\n",
		"{",
		"ldap: [",
		valid + "leaderElection: {leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 1s}\nrepair: {minInterval: 1s}\nretry: {minBackoff: 1s, maxBackoff: 4s}\n",
		valid + "leaderElection: {leaseDuration: 1ns, renewDeadline: 1ns, retryPeriod: 1ns}\n",
		valid + "repair: {minInterval: -5s}\n",
		valid + "retry: {minBackoff: 10m, maxBackoff: 1s}\n",
		strings.Replace(valid, "team-a", `"*)(cn=*"`, 1),
		strings.Replace(valid, "team-a", `"\\"`, 1),
		strings.Replace(valid, "team-a", "\"a\\0b\"", 1),
		strings.Replace(valid, "team-a", "Team-A", 1),
		strings.Replace(valid, "runai-{project}-executors", "runai-{project}*)(cn=*", 1),
		strings.Replace(valid, "runai-{project}-executors", "runai-{projects}", 1),
		strings.Replace(valid, "runai-{project}-executors", "\"\\x01\"", 1),
		strings.Replace(valid, `"@every 5m"`, `"@every 1s"`, 1),
		strings.Replace(valid, `"@every 5m"`, "99999999999999999999", 1),
		strings.Replace(valid, "ldaps://", "ldap://", 1),
		valid + "guard: {maxRemovePercent: -1, maxRemoveCount: 99999999999999999999}\n",
		valid + "---\nmode: dry-run\n",
		valid + "  createNamespaces: true\n  labelExistingNamespaces: true\n  namespaceLabels: {runai/namespace-version: v2}\n  fromGroups: {pattern: \"runai-{project}-executors\"}\n",
		valid + "  fromGroups: {pattern: \"{project}\"}\n",
		valid + "  fromGroups: {pattern: \"a*)(cn={project}\"}\n",
		valid + "  template: /nonexistent\n",
		valid + "unknown: 1\n",
		// An alias bomb must be refused quickly, not expanded.
		"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatal("a rejected file returned a configuration")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatal("an error message contains the bind password")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted, then invalid: %v", err)
		}
		if _, err := ParseSchedule(cfg.Schedule); err != nil {
			t.Fatalf("accepted schedule %q: %v", cfg.Schedule, err)
		}
		for _, p := range cfg.Projects.Static {
			if !ValidProjectName(p.Name) || strings.ContainsAny(p.Name, "*()\\\x00") {
				t.Fatalf("accepted project name %q", p.Name)
			}
		}
		for _, tmpl := range append(append(append([]string(nil), cfg.Groups.Executors...), cfg.Groups.Viewers...), cfg.Groups.GlobalViewers...) {
			if err := checkTemplate(tmpl); err != nil {
				t.Fatalf("accepted template %q: %v", tmpl, err)
			}
		}
		le := cfg.LeaderElection
		if le.RetryPeriod <= 0 || le.RenewDeadline <= le.RetryPeriod*12/10 || le.LeaseDuration <= le.RenewDeadline {
			t.Fatalf("accepted leader election timings %+v", le)
		}
		if cfg.Repair.MinInterval < time.Second || cfg.Retry.MinBackoff <= 0 || cfg.Retry.MaxBackoff < cfg.Retry.MinBackoff {
			t.Fatalf("accepted repair %+v / retry %+v", cfg.Repair, cfg.Retry)
		}
		if fg := cfg.Projects.FromGroups; fg != nil {
			if strings.Count(fg.Pattern, ProjectPlaceholder) != 1 || fg.Pattern == ProjectPlaceholder {
				t.Fatalf("accepted fromGroups pattern %q", fg.Pattern)
			}
		}
		if g := cfg.Guard; g.MaxRemovePercent < 0 || g.MaxRemovePercent > 100 || g.MaxRemoveCount < 0 || g.Window < 0 || g.MaxAddCount < 0 || g.AllowEmptyBelow < 0 {
			t.Fatalf("accepted guard %+v", cfg.Guard)
		}
	})
}
