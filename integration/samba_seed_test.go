// Seeding the test's Samba domain: users, groups, OUs and the lockout policy,
// each recorded in the env by name.

package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

// user adds a user to the test's OU and records it.
func (e *env) user(sam string, enabled bool) string {
	e.t.Helper()
	return e.addUserUnder(e.ou, sam, enabled)
}

// numberedUsers adds enabled users prefix0 … prefix<n-1> in one batch and
// returns their sAMAccountNames.
func (e *env) numberedUsers(prefix string, n int) []string {
	e.t.Helper()
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("%s%d", prefix, i))
	}
	dns, err := e.samba.AddUsers(e.ou, names, true)
	if err != nil {
		e.t.Fatalf("add users %s0..%s%d: %v", prefix, prefix, n-1, err)
	}
	for i, name := range names {
		e.users[name] = dns[i]
	}
	return names
}

// addUserUnder adds a user under parent and records it.
func (e *env) addUserUnder(parent, sam string, enabled bool) string {
	e.t.Helper()
	dn, err := e.samba.AddUser(parent, sam, enabled)
	if err != nil {
		e.t.Fatalf("add user %s: %v", sam, err)
	}
	e.users[sam] = dn
	return dn
}

func (e *env) ouUnder(parent, name string) string {
	e.t.Helper()
	dn, err := e.samba.AddOUUnder(parent, name)
	if err != nil {
		e.t.Fatalf("add OU %s: %v", name, err)
	}
	return dn
}

// group creates a group whose members are users (by sAMAccountName) or
// groups (by cn) created before.
func (e *env) group(cn string, members ...string) string {
	e.t.Helper()
	return e.addGroupUnder(e.ou, cn, members...)
}

// addGroupUnder adds a group under parent with members by name.
func (e *env) addGroupUnder(parent, cn string, members ...string) string {
	e.t.Helper()
	dn, err := e.samba.AddGroup(parent, cn)
	if err != nil {
		e.t.Fatalf("add group %s: %v", cn, err)
	}
	e.groups[cn] = dn
	if len(members) > 0 {
		if err := e.samba.AddMembers(dn, e.dns(members)...); err != nil {
			e.t.Fatalf("add members to %s: %v", cn, err)
		}
	}
	return dn
}

func (e *env) dns(names []string) []string {
	e.t.Helper()
	var out []string
	for _, m := range names {
		if dn, ok := e.users[m]; ok {
			out = append(out, dn)
		} else if dn, ok := e.groups[m]; ok {
			out = append(out, dn)
		} else {
			e.t.Fatalf("unknown member %q", m)
		}
	}
	return out
}

func (e *env) removeMembers(group string, members ...string) {
	e.t.Helper()
	if err := e.samba.RemoveMembers(e.groups[group], e.dns(members)...); err != nil {
		e.t.Fatalf("remove members from %s: %v", group, err)
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

// bindAccountDN is the DN of the env's service account.
func (e *env) bindAccountDN() string {
	return "CN=" + strings.TrimSuffix(e.bindUPN, "@example.test") + "," + e.ou
}

// setLockoutPolicy sets the domain's account lockout policy, as
// `samba-tool domain passwordsettings set --account-lockout-threshold=N
// --account-lockout-duration=M --reset-account-lockout-after=M` does: the
// same attributes on the domain object (durations in negative 100ns units).
func setLockoutPolicy(t *testing.T, s *harness.Samba, threshold int, d time.Duration) {
	t.Helper()
	c, err := s.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ticks := strconv.FormatInt(-int64(d/100), 10)
	req := ldap.NewModifyRequest(s.BaseDN, nil)
	req.Replace("lockoutThreshold", []string{strconv.Itoa(threshold)})
	req.Replace("lockoutDuration", []string{ticks})
	req.Replace("lockOutObservationWindow", []string{ticks})
	if err := c.Modify(req); err != nil {
		t.Fatalf("set the lockout policy: %v", err)
	}
}

// badPwdCount reads the account's failed-bind count and whether it is
// locked out.
func badPwdCount(t *testing.T, s *harness.Samba, dn string) (int, bool) {
	t.Helper()
	c, err := s.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"badPwdCount", "lockoutTime"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("read badPwdCount of %s: %v", dn, err)
	}
	n, _ := strconv.Atoi(res.Entries[0].GetAttributeValue("badPwdCount"))
	lt := res.Entries[0].GetAttributeValue("lockoutTime")
	return n, lt != "" && lt != "0"
}
