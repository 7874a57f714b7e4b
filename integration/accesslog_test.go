package integration

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Deletions on OpenLDAP through polls (issue 17 item 2): with the
// accesslog overlay logging deletes to a database the bind account reads,
// a deleted member or project group leaves through a poll, under the
// guard's rules; without it, polls say once that they are blind to
// deletions and the metric shows it. No refint overlay here, so deleting a
// member changes no group entry: only the log tells.

// accessLogYAML is the shipped configuration but for the schedule (no
// full cycle during the test) and a short poll interval.
const accessLogYAML = `  viewers: ["runai-{project}-viewers"]
  globalViewers: ["runai-viewers"]
` + longSchedule + "incremental: {pollInterval: 1s}\n"

// seedAccessLogDirectory builds the directory of both tests: alpha's
// executors with erin through a nested group and enough members that the
// guard's shipped limits (50 %, 20 an hour) let single removals through;
// beta's executors, whose loss would empty its binding.
func seedAccessLogDirectory(t *testing.T, e *env, s *harness.Slapd) (dn map[string]string, fill []string) {
	t.Helper()
	people, err := s.AddOU("people")
	if err != nil {
		t.Fatal(err)
	}
	dn = map[string]string{}
	users := []string{"alice", "bob", "erin", "frank", "vera", "gina"}
	for i := range 8 {
		fill = append(fill, fmt.Sprintf("u%d", i))
	}
	for _, u := range append(users, fill...) {
		if dn[u], err = s.AddUser(people, u, harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	dns := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, dn[n])
		}
		return out
	}
	group := func(cn string, members ...string) {
		if dn[cn], err = s.AddGroupOfNames(s.Suffix, cn, members...); err != nil {
			t.Fatal(err)
		}
	}
	group("runai-alpha-inner", dn["erin"])
	group("runai-alpha-executors", append(dns("alice", "bob"), append([]string{dn["runai-alpha-inner"]}, dns(fill...)...)...)...)
	group("runai-alpha-viewers", dn["vera"])
	group("runai-viewers", dns(append([]string{"gina"}, fill...)...)...)
	group("runai-beta-executors", dns("frank", "u0")...)
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	e.namespace("runai-beta", map[string]string{"runai/queue": "beta"})
	return dn, fill
}

func TestPollsSeeOpenLDAPDeletionsThroughAccessLog(t *testing.T) {
	// With syncprov the log cursor starts from the server's contextCSN;
	// without, from our clock minus a margin, and every poll reads the log.
	for _, syncProv := range []bool{true, false} {
		t.Run(fmt.Sprintf("syncprov=%v", syncProv), func(t *testing.T) { pollsSeeOpenLDAPDeletions(t, syncProv) })
	}
}

