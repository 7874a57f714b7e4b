package ldapsrc

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// fakeDC answers like an AD domain controller: a rootDSE with its identity
// and highest USN, and uSNChanged searches. (Samba proves the real
// behaviour in the integration tests; a second DC is what it cannot give.)
type fakeDC struct {
	mu      gosync.Mutex
	service string
	usn     int64
}

func (d *fakeDC) handle(req fakeSearch) fakeAnswer {
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.BaseDN == "" && req.Scope == ldap.ScopeBaseObject {
		return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry("", map[string][]string{
			"dsServiceName": {d.service}, "highestCommittedUSN": {strconv.FormatInt(d.usn, 10)}})}}
	}
	if strings.Contains(req.Filter, "uSNChanged") {
		return fakeAnswer{Entries: []*ldap.Entry{
			ldap.NewEntry("CN=runai-a-executors,OU=Groups,"+fakeBase, map[string][]string{"objectClass": {"top", "group"}, "cn": {"runai-a-executors"}}),
			userEntry(7),
		}}
	}
	return fakeAnswer{Code: ldap.LDAPResultUnwillingToPerform}
}

func TestChangesActiveDirectory(t *testing.T) {
	dc := &fakeDC{service: "CN=NTDS Settings,CN=DC1", usn: 100}
	srv := newFakeLDAP(t, dc.handle)
	s := fakeSource(t, srv.URL(), config.SchemaActiveDirectory, 500)
	defer s.ClosePolls()
	ctx := context.Background()
	mark, err := s.Mark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mark.USN != 100 || mark.Server != dc.service {
		t.Fatalf("mark = %+v", mark)
	}

	// Idle: one rootDSE read, no change search, no new bind.
	binds := s.Stats.Binds.Load()
	before := len(srv.Searches())
	cs, err := s.Changes(ctx, mark)
	if err != nil || cs.ServerChanged || len(cs.Entries) != 0 || cs.Searches != 1 {
		t.Fatalf("idle poll: %+v, %v", cs, err)
	}
	if n := len(srv.Searches()) - before; n != 1 || s.Stats.Binds.Load() != binds {
		t.Errorf("idle poll sent %d searches and %d binds, want 1 and 0", n, s.Stats.Binds.Load()-binds)
	}

	// Changes: the search asks for exactly the USNs after the cursor.
	dc.mu.Lock()
	dc.usn = 105
	dc.mu.Unlock()
	cs, err = s.Changes(ctx, mark)
	if err != nil {
		t.Fatal(err)
	}
	last := srv.Searches()[len(srv.Searches())-1]
	if !strings.Contains(last.Filter, "uSNChanged>=101") || !strings.Contains(last.Filter, "uSNChanged<=105") {
		t.Errorf("change filter %q", last.Filter)
	}
	if cs.Next.USN != 105 || len(cs.Entries) != 2 {
		t.Fatalf("change poll: %+v", cs)
	}
	g, u := cs.Entries[0], cs.Entries[1]
	if !g.Group || len(g.Names) != 1 || g.Names[0] != "runai-a-executors" || g.Key != normalizeDN(g.DN) {
		t.Errorf("group entry %+v", g)
	}
	if u.Group || len(u.IDKeys) != 1 || u.IDKeys[0] != UIDKey("U0007") {
		t.Errorf("user entry %+v", u)
	}

	// The same DC with its USN gone back (restored from a backup).
	dc.mu.Lock()
	dc.usn = 50
	dc.mu.Unlock()
	if cs, err := s.Changes(ctx, atUSN(mark, 105)); err != nil || !cs.ServerChanged || !strings.Contains(cs.Why, "went back") {
		t.Errorf("USN gone back: %+v, %v; want a full cycle", cs, err)
	}
	dc.mu.Lock()
	dc.usn = 105
	dc.mu.Unlock()

	// Another DC: the cursor means nothing there.
	dc.mu.Lock()
	dc.service = "CN=NTDS Settings,CN=DC2"
	dc.mu.Unlock()
	cs, err = s.Changes(ctx, cs.Next)
	if err != nil || !cs.ServerChanged || len(cs.Entries) != 0 || !strings.Contains(cs.Why, "another domain controller") {
		t.Errorf("server switch: %+v, %v", cs, err)
	}
}

