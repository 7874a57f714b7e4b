package ldapsrc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

const fakeBase = "DC=fake,DC=test"

func fakeSource(t *testing.T, url, schema string, pageSize int) *Source {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().LDAP
	cfg.URLs = []string{url}
	cfg.AllowInsecure = true
	cfg.BindDN = "CN=svc," + fakeBase
	cfg.BindPasswordFile = pw
	cfg.BaseDN = fakeBase
	cfg.Schema = schema
	cfg.PageSize = pageSize
	cfg.Timeout = 5 * time.Second
	// These fakes answer AD's in-chain member searches (the default is
	// expand): the failure cases here are the in-chain path's.
	cfg.MemberResolution = config.ResolveInChain
	return New(cfg, zap.NewNop())
}

func userDN(i int) string { return fmt.Sprintf("CN=u%04d,OU=People,%s", i, fakeBase) }

func userEntry(i int) *ldap.Entry {
	return ldap.NewEntry(userDN(i), map[string][]string{
		"objectClass":        {"top", "person", "user"},
		"sAMAccountName":     {fmt.Sprintf("U%04d", i)},
		"uid":                {fmt.Sprintf("U%04d", i)},
		"userAccountControl": {"512"},
	})
}

// rangedMembers answers a request for member values the way AD does past
// MaxValRange: at most max values, as "member;range=lo-hi", whatever was asked.
func rangedMembers(req fakeSearch, total, maxVals int) (*ldap.EntryAttribute, bool) {
	attr, ok := attrsWanted(req, "member")
	if !ok {
		return nil, false
	}
	lo := 0
	if _, r, found := strings.Cut(strings.ToLower(attr), ";range="); found {
		lo, _ = strconv.Atoi(strings.Split(r, "-")[0])
	}
	hi := min(lo+maxVals, total)
	vals := make([]string, 0, hi-lo)
	for i := lo; i < hi; i++ {
		vals = append(vals, userDN(i))
	}
	name := fmt.Sprintf("member;range=%d-%d", lo, hi-1)
	if hi == total {
		name = fmt.Sprintf("member;range=%d-*", lo)
	}
	return &ldap.EntryAttribute{Name: name, Values: vals}, true
}

// pageOf serves entries [0,total) in pages of the requested size.
func pageOf(req fakeSearch, total int, mk func(int) *ldap.Entry) fakeAnswer {
	start, _ := strconv.Atoi(req.Cookie)
	size := req.PageSize
	if size == 0 {
		size = total
	}
	end := min(start+size, total)
	var ans fakeAnswer
	for i := start; i < end; i++ {
		ans.Entries = append(ans.Entries, mk(i))
	}
	if end < total {
		ans.Cookie = strconv.Itoa(end)
	}
	return ans
}

const groupDN = "CN=big,OU=Groups," + fakeBase

func TestForcedRangeRetrievalActiveDirectory(t *testing.T) {
	const total = 3200
	f := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		switch {
		case strings.Contains(req.Filter, "objectClass=group"):
			g := ldap.NewEntry(groupDN, map[string][]string{"cn": {"big"}})
			attr, _ := rangedMembers(req, total, 1500)
			g.Attributes = append(g.Attributes, attr, &ldap.EntryAttribute{Name: "member"})
			return fakeAnswer{Entries: []*ldap.Entry{g}}
		case req.Scope == ldap.ScopeBaseObject && req.BaseDN == groupDN:
			attr, _ := rangedMembers(req, total, 1500)
			g := ldap.NewEntry(groupDN, nil)
			g.Attributes = []*ldap.EntryAttribute{attr}
			return fakeAnswer{Entries: []*ldap.Entry{g}}
		case strings.Contains(req.Filter, inChainRule):
			return pageOf(req, total, userEntry)
		}
		t.Errorf("unexpected search %+v", req)
		return fakeAnswer{Code: ldap.LDAPResultOperationsError}
	})
	src := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 1000)
	res, err := src.Resolve(context.Background(), []string{"big"})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Groups["big"]
	if g.Err != nil || len(g.Members) != total {
		t.Fatalf("err=%v members=%d, want %d", g.Err, len(g.Members), total)
	}
	if g.Members[0] != "u0000" || g.Members[total-1] != fmt.Sprintf("u%04d", total-1) {
		t.Errorf("members not normalised: %s .. %s", g.Members[0], g.Members[total-1])
	}
	// Every direct member was read through the ranges and matched a user:
	// a lost range would show up as unresolved members.
	if res.Skipped[model.SkipUnresolved] != 0 || res.Skipped[model.SkipOutsideBase] != 0 {
		t.Errorf("skipped %v", res.Skipped)
	}
	var ranges []string
	for _, s := range f.Searches() {
		if s.Scope == ldap.ScopeBaseObject {
			ranges = append(ranges, s.Attrs...)
		}
	}
	if strings.Join(ranges, " ") != "member;range=1500-* member;range=3000-*" {
		t.Errorf("range requests = %v", ranges)
	}
}

