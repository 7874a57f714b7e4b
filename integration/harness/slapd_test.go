package harness_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

// These tests run the real OpenLDAP slapd (Debian package slapd). A missing slapd fails them:
// integration tests never skip.

func startSlapd(t *testing.T, ctx context.Context, opts harness.SlapdOptions) *harness.Slapd {
	t.Helper()
	start := time.Now()
	s, err := harness.StartSlapd(ctx, t.TempDir(), opts)
	if err != nil {
		t.Fatalf("start slapd (integration tests need it, never skip): %v", err)
	}
	t.Cleanup(s.Stop)
	t.Logf("slapd ready in %v (slapadd %v) at %s and %s", time.Since(start), s.LoadDuration, s.URL, s.LDAPSURL)
	return s
}

func slapdSearch(t *testing.T, c *ldap.Conn, base, filter string, attrs ...string) []*ldap.Entry {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		t.Fatalf("search %s under %s: %v", filter, base, err)
	}
	return res.Entries
}

func slapdDNs(es []*ldap.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.DN)
	}
	slices.Sort(out)
	return out
}

func slapdSorted(v ...string) []string {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

func slapdAttr(t *testing.T, c *ldap.Conn, dn, attr string) []string {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{attr}, nil))
	if err != nil {
		t.Fatalf("read %s of %s: %v", attr, dn, err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("read %s of %s: %d entries", attr, dn, len(res.Entries))
	}
	return slapdSorted(res.Entries[0].GetAttributeValues(attr)...)
}

