package ldapsrc

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// ambiguousDirectory answers an AD read (memberResolution expand) where two
// groups answer to runai-p3-viewers: A holds u0001 and, nested, u0002; B
// holds u0003 and the disabled u0004.
func ambiguousDirectory(t *testing.T) *fakeLDAP {
	t.Helper()
	a := "CN=runai-p3-viewers,OU=A," + fakeBase
	b := "CN=runai-p3-viewers,OU=B," + fakeBase
	sub := "CN=sub,OU=A," + fakeBase
	group := func(dn, cn string, members ...string) *ldap.Entry {
		return ldap.NewEntry(dn, map[string][]string{"cn": {cn}, "objectClass": {"group"}, "member": members})
	}
	groups := []*ldap.Entry{
		group(a, "runai-p3-viewers", userDN(1), sub),
		group(b, "runai-p3-viewers", userDN(3), userDN(4)),
		group(sub, "sub", userDN(2)),
	}
	users := []*ldap.Entry{userEntry(1), userEntry(2), userEntry(3), userEntry(4)}
	users[3] = ldap.NewEntry(userDN(4), map[string][]string{"objectClass": {"user"}, "sAMAccountName": {"U0004"}, "userAccountControl": {"514"}})
	return newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		f := strings.ToLower(req.Filter)
		var out []*ldap.Entry
		switch {
		case strings.Contains(f, "(objectclass=group)"):
			for _, g := range groups {
				if strings.Contains(f, "(cn="+strings.ToLower(g.GetAttributeValue("cn"))+")") ||
					strings.Contains(f, "(distinguishedname="+strings.ToLower(g.DN)+")") {
					out = append(out, g)
				}
			}
		case strings.Contains(f, "samaccountname=*"):
			for _, u := range users {
				if !strings.Contains(f, "distinguishedname=") || strings.Contains(f, "(distinguishedname="+strings.ToLower(u.DN)+")") {
					out = append(out, u)
				}
			}
		}
		return fakeAnswer{Entries: out}
	})
}

// An ambiguous name grants nothing, but says whom it might grant: every
// candidate's members, resolved like a group of their own (nesting
// followed, disabled accounts left out), so the plan holds back only them.
func TestAmbiguousNameMightGrantEveryCandidatesMembers(t *testing.T) {
	for _, targeted := range []bool{false, true} {
		t.Run(fmt.Sprintf("targeted=%v", targeted), func(t *testing.T) {
			s := fakeSource(t, ambiguousDirectory(t).URL(), "activeDirectory", 0)
			s.cfg.MemberResolution = "expand"
			resolve := s.Resolve
			if targeted {
				resolve = s.ResolveTargeted
			}
			res, err := resolve(context.Background(), []string{"runai-p3-viewers"})
			if err != nil {
				t.Fatal(err)
			}
			g := res.Groups["runai-p3-viewers"]
			if g.Err == nil || !strings.Contains(g.Err.Error(), "ambiguous") {
				t.Fatalf("Err = %v, want the name reported ambiguous", g.Err)
			}
			if len(g.Members) != 0 {
				t.Errorf("Members = %v, want none from an ambiguous name", g.Members)
			}
			want := []string{"u0001", "u0002", "u0003"}
			if !reflect.DeepEqual(g.MightGrant, want) {
				t.Errorf("MightGrant = %v, want %v", g.MightGrant, want)
			}
		})
	}
}

// A candidate that cannot be resolved (here A, nesting deeper than
// ldap.maxNestingDepth) leaves MightGrant unknown (nil), never a partial list.
func TestAmbiguousNameWithAFailedCandidateMightGrantUnknown(t *testing.T) {
	s := fakeSource(t, ambiguousDirectory(t).URL(), "activeDirectory", 0)
	s.cfg.MemberResolution = "expand"
	s.cfg.MaxNestingDepth = 1
	res, err := s.Resolve(context.Background(), []string{"runai-p3-viewers"})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Groups["runai-p3-viewers"]
	if g.Err == nil {
		t.Fatal("Err = nil, want the ambiguity")
	}
	if g.MightGrant != nil {
		t.Errorf("MightGrant = %v, want nil when a candidate fails", g.MightGrant)
	}
}

// Two groups answer to one name from containers whose names differ only
// under Unicode case folding (the Kelvin sign K for K): two entries, so
// the name is ambiguous, never one of them taken as the other's duplicate
// (DNs are compared as the one index keys them, in ASCII).
func TestAmbiguousNameAcrossUnicodeFoldedDNs(t *testing.T) {
	a := "CN=runai-p4-viewers,OU=Kube," + fakeBase
	b := "CN=runai-p4-viewers,OU=\u212Aube," + fakeBase
	srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		if strings.Contains(req.Filter, "(objectClass=group)") && strings.Contains(req.Filter, "(cn=runai-p4-viewers)") {
			return fakeAnswer{Entries: []*ldap.Entry{
				ldap.NewEntry(a, map[string][]string{"cn": {"runai-p4-viewers"}, "objectClass": {"group"}, "member": {userDN(1)}}),
				ldap.NewEntry(b, map[string][]string{"cn": {"runai-p4-viewers"}, "objectClass": {"group"}, "member": {userDN(2)}}),
			}}
		}
		return fakeAnswer{}
	})
	for _, mode := range []string{"inChain", "expand"} {
		t.Run(mode, func(t *testing.T) {
			s := fakeSource(t, srv.URL(), "activeDirectory", 0)
			s.cfg.MemberResolution = mode
			res, err := s.Resolve(context.Background(), []string{"runai-p4-viewers"})
			if err != nil {
				t.Fatal(err)
			}
			if g := res.Groups["runai-p4-viewers"]; g.Err == nil || !strings.Contains(g.Err.Error(), "ambiguous") || len(g.Members) != 0 {
				t.Errorf("Err = %v, members %v (DN %s): want the name ambiguous", g.Err, g.Members, g.DN)
			}
		})
	}
}