func TestChangesFailoverReconnects(t *testing.T) {
	dc := &fakeDC{service: "CN=DC1", usn: 1}
	srv := newFakeLDAP(t, dc.handle)
	s := fakeSource(t, srv.URL(), config.SchemaActiveDirectory, 500)
	defer s.ClosePolls()
	mark, err := s.Mark(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The kept connection dies (idle timeout, DC restart): the poll fails,
	// and the next one dials again.
	s.pinMu.Lock()
	_ = s.pinned.Conn.Close()
	s.pinMu.Unlock()
	time.Sleep(10 * time.Millisecond)
	if _, err := s.Changes(context.Background(), mark); err != nil {
		t.Logf("first poll after the drop: %v", err)
	}
	if cs, err := s.Changes(context.Background(), mark); err != nil || cs.ServerChanged {
		t.Errorf("poll after reconnecting: %+v, %v", cs, err)
	}
}

func TestChangesWithoutChangeTracking(t *testing.T) {
	srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(req.BaseDN, map[string][]string{"objectClass": {"top"}})}}
	})
	for _, schema := range []string{config.SchemaActiveDirectory, config.SchemaGroupOfNames} {
		s := fakeSource(t, srv.URL(), schema, 500)
		_, err := s.Mark(context.Background())
		if !errors.Is(err, ErrNoChangeTracking) {
			t.Errorf("%s: Mark = %v, want ErrNoChangeTracking", schema, err)
		}
		s.ClosePolls()
	}
}

func TestChangesEntryCSN(t *testing.T) {
	const csn1 = "20261129100000.000001Z#000000#000#000000"
	const csn2 = "20261129100005.000002Z#000000#000#000000"
	var mu gosync.Mutex
	contextCSN := csn1
	srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		mu.Lock()
		defer mu.Unlock()
		if req.Scope == ldap.ScopeBaseObject {
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(req.BaseDN, map[string][]string{"entryCSN": {csn1}, "contextCSN": {contextCSN}})}}
		}
		if !strings.Contains(req.Filter, "entryCSN>="+csn1) {
			return fakeAnswer{}
		}
		// The entry at the cursor matches the range too: it was seen.
		return fakeAnswer{Entries: []*ldap.Entry{
			ldap.NewEntry("cn=seen,"+fakeBase, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {"seen"}, "entryCSN": {csn1}}),
			ldap.NewEntry("cn=g,"+fakeBase, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {"g"}, "entryCSN": {csn2}}),
		}}
	})
	s := fakeSource(t, srv.URL(), config.SchemaGroupOfNames, 500)
	defer s.ClosePolls()
	mark, err := s.Mark(context.Background())
	if err != nil || mark.CSN != csn1 || mark.ContextDN != fakeBase || mark.ContextCSN != csn1 {
		t.Fatalf("mark = %+v, %v (want the contextCSN)", mark, err)
	}
	// Nothing changed: one base read of contextCSN, no subtree search.
	before := len(srv.Searches())
	cs, err := s.Changes(context.Background(), mark)
	if err != nil || len(cs.Entries) != 0 || cs.Searches != 1 || len(srv.Searches())-before != 1 {
		t.Fatalf("idle poll: %+v, %v, %d searches", cs, err, len(srv.Searches())-before)
	}
	// contextCSN moved: the entries strictly after the cursor.
	mu.Lock()
	contextCSN = csn2
	mu.Unlock()
	cs, err = s.Changes(context.Background(), mark)
	if err != nil || len(cs.Entries) != 1 || cs.Next.CSN != csn2 || cs.Next.ContextCSN != csn2 || !cs.Entries[0].Group {
		t.Fatalf("poll: %+v, %v", cs, err)
	}
	last := srv.Searches()[len(srv.Searches())-1]
	if want := "(&(entryCSN>=" + csn1 + ")(entryCSN<=" + csn2 + "))"; last.Filter != want {
		t.Errorf("filter %q, want %q (the server ID's range since the cursor)", last.Filter, want)
	}
	if cs.Entries[0].DN != "cn=g,"+fakeBase {
		t.Errorf("poll returned %s, want only the entry after the cursor", cs.Entries[0].DN)
	}
	if cs, err = s.Changes(context.Background(), cs.Next); err != nil || len(cs.Entries) != 0 || cs.Searches != 1 {
		t.Errorf("idle poll after the change: %+v, %v", cs, err)
	}
}

func TestChangesEntryCSNWithoutSyncProv(t *testing.T) {
	srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		if req.Scope == ldap.ScopeBaseObject && req.BaseDN == fakeBase {
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(req.BaseDN, map[string][]string{"entryCSN": {"20261129100000.000001Z#000000#000#000000"}})}}
		}
		if req.Scope == ldap.ScopeBaseObject {
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(req.BaseDN, map[string][]string{"namingContexts": {fakeBase}})}}
		}
		return fakeAnswer{}
	})
	s := fakeSource(t, srv.URL(), config.SchemaGroupOfNames, 500)
	defer s.ClosePolls()
	before := time.Now()
	mark, err := s.Mark(context.Background())
	if err != nil || mark.ContextDN != "" {
		t.Fatalf("mark = %+v, %v", mark, err)
	}
	// No contextCSN: the cursor starts a few minutes back on our clock.
	if lo, hi := clockCSN(before.Add(-csnClockMargin-time.Second)), clockCSN(time.Now()); mark.CSN < lo || mark.CSN > hi {
		t.Errorf("mark CSN %s not within [%s, %s]", mark.CSN, lo, hi)
	}
	cs, err := s.Changes(context.Background(), mark)
	if err != nil || len(cs.Entries) != 0 || cs.Searches != 1 {
		t.Errorf("idle poll: %+v, %v (one subtree search)", cs, err)
	}
}

