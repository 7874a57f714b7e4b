package integration

import (
	"context"
	"slices"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
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
			if res.Skipped[ldapsrc.SkipDisabled] != 1 {
				t.Errorf("skipped = %v, want disabled 1 (erin, primary member of prim-outer)", res.Skipped)
			}
			// Domain Users is every account's primary group until changed
			// (AD then lists the account in its member values): it
			// resolves to the domain; the guard's limits are what stop a
			// surprise.
			dom := resolve(t, e.adConfig(func(c *config.LDAP) { c.MemberResolution = mode; c.BaseDN = e.samba.BaseDN }), "Domain Users")
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

// memberValues reads a group's member values as the domain admin.
func (e *env) memberValues(groupDN string) []string {
	e.t.Helper()
	c, err := e.samba.Conn(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(groupDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=group)", []string{"member"}, nil))
	if err != nil || len(res.Entries) != 1 {
		e.t.Fatalf("read member of %s: %v", groupDN, err)
	}
	return res.Entries[0].GetAttributeValues("member")
}

func dnIs(a, b string) bool {
	pa, errA := ldap.ParseDN(a)
	pb, errB := ldap.ParseDN(b)
	return errA == nil && errB == nil && pa.EqualFold(pb)
}
