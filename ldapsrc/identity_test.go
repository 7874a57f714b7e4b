package ldapsrc

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func TestFormatGUID(t *testing.T) {
	// Read from Samba: the tombstone's DN carries the same GUID in text
	// (CN=victim\0ADEL:708e23cc-d91a-47ad-a243-155917f06233,...).
	raw, _ := hex.DecodeString("cc238e701ad9ad47a243155917f06233")
	if s, ok := FormatGUID(raw); !ok || s != "708e23cc-d91a-47ad-a243-155917f06233" {
		t.Errorf("FormatGUID = %q, %v", s, ok)
	}
	for _, bad := range [][]byte{nil, raw[:15], append(slices.Clone(raw), 0)} {
		if _, ok := FormatGUID(bad); ok {
			t.Errorf("FormatGUID accepted %d bytes", len(bad))
		}
	}
}

func TestIdentityKey(t *testing.T) {
	raw, _ := hex.DecodeString("cc238e701ad9ad47a243155917f06233")
	e := ldap.NewEntry("CN=a,DC=x", map[string][]string{"objectGUID": {string(raw)}, "entryUUID": {"0D5E3A4C-1111-4222-8333-444455556666"}})
	if k := identityKey(e, attrObjectGUID); k != "guid:708e23cc-d91a-47ad-a243-155917f06233" {
		t.Errorf("objectGUID key %q", k)
	}
	if k := identityKey(e, attrEntryUUID); k != "uuid:0d5e3a4c-1111-4222-8333-444455556666" {
		t.Errorf("entryUUID key %q", k)
	}
	// Anything but a well-formed identity falls back to the DN.
	for _, v := range []string{"", "not-a-uuid", "0d5e3a4c-1111-4222-8333-44445555666g", "CN=a,DC=x"} {
		e := ldap.NewEntry("CN=a,DC=x", map[string][]string{"entryUUID": {v}, "objectGUID": {v}})
		if k := identityKey(e, attrEntryUUID); k != "" {
			t.Errorf("entryUUID %q gave key %q", v, k)
		}
		if k := identityKey(e, attrObjectGUID); k != "" {
			t.Errorf("objectGUID %q gave key %q", v, k)
		}
	}
	if reachKey("CN=A, DC=X", "") != "cn=a,dc=x" || reachKey("CN=A,DC=X", "guid:1") != "guid:1" {
		t.Error("reachKey")
	}
	if l := IdentityLabel("guid:708e23cc-d91a-47ad-a243-155917f06233"); l != "objectGUID 708e23cc-d91a-47ad-a243-155917f06233" {
		t.Errorf("label %q", l)
	}
}

