package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// TestSlapdAccessLog: with AccessLog, a delete is logged under cn=accesslog (auditDelete with
// reqStart, reqDN and the deleted entry's entryUUID), readable by ReaderDN, and the main
// suffix entry names the log in auditContext. With NoRefInt the groups keep naming it.
func TestSlapdAccessLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := StartSlapd(ctx, t.TempDir(), SlapdOptions{AccessLog: true, SyncProv: true, NoRefInt: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ou, err := s.AddOU("people")
	if err != nil {
		t.Fatal(err)
	}
	dn, err := s.AddUser(ou, "gone", UserOpts{})
	if err != nil {
		t.Fatal(err)
	}
	group, err := s.AddGroupOfNames(s.Suffix, "g", dn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.ReaderConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"entryUUID"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	uuid := res.Entries[0].GetAttributeValue("entryUUID")
	if err := s.Delete(dn); err != nil {
		t.Fatal(err)
	}
	res, err = c.Search(ldap.NewSearchRequest(group, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"member"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Entries[0].GetAttributeValues("member"); len(got) != 1 || !strings.EqualFold(got[0], dn) {
		t.Errorf("without refint the group's members are %q, want still the deleted %s", got, dn)
	}
	res, err = c.Search(ldap.NewSearchRequest(s.Suffix, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"auditContext", "contextCSN"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Entries[0].GetAttributeValue("auditContext"); !strings.EqualFold(got, SlapdAccessLogSuffix) {
		t.Errorf("auditContext of %s = %q, want %s", s.Suffix, got, SlapdAccessLogSuffix)
	}
	root, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"namingContexts"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if ncs := root.Entries[0].GetAttributeValues("namingContexts"); len(ncs) != 2 {
		t.Errorf("rootDSE namingContexts = %q, want the suffix and %s", ncs, SlapdAccessLogSuffix)
	}
	res, err = c.Search(ldap.NewSearchRequest(SlapdAccessLogSuffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=auditDelete)", []string{"*", "+"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("%d auditDelete entries, want 1", len(res.Entries))
	}
	e := res.Entries[0]
	if got := e.GetAttributeValue("reqDN"); !strings.EqualFold(got, dn) {
		t.Errorf("reqDN = %q, want %q", got, dn)
	}
	// reqStart is the second and a per-second counter, not microseconds: "20261201224956.000007Z".
	if got := e.GetAttributeValue("reqStart"); len(got) != len("20060102150405.000000Z") || !strings.HasSuffix(got, "Z") {
		t.Errorf("reqStart = %q, want a generalized time with six fraction digits", got)
	}
	if got := e.GetAttributeValue("reqEntryUUID"); !strings.EqualFold(got, uuid) {
		t.Errorf("reqEntryUUID = %q, want the entry's %q", got, uuid)
	}
}
