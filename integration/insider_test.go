package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Directory insiders (docs/safety.md, "Who can steer the daemon"): a group
// owner (write on member of one project group) and a group creator (may
// create groups in some OU) drive Samba AD as they could, and the
// resolution must not grant beyond their own group.

var resolutionModes = []string{config.ResolveExpand, config.ResolveInChain}

// TestInsiderWellKnownGroups: a group owner nests an all-accounts group
// (Domain Users, Domain Computers, Authenticated Users, Everyone), directly
// or through a group of their own, into a project group. With the shipped
// defaults that group is an error naming the fix, and grants nobody; the
// other project groups resolve as before; ldap.allowWellKnownGroups opts in.
func TestInsiderWellKnownGroups(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"alice", "bob"} {
		e.user(u, true)
	}
	root := e.samba.BaseDN
	groups, err := e.samba.AddOUUnder(e.ou, "Groups")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(cn string, members ...string) string {
		t.Helper()
		dn, err := e.samba.AddGroup(groups, cn)
		if err != nil {
			t.Fatal(err)
		}
		if len(members) > 0 {
			if err := e.samba.AddMembers(dn, members...); err != nil {
				t.Fatalf("add members to %s: %v", cn, err)
			}
		}
		return dn
	}
	domainUsers := "CN=Domain Users,CN=Users," + root
	mk("runai-plain-viewers", e.users["bob"])
	mk("runai-du-viewers", e.users["alice"], domainUsers)
	mk("runai-dc-viewers", e.users["alice"], "CN=Domain Computers,CN=Users,"+root)
	mid := mk("owner-mid", domainUsers)
	mk("runai-deep-viewers", e.users["alice"], mid)
	au := mk("runai-au-viewers", e.users["alice"])
	ev := mk("runai-ev-viewers", e.users["alice"])
	for dn, sid := range map[string]string{au: "S-1-5-11", ev: "S-1-1-0"} {
		// Provisioning made some of these principals already: by DN then.
		if err := e.samba.AddMembers(dn, e.samba.ForeignPrincipalDN(sid)); err != nil {
			if err := e.samba.AddForeignMember(dn, sid); err != nil {
				t.Fatalf("add %s to %s: %v", sid, dn, err)
			}
		}
	}
	t.Logf("Everyone is stored as %v, Authenticated Users as %v", e.memberValues(ev), e.memberValues(au))
	refused := map[string]string{
		"runai-du-viewers": "Domain Users", "runai-dc-viewers": "Domain Computers", "runai-deep-viewers": "Domain Users",
		"runai-au-viewers": "Authenticated Users", "runai-ev-viewers": "Everyone",
	}
	names := []string{"runai-plain-viewers"}
	for n := range refused {
		names = append(names, n)
	}
	slices.Sort(names)

	for _, mode := range resolutionModes {
		// A dedicated group OU (as shipped), and groups searched across the
		// whole domain (Domain Users is then itself under the group base).
		for base, groupBase := range map[string]string{"group OU": groups, "domain root": root} {
			t.Run(mode+"/"+base, func(t *testing.T) {
				cfg := e.adConfig(func(c *config.LDAP) {
					c.MemberResolution, c.GroupBaseDN = mode, groupBase
					if groupBase == root {
						c.UserBaseDN = root
					}
				})
				res := resolve(t, cfg, names...)
				wantMembers(t, res, "runai-plain-viewers", "bob")
				for n, wk := range refused {
					g := res.Groups[n]
					var wkErr *ldapsrc.WellKnownGroupError
					if !errors.As(g.Err, &wkErr) || wkErr.Name != wk || g.Members != nil {
						t.Errorf("%s: err %v, members %v; want it refused for reaching %s, granting nobody", n, g.Err, g.Members, wk)
						continue
					}
					if !strings.Contains(g.Err.Error(), "ldap.allowWellKnownGroups") {
						t.Errorf("%s: the error does not name the setting: %v", n, g.Err)
					}
				}
				if res.Skipped[model.SkipWellKnown] < len(refused)-1 {
					t.Errorf("skipped = %v: want the all-accounts groups counted under %s", res.Skipped, model.SkipWellKnown)
				}
			})
		}
		t.Run(mode+"/opted in", func(t *testing.T) {
			cfg := e.adConfig(func(c *config.LDAP) {
				c.MemberResolution, c.GroupBaseDN, c.UserBaseDN, c.AllowWellKnownGroups = mode, root, root, true
			})
			res, err := ldapsrc.New(cfg, zap.NewNop()).Resolve(context.Background(), []string{"runai-du-viewers"})
			if err != nil {
				t.Fatal(err)
			}
			g := res.Groups["runai-du-viewers"]
			if g.Err != nil || !slices.Contains(g.Members, "bob") || !slices.Contains(g.Members, "alice") {
				t.Errorf("with ldap.allowWellKnownGroups, Domain Users nested resolves to the domain: err %v, members %v", g.Err, g.Members)
			}
		})
	}
}

