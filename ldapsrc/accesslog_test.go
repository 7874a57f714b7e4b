package ldapsrc

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

func TestLogWindowStartAndMarkTime(t *testing.T) {
	if got, want := logWindowStart("20261201224956.000007Z"), "20261201224856.000007Z"; got != want {
		t.Errorf("logWindowStart = %q, want %q", got, want)
	}
	// Across midnight and a month.
	if got, want := logWindowStart("20261201000030.000000Z"), "20261130235930.000000Z"; got != want {
		t.Errorf("logWindowStart across midnight = %q, want %q", got, want)
	}
	if got := logWindowStart("garbage"); got != "garbage" {
		t.Errorf("logWindowStart of a malformed cursor = %q, want it unchanged", got)
	}
	// The CSN's microseconds are not reqStart's counter: the mark keeps the second only.
	if got, want := logMarkTime("20261201224956.029702Z#000000#000#000000"), "20261201224856.000000Z"; got != want {
		t.Errorf("logMarkTime = %q, want %q", got, want)
	}
	if got := logMarkTime("x"); got != "" {
		t.Errorf("logMarkTime of a malformed CSN = %q, want empty", got)
	}
}

func TestNewLogDeletions(t *testing.T) {
	const uuid = "45f4f398-8225-1041-835e-77b1325fa47d"
	entries := []logEntry{
		{Start: "20261201224956.000007Z", DN: "uid=Gone,ou=People,dc=example,dc=org", EntryUUID: "45F4F398-8225-1041-835E-77B1325FA47D"},
		{Start: "20261201224956.000009Z", DN: "cn=proj,ou=groups,dc=example,dc=org", EntryUUID: "not-a-uuid"},
		{Start: "20261201224950.000001Z", DN: "uid=seen,dc=example,dc=org"}, // reported by an earlier poll
		{Start: "20261201224700.000000Z", DN: "uid=old,dc=example,dc=org"},  // before the window
		{Start: "20261201224955.000000Z", DN: "uid=late,dc=example,dc=org"}, // began before the cursor, logged after it
		{Start: "", DN: "uid=broken,dc=example,dc=org"},                     // no reqStart
		{Start: "20261201224957.000000Z", DN: ""},                           // no reqDN
	}
	out, next, seen := newLogDeletions(entries, []string{"20261201224950.000001Z", "20261201224956.000001Z"}, "20261201224956.000001Z")
	var dns []string
	for _, ch := range out {
		if !ch.Deleted || !ch.Outside || ch.Group || len(ch.Names) > 0 || len(ch.IDKeys) > 0 {
			t.Errorf("%s: %+v: a logged deletion must be a deleted entry outside the bases with no names or IDs (it never adds anyone)", ch.DN, ch)
		}
		dns = append(dns, ch.DN)
	}
	if want := []string{"uid=Gone,ou=People,dc=example,dc=org", "cn=proj,ou=groups,dc=example,dc=org", "uid=late,dc=example,dc=org"}; !slices.Equal(dns, want) {
		t.Fatalf("reported %q, want %q", dns, want)
	}
	if out[0].ID != "uuid:"+uuid || out[0].Key != normalizeDN("uid=gone,ou=people,dc=example,dc=org") {
		t.Errorf("identity %q key %q, want uuid:%s and the normalised DN", out[0].ID, out[0].Key, uuid)
	}
	if out[1].ID != "" {
		t.Errorf("a malformed reqEntryUUID became identity %q", out[1].ID)
	}
	if next != "20261201224956.000009Z" {
		t.Errorf("next cursor %q, want the newest reqStart", next)
	}
	wantSeen := []string{"20261201224950.000001Z", "20261201224955.000000Z", "20261201224956.000001Z", "20261201224956.000007Z", "20261201224956.000009Z"}
	if !slices.Equal(seen, wantSeen) {
		t.Errorf("seen %q, want %q", seen, wantSeen)
	}

	// The next poll gets the same log back (its window overlaps): nothing is reported twice,
	// and what falls out of the window is forgotten.
	out, next2, seen2 := newLogDeletions(append(entries, logEntry{Start: "20261201225100.000000Z", DN: "uid=new,dc=example,dc=org"}), seen, next)
	if len(out) != 1 || out[0].DN != "uid=new,dc=example,dc=org" {
		t.Errorf("second poll reported %+v, want only uid=new", out)
	}
	if next2 != "20261201225100.000000Z" {
		t.Errorf("second cursor %q", next2)
	}
	if want := []string{"20261201225100.000000Z"}; !slices.Equal(seen2, want) {
		t.Errorf("second seen %q, want %q (older than a minute before the cursor dropped)", seen2, want)
	}

	// An empty log keeps the cursor.
	out, next3, seen3 := newLogDeletions(nil, seen2, next2)
	if len(out) != 0 || next3 != next2 || !slices.Equal(seen3, seen2) {
		t.Errorf("empty log: %+v %q %q", out, next3, seen3)
	}
}