func TestDomainRoot(t *testing.T) {
	for in, want := range map[string]string{
		"OU=x,DC=example,DC=test":   "DC=example,DC=test",
		"OU=x, dc=example, dc=test": "dc=example,dc=test",
		"DC=example,DC=test":        "DC=example,DC=test",
		"ou=people,o=corp":          "ou=people,o=corp",
	} {
		if got := domainRoot(in); got != want {
			t.Errorf("domainRoot(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCoverBases(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want []string
	}{
		{[]string{"DC=x", "OU=G,DC=x", "OU=U,DC=x"}, []string{"DC=x"}},
		{[]string{"OU=A,DC=x", "OU=G,DC=x", "OU=U,DC=x"}, []string{"OU=A,DC=x", "OU=G,DC=x", "OU=U,DC=x"}},
		{[]string{"OU=A,DC=x", "ou=a, dc=x", "OU=U,OU=A,DC=x"}, []string{"OU=A,DC=x"}},
		{[]string{"OU=U,OU=A,DC=x", "", "OU=A,DC=x"}, []string{"OU=A,DC=x"}},
	} {
		if got := coverBases(c.in...); !slices.Equal(got, c.want) {
			t.Errorf("coverBases(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	ncs := []string{"DC=x", "CN=Configuration,DC=x", "DC=DomainDnsZones,DC=x"}
	if got := coveringContext(ncs, []string{"OU=G,DC=x", "OU=U,DC=x"}); got != "DC=x" {
		t.Errorf("coveringContext = %q", got)
	}
	if got := coveringContext(ncs, []string{"OU=G,DC=y"}); got != "" {
		t.Errorf("coveringContext outside every context = %q", got)
	}
}

// tombstoneDC is a fakeDC whose naming context holds tombstones the bind
// account may read, and whose changes are a rename, a move out of the
// bases, a deletion and a group made outside the group base.
type tombstoneDC struct{ fakeDC }

func guidBytes(b byte) string { return strings.Repeat(string([]byte{b}), 16) }

func (d *tombstoneDC) handle(req fakeSearch) fakeAnswer {
	switch {
	case req.BaseDN == "" && slices.Contains(req.Attrs, "namingContexts"):
		return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry("", map[string][]string{
			"namingContexts": {"CN=Configuration," + fakeBase, fakeBase}})}}
	case strings.HasPrefix(req.BaseDN, "<WKGUID="+deletedObjectsWKGUID+","+fakeBase+">"):
		return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(`CN=x\0ADEL:1,CN=Deleted Objects,`+fakeBase, nil)}}
	case strings.Contains(req.Filter, "uSNChanged"):
		if req.BaseDN != fakeBase {
			return fakeAnswer{Code: ldap.LDAPResultUnwillingToPerform}
		}
		return fakeAnswer{Entries: []*ldap.Entry{
			ldap.NewEntry("CN=alicia,OU=People,"+fakeBase, map[string][]string{"objectClass": {"user"}, "sAMAccountName": {"alicia"}, "objectGUID": {guidBytes(1)}}),
			ldap.NewEntry("CN=carol,OU=Elsewhere,"+fakeBase, map[string][]string{"objectClass": {"user"}, "sAMAccountName": {"carol"}, "objectGUID": {guidBytes(2)}}),
			ldap.NewEntry(`CN=erin\0ADEL:0202,CN=Deleted Objects,`+fakeBase, map[string][]string{"objectClass": {"user"}, "isDeleted": {"TRUE"}, "sAMAccountName": {"erin"}, "objectGUID": {guidBytes(3)}}),
			ldap.NewEntry("CN=runai-a-executors,OU=Elsewhere,"+fakeBase, map[string][]string{"objectClass": {"group"}, "cn": {"runai-a-executors"}, "objectGUID": {guidBytes(4)}}),
		}}
	}
	return d.fakeDC.handle(req)
}

func TestChangesSeeRenamesMovesAndDeletions(t *testing.T) {
	dc := &tombstoneDC{fakeDC{service: "CN=DC1", usn: 100}}
	srv := newFakeLDAP(t, dc.handle)
	s := fakeSource(t, srv.URL(), config.SchemaActiveDirectory, 500)
	s.cfg.UserBaseDN = "OU=People," + fakeBase
	s.cfg.GroupBaseDN = "OU=Groups," + fakeBase
	defer s.ClosePolls()
	ctx := context.Background()
	mark, err := s.Mark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mark.Base != fakeBase || !mark.Deletions {
		t.Fatalf("mark = %+v, want the naming context and deletions visible", mark)
	}
	dc.mu.Lock()
	dc.usn = 110
	dc.mu.Unlock()
	cs, err := s.Changes(ctx, mark)
	if err != nil {
		t.Fatal(err)
	}
	if !cs.Next.Deletions || cs.Next.Base != fakeBase {
		t.Errorf("next cursor %+v lost the base or deletions", cs.Next)
	}
	byDN := map[string]Changed{}
	for _, c := range cs.Entries {
		byDN[strings.SplitN(c.DN, ",", 2)[0]] = c
	}
	id := func(b byte) string { s, _ := FormatGUID([]byte(guidBytes(b))); return guidPrefix + s }
	if c := byDN["CN=alicia"]; c.ID != id(1) || c.Outside || c.Deleted || !slices.Equal(c.IDKeys, []string{UIDKey("alicia")}) {
		t.Errorf("renamed user: %+v", c)
	}
	if c := byDN["CN=carol"]; c.ID != id(2) || !c.Outside || len(c.IDKeys) != 0 {
		t.Errorf("user moved out of the bases: %+v", c)
	}
	if c := byDN[`CN=erin\0ADEL:0202`]; c.ID != id(3) || !c.Deleted || !c.Outside || len(c.IDKeys) != 0 {
		t.Errorf("deleted user: %+v", c)
	}
	// A group outside the group base is matched by identity only: its name
	// must not make it pass for the project's group.
	if c := byDN["CN=runai-a-executors"]; !c.Group || len(c.Names) != 0 || !c.Outside {
		t.Errorf("group outside the group base: %+v", c)
	}
}

// splitAD answers like AD with users under OU=People and groups under
// OU=Groups: the group runai-a-executors holds u0001 and the nested group
// inner (u0002, and u0009, which lies outside both bases).
func splitAD(t *testing.T) *fakeLDAP {
	const (
		top   = "CN=runai-a-executors,OU=Groups," + fakeBase
		inner = "CN=inner,OU=Groups," + fakeBase
		away  = "CN=u0009,OU=Away," + fakeBase
	)
	return newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		inChain := strings.Contains(req.Filter, inChainRule)
		switch {
		case !inChain && strings.Contains(req.Filter, "objectClass=group"):
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(top, map[string][]string{
				"cn": {"runai-a-executors"}, "member": {userDN(1), inner}, "objectGUID": {guidBytes(10)}})}}
		case inChain && req.BaseDN == "OU=People,"+fakeBase:
			// The rule follows nesting wherever the groups are; the search
			// base limits what comes back.
			return fakeAnswer{Entries: []*ldap.Entry{userEntry(1), userEntry(2)}}
		case inChain && req.BaseDN == "OU=Groups,"+fakeBase && strings.Contains(req.Filter, "(objectClass=group)"):
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(inner, map[string][]string{
				"objectClass": {"group"}, "member": {userDN(2), away}, "objectGUID": {guidBytes(11)}})}}
		case strings.Contains(req.Filter, "distinguishedName="):
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(away, map[string][]string{"objectGUID": {guidBytes(12)}})}}
		}
		t.Errorf("unexpected search %+v", req)
		return fakeAnswer{Code: ldap.LDAPResultOperationsError}
	})
}

