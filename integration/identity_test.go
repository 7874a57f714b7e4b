package integration

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Renames, moves and deletions through polls (issue 17): with the shipped
// defaults and a schedule of one hour, each must reach the bindings within
// a few poll intervals, never waiting for the next cycle.

// TestPollsFollowRenamesMovesAndDeletions: users in their own OU
// (ldap.userBaseDN), groups beside it, the bind account allowed to read
// deleted objects (docs/operations.md). Every change below is the
// measurement of issue 17 that used to wait for the next cycle.
func TestPollsFollowRenamesMovesAndDeletions(t *testing.T) {
	e := newEnv(t)
	people := e.ouUnder(e.ou, "People")
	disabledOU := e.ouUnder(people, "Disabled")
	elsewhere := e.ouUnder(e.ou, "Elsewhere")
	for _, u := range []string{"alice", "bob", "carol", "erin", "frank", "vera", "gina"} {
		e.addUserUnder(people, u, true)
	}
	// Enough members that the guard's shipped limits (50 %, 20 an hour)
	// let the four single removals below through.
	var fill []string
	for i := range 8 {
		fill = append(fill, fmt.Sprintf("u%d", i))
		e.addUserUnder(people, fill[i], true)
	}
	e.addGroupUnder(e.ou, "runai-alpha-inner", "erin")
	e.addGroupUnder(e.ou, "runai-alpha-core", "carol", "runai-alpha-inner")
	e.addGroupUnder(e.ou, "runai-alpha-executors", append([]string{"alice", "bob", "runai-alpha-core"}, fill...)...)
	e.addGroupUnder(e.ou, "runai-alpha-viewers", "vera")
	e.addGroupUnder(e.ou, "runai-viewers", append([]string{"gina"}, fill...)...)
	e.addGroupUnder(e.ou, "runai-beta-executors", "frank", "u0")
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	e.namespace("runai-beta", map[string]string{"runai/queue": "beta"})

	sid, err := e.samba.SID(e.bindAccountDN())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.samba.GrantDeletedObjectsRead(context.Background(), sid); err != nil {
		t.Fatal(err)
	}
	// The DC keeps no tombstone yet: one, so that the account can tell it
	// sees them (docs/operations.md).
	if err := e.samba.Delete(e.addUserUnder(elsewhere, "gone-before", true)); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	cfg := e.configLDAP(fmt.Sprintf("  userBaseDN: %q\n", people),
		groupsYAML+longSchedule+fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	alpha, beta := model.ExecutorRef("runai-alpha"), model.ExecutorRef("runai-beta")
	members := append([]string{"alice", "bob", "carol", "erin"}, fill...)
	e.waitUsers(alpha, 15*time.Second, members...)
	e.waitUsers(viewer, 15*time.Second, append([]string{"gina", "vera"}, fill...)...)
	e.waitUsers(beta, 15*time.Second, "frank", "u0")
	if v := d.metric("runai_ldap_sync_directory_poll_blind", `change="deletion"`); v != 0 {
		t.Errorf("directory_poll_blind{deletion} = %v with deleted objects readable, want 0", v)
	}
	if v := d.metric("runai_ldap_sync_members_skipped", `reason="outside_base"`); v != 0 {
		t.Errorf("members_skipped{outside_base} = %v before any move, want 0 (nested groups beside the user base are groups, not members outside it)", v)
	}
	aliceGUID, err := e.samba.GUID(e.users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	oldAlice := e.users["alice"]

	// ADUC rename: CN and sAMAccountName (and UPN) together. The group's
	// member value follows the entry; the group itself does not change.
	start := time.Now()
	if err := e.samba.Rename(oldAlice, "CN=alicia", ""); err != nil {
		t.Fatal(err)
	}
	e.users["alicia"] = "CN=alicia," + people
	rename := ldap.NewModifyRequest(e.users["alicia"], nil)
	rename.Replace("sAMAccountName", []string{"alicia"})
	rename.Replace("userPrincipalName", []string{"alicia@example.test"})
	if err := e.samba.Modify(rename); err != nil {
		t.Fatal(err)
	}
	members = replace(members, "alice", "alicia")
	e.waitUsers(alpha, pollBound, members...)
	t.Logf("rename: in the binding %v after the change", time.Since(start).Round(10*time.Millisecond))

	// Disabled and moved to another OU (inside the user base) in one go.
	start = time.Now()
	if err := e.samba.SetEnabled(e.users["bob"], false); err != nil {
		t.Fatal(err)
	}
	if err := e.samba.Rename(e.users["bob"], "CN=bob", disabledOU); err != nil {
		t.Fatal(err)
	}
	members = replace(members, "bob")
	e.waitUsers(alpha, pollBound, members...)
	t.Logf("disable+move: left the binding %v after the change", time.Since(start).Round(10*time.Millisecond))

	// Moved out of ldap.userBaseDN: carol, a member through a nested group.
	start = time.Now()
	if err := e.samba.Rename(e.users["carol"], "CN=carol", elsewhere); err != nil {
		t.Fatal(err)
	}
	members = replace(members, "carol")
	e.waitUsers(alpha, pollBound, members...)
	t.Logf("moved out of the user base: left the binding %v after the change", time.Since(start).Round(10*time.Millisecond))

	// ...and back in: known outside the base by its objectGUID only (the
	// group names her new DN), she comes back through a poll too.
	start = time.Now()
	if err := e.samba.Rename("CN=carol,"+elsewhere, "CN=carol", people); err != nil {
		t.Fatal(err)
	}
	members = append(members, "carol")
	e.waitUsers(alpha, pollBound, members...)
	t.Logf("moved back into the user base: in the binding %v after the change", time.Since(start).Round(10*time.Millisecond))

	// Deleted outright: erin, two groups down; no group entry changes.
	start = time.Now()
	if err := e.samba.Delete(e.users["erin"]); err != nil {
		t.Fatal(err)
	}
	members = replace(members, "erin")
	e.waitUsers(alpha, pollBound, members...)
	t.Logf("member deleted: left the binding %v after the change", time.Since(start).Round(10*time.Millisecond))

	// A deleted project group: alpha's viewers go (vera leaves the viewer
	// binding, within the guard's limits)...
	start = time.Now()
	if err := e.samba.Delete(e.groups["runai-alpha-viewers"]); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(viewer, pollBound, append([]string{"gina"}, fill...)...)
	t.Logf("viewer group deleted: vera left %v after the change", time.Since(start).Round(10*time.Millisecond))
	// ...and beta's executors: that would empty beta's binding, so the
	// guard holds it, exactly as a full cycle would. The deletion never
	// bypasses the guard.
	if err := e.samba.Delete(e.groups["runai-beta-executors"]); err != nil {
		t.Fatal(err)
	}
	d.waitMetric("runai_ldap_sync_binding_held_removals", `namespace="runai-beta"`, 2, pollBound)
	e.expectUsers(beta, "frank", "u0")

	// Someone who may create users makes new ones with the old names and
	// DNs: identity is the server's objectGUID, so neither gets the old
	// entries' access.
	e.addUserUnder(people, "alice", true)
	e.addUserUnder(people, "erin", true)
	// A change that does reach the binding, made after them: once it is
	// there, the polls have seen the new entries too.
	e.addUserUnder(people, "zed", true)
	if err := e.samba.AddMembers(e.groups["runai-alpha-executors"], e.users["zed"]); err != nil {
		t.Fatal(err)
	}
	members = append(members, "zed")
	e.waitUsers(alpha, pollBound, members...)
	if dn := e.users["alice"]; !strings.EqualFold(dn, oldAlice) {
		t.Fatalf("recreated alice at %s, want the old DN %s", dn, oldAlice)
	}

	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Errorf("cycles_total = %v, want 1: every change must come through polls", v)
	}

	// explain names the entry and the identity it matched.
	guid, _ := ldapsrc.FormatGUID(aliceGUID)
	out := e.mustRun("explain", "--config", cfg, "--user", "alicia", "--project", "alpha").stdout
	for _, want := range []string{"granted", "via alicia ← runai-alpha-executors", "entry CN=alicia," + people + " (objectGUID " + guid + ")"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	if code := d.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

// replace returns members without drop, plus add (if given).
func replace(members []string, drop string, add ...string) []string {
	var out []string
	for _, m := range members {
		if m != drop {
			out = append(out, m)
		}
	}
	return append(out, add...)
}