func TestForcedRangeRetrievalGroupOfNames(t *testing.T) {
	const total = 3200
	f := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		switch {
		case strings.Contains(req.Filter, "groupOfNames") && strings.Contains(req.Filter, "sAMAccountName=*"):
			return fakeAnswer{} // no entry is both a group and a user
		case strings.Contains(req.Filter, "groupOfNames"):
			g := ldap.NewEntry(groupDN, map[string][]string{"cn": {"big"}})
			attr, _ := rangedMembers(req, total, 1000)
			g.Attributes = append(g.Attributes, attr)
			return fakeAnswer{Entries: []*ldap.Entry{g}}
		case req.Scope == ldap.ScopeBaseObject && req.BaseDN == groupDN:
			attr, _ := rangedMembers(req, total, 1000)
			g := ldap.NewEntry(groupDN, nil)
			g.Attributes = []*ldap.EntryAttribute{attr}
			return fakeAnswer{Entries: []*ldap.Entry{g}}
		case strings.Contains(req.Filter, "sAMAccountName=*"):
			return pageOf(req, total, userEntry)
		}
		t.Errorf("unexpected search %+v", req)
		return fakeAnswer{Code: ldap.LDAPResultOperationsError}
	})
	src := fakeSource(t, f.URL(), config.SchemaGroupOfNames, 500)
	res, err := src.Resolve(context.Background(), []string{"big"})
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Groups["big"]; g.Err != nil || len(g.Members) != total {
		t.Fatalf("err=%v members=%d, want %d", g.Err, len(g.Members), total)
	}
}

func TestRangeThatDoesNotAdvanceIsAnError(t *testing.T) {
	f := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		g := ldap.NewEntry(groupDN, map[string][]string{"cn": {"big"}})
		// Always the first range, whatever is asked: a broken server.
		g.Attributes = append(g.Attributes, &ldap.EntryAttribute{Name: "member;range=0-1", Values: []string{userDN(0), userDN(1)}})
		if strings.Contains(req.Filter, inChainRule) {
			return pageOf(req, 2, userEntry)
		}
		return fakeAnswer{Entries: []*ldap.Entry{g}}
	})
	src := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 100)
	res, err := src.Resolve(context.Background(), []string{"big"})
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Groups["big"]; g.Err == nil || g.Members != nil {
		t.Fatalf("a range answer that does not advance must fail the group: %+v", g)
	}
}

// twoGroups serves groups "ok" and "bad"; bad's member search misbehaves.
func twoGroups(t *testing.T, bad func(req fakeSearch) fakeAnswer) *fakeLDAP {
	return newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		switch {
		case strings.Contains(req.Filter, "objectClass=group"):
			return fakeAnswer{Entries: []*ldap.Entry{
				ldap.NewEntry("CN=bad,"+fakeBase, map[string][]string{"cn": {"bad"}}),
				ldap.NewEntry("CN=ok,"+fakeBase, map[string][]string{"cn": {"ok"}}),
			}}
		case strings.Contains(req.Filter, "CN=bad"):
			return bad(req)
		case strings.Contains(req.Filter, "CN=ok"):
			return pageOf(req, 3, userEntry)
		}
		return fakeAnswer{}
	})
}

func TestAnswerCutShortIsAnError(t *testing.T) {
	for name, code := range map[string]uint16{
		"size limit": ldap.LDAPResultSizeLimitExceeded,
		"time limit": ldap.LDAPResultTimeLimitExceeded,
		"busy":       ldap.LDAPResultBusy,
	} {
		t.Run(name, func(t *testing.T) {
			f := twoGroups(t, func(req fakeSearch) fakeAnswer {
				ans := pageOf(fakeSearch{PageSize: 10}, 50, userEntry)
				ans.Cookie, ans.Code = "", code
				return ans
			})
			res, err := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 500).Resolve(context.Background(), []string{"bad", "ok"})
			if err != nil {
				t.Fatal(err)
			}
			if g := res.Groups["bad"]; g.Err == nil || g.Members != nil {
				t.Errorf("cut-short answer gave members instead of an error: %+v", g)
			}
			if g := res.Groups["ok"]; g.Err != nil || len(g.Members) != 3 {
				t.Errorf("the other group must still resolve: %+v", g)
			}
		})
	}
}