// TestInsiderEscapedGroupDN: a group creator names a group so that its DN
// read unescaped is a user's DN (CN=alice2\,OU\=People,OU=Site1,… against
// the user CN=alice2,OU=People,OU=Site1,…). The user stays the user, the
// group stays a group: its member never takes the user's place.
func TestInsiderEscapedGroupDN(t *testing.T) {
	e := newEnv(t)
	site, err := e.samba.AddOUUnder(e.ou, "Site1")
	if err != nil {
		t.Fatal(err)
	}
	people, err := e.samba.AddOUUnder(site, "People")
	if err != nil {
		t.Fatal(err)
	}
	alice2, err := e.samba.AddUser(people, "alice2", true)
	if err != nil {
		t.Fatal(err)
	}
	e.user("mallory", true)
	// Created as an AD admin (or a delegated group creator) would type it.
	c, err := e.samba.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	evil := `CN=alice2\,OU\=People,` + site
	add := ldap.NewAddRequest(evil, nil)
	add.Attribute("objectClass", []string{"group"})
	add.Attribute("sAMAccountName", []string{"alice2-ou-people"})
	if err := c.Add(add); err != nil {
		t.Fatalf("add the group %s: %v", evil, err)
	}
	if err := e.samba.AddMembers(evil, e.users["mallory"]); err != nil {
		t.Fatal(err)
	}
	// The server reads it back escaped (the = as \3D in AD).
	sr, err := c.Search(ldap.NewSearchRequest(site, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=group)", []string{"cn"}, nil))
	if err != nil || len(sr.Entries) != 1 {
		t.Fatalf("read the group back: %v", err)
	}
	t.Logf("the group reads back as %s; the user is %s", sr.Entries[0].DN, alice2)
	for _, g := range []string{"runai-p1-executors", "runai-p2-executors"} {
		if _, err := e.samba.AddGroup(e.ou, g); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.samba.AddMembers("CN=runai-p1-executors,"+e.ou, alice2); err != nil {
		t.Fatal(err)
	}
	if err := e.samba.AddMembers("CN=runai-p2-executors,"+e.ou, evil); err != nil {
		t.Fatal(err)
	}
	for _, mode := range resolutionModes {
		t.Run(mode, func(t *testing.T) {
			res := resolve(t, e.adConfig(func(c *config.LDAP) { c.MemberResolution = mode }), "runai-p1-executors", "runai-p2-executors")
			wantMembers(t, res, "runai-p1-executors", "alice2")
			wantMembers(t, res, "runai-p2-executors", "mallory")
		})
	}
}

// TestInsiderASCIIFolding: a group creator makes a group whose name matches
// a project's under Unicode case folding only (the Kelvin sign K for k),
// and an account whose ID is not ASCII. Neither is taken: the group is not
// the project's, the account is counted as invalid_id.
func TestInsiderASCIIFolding(t *testing.T) {
	e := newEnv(t)
	e.user("mallory", true)
	e.user("bob", true)
	kate, err := e.samba.AddUser(e.ou, "\u212Aate", true)
	if err != nil {
		t.Fatalf("add a user with a non-ASCII sAMAccountName: %v", err)
	}
	squat, err := e.samba.AddGroup(e.ou, "runai-\u212A-viewers")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.samba.AddMembers(squat, e.users["mallory"]); err != nil {
		t.Fatal(err)
	}
	team := e.group("runai-team-viewers", "bob")
	if err := e.samba.AddMembers(team, kate); err != nil {
		t.Fatal(err)
	}
	for _, mode := range resolutionModes {
		t.Run(mode, func(t *testing.T) {
			res := resolve(t, e.adConfig(func(c *config.LDAP) { c.MemberResolution = mode }), "runai-k-viewers", "runai-team-viewers")
			if g := res.Groups["runai-k-viewers"]; g.Found || len(g.Members) > 0 {
				t.Errorf("runai-k-viewers resolved to %s (%v): the Kelvin sign matched k", g.DN, g.Members)
			}
			wantMembers(t, res, "runai-team-viewers", "bob")
			if res.Skipped[model.SkipInvalidID] != 1 {
				t.Errorf("skipped = %v, want invalid_id 1 (the non-ASCII ID)", res.Skipped)
			}
		})
	}
}

// TestInsiderExpiredAccount: an account past its accountExpires loses
// access like a disabled one; one expiring later, or never, keeps it.
func TestInsiderExpiredAccount(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"past", "later", "never"} {
		e.user(u, true)
	}
	ticks := func(t0 time.Time) string {
		return strconv.FormatInt(t0.UnixNano()/100+116444736000000000, 10)
	}
	for u, v := range map[string]string{"past": ticks(time.Now().Add(-time.Hour)), "later": ticks(time.Now().Add(24 * time.Hour)), "never": "9223372036854775807"} {
		req := ldap.NewModifyRequest(e.users[u], nil)
		req.Replace("accountExpires", []string{v})
		if err := e.samba.Modify(req); err != nil {
			t.Fatalf("set accountExpires of %s: %v", u, err)
		}
	}
	e.group("runai-exp-viewers", "past", "later", "never")
	for _, mode := range resolutionModes {
		t.Run(mode, func(t *testing.T) {
			res := resolve(t, e.adConfig(func(c *config.LDAP) { c.MemberResolution = mode }), "runai-exp-viewers")
			wantMembers(t, res, "runai-exp-viewers", "later", "never")
			if res.Skipped[model.SkipExpired] != 1 {
				t.Errorf("skipped = %v, want expired 1", res.Skipped)
			}
		})
	}
}

// TestInsiderLargeGroupsElsewhere: a group creator's large groups under
// the group base, reached by no project group, are not read: the full
// expand read returns the user entries (AD groups have a sAMAccountName
// too, so they come without their members) and the reachable groups only.
func TestInsiderLargeGroupsElsewhere(t *testing.T) {
	e := newEnv(t)
	users := e.numberedUsers("u", 300)
	e.group("runai-small-viewers", users[0])
	for i := range 5 {
		dn, err := e.samba.AddGroup(e.ou, fmt.Sprintf("big%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.samba.AddMembers(dn, e.dns(users)...); err != nil {
			t.Fatal(err)
		}
	}
	// What the user search alone returns.
	c, err := e.samba.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sr, err := c.SearchWithPaging(ldap.NewSearchRequest(e.ou, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(|(sAMAccountName=*)(objectClass=contact))", []string{"1.1"}, nil), 500)
	if err != nil {
		t.Fatal(err)
	}
	src := ldapsrc.New(e.adConfig(nil), zap.NewNop())
	res, err := src.Resolve(context.Background(), []string{"runai-small-viewers"})
	if err != nil {
		t.Fatal(err)
	}
	wantMembers(t, res, "runai-small-viewers", users[0])
	if got, want := src.Stats.Entries.Load(), int64(len(sr.Entries)+1); got != want {
		t.Errorf("the full read returned %d entries, want %d (the user search's %d and the one project group): groups no project group reaches were read",
			got, want, len(sr.Entries))
	}
}

// TestInsiderRefusedPasswordNotRetried: after the directory refuses the
// bind password (data 52e), the same Source (the process) never binds with
// it again, whichever term or command asks: the account's badPwdCount stays
// at one. The right password is then tried at once.
func TestInsiderRefusedPasswordNotRetried(t *testing.T) {
	e := newEnv(t)
	setLockoutPolicy(t, e.samba, 5, 30*time.Minute)
	svcDN := "CN=" + strings.TrimSuffix(e.bindUPN, "@example.test") + "," + e.ou
	cfg := e.adConfig(nil)
	if err := os.WriteFile(cfg.BindPasswordFile, []byte("wrong-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := ldapsrc.New(cfg, zap.NewNop())
	for term := range 4 {
		_, err := src.Mark(context.Background())
		var ce *ldapsrc.CredentialsError
		if !errors.As(err, &ce) || ce.Locked {
			t.Fatalf("term %d: %v, want refused credentials", term, err)
		}
		src.Close() // the term ends
	}
	if n, locked := badPwdCount(t, e.samba, svcDN); n != 1 || locked {
		t.Errorf("badPwdCount = %d (locked %v) after four terms, want 1: the refused password was tried again", n, locked)
	}
	if err := os.WriteFile(cfg.BindPasswordFile, []byte(e.password), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Mark(context.Background()); err != nil {
		t.Errorf("with the right password: %v", err)
	}
}

// TestInsiderUnrelatedAttributeChange: a member's telephoneNumber (or any
// attribute resolution does not read) changing is reported by a poll at
// most once after a full cycle, not at every poll; a change that matters
// (disabled) is reported, and a poll whose cursor was not advanced (not
// applied) reports it again.
func TestInsiderUnrelatedAttributeChange(t *testing.T) {
	e := newEnv(t)
	e.user("alice", true)
	e.group("runai-tel-viewers", "alice")
	src := ldapsrc.New(e.adConfig(nil), zap.NewNop())
	ctx := context.Background()
	cur, err := src.Mark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	phone := func(v string) {
		t.Helper()
		req := ldap.NewModifyRequest(e.users["alice"], nil)
		req.Replace("telephoneNumber", []string{v})
		if err := e.samba.Modify(req); err != nil {
			t.Fatal(err)
		}
	}
	reported := func(cs *ldapsrc.ChangeSet) bool {
		return slices.ContainsFunc(cs.Entries, func(ch ldapsrc.Changed) bool { return dnIs(ch.DN, e.users["alice"]) })
	}
	poll := func(since ldapsrc.Cursor) *ldapsrc.ChangeSet {
		t.Helper()
		cs, err := src.Changes(ctx, since)
		if err != nil || cs.ServerChanged {
			t.Fatalf("poll: %v %+v", err, cs)
		}
		return cs
	}
	phone("+1 555 0100")
	cs := poll(cur)
	if !reported(cs) {
		t.Fatal("the first change after the cycle's mark was not reported")
	}
	cur = cs.Next
	for i := range 3 {
		phone(fmt.Sprintf("+1 555 01%02d", i+1))
		cs = poll(cur)
		if reported(cs) {
			t.Errorf("poll %d: alice reported for a telephoneNumber change", i)
		}
		cur = cs.Next
	}
	if err := e.samba.SetEnabled(e.users["alice"], false); err != nil {
		t.Fatal(err)
	}
	cs = poll(cur)
	if !reported(cs) {
		t.Fatal("alice disabled: not reported")
	}
	// Not applied: the caller polls again from the same cursor.
	if again := poll(cur); !reported(again) {
		t.Error("alice disabled: not reported again by a poll from the same cursor")
	}
}

// TestOpenLDAPDuplicateUID: two accounts answer to one uid (rfc2307), e.g.
// one made by someone who may create accounts in another OU; a memberUid
// naming it is ambiguous, the group's error, never the last entry read.
func TestOpenLDAPDuplicateUID(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	ous := slapdOUs(t, s, "people", "contractors")
	people, other := ous[0], ous[1]
	for i, u := range []string{"alice", "bob"} {
		if _, err := s.AddUser(people, u, harness.UserOpts{UIDNumber: 1000 + i, GIDNumber: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddUser(other, "alice", harness.UserOpts{UIDNumber: 2000, GIDNumber: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddPosixGroup(s.Suffix, "ml-team", 5000, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddPosixGroup(s.Suffix, "ml-other", 5001, "bob"); err != nil {
		t.Fatal(err)
	}
	res, err := ldapsrc.New(slapdConfig(t, s, config.SchemaRFC2307, nil), zap.NewNop()).Resolve(context.Background(), []string{"ml-team", "ml-other"})
	if err != nil {
		t.Fatal(err)
	}
	var me *ldapsrc.MemberError
	if g := res.Groups["ml-team"]; !errors.As(g.Err, &me) || len(me.Found) != 2 || g.Members != nil {
		t.Errorf("ml-team: err %v, members %v; want the duplicate uid alice to be the group's error", g.Err, g.Members)
	}
	wantMembers(t, res, "ml-other", "bob")
}

// TestCheckConfigGroupBase: check-config warns when groups are searched
// across the whole domain, and not for the shipped example's group OU.
func TestCheckConfigGroupBase(t *testing.T) {
	dir := t.TempDir() // check-config needs no cluster
	pw := filepath.Join(dir, "pw")
	writeFile(t, pw, []byte("x"))
	base := fmt.Sprintf("ldap:\n  urls: [ldaps://dc1.example.com:636]\n  bindDN: svc@EXAMPLE.COM\n  bindPasswordFile: %s\n  baseDN: DC=example,DC=com\n", pw)
	for body, warn := range map[string]bool{base: true, base + "  groupBaseDN: OU=Run:AI Groups,DC=example,DC=com\n": false} {
		path := filepath.Join(dir, "c.yaml")
		writeFile(t, path, []byte(body+groupsYAML))
		cmd := exec.Command(binary, "check-config", "--config", path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if code := exitStatus(cmd.Run()); code != 0 {
			t.Fatalf("check-config: exit %d\n%s", code, stderr.String())
		}
		if got := strings.Contains(stderr.String(), "ldap.groupBaseDN") && strings.Contains(stderr.String(), "whole domain"); got != warn {
			t.Errorf("check-config warned %v, want %v:\n%s", got, warn, stderr.String())
		}
	}
}

// TestOpenLDAPEntryBothGroupAndUser: one entry is a group and, through an
// auxiliary class, an account (groupOfNames + uidObject). Users and groups
// share one index: a member DN naming it is that group's error, never
// taken as the group (its members) or as the account.
func TestOpenLDAPEntryBothGroupAndUser(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	ous := slapdOUs(t, s, "people", "groups")
	people, groups := ous[0], ous[1]
	dn := map[string]string{}
	var err error
	for _, u := range []string{"alice", "mallory"} {
		if dn[u], err = s.AddUser(people, u, harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	both := "cn=team-lead," + groups
	req := ldap.NewAddRequest(both, nil)
	req.Attribute("objectClass", []string{"groupOfNames", "uidObject"})
	req.Attribute("cn", []string{"team-lead"})
	req.Attribute("uid", []string{"team-lead"})
	req.Attribute("member", []string{dn["mallory"]})
	if err := s.Add(req); err != nil {
		t.Fatalf("add %s: %v", both, err)
	}
	if _, err := s.AddGroupOfNames(groups, "runai-p-executors", dn["alice"], both); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddGroupOfNames(groups, "runai-q-executors", dn["alice"]); err != nil {
		t.Fatal(err)
	}
	res := resolve(t, slapdConfig(t, s, config.SchemaGroupOfNames, nil), "runai-p-executors", "runai-q-executors")
	var me *ldapsrc.MemberError
	if g := res.Groups["runai-p-executors"]; !errors.As(g.Err, &me) || g.Members != nil {
		t.Errorf("runai-p-executors: err %v, members %v; want the entry that is both a group and a user to be the group's error", g.Err, g.Members)
	}
	wantMembers(t, res, "runai-q-executors", "alice")
}
