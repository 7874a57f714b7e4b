package integration

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// TestActiveDirectoryPrimaryGroup: a user whose primary group is a project
// group (or a group nested in it) is in no member value, yet AD admins see
// it under "Member Of": both resolutions count it as a member, disabled
// primary members are skipped, and the full and targeted reads agree.
func TestActiveDirectoryPrimaryGroup(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		e.user(u, true)
	}
	e.user("erin", false)
	inner := e.group("prim-inner", "carol", "dave")
	outer := e.group("prim-outer", "alice", "bob", "erin", "prim-inner")
	for user, group := range map[string]string{"bob": outer, "erin": outer, "dave": inner} {
		if err := e.samba.SetPrimaryGroup(e.users[user], group); err != nil {
			t.Fatalf("primary group of %s: %v", user, err)
		}
	}
	// The trap itself: the primary members left the groups' member values.
	if m := e.memberValues(outer); len(m) != 2 || slices.ContainsFunc(m, func(dn string) bool { return dnIs(dn, e.users["bob"]) }) {
		t.Fatalf("prim-outer member = %v, want alice and prim-inner only (bob's and erin's membership is primary)", m)
	}

	domainUsers := e.memberValues("CN=Domain Users,CN=Users," + e.samba.BaseDN)
	if slices.ContainsFunc(domainUsers, func(dn string) bool { return dnIs(dn, e.users["alice"]) }) {
		t.Fatalf("Domain Users member = %v: alice's membership must be only primary", domainUsers)
	}

	for _, mode := range []string{config.ResolveInChain, config.ResolveExpand} {
		t.Run(mode, func(t *testing.T) {
			cfg := e.adConfig(func(c *config.LDAP) { c.MemberResolution = mode })
			res := resolve(t, cfg, "prim-outer", "prim-inner")
			wantMembers(t, res, "prim-outer", "alice", "bob", "carol", "dave")
			wantMembers(t, res, "prim-inner", "carol", "dave")
			if res.Skipped[model.SkipDisabled] != 1 {
				t.Errorf("skipped = %v, want disabled 1 (erin, primary member of prim-outer)", res.Skipped)
			}
			// Domain Users is every account's primary group until changed
			// (AD then lists the account in its member values): it
			// resolves to the domain; the guard's limits are what stop a
			// surprise.
			// With the shipped defaults a project group that is (or nests)
			// an all-accounts group grants nobody (TestInsiderWellKnownGroups);
			// ldap.allowWellKnownGroups opts in.
			refused := resolve(t, e.adConfig(func(c *config.LDAP) { c.MemberResolution = mode; c.BaseDN = e.samba.BaseDN }), "Domain Users")
			var wk *ldapsrc.WellKnownGroupError
			if g := refused.Groups["Domain Users"]; !errors.As(g.Err, &wk) || g.Members != nil {
				t.Errorf("Domain Users as a project group by default: err %v, members %v; want refused", g.Err, g.Members)
			}
			dom := resolve(t, e.adConfig(func(c *config.LDAP) {
				c.MemberResolution = mode
				c.BaseDN = e.samba.BaseDN
				c.AllowWellKnownGroups = true
			}), "Domain Users")
			got := dom.Groups["Domain Users"].Members
			for _, u := range []string{"alice", "bob", "carol", "dave"} {
				if !slices.Contains(got, u) {
					t.Errorf("Domain Users members = %v, want %s among them", got, u)
				}
			}
			if slices.Contains(got, "erin") {
				t.Errorf("Domain Users members = %v: erin is disabled", got)
			}
		})
	}
}

// TestIncrementalPrimaryGroupAndDomainUsers, with the daemon and polls:
// making a project group a member's primary group (which takes the member
// out of the group's member values) leaves the member bound; a group owner
// nesting Domain Users in a project group, which would bind the whole
// domain, grants nobody with the shipped defaults: the group is refused,
// counted as failed, and the log says how to fix it.
func TestIncrementalPrimaryGroupAndDomainUsers(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	addr := freeAddr(t)
	root := e.samba.BaseDN
	// The whole domain under the bases, so Domain Users (CN=Users) and its
	// primary members are in sight.
	cfg := e.config(fmt.Sprintf("  groupBaseDN: %q\n  userBaseDN: %q\n", root, root) + groupsYAML + sampleProjects + incrementalYAML +
		fmt.Sprintf("server: {address: %q}\n", addr))
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	expectSampleSynced(e, 10*time.Second)
	// Groups searched from the domain root: the start log says so.
	if !slices.ContainsFunc(d.logLines("safety opt-out in the configuration"), func(l map[string]any) bool { return l["key"] == "ldap.groupBaseDN" }) {
		t.Error("no start warning that groups are searched across the whole domain (ldap.groupBaseDN)")
	}

	start := time.Now()
	if err := e.samba.AddMembers(e.groups["runai-alpha-executors"], e.users["frank"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "member added", alphaExec, start, "alice", "bob", "carol", "erin", "frank", "hand-added")

	// frank's primary group becomes alpha's executors: AD drops him from
	// the group's member values. Three polls later (the last one started
	// after the one that applied the change), he is still bound.
	if err := e.samba.SetPrimaryGroup(e.users["frank"], e.groups["runai-alpha-executors"]); err != nil {
		t.Fatal(err)
	}
	if m := e.memberValues(e.groups["runai-alpha-executors"]); slices.ContainsFunc(m, func(dn string) bool { return dnIs(dn, e.users["frank"]) }) {
		t.Fatalf("frank is still a member value of alpha's executors: %v", m)
	}
	polls := d.metric("runai_ldap_sync_directory_polls_total", "")
	d.waitMetric("runai_ldap_sync_directory_polls_total", "", polls+3, 3*propagationBound)
	e.expectUsers(alphaExec, "alice", "bob", "carol", "erin", "frank", "hand-added")

	// Domain Users nested in beta's executors (its owner may write its
	// member values): every enabled account of the domain, refused.
	if err := e.samba.AddMembers(e.groups["runai-beta-executors"], "CN=Domain Users,CN=Users,"+root); err != nil {
		t.Fatal(err)
	}
	d.waitLog("a project group reaches an all-accounts group", 1, propagationBound)
	polls = d.metric("runai_ldap_sync_directory_polls_total", "")
	d.waitMetric("runai_ldap_sync_directory_polls_total", "", polls+2, 3*propagationBound)
	e.expectUsers(betaExec, "bob", "frank")
	if held := d.metric("runai_ldap_sync_binding_held_additions", `namespace="ml-beta"`); held != 0 {
		t.Errorf("%v additions held for beta: the group was resolved to the domain", held)
	}
}