func TestSlapd(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startSlapd(t, ctx, harness.SlapdOptions{})

	must := func(dn string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return dn
	}
	people := must(s.AddOU("people"))
	groups := must(s.AddOU("groups"))
	alice := must(s.AddUser(people, "alice", harness.UserOpts{GivenName: "Alice", Surname: "Liddell"}))
	bob := must(s.AddUser(people, "bob", harness.UserOpts{}))
	carol := must(s.AddUser(people, "carol", harness.UserOpts{Disabled: true}))
	dave := must(s.AddUser(people, "dave", harness.UserOpts{Password: "dave-Passw0rd", UIDNumber: 10001, GIDNumber: 5000}))
	bulk, err := s.AddUsers(people, []string{"u1", "u2", "u3", "u4", "u5"}, harness.UserOpts{})
	if err != nil {
		t.Fatal(err)
	}
	// Nesting: group-a ∋ group-b.
	gb := must(s.AddGroupOfNames(groups, "group-b", bob, carol))
	ga := must(s.AddGroupOfNames(groups, "group-a", alice, gb))
	empty := must(s.AddGroupOfNames(groups, "empty"))
	solo := must(s.AddGroupOfNames(groups, "solo", dave))
	uniq := must(s.AddGroupOfUniqueNames(groups, "unique", alice, carol))
	posix := must(s.AddPosixGroup(groups, "posix", 5000, "alice", "dave"))
	if err := s.AddMembers(ga, "member", bulk...); err != nil {
		t.Fatal(err)
	}

	c, err := s.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("memberOf maintained, nested groups too, not transitive", func(t *testing.T) {
		if got := slapdAttr(t, c, alice, "memberOf"); !slices.Equal(got, []string{ga}) {
			t.Errorf("alice memberOf = %q, want [%s]", got, ga)
		}
		if got := slapdAttr(t, c, bob, "memberOf"); !slices.Equal(got, []string{gb}) {
			t.Errorf("bob memberOf = %q, want only [%s] (the overlay is not transitive)", got, gb)
		}
		if got := slapdAttr(t, c, gb, "memberOf"); !slices.Equal(got, []string{ga}) {
			t.Errorf("nested group-b memberOf = %q, want [%s]", got, ga)
		}
		if got := slapdAttr(t, c, bulk[0], "memberOf"); !slices.Equal(got, []string{ga}) {
			t.Errorf("u1 memberOf = %q after AddMembers, want [%s]", got, ga)
		}
		// groupOfUniqueNames does not feed memberOf.
		if got := slapdAttr(t, c, carol, "memberOf"); !slices.Equal(got, []string{gb}) {
			t.Errorf("carol memberOf = %q, want [%s] (uniqueMember must not count)", got, gb)
		}
		got := slapdDNs(slapdSearch(t, c, s.Suffix, "(memberOf="+ga+")"))
		want := slapdSorted(append([]string{alice, gb}, bulk...)...)
		if !slices.Equal(got, want) {
			t.Errorf("(memberOf=group-a) = %q, want %q", got, want)
		}
		// memberOf is operational: not returned for "*".
		es := slapdSearch(t, c, alice, "(objectClass=*)", "*")
		if v := es[0].GetAttributeValues("memberOf"); len(v) != 0 {
			t.Errorf("memberOf returned for * (%q); expected it to be operational", v)
		}
		if v := slapdSearch(t, c, alice, "(objectClass=*)", "+")[0].GetAttributeValues("memberOf"); len(v) != 1 {
			t.Errorf("memberOf not returned for + (%q)", v)
		}
	})

	t.Run("AD attributes searchable", func(t *testing.T) {
		for filter, want := range map[string][]string{
			"(sAMAccountName=alice)":                                 {alice},
			"(sAMAccountName=ALICE)":                                 {alice}, // caseIgnoreMatch, like AD
			"(sAMAccountName=ali*)":                                  {alice},
			"(userPrincipalName=alice@example.org)":                  {alice},
			"(&(objectClass=inetOrgPerson)(userAccountControl=514))": {carol},
			"(userAccountControl:1.2.840.113556.1.4.803:=2)":         {carol}, // AD bitwise AND works
			"(userAccountControl:1.2.840.113556.1.4.804:=3)":         {carol}, // and bitwise OR
			"(&(objectClass=runaiTestUser)(mail=bob@example.org))":   {bob},
			"(memberUid=dave)":                                       {posix},
			"(&(objectClass=posixGroup)(gidNumber=5000))":            {posix},
			"(&(objectClass=posixAccount)(uidNumber=10001))":         {dave},
			"(uniqueMember=" + carol + ")":                           {uniq},
		} {
			if got := slapdDNs(slapdSearch(t, c, s.Suffix, filter)); !slices.Equal(got, want) {
				t.Errorf("%s = %q, want %q", filter, got, want)
			}
		}
		// No in-chain matching rule: OpenLDAP evaluates the unknown rule as Undefined, so the
		// filter silently matches nothing (no error).
		inChainFilter := "(memberOf:" + inChain + ":=" + ga + ")"
		if got := slapdSearch(t, c, s.Suffix, inChainFilter, "1.1"); len(got) != 0 {
			t.Errorf("%s matched %d entries; OpenLDAP was expected not to support it", inChainFilter, len(got))
		}
		e := slapdSearch(t, c, alice, "(objectClass=*)", "cn", "mail", "sAMAccountName", "userPrincipalName", "userAccountControl", "displayName")[0]
		for attr, want := range map[string]string{
			"cn": "Alice Liddell", "displayName": "Alice Liddell", "mail": "alice@example.org",
			"sAMAccountName": "alice", "userPrincipalName": "alice@example.org", "userAccountControl": "512",
		} {
			if got := e.GetAttributeValue(attr); got != want {
				t.Errorf("alice %s = %q, want %q", attr, got, want)
			}
		}
	})

	t.Run("empty groups hold the empty-DN placeholder", func(t *testing.T) {
		if got := slapdAttr(t, c, empty, "member"); !slices.Equal(got, []string{harness.SlapdEmptyMember}) {
			t.Errorf("empty group member = %q, want [%q]", got, harness.SlapdEmptyMember)
		}
		if got := slapdDNs(slapdSearch(t, c, groups, "(member=)")); !slices.Equal(got, []string{empty}) {
			t.Errorf("(member=) = %q, want [%s]", got, empty)
		}
		// Removing the last member puts the placeholder in.
		if err := s.RemoveMembers(gb, "member", bob, carol); err != nil {
			t.Fatal(err)
		}
		if got := slapdAttr(t, c, gb, "member"); !slices.Equal(got, []string{""}) {
			t.Errorf("group-b member after removing all = %q, want [\"\"]", got)
		}
		if got := slapdAttr(t, c, bob, "memberOf"); len(got) != 0 {
			t.Errorf("bob memberOf after removal = %q, want none", got)
		}
		if err := s.AddMembers(gb, "member", bob); err != nil {
			t.Fatal(err)
		}
		if got := slapdAttr(t, c, bob, "memberOf"); !slices.Equal(got, []string{gb}) {
			t.Errorf("bob memberOf after re-adding = %q, want [%s]", got, gb)
		}
	})

	t.Run("LDAPS and StartTLS with the CA; binds as users", func(t *testing.T) {
		l, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig()))
		if err != nil {
			t.Fatalf("dial %s: %v", s.LDAPSURL, err)
		}
		defer l.Close()
		if err := l.Bind(s.ReaderDN, s.ReaderPassword); err != nil {
			t.Fatalf("LDAPS bind as reader: %v", err)
		}
		if got := slapdDNs(slapdSearch(t, l, s.Suffix, "(sAMAccountName=alice)")); !slices.Equal(got, []string{alice}) {
			t.Errorf("reader over LDAPS finds %q", got)
		}

		for _, name := range []string{"localhost", "127.0.0.1"} {
			l, err := ldap.DialURL(s.URL)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.StartTLS(s.CA.TLSConfig(name)); err != nil {
				t.Fatalf("StartTLS (server name %s): %v", name, err)
			}
			if st, ok := l.TLSConnectionState(); !ok || !st.HandshakeComplete {
				t.Errorf("StartTLS: no TLS state")
			}
			if err := l.Bind(dave, "dave-Passw0rd"); err != nil {
				t.Errorf("StartTLS bind as dave: %v", err)
			}
			l.Close()
		}

		// A client that does not trust the CA is refused: the TLS is real.
		if l, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS12})); err == nil {
			err = l.Bind(s.ReaderDN, s.ReaderPassword)
			l.Close()
			if err == nil {
				t.Error("LDAPS without trusting the CA succeeded")
			}
		}
		if l, err := ldap.DialURL(s.URL); err == nil {
			if err := l.Bind(dave, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				t.Errorf("bind with a wrong password: %v, want invalidCredentials", err)
			}
			// Anonymous clients read nothing.
			res, err := l.Search(ldap.NewSearchRequest(s.Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
			if err == nil && len(res.Entries) != 0 {
				t.Errorf("anonymous search returned %d entries", len(res.Entries))
			}
			l.Close()
		}
	})

	t.Run("refint and memberof follow deletes and renames", func(t *testing.T) {
		// refint works in the background, after the delete or rename has been answered.
		eventually := func(what string, dn, attr string, ok func([]string) bool) {
			t.Helper()
			start := time.Now()
			var got []string
			for time.Since(start) < 10*time.Second {
				if got = slapdAttr(t, c, dn, attr); ok(got) {
					t.Logf("%s: after %v", what, time.Since(start))
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Errorf("%s: %s of %s is still %q", what, attr, dn, got)
		}
		// dave is solo's only member: refint replaces him with the placeholder.
		if err := s.Delete(dave); err != nil {
			t.Fatal(err)
		}
		eventually("refint puts the placeholder into solo", solo, "member", func(v []string) bool { return slices.Equal(v, []string{""}) })
		if err := s.Delete(carol); err != nil {
			t.Fatal(err)
		}
		eventually("refint removes carol from unique", uniq, "uniqueMember", func(v []string) bool { return slices.Equal(v, []string{alice}) })
		if err := s.Rename(alice, "uid=alice2", ""); err != nil {
			t.Fatal(err)
		}
		alice2 := harness.SlapdUserDN(people, "alice2")
		eventually("group-a follows alice's rename", ga, "member", func(v []string) bool { return slices.Contains(v, alice2) && !slices.Contains(v, alice) })
		eventually("unique follows alice's rename", uniq, "uniqueMember", func(v []string) bool { return slices.Equal(v, []string{alice2}) })
		if got := slapdAttr(t, c, alice2, "memberOf"); !slices.Equal(got, []string{ga}) {
			t.Errorf("alice2 memberOf = %q, want [%s]", got, ga)
		}
		if err := s.Delete(gb); err != nil {
			t.Fatal(err)
		}
		if got := slapdAttr(t, c, bob, "memberOf"); len(got) != 0 {
			t.Errorf("bob memberOf after deleting group-b = %q, want none", got)
		}
		if err := s.SetEnabled(bob, false); err != nil {
			t.Fatal(err)
		}
		if got := slapdAttr(t, c, bob, "userAccountControl"); !slices.Equal(got, []string{"514"}) {
			t.Errorf("bob userAccountControl = %q after SetEnabled(false)", got)
		}
	})

	t.Run("restart keeps data and ports", func(t *testing.T) {
		url, ldaps := s.URL, s.LDAPSURL
		start := time.Now()
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("restart took %v", time.Since(start))
		if s.URL != url || s.LDAPSURL != ldaps {
			t.Errorf("URLs changed across restart: %s %s → %s %s", url, ldaps, s.URL, s.LDAPSURL)
		}
		c2, err := s.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if got := slapdAttr(t, c2, harness.SlapdUserDN(people, "alice2"), "memberOf"); !slices.Equal(got, []string{ga}) {
			t.Errorf("alice2 memberOf after restart = %q", got)
		}
		// A crash (SIGKILL) loses nothing either: olcDbNoSync only skips fsync.
		if _, err := s.AddUser(people, "erin", harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
		s.Kill()
		if _, err := s.Conn(ctx); err == nil {
			t.Fatal("slapd still answers after Kill")
		}
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		c3, err := s.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c3.Close()
		if got := slapdDNs(slapdSearch(t, c3, s.Suffix, "(sAMAccountName=erin)")); len(got) != 1 {
			t.Errorf("erin after kill and restart: %q", got)
		}
		// The seeding helpers reconnect by themselves.
		if _, err := s.AddUser(people, "frank", harness.UserOpts{}); err != nil {
			t.Errorf("AddUser after restart: %v", err)
		}
	})
}

// slapdPagedSearch pages through a search, returning the page sizes seen.
func slapdPagedSearch(c *ldap.Conn, base, filter string, pageSize uint32) (pages []int, err error) {
	ctrl := ldap.NewControlPaging(pageSize)
	for {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, []string{"uid"}, []ldap.Control{ctrl})
		res, err := c.Search(req)
		if err != nil {
			return pages, err
		}
		pages = append(pages, len(res.Entries))
		pc, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if pc == nil || len(pc.Cookie) == 0 {
			return pages, nil
		}
		ctrl.SetCookie(pc.Cookie)
	}
}

func slapdSum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

func TestSlapdSizeLimit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("SizeLimit N: plain searches capped, paged searches not", func(t *testing.T) {
		s := startSlapd(t, ctx, harness.SlapdOptions{SizeLimit: 10})
		ou, err := s.AddOU("people")
		if err != nil {
			t.Fatal(err)
		}
		uids := make([]string, 25)
		for i := range uids {
			uids[i] = fmt.Sprintf("user%02d", i)
		}
		if _, err := s.AddUsers(ou, uids, harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
		r, err := s.ReaderConn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		const filter = "(objectClass=inetOrgPerson)"
		res, err := r.Search(ldap.NewSearchRequest(ou, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, []string{"uid"}, nil))
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			t.Fatalf("plain search of 25 entries with SizeLimit 10: err %v, want sizeLimitExceeded", err)
		}
		if res == nil || len(res.Entries) != 10 {
			t.Errorf("plain search returned %v entries with sizeLimitExceeded, want 10", res)
		}
		for _, ps := range []uint32{5, 10, 100} {
			pages, err := slapdPagedSearch(r, ou, filter, ps)
			if err != nil || slapdSum(pages) != 25 {
				t.Errorf("paged search (page size %d): pages %v, err %v; want 25 entries", ps, pages, err)
			}
			t.Logf("page size %d: pages %v", ps, pages)
		}
		// The rootdn is exempt from limits.
		c, err := s.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := slapdSearch(t, c, ou, filter, "uid"); len(got) != 25 {
			t.Errorf("admin plain search: %d entries, want 25", len(got))
		}

		// The limit can be changed at run time through cn=config.
		cc, err := s.BindConn(ctx, harness.SlapdConfigDN, s.AdminPassword)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		mod := ldap.NewModifyRequest(harness.SlapdDatabaseConfigDN, nil)
		mod.Replace("olcSizeLimit", []string{"unlimited"})
		if err := cc.Modify(mod); err != nil {
			t.Fatalf("change olcSizeLimit online: %v", err)
		}
		if got := slapdSearch(t, r, ou, filter, "uid"); len(got) != 25 {
			t.Errorf("reader plain search after olcSizeLimit unlimited: %d entries, want 25", len(got))
		}
	})

	t.Run("SizeLimitConfig size.pr rejects larger pages", func(t *testing.T) {
		s := startSlapd(t, ctx, harness.SlapdOptions{SizeLimitConfig: "size.soft=10 size.hard=10 size.pr=10 size.prtotal=unlimited"})
		ou, err := s.AddOU("people")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddUsers(ou, []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}, harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
		r, err := s.ReaderConn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if pages, err := slapdPagedSearch(r, ou, "(uid=*)", 5); err != nil || slapdSum(pages) != 12 {
			t.Errorf("page size 5: pages %v err %v", pages, err)
		}
		if _, err := slapdPagedSearch(r, ou, "(uid=*)", 50); !ldap.IsErrorWithCode(err, ldap.LDAPResultAdminLimitExceeded) {
			t.Errorf("page size 50 over size.pr=10: err %v, want adminLimitExceeded (11)", err)
		}
	})

	t.Run("ExtraDatabaseConfig olcLimits lifts the reader's limit", func(t *testing.T) {
		s := startSlapd(t, ctx, harness.SlapdOptions{
			SizeLimit:           3,
			ExtraDatabaseConfig: []string{`olcLimits: dn.exact="cn=reader,` + harness.SlapdDefaultSuffix + `" size=unlimited`},
		})
		ou, err := s.AddOU("people")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddUsers(ou, []string{"a", "b", "c", "d", "e"}, harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
		r, err := s.ReaderConn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if got := slapdSearch(t, r, ou, "(uid=*)", "uid"); len(got) != 5 {
			t.Errorf("reader with olcLimits size=unlimited: %d entries, want 5", len(got))
		}
	})
}

// TestSlapdBulkLoad loads 50,000 users and 1,000 groups with slapadd and checks the result.
func TestSlapdBulkLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const nUsers, nGroups = 50_000, 1_000
	start := time.Now()
	b := harness.NewLDIFBuilder(harness.SlapdDefaultSuffix)
	people := b.AddOU(harness.SlapdDefaultSuffix, "people")
	groupsOU := b.AddOU(harness.SlapdDefaultSuffix, "groups")
	users := make([]string, nUsers)
	for i := range users {
		users[i] = b.AddUser(people, fmt.Sprintf("user%05d", i), harness.UserOpts{Disabled: i%10 == 9})
	}
	groups := make([]string, nGroups)
	members := make([][]string, nGroups)
	for i, u := range users { // every user in two distinct groups
		g1, g2 := i%nGroups, (i%nGroups+1+i/nGroups)%nGroups
		members[g1] = append(members[g1], u)
		members[g2] = append(members[g2], u)
	}
	for g := range groups {
		if g%10 != 0 { // chains of nesting: group g ∋ group g-1
			members[g] = append(members[g], harness.SlapdGroupDN(groupsOU, fmt.Sprintf("group%04d", g-1)))
		}
		groups[g] = b.AddGroup(groupsOU, fmt.Sprintf("group%04d", g), members[g]...)
	}
	emptyGroup := b.AddGroup(groupsOU, "empty")
	ldif := b.Bytes()
	t.Logf("LDIF for %d users and %d groups built in %v: %.1f MiB", nUsers, nGroups+1, time.Since(start), float64(len(ldif))/(1<<20))

	start = time.Now()
	s := startSlapd(t, ctx, harness.SlapdOptions{LDIF: ldif})
	t.Logf("slapadd -q took %v; StartSlapd in total %v", s.LoadDuration, time.Since(start))

	c, err := s.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := slapdAttr(t, c, users[1234], "memberOf"); !slices.Equal(got, slapdSorted(groups[234], groups[(234+1+1)%nGroups])) {
		t.Errorf("user01234 memberOf = %q", got)
	}
	if got := slapdAttr(t, c, groups[5], "memberOf"); !slices.Equal(got, []string{groups[6]}) {
		t.Errorf("group0005 memberOf = %q, want [%s]", got, groups[6])
	}
	if got := slapdAttr(t, c, emptyGroup, "member"); !slices.Equal(got, []string{""}) {
		t.Errorf("empty group member = %q", got)
	}
	if got := slapdSearch(t, c, s.Suffix, "(memberOf="+groups[7]+")", "1.1"); len(got) != 2*nUsers/nGroups+1 {
		t.Errorf("(memberOf=group0007): %d entries, want %d", len(got), 2*nUsers/nGroups+1)
	}
	if got := slapdSearch(t, c, people, "(sAMAccountName=user04321)", "1.1"); len(got) != 1 {
		t.Errorf("(sAMAccountName=user04321): %d entries", len(got))
	}

	// The overlays work on top of slapadd's data.
	if err := s.AddMembers(groups[0], "member", users[1]); err != nil {
		t.Fatal(err)
	}
	if got := slapdAttr(t, c, users[1], "memberOf"); !slices.Contains(got, groups[0]) {
		t.Errorf("online AddMembers after slapadd: memberOf = %q", got)
	}

	// A full paged read, as the sync does it, as the (limited) reader: the stock limit of 500
	// applies to paged searches in total unless the server says otherwise.
	r, err := s.ReaderConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if pages, err := slapdPagedSearch(r, people, "(objectClass=inetOrgPerson)", 1000); !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Errorf("default limits: paged read of %d users as reader: pages %v err %v, want sizeLimitExceeded", nUsers, pages, err)
	}
	start = time.Now()
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(people, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=inetOrgPerson)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
		[]string{"sAMAccountName", "mail", "memberOf"}, nil), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != nUsers*9/10 {
		t.Errorf("enabled users: %d, want %d", len(res.Entries), nUsers*9/10)
	}
	t.Logf("paged read of %d enabled users with memberOf took %v", len(res.Entries), time.Since(start))
	if !strings.HasPrefix(res.Entries[0].GetAttributeValue("sAMAccountName"), "user") {
		t.Errorf("unexpected entry %v", res.Entries[0])
	}
}

