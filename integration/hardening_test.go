package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// TestContactsAndHiddenIDsAreSkipped puts into one real AD group an
// enabled user, an AD contact (objectClass person and contact, with a mail
// address but no account), and users whose IDs carry a zero-width space and
// a right-to-left override (each displays like an innocent name). With
// userIDAttribute mail, the contact used to become a subject; the hidden
// characters spoofed names in diff, Events and logs. Both resolutions
// (inChain, expand) bind only the real user and count the rest.
func TestContactsAndHiddenIDsAreSkipped(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user("alice", true)
	zw := e.user("bob\u200b", true)    // "bob" followed by a zero-width space
	rlo := e.user("\u202eecila", true) // a right-to-left override: shows as "alice"
	admin, err := e.samba.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	contact := "CN=Outside Partner," + e.ou
	add := ldap.NewAddRequest(contact, nil)
	add.Attribute("objectClass", []string{"contact"})
	add.Attribute("mail", []string{"partner@example.test"})
	if err := admin.Add(add); err != nil {
		t.Fatalf("add contact: %v", err)
	}
	g := e.group("runai-alpha-executors", "alice")
	if err := e.samba.AddMembers(g, contact, zw, rlo); err != nil {
		t.Fatal(err)
	}
	// Test premise: AD stores the hidden characters as given.
	res, err := admin.Search(ldap.NewSearchRequest(zw, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"sAMAccountName"}, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("sAMAccountName") != "bob\u200b" {
		t.Fatalf("premise: sAMAccountName with a zero-width space not stored as given: %v %v", err, res)
	}

	for _, resolution := range []string{config.ResolveInChain, config.ResolveExpand} {
		for _, idAttr := range []string{"sAMAccountName", "mail"} {
			t.Run(resolution+"/"+idAttr, func(t *testing.T) {
				cfg, err := config.Load(e.config("  memberResolution: " + resolution + "\n  userIDAttribute: " + idAttr + "\n" + groupsYAML + sampleProjects))
				if err != nil {
					t.Fatal(err)
				}
				got, err := ldapsrc.New(cfg.LDAP, zap.NewNop()).Resolve(ctx, []string{"runai-alpha-executors"})
				if err != nil {
					t.Fatal(err)
				}
				grp := got.Groups["runai-alpha-executors"]
				want := "alice"
				if idAttr == "mail" {
					want = "alice@example.test"
				}
				if grp.Err != nil || strings.Join(grp.Members, ",") != want {
					t.Fatalf("members = %q (err %v), want only %s", grp.Members, grp.Err, want)
				}
				if got.Skipped[model.SkipContact] != 1 {
					t.Errorf("contacts skipped = %d, want 1 (%v)", got.Skipped[model.SkipContact], got.Skipped)
				}
				if got.Skipped[model.SkipInvalidID] != 2 {
					t.Errorf("invalid IDs = %d, want 2 (%v)", got.Skipped[model.SkipInvalidID], got.Skipped)
				}
			})
		}
	}
}