func pollsSeeOpenLDAPDeletions(t *testing.T, syncProv bool) {
	e := newEnv(t)
	s := startSlapd(t, harness.SlapdOptions{SyncProv: syncProv, AccessLog: true, NoRefInt: true})
	dn, fill := seedAccessLogDirectory(t, e, s)
	addr := freeAddr(t)
	cfg := e.slapdDaemonConfig(s, "", accessLogYAML+fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	alpha, beta := model.ExecutorRef("runai-alpha"), model.ExecutorRef("runai-beta")
	members := append([]string{"alice", "bob", "erin"}, fill...)
	e.waitUsers(alpha, 15*time.Second, members...)
	e.waitUsers(viewer, 15*time.Second, append([]string{"gina", "vera"}, fill...)...)
	e.waitUsers(beta, 15*time.Second, "frank", "u0")
	if v := d.metric("runai_ldap_sync_directory_poll_blind", `change="deletion"`); v != 0 {
		t.Errorf("directory_poll_blind{deletion} = %v with the access log readable, want 0", v)
	}
	if n := d.count("polls cannot see deleted entries"); n != 0 {
		t.Errorf("%d blind warnings with the access log readable, want none", n)
	}

	// Deleted outright: erin, two groups down, and bob, a direct member.
	// Without refint the groups still name them: no group entry changes.
	for _, u := range []string{"erin", "bob"} {
		start := time.Now()
		if err := s.Delete(dn[u]); err != nil {
			t.Fatal(err)
		}
		members = replace(members, u)
		e.waitUsers(alpha, pollBound, members...)
		t.Logf("member %s deleted: left the binding %v after the change", u, time.Since(start).Round(10*time.Millisecond))
	}

	// A deleted project group: alpha's viewers go (vera leaves the viewer
	// binding, within the guard's limits)...
	start := time.Now()
	if err := s.Delete(dn["runai-alpha-viewers"]); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(viewer, pollBound, append([]string{"gina"}, fill...)...)
	t.Logf("viewer group deleted: vera left %v after the change", time.Since(start).Round(10*time.Millisecond))
	// ...and beta's executors: that would empty beta's binding, so the
	// guard holds it, exactly as a full cycle would.
	if err := s.Delete(dn["runai-beta-executors"]); err != nil {
		t.Fatal(err)
	}
	d.waitMetric("runai_ldap_sync_binding_held_removals", `namespace="runai-beta"`, 2, pollBound)
	e.expectUsers(beta, "frank", "u0")

	// A change that reaches a binding, made after the deletions: once it
	// is there, the polls have read the log past them, and nothing came
	// back.
	if err := s.AddMembers(dn["runai-alpha-executors"], "member", dn["gina"]); err != nil {
		t.Fatal(err)
	}
	members = append(members, "gina")
	e.waitUsers(alpha, pollBound, members...)
	e.expectUsers(viewer, append([]string{"gina"}, fill...)...)

	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Errorf("cycles_total = %v, want 1: every change must come through polls", v)
	}
	if code := d.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

// TestPollsBlindToOpenLDAPDeletionsWithoutAccessLog: the same directory
// without the overlay. The daemon warns once and the metric says so; a
// deleted member stays until the next cycle (polls that ran since did not
// remove it).
func TestPollsBlindToOpenLDAPDeletionsWithoutAccessLog(t *testing.T) {
	e := newEnv(t)
	s := startSlapd(t, harness.SlapdOptions{SyncProv: true, NoRefInt: true})
	dn, fill := seedAccessLogDirectory(t, e, s)
	addr := freeAddr(t)
	cfg := e.slapdDaemonConfig(s, "", accessLogYAML+fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	alpha := model.ExecutorRef("runai-alpha")
	members := append([]string{"alice", "bob", "erin"}, fill...)
	e.waitUsers(alpha, 15*time.Second, members...)
	d.waitLog("polls cannot see deleted entries", 1, 15*time.Second)
	if v := d.metric("runai_ldap_sync_directory_poll_blind", `change="deletion"`); v != 1 {
		t.Errorf("directory_poll_blind{deletion} = %v without an access log, want 1", v)
	}

	if err := s.Delete(dn["bob"]); err != nil {
		t.Fatal(err)
	}
	// A later change, to another group, that polls do carry: once it is
	// in beta's binding, the polls have passed the deletion, which they
	// could not see, and alpha was not read again.
	if err := s.AddMembers(dn["runai-beta-executors"], "member", dn["gina"]); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(model.ExecutorRef("runai-beta"), pollBound, "frank", "gina", "u0")
	e.expectUsers(alpha, members...)
	if n := d.count("polls cannot see deleted entries"); n != 1 {
		t.Errorf("%d blind warnings, want exactly one", n)
	}
	if v := d.metric("runai_ldap_sync_directory_poll_blind", `change="deletion"`); v != 1 {
		t.Errorf("directory_poll_blind{deletion} = %v after polls, want still 1", v)
	}
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Errorf("cycles_total = %v, want 1", v)
	}
}
