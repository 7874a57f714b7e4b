package integration

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Users and groups in separate OUs (ldap.userBaseDN, ldap.groupBaseDN),
// groups nested three deep: resolution finds every member with no nested
// group counted outside_base, and polls carry changes at every depth
// (issue 17: no poll carried any change at all with split bases).

// TestSplitBasesNestedActiveDirectory runs both AD member resolutions
// against one Samba directory, one daemon after the other.
func TestSplitBasesNestedActiveDirectory(t *testing.T) {
	e := newEnv(t)
	users := e.ouUnder(e.ou, "Users")
	groups := e.ouUnder(e.ou, "Groups")
	for _, u := range []string{"alice", "bob", "carol", "dave", "ivy", "jack"} {
		e.addUserUnder(users, u, true)
	}
	e.addGroupUnder(groups, "l3", "dave")
	e.addGroupUnder(groups, "l2", "carol", "l3")
	e.addGroupUnder(groups, "l1", "bob", "l2")
	e.addGroupUnder(groups, "runai-alpha-executors", "alice", "l1")
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	alpha := model.ExecutorRef("runai-alpha")
	want := []string{"alice", "bob", "carol", "dave"}

	for _, c := range []struct {
		resolution string
		change     func()
		after      []string
	}{
		// Three levels down, then a member leaving the first level.
		{"inChain", func() {
			if err := e.samba.AddMembers(e.groups["l3"], e.users["ivy"]); err != nil {
				t.Fatal(err)
			}
		}, []string{"alice", "bob", "carol", "dave", "ivy"}},
		{"expand", func() {
			if err := e.samba.AddMembers(e.groups["l2"], e.users["jack"]); err != nil {
				t.Fatal(err)
			}
		}, []string{"alice", "bob", "carol", "dave", "ivy", "jack"}},
	} {
		t.Run(c.resolution, func(t *testing.T) {
			e.t = t
			addr := freeAddr(t)
			cfg := e.configLDAP(fmt.Sprintf("  userBaseDN: %q\n  groupBaseDN: %q\n  memberResolution: %s\n", users, groups, c.resolution),
				"groups:\n  executors: [\"runai-{project}-executors\"]\n"+longSchedule+fmt.Sprintf("server: {address: %q}\n", addr))
			d := startDaemon(t, cfg, e.kubeconfig(), addr)
			d.waitReady(60 * time.Second)
			e.waitUsers(alpha, 15*time.Second, want...)
			if v := d.metric("runai_ldap_sync_members_skipped", `reason="outside_base"`); v != 0 {
				t.Errorf("members_skipped{outside_base} = %v, want 0: the nested groups live under groupBaseDN", v)
			}
			start := time.Now()
			c.change()
			e.waitUsers(alpha, pollBound, c.after...)
			t.Logf("%s: change in a nested group reached the binding %v after it", c.resolution, time.Since(start).Round(10*time.Millisecond))
			want = c.after
			if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
				t.Errorf("cycles_total = %v, want 1 (the change came through a poll)", v)
			}
			if code := d.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Errorf("exit status %d after SIGTERM", code)
			}
		})
	}
}

// TestSplitBasesNestedOpenLDAP: the same with groupOfNames on slapd, plus
// a user renamed (uid and RDN): matched by entryUUID. slapd keeps no
// deleted entries, which the daemon says once and counts.
func TestSplitBasesNestedOpenLDAP(t *testing.T) {
	e := newKubeEnv(t)
	s := startSlapd(t, harness.SlapdOptions{})
	people, err := s.AddOU("people")
	if err != nil {
		t.Fatal(err)
	}
	groupsOU, err := s.AddOU("groups")
	if err != nil {
		t.Fatal(err)
	}
	dn := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave", "ivy"} {
		if dn[u], err = s.AddUser(people, u, harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	l3, err := s.AddGroupOfNames(groupsOU, "l3", dn["dave"])
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.AddGroupOfNames(groupsOU, "l2", dn["carol"], l3)
	if err != nil {
		t.Fatal(err)
	}
	l1, err := s.AddGroupOfNames(groupsOU, "l1", dn["bob"], l2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddGroupOfNames(groupsOU, "runai-alpha-executors", dn["alice"], l1); err != nil {
		t.Fatal(err)
	}
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	addr := freeAddr(t)
	cfg := e.slapdDaemonConfig(s, fmt.Sprintf("  userBaseDN: %q\n  groupBaseDN: %q\n", people, groupsOU),
		longSchedule+fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	alpha := model.ExecutorRef("runai-alpha")
	e.waitUsers(alpha, 15*time.Second, "alice", "bob", "carol", "dave")
	if v := d.metric("runai_ldap_sync_members_skipped", `reason="outside_base"`); v != 0 {
		t.Errorf("members_skipped{outside_base} = %v, want 0", v)
	}

	start := time.Now()
	if err := s.AddMembers(l3, "member", dn["ivy"]); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(alpha, pollBound, "alice", "bob", "carol", "dave", "ivy")
	t.Logf("nested three deep: %v", time.Since(start).Round(10*time.Millisecond))

	// Renamed: new RDN and uid, same entryUUID.
	start = time.Now()
	if err := s.Rename(dn["carol"], "uid=caroline", ""); err != nil {
		t.Fatal(err)
	}
	// slapd keeps the old RDN value unless told otherwise: drop it.
	mod := ldap.NewModifyRequest("uid=caroline,"+people, nil)
	mod.Delete("uid", []string{"carol"})
	if err := s.Modify(mod); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) {
		t.Fatal(err)
	}
	e.waitUsers(alpha, pollBound, "alice", "bob", "caroline", "dave", "ivy")
	t.Logf("renamed: %v", time.Since(start).Round(10*time.Millisecond))

	d.waitLog("polls cannot see deleted entries", 1, 5*time.Second)
	if v := d.metric("runai_ldap_sync_directory_poll_blind", `change="deletion"`); v != 1 {
		t.Errorf("directory_poll_blind{deletion} = %v, want 1 on OpenLDAP", v)
	}
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != 1 {
		t.Errorf("cycles_total = %v, want 1", v)
	}
	if n := d.count("polls cannot see deleted entries"); n != 1 {
		t.Errorf("said %d times that polls cannot see deletions, want once", n)
	}
}