// TestSlapdLDIFBuilder checks the LDIF text itself: memberOf, escaping, empty groups.
func TestSlapdLDIFBuilder(t *testing.T) {
	t.Parallel()
	b := harness.NewLDIFBuilder("dc=corp,dc=example,dc=com")
	ou := b.AddOU("dc=corp,dc=example,dc=com", "people")
	u := b.AddUser(ou, "jöhn,doe", harness.UserOpts{Disabled: true})
	g1 := b.AddGroup(ou, "g1", u)
	g2 := b.AddGroup(ou, "g2", g1, "uid=outsider,dc=elsewhere")
	if err := b.AddMembers(g2, u); err != nil {
		t.Fatal(err)
	}
	if err := b.AddMembers(u, g1); err == nil {
		t.Error("AddMembers to a user: no error")
	}
	b.AddGroup(ou, "g3")
	got := string(b.Bytes())
	for _, want := range []string{
		"dn:: " + slapdB64(`uid=jöhn\,doe,ou=people,dc=corp,dc=example,dc=com`) + "\n",
		"userPrincipalName:: " + slapdB64("jöhn,doe@corp.example.com") + "\n",
		"userAccountControl: 514\n",
		"memberOf: " + g1 + "\nmemberOf: " + g2 + "\n\n",
		"dn: " + g1 + "\nobjectClass: groupOfNames\ncn: g1\nmember:: ",
		"member: uid=outsider,dc=elsewhere\n",
		"cn: g3\nmember:\n\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("LDIF lacks %q:\n%s", want, got)
		}
	}
	if b.Len() != 5 {
		t.Errorf("Len = %d, want 5", b.Len())
	}

	// slapd under that suffix takes the LDIF as is: escaped and base64 DNs, empty groups.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startSlapd(t, ctx, harness.SlapdOptions{Suffix: "dc=corp,dc=example,dc=com", LDIF: b.Bytes()})
	if s.Domain != "corp.example.com" || s.AdminDN != "cn=admin,dc=corp,dc=example,dc=com" {
		t.Errorf("Domain %q AdminDN %q", s.Domain, s.AdminDN)
	}
	c, err := s.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := slapdAttr(t, c, u, "memberOf"); !slices.Equal(got, slapdSorted(g1, g2)) {
		t.Errorf("%s memberOf = %q", u, got)
	}
	// OpenLDAP returns the DN in its own form (uid=jöhn\2Cdoe,…): compare DNs parsed.
	found := slapdDNs(slapdSearch(t, c, s.Suffix, "(sAMAccountName=JÖHN,DOE)"))
	if len(found) != 1 || !slapdSameDN(t, found[0], u) {
		t.Errorf("search by non-ASCII sAMAccountName: %q, want %s", found, u)
	} else if found[0] != u {
		t.Logf("DN %q comes back as %q", u, found[0])
	}
	if members := slapdAttr(t, c, g1, "member"); len(members) != 1 || !slapdSameDN(t, members[0], u) {
		t.Errorf("g1 member = %q, want %s", members, u)
	}
	online, err := s.AddUser(ou, "online", harness.UserOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if got := slapdAttr(t, c, online, "userPrincipalName"); !slices.Equal(got, []string{"online@corp.example.com"}) {
		t.Errorf("online user UPN %q", got)
	}
}

func slapdSameDN(t *testing.T, a, b string) bool {
	t.Helper()
	da, err := ldap.ParseDN(a)
	if err != nil {
		t.Fatalf("parse DN %q: %v", a, err)
	}
	db, err := ldap.ParseDN(b)
	if err != nil {
		t.Fatalf("parse DN %q: %v", b, err)
	}
	return da.EqualFold(db)
}

func slapdB64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
