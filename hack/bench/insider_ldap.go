package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
)

// The directory-insider memory scenario (issue 25): a group creator makes
// large groups under the group base that no project group reaches. The
// daemon's memory must follow what the project groups reach, not what the
// group base holds. `bench insider-ldap` loads an OpenLDAP with them and
// resolves one project group twice, each in a fresh process whose peak
// RSS is its own: once with a group base holding only the project group,
// once with the large groups beside it.

// insiderStats is what one measured resolution reports (child process).
type insiderStats struct {
	Seconds   float64 `json:"seconds"`
	Searches  int64   `json:"searches"`
	Entries   int64   `json:"entries"`
	Members   int     `json:"members"`
	AllocMiB  float64 `json:"allocMiB"`
	MaxRSSKiB int64   `json:"maxRSSKiB"`
	Error     string  `json:"error,omitempty"`
}

// insiderMain runs the scenario and prints its figures.
func insiderMain(args []string) int {
	fs := flag.NewFlagSet("insider-ldap", flag.ExitOnError)
	groups := fs.Int("groups", 100, "large groups no project group reaches")
	members := fs.Int("members", 50000, "members of each large group (and users in the directory)")
	projectMembers := fs.Int("project-members", 20, "members of the project group")
	_ = fs.Parse(args)
	table, err := runInsider(*groups, *members, *projectMembers)
	if err != nil {
		fmt.Fprintf(os.Stderr, "insider-ldap: %v\n", err)
		return 1
	}
	fmt.Print(table)
	return 0
}

// runInsider returns the scenario's table (Markdown); make bench folds it
// into its report.
func runInsider(groups, members, projectMembers int) (string, error) {
	ctx := context.Background()
	dir, self, err := scratch("runai-ldap-sync-insider-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)

	t0 := time.Now()
	b := harness.NewLDIFBuilder(suffix)
	people := b.AddOU(suffix, "people")
	clean := b.AddOU(suffix, "project-groups")
	crowded := b.AddOU(suffix, "groups")
	users := make([]string, members)
	for i := range users {
		users[i] = b.AddUser(people, fmt.Sprintf("u%06d", i), harness.UserOpts{})
	}
	project := users[:min(projectMembers, len(users))]
	b.AddGroup(clean, "runai-p-executors", project...)
	b.AddGroup(crowded, "runai-p-executors", project...)
	for g := range groups {
		b.AddGroup(crowded, fmt.Sprintf("big%03d", g), users...)
	}
	ldif := b.Bytes()
	fmt.Printf("directory: %d users; %d groups of %d members beside a project group of %d (LDIF %.1f MiB, %s)\n",
		members, groups, members, len(project), float64(len(ldif))/(1<<20), time.Since(t0).Round(time.Millisecond))
	slapd, err := harness.StartSlapd(ctx, filepath.Join(dir, "slapd"), harness.SlapdOptions{Suffix: suffix, LDIF: ldif, SizeLimit: -1})
	ldif = nil
	if err != nil {
		return "", err
	}
	defer slapd.Stop()
	fmt.Printf("  slapadd: %s\n", slapd.LoadDuration.Round(time.Millisecond))
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(slapd.ReaderPassword), 0o600); err != nil {
		return "", err
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%d users; %d groups of %d members under the group base beside a project group of %d, which reaches none of them.\n\n", members, groups, members, len(project))
	table.WriteString("| group base | entries read | searches | members | allocated | peak RSS | time |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, base := range []string{clean, crowded} {
		cfgPath := filepath.Join(dir, "config.yaml")
		cfg := fmt.Sprintf("ldap:\n  urls: [%q]\n  allowInsecure: true\n  bindDN: %q\n  bindPasswordFile: %s\n  baseDN: %q\n  groupBaseDN: %q\n  userBaseDN: %q\n  schema: groupOfNames\n  userIDAttribute: uid\n  pageSize: 1000\n  timeout: 5m\ngroups:\n  executors: [\"runai-{project}-executors\"]\n",
			slapd.URL, slapd.ReaderDN, pw, suffix, base, people)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return "", err
		}
		cmd := exec.CommandContext(ctx, self, "insider-ldap-child", cfgPath)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("resolve under %s: %w", base, err)
		}
		var st insiderStats
		if err := json.Unmarshal(out, &st); err != nil {
			return "", fmt.Errorf("resolve under %s: %w (%s)", base, err, out)
		}
		if st.Error != "" {
			return "", fmt.Errorf("resolve under %s: %s", base, st.Error)
		}
		fmt.Fprintf(&table, "| %s | %d | %d | %d | %.1f MiB | %.1f MiB | %.2fs |\n", base, st.Entries, st.Searches, st.Members, st.AllocMiB, float64(st.MaxRSSKiB)/1024, st.Seconds)
	}
	return table.String(), nil
}

// insiderChild resolves runai-p-executors once, the way a full cycle
// does, and prints its figures.
func insiderChild(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: insider-ldap-child CONFIG")
		return 2
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	src := ldapsrc.New(cfg.LDAP, zap.NewNop())
	t0 := time.Now()
	res, err := src.Resolve(context.Background(), []string{"runai-p-executors"})
	st := insiderStats{Seconds: time.Since(t0).Seconds(), Searches: src.Stats.Searches.Load(), Entries: src.Stats.Entries.Load()}
	runtime.ReadMemStats(&after)
	st.AllocMiB = float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
	st.MaxRSSKiB = vmHWM()
	switch {
	case err != nil:
		st.Error = firstLine(err.Error())
	case res.Groups["runai-p-executors"].Err != nil:
		st.Error = firstLine(res.Groups["runai-p-executors"].Err.Error())
	default:
		st.Members = len(res.Groups["runai-p-executors"].Members)
	}
	_ = json.NewEncoder(os.Stdout).Encode(st)
	return 0
}
