package ldapsrc

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func TestWellKnownName(t *testing.T) {
	for sid, want := range map[string]string{
		"S-1-1-0": "Everyone", "S-1-5-11": "Authenticated Users",
		"S-1-5-21-1-2-3-513": "Domain Users", "S-1-5-21-1-2-3-515": "Domain Computers",
		"S-1-5-21-1-2-3-512": "", "S-1-5-21-1-2-3-1513": "", "S-1-5-32-513": "", "": "",
	} {
		if got := wellKnownName(sid); got != want {
			t.Errorf("wellKnownName(%q) = %q, want %q", sid, got, want)
		}
	}
	for dn, want := range map[string]string{
		"CN=S-1-5-11,CN=ForeignSecurityPrincipals,DC=x": "S-1-5-11",
		"cn=s-1-1-0,cn=foreignsecurityprincipals,dc=x":  "S-1-1-0",
		"CN=S-1-5-11,OU=People,DC=x":                    "",
	} {
		if got := foreignSID(dn); got != want {
			t.Errorf("foreignSID(%q) = %q, want %q", dn, got, want)
		}
	}
	if got := wellKnownPrincipal("CN=Everyone,CN=WellKnown Security Principals,CN=Configuration,DC=x"); got != "Everyone" {
		t.Errorf("wellKnownPrincipal = %q", got)
	}
	if got := wellKnownPrincipal("CN=Everyone,OU=Groups,DC=x"); got != "" {
		t.Errorf("a group named Everyone in an OU is a principal: %q", got)
	}
}

func TestExpired(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ticks := func(t time.Time) string { return strconv.FormatInt(t.UnixNano()/100+windowsEpochOffset, 10) }
	for v, want := range map[string]bool{
		"":                         false,
		"0":                        false,
		"9223372036854775807":      false, // never
		ticks(now.Add(-time.Hour)): true,
		ticks(now):                 true,
		ticks(now.Add(time.Hour)):  false,
		"not a number":             false,
	} {
		e := ldap.NewEntry("CN=u,DC=x", map[string][]string{"accountExpires": {v}})
		if got := expired(e, now); got != want {
			t.Errorf("accountExpires %q: expired = %v, want %v", v, got, want)
		}
	}
}

// The digest memo drops a user entry only when an applied poll (its Next
// became the next poll's since) reported it with the same digest.
func TestDigestMemo(t *testing.T) {
	var m digestMemo
	c0, c1, c2 := Cursor{USN: 1}, Cursor{USN: 2}, Cursor{USN: 3}
	m.begin(c0)
	if m.seen("alice", "d1") {
		t.Error("first sight dropped")
	}
	m.end(c1, true)
	m.begin(c1) // applied
	if !m.seen("alice", "d1") {
		t.Error("same digest after an applied poll reported again")
	}
	if m.seen("alice", "d2") {
		t.Error("a changed digest dropped")
	}
	m.end(c2, true)
	m.begin(c1) // the poll from c1 was not applied: forget
	if m.seen("alice", "d2") {
		t.Error("a digest from a poll that was not applied dropped an entry")
	}
	m.end(c2, false)
	m.begin(c2)
	if m.seen("alice", "d2") {
		t.Error("a failed poll's digests were kept")
	}
}

// A message over ldap.maxPacketBytes fails the read with an error naming
// the setting, and nothing of it is used. No real server can be made to
// send a 2 MiB entry on demand in a unit test; a fake one can.
func TestPacketCap(t *testing.T) {
	big := make([]string, 0, 40_000)
	for i := range 40_000 {
		big = append(big, userDN(i))
	}
	srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry("CN=big,"+fakeBase, map[string][]string{
			"cn": {"big"}, "objectClass": {"group"}, "member": big})}}
	})
	s := fakeSource(t, srv.URL(), "activeDirectory", 500)
	s.cfg.MemberResolution = "expand"
	defer setMaxPacket(0)
	setMaxPacket(1 << 20)
	res, err := s.Resolve(context.Background(), []string{"big"})
	if err == nil {
		if g := res.Groups["big"]; g.Err == nil {
			t.Fatalf("a 2 MiB message was read under a 1 MiB cap: %d members", len(g.Members))
		} else {
			err = g.Err
		}
	}
	if !strings.Contains(err.Error(), "ldap.maxPacketBytes") {
		t.Errorf("error = %v, want it to name ldap.maxPacketBytes", err)
	}
}