// TestMarkFindsAccessLog: the mark uses the log the suffix's auditContext
// names only when it is one of the server's own naming contexts and its
// suffix entry reads back; a poll then reports the logged deletions.
func TestMarkFindsAccessLog(t *testing.T) {
	const csn = "20261201224956.029702Z#000000#000#000000"
	const uuid = "45f4f398-8225-1041-835e-77b1325fa47d"
	for _, tc := range []struct {
		name         string
		auditContext string
		contexts     []string
		logReadable  bool
		want         string
	}{
		{"readable", "cn=accesslog", []string{fakeBase, "cn=accesslog"}, true, "cn=accesslog"},
		{"not a naming context of the server", "ou=log," + fakeBase, []string{fakeBase, "cn=accesslog"}, true, ""},
		{"not readable", "cn=accesslog", []string{fakeBase, "cn=accesslog"}, false, ""},
		{"no overlay", "", []string{fakeBase}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			contextCSN := csn
			var logFilters []string
			var logCode uint16
			srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
				switch {
				case req.BaseDN == "" && req.Scope == ldap.ScopeBaseObject:
					return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry("", map[string][]string{"namingContexts": tc.contexts})}}
				case strings.EqualFold(req.BaseDN, fakeBase) && req.Scope == ldap.ScopeBaseObject:
					attrs := map[string][]string{"entryCSN": {csn}, "contextCSN": {contextCSN}}
					if tc.auditContext != "" {
						attrs["auditContext"] = []string{tc.auditContext}
					}
					return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(fakeBase, attrs)}}
				case strings.EqualFold(req.BaseDN, tc.auditContext) && req.Scope == ldap.ScopeBaseObject:
					if !tc.logReadable {
						return fakeAnswer{Code: ldap.LDAPResultNoSuchObject}
					}
					return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(tc.auditContext, map[string][]string{"objectClass": {"auditContainer"}})}}
				case strings.EqualFold(req.BaseDN, "cn=accesslog"):
					logFilters = append(logFilters, req.Filter)
					if logCode != 0 {
						return fakeAnswer{Code: logCode}
					}
					return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry("reqStart=20261201225001.000000Z,cn=accesslog", map[string][]string{
						"reqStart": {"20261201225001.000000Z"}, "reqDN": {"uid=gone," + fakeBase}, "reqEntryUUID": {uuid}})}}
				}
				return fakeAnswer{} // the entryCSN search: no entry changed
			})
			s := fakeSource(t, srv.URL(), config.SchemaGroupOfNames, 500)
			defer s.ClosePolls()
			mark, err := s.Mark(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if mark.LogBase != tc.want || mark.Deletions != (tc.want != "") {
				t.Fatalf("mark: log %q deletions %v, want log %q", mark.LogBase, mark.Deletions, tc.want)
			}
			if tc.want == "" {
				return
			}
			if mark.LogTime != "20261201224856.000000Z" {
				t.Errorf("mark log time %q, want the CSN's second less a minute", mark.LogTime)
			}
			// Idle: contextCSN unchanged, the log is not read.
			cs, err := s.Changes(context.Background(), mark)
			if err != nil || len(cs.Entries) != 0 || len(logFilters) != 0 {
				t.Fatalf("idle poll: %+v, %v, log searches %q", cs, err, logFilters)
			}
			contextCSN = "20261201225001.000000Z#000000#000#000000"
			cs, err = s.Changes(context.Background(), mark)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs.Entries) != 1 || !cs.Entries[0].Deleted || cs.Entries[0].ID != "uuid:"+uuid {
				t.Fatalf("poll after a delete: %+v", cs.Entries)
			}
			if want := "(&(objectClass=auditDelete)(reqResult=0)(reqStart>=20261201224756.000000Z))"; len(logFilters) != 1 || logFilters[0] != want {
				t.Errorf("log searches %q, want %q", logFilters, want)
			}
			if cs.Next.LogTime != "20261201225001.000000Z" || cs.Next.LogSeen != "20261201225001.000000Z" || !cs.Next.Deletions {
				t.Errorf("next cursor %+v", cs.Next)
			}
			// The same log again: nothing new.
			contextCSN = "20261201225002.000000Z#000000#000#000000"
			cs, err = s.Changes(context.Background(), cs.Next)
			if err != nil || len(cs.Entries) != 0 {
				t.Errorf("second poll: %+v, %v", cs.Entries, err)
			}
			// The log gone: the poll still succeeds (its other changes
			// stand), says why, and stops following the log.
			logCode = ldap.LDAPResultNoSuchObject
			contextCSN = "20261201225003.000000Z#000000#000#000000"
			cs, err = s.Changes(context.Background(), cs.Next)
			if err != nil || cs.LogErr == nil || cs.Next.Deletions || cs.Next.LogBase != "" || cs.Next.LogTime != "" {
				t.Errorf("poll with the log gone: %+v, %v (want LogErr and a cursor without the log)", cs, err)
			}
			n := len(logFilters)
			contextCSN = "20261201225004.000000Z#000000#000#000000"
			if cs, err = s.Changes(context.Background(), cs.Next); err != nil || cs.LogErr != nil || len(logFilters) != n {
				t.Errorf("poll after the log went: %+v, %v, %d log searches (want none)", cs, err, len(logFilters)-n)
			}
		})
	}
}