func TestInChainWithSplitBasesFindsNestedGroups(t *testing.T) {
	f := splitAD(t)
	src := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 1000)
	src.cfg.UserBaseDN = "OU=People," + fakeBase
	src.cfg.GroupBaseDN = "OU=Groups," + fakeBase
	src.Reach = true
	res, err := src.Resolve(context.Background(), []string{"runai-a-executors"})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Groups["runai-a-executors"]
	if g.Err != nil || !slices.Equal(g.Members, []string{"u0001", "u0002"}) {
		t.Fatalf("members %v, err %v", g.Members, g.Err)
	}
	// The nested group is a group, not a member outside the base; the one
	// member really outside is counted so.
	if res.Skipped[model.SkipOutsideBase] != 1 {
		t.Errorf("skipped %v, want one outside_base (u0009)", res.Skipped)
	}
	id := func(b byte) string { s, _ := FormatGUID([]byte(guidBytes(b))); return guidPrefix + s }
	for _, want := range []string{id(10), id(11), id(12)} {
		if !slices.Contains(g.Reached, want) {
			t.Errorf("reached %v lacks %s (the group, the nested group, the member outside the bases)", g.Reached, want)
		}
	}

	// With one base the nested groups come back from the one search: no
	// extra search.
	f2 := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		if strings.Contains(req.Filter, inChainRule) {
			return fakeAnswer{Entries: []*ldap.Entry{userEntry(1)}}
		}
		return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry("CN=runai-a-executors,"+fakeBase, map[string][]string{
			"cn": {"runai-a-executors"}, "member": {userDN(1)}})}}
	})
	src2 := fakeSource(t, f2.URL(), config.SchemaActiveDirectory, 1000)
	if _, err := src2.Resolve(context.Background(), []string{"runai-a-executors"}); err != nil {
		t.Fatal(err)
	}
	if n := len(f2.Searches()); n != 2 {
		t.Errorf("one base: %d searches, want 2 (the group, its members)", n)
	}
}