func TestConnectionDroppedMidPageIsAnError(t *testing.T) {
	f := twoGroups(t, func(req fakeSearch) fakeAnswer {
		ans := pageOf(fakeSearch{PageSize: 5}, 50, userEntry)
		ans.Drop = true
		return ans
	})
	res, err := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 500).Resolve(context.Background(), []string{"bad", "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Groups["bad"]; g.Err == nil || g.Members != nil {
		t.Errorf("dropped connection gave members instead of an error: %+v", g)
	}
}

func TestPageSizeAboveServerMaximum(t *testing.T) {
	const total = 700
	f := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		if req.PageSize > 200 {
			// OpenLDAP with size.pr=200 refuses larger pages.
			return fakeAnswer{Code: ldap.LDAPResultAdminLimitExceeded}
		}
		switch {
		case strings.Contains(req.Filter, "groupOfNames"):
			vals := make([]string, total)
			for i := range vals {
				vals[i] = userDN(i)
			}
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(groupDN, map[string][]string{"cn": {"big"}, "member": vals})}}
		case strings.Contains(req.Filter, "sAMAccountName=*"):
			return pageOf(req, total, userEntry)
		}
		return fakeAnswer{}
	})
	res, err := fakeSource(t, f.URL(), config.SchemaGroupOfNames, 1000).Resolve(context.Background(), []string{"big"})
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Groups["big"]; g.Err != nil || len(g.Members) != total {
		t.Fatalf("err=%v members=%d", g.Err, len(g.Members))
	}
	var sizes []int
	for _, s := range f.Searches() {
		sizes = append(sizes, s.PageSize)
	}
	if sizes[0] != 1000 || sizes[1] != 500 || sizes[2] != 250 || sizes[3] != 125 {
		t.Errorf("page sizes tried = %v", sizes)
	}
}

// endlessPages serves one user per page with a cookie that never ends,
// as a broken or hostile server could.
func endlessPages(t *testing.T, delay time.Duration) *fakeLDAP {
	return newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		if strings.Contains(req.Filter, "(cn=big)") {
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(groupDN, map[string][]string{"cn": {"big"}})}}
		}
		time.Sleep(delay) // the server's slowness, not a wait for a condition
		n, _ := strconv.Atoi(req.Cookie)
		return fakeAnswer{Entries: []*ldap.Entry{userEntry(n)}, Cookie: strconv.Itoa(n + 1)}
	})
}

func TestPagedSearchStopsAtThePageCap(t *testing.T) {
	f := endlessPages(t, 0)
	src := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 100)
	src.maxPages = 20
	res, err := src.Resolve(context.Background(), []string{"big"})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Groups["big"]
	if g.Err == nil || g.Members != nil || !strings.Contains(g.Err.Error(), "after 20 pages") {
		t.Fatalf("endless pages must fail the group at the cap, got members %d err %v", len(g.Members), g.Err)
	}
	var pages int
	for _, s := range f.Searches() {
		if strings.Contains(s.Filter, inChainRule) {
			pages++
		}
	}
	if pages != 20 {
		t.Errorf("member search asked for %d pages, want 20", pages)
	}
}

func TestCycleTimeoutBoundsAWholeRead(t *testing.T) {
	// Each page is answered well within ldap.timeout, but the answers never
	// end: only the cycle's deadline stops the read.
	f := endlessPages(t, 20*time.Millisecond)
	src := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 100)
	src.cfg.CycleTimeout = 300 * time.Millisecond
	start := time.Now()
	res, err := src.Resolve(context.Background(), []string{"big"})
	if res != nil || err == nil {
		t.Fatalf("a read past ldap.cycleTimeout must fail as a whole, got %+v, %v", res, err)
	}
	if !strings.Contains(err.Error(), "ldap.cycleTimeout (300ms)") {
		t.Errorf("error does not name ldap.cycleTimeout: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("read stopped after %v, want about 300ms", d)
	}

	d, err := src.DiscoverProjects(context.Background(), config.FromGroups{Pattern: "runai-{project}-x"})
	if d != nil || err == nil || !strings.Contains(err.Error(), "ldap.cycleTimeout") {
		t.Fatalf("discovery past ldap.cycleTimeout: %v, %v", d, err)
	}
}