func TestClockCSNOrdersBeforeLaterCSNs(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if got := clockCSN(at); got != "20261129100000.000000Z#000000#000#000000" {
		t.Errorf("clockCSN = %q", got)
	}
	if !(clockCSN(at) < "20261129100000.000001Z#000000#001#000000") {
		t.Error("a CSN a microsecond later must sort after")
	}
}

func TestPollInterruptedByShutdown(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	var mu gosync.Mutex
	hanging := false
	dc := &fakeDC{service: "CN=DC1", usn: 1}
	srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		mu.Lock()
		h := hanging
		mu.Unlock()
		if h {
			<-hang // a DC that stopped answering
		}
		return dc.handle(req)
	})
	s := fakeSource(t, srv.URL(), config.SchemaActiveDirectory, 500)
	s.cfg.Timeout = time.Minute
	defer s.ClosePolls()
	mark, err := s.Mark(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	hanging = true
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Changes(ctx, mark); err == nil {
		t.Fatal("a poll of a server that does not answer must fail")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the poll took %v after its context ended; a shutdown must not wait for ldap.timeout", d)
	}
}

// atUSN is c moved to usn.
func atUSN(c Cursor, usn int64) Cursor {
	c.USN = usn
	return c
}

// A poll drops a user entry whose change only touched attributes resolution
// does not read (digest.go), but the attributes ldap.userFilter tests are
// read too: a change to one takes the user in or out of the users read, and
// is reported even when an earlier applied poll reported the same entry.
func TestChangesUserFilterAttributeReported(t *testing.T) {
	var mu gosync.Mutex
	usn := int64(100)
	alice := map[string][]string{"objectClass": {"top", "person", "user"}, "sAMAccountName": {"alice"},
		"userAccountControl": {"512"}, "employeeType": {"staff"}, "telephoneNumber": {"1"}}
	set := func(attr, v string) {
		mu.Lock()
		defer mu.Unlock()
		alice[attr] = []string{v}
		usn++
	}
	srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		mu.Lock()
		defer mu.Unlock()
		if req.BaseDN == "" && req.Scope == ldap.ScopeBaseObject {
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry("", map[string][]string{
				"dsServiceName": {"CN=DC1"}, "highestCommittedUSN": {strconv.FormatInt(usn, 10)}})}}
		}
		if strings.Contains(req.Filter, "uSNChanged") {
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(userDN(1), alice)}}
		}
		return fakeAnswer{Code: ldap.LDAPResultUnwillingToPerform}
	})
	s := fakeSource(t, srv.URL(), config.SchemaActiveDirectory, 500)
	s.cfg.UserFilter = "(employeeType=staff)"
	s.changeFeed.digestOn = userDigestAttrs(s.cfg)
	defer s.ClosePolls()
	ctx := context.Background()
	cur, err := s.Mark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	poll := func(what string, want bool) {
		t.Helper()
		cs, err := s.Changes(ctx, cur)
		if err != nil || cs.ServerChanged {
			t.Fatalf("%s: poll %+v, %v", what, cs, err)
		}
		if got := len(cs.Entries) == 1; got != want {
			t.Errorf("%s: reported %v, want %v", what, got, want)
		}
		cur = cs.Next
	}
	set("telephoneNumber", "2")
	poll("first change after the mark", true)
	set("telephoneNumber", "3")
	poll("telephoneNumber", false)
	set("employeeType", "contractor")
	poll("employeeType, tested by ldap.userFilter", true)
}

func TestUserDigestAttrs(t *testing.T) {
	cfg := config.Default().LDAP
	cfg.UserIDAttribute = "uid"
	cfg.UserFilter = "(&(objectClass=inetOrgPerson)(|(employeeType=staff)(departmentNumber=4*))(!(l~=x))(shadowExpire>=1)(mail=*))"
	got := userDigestAttrs(cfg)
	for _, a := range []string{"uid", "userAccountControl", "employeeType", "departmentNumber", "l", "shadowExpire", "mail"} {
		if !slices.Contains(got, a) {
			t.Errorf("userDigestAttrs = %v, want %s in it", got, a)
		}
	}
	if n := len(slices.DeleteFunc(slices.Clone(got), func(a string) bool { return a != "objectClass" })); n != 1 {
		t.Errorf("objectClass %d times in %v", n, got)
	}
	cfg.UserFilter = "(:caseExactMatch:=x)" // may test any attribute
	if got := userDigestAttrs(cfg); got != nil {
		t.Errorf("userDigestAttrs = %v for a filter naming no attribute, want nil (no entry dropped)", got)
	}
	cfg.UserFilter = "(employeeType:caseExactMatch:=staff)"
	if got := userDigestAttrs(cfg); !slices.Contains(got, "employeeType") {
		t.Errorf("userDigestAttrs = %v, want employeeType", got)
	}
}
