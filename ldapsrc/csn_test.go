package ldapsrc

import (
	"context"
	"slices"
	"strings"
	gosync "sync"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// csnAt builds a CSN of server sid at second sec past a fixed minute.
func csnAt(sec int, sid string) string {
	return "20261201100000.0000" + string(rune('0'+sec/10)) + string(rune('0'+sec%10)) + "Z#000000#" + sid + "#000000"
}

func TestCSNSID(t *testing.T) {
	if got := csnSID("20261201100000.000001Z#000000#002#000000"); got != "002" {
		t.Errorf("csnSID = %q, want 002", got)
	}
	if got := csnSID("garbage"); got != "" {
		t.Errorf("csnSID(garbage) = %q, want empty", got)
	}
	m := csnsBySID(csnAt(1, "001") + " " + csnAt(5, "002") + " " + csnAt(3, "002"))
	if len(m) != 2 || m["001"] != csnAt(1, "001") || m["002"] != csnAt(5, "002") {
		t.Errorf("csnsBySID = %v", m)
	}
}

func TestCSNRanges(t *testing.T) {
	since := map[string]string{"001": csnAt(10, "001"), "002": csnAt(3, "002")}
	// Only the SIDs whose value moved get a range, sorted by SID.
	got, reset := csnRanges(since, map[string]string{"001": csnAt(20, "001"), "002": csnAt(3, "002")})
	if reset || !slices.Equal(got, []csnRange{{"001", csnAt(10, "001"), csnAt(20, "001")}}) {
		t.Errorf("one SID moved: %v, reset %v", got, reset)
	}
	got, reset = csnRanges(since, map[string]string{"001": csnAt(20, "001"), "002": csnAt(5, "002")})
	if reset || len(got) != 2 || got[0].SID != "001" || got[1].SID != "002" {
		t.Errorf("two SIDs moved: %v, reset %v", got, reset)
	}
	// A SID the cursor does not know, or one gone back: a full cycle.
	if _, reset := csnRanges(since, map[string]string{"001": csnAt(10, "001"), "002": csnAt(3, "002"), "003": csnAt(1, "003")}); !reset {
		t.Error("a new SID must reset")
	}
	if _, reset := csnRanges(since, map[string]string{"001": csnAt(9, "001"), "002": csnAt(3, "002")}); !reset {
		t.Error("a SID gone back must reset")
	}
	// A SID that is no longer listed loses nothing by being ignored.
	if got, reset := csnRanges(since, map[string]string{"001": csnAt(11, "001")}); reset || len(got) != 1 {
		t.Errorf("a SID dropped: %v, reset %v", got, reset)
	}
}

func TestCSNFilterAndSeen(t *testing.T) {
	one := csnFilter([]csnRange{{"001", csnAt(1, "001"), csnAt(2, "001")}})
	if want := "(&(entryCSN>=" + csnAt(1, "001") + ")(entryCSN<=" + csnAt(2, "001") + "))"; one != want {
		t.Errorf("filter %q, want %q", one, want)
	}
	two := csnFilter([]csnRange{{"001", csnAt(1, "001"), csnAt(2, "001")}, {"002", csnAt(3, "002"), csnAt(4, "002")}})
	if !strings.HasPrefix(two, "(|(&") || strings.Count(two, "(&") != 2 {
		t.Errorf("two ranges: %q", two)
	}
	if _, err := ldap.CompileFilter(two); err != nil {
		t.Errorf("filter %q does not compile: %v", two, err)
	}
	since := map[string]string{"001": csnAt(20, "001"), "002": csnAt(3, "002")}
	for csn, want := range map[string]bool{
		csnAt(20, "001"): true,  // at the cursor
		csnAt(10, "001"): true,  // below its SID's cursor
		csnAt(4, "001"):  true,  // in 002's range, but 001's cursor covers it
		csnAt(4, "002"):  false, // B's change, older than A's cursor: new
		csnAt(1, "003"):  false, // a SID the cursor does not know
	} {
		if got := csnSeen(csn, since); got != want {
			t.Errorf("csnSeen(%s) = %v, want %v", csn, got, want)
		}
	}
}

// TestChangesPerServerID: the case one cursor cannot serve. Provider 002's
// change arrives after a newer change of provider 001 was polled; the next
// poll must still return it, and not 001's change again.
func TestChangesPerServerID(t *testing.T) {
	a1, b1 := csnAt(10, "001"), csnAt(5, "002")
	b2 := csnAt(15, "002") // made on B before a2, replicated after
	a2 := csnAt(20, "001")
	entries := map[string]string{"cn=a,": a2} // dn prefix -> entryCSN
	var mu gosync.Mutex
	contextCSN := a1 + " " + b1
	srv := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		mu.Lock()
		defer mu.Unlock()
		if req.Scope == ldap.ScopeBaseObject {
			return fakeAnswer{Entries: []*ldap.Entry{ldap.NewEntry(req.BaseDN, map[string][]string{"entryCSN": {a1}, "contextCSN": strings.Fields(contextCSN)})}}
		}
		// Evaluate the range filter the way slapd does.
		f, err := ldap.CompileFilter(req.Filter)
		if err != nil {
			t.Errorf("filter %q: %v", req.Filter, err)
			return fakeAnswer{}
		}
		var out []*ldap.Entry
		for prefix, csn := range entries {
			if matchCSNFilter(f, csn) {
				out = append(out, ldap.NewEntry(prefix+fakeBase, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {prefix[3:4]}, "entryCSN": {csn}}))
			}
		}
		return fakeAnswer{Entries: out}
	})
	s := fakeSource(t, srv.URL(), config.SchemaGroupOfNames, 500)
	defer s.ClosePolls()
	mark, err := s.Mark(context.Background())
	if err != nil || mark.ContextCSN != joinCSNs([]string{a1, b1}) {
		t.Fatalf("mark = %+v, %v", mark, err)
	}
	// A's newer change is polled first.
	mu.Lock()
	contextCSN = a2 + " " + b1
	mu.Unlock()
	cs, err := s.Changes(context.Background(), mark)
	if err != nil || len(cs.Entries) != 1 || cs.Entries[0].DN != "cn=a,"+fakeBase || cs.Next.CSN != a2 {
		t.Fatalf("first poll: %+v, %v", cs, err)
	}
	// B's older change replicates now, with its own CSN.
	mu.Lock()
	entries["cn=b,"] = b2
	contextCSN = a2 + " " + b2
	mu.Unlock()
	cs, err = s.Changes(context.Background(), cs.Next)
	if err != nil || len(cs.Entries) != 1 || cs.Entries[0].DN != "cn=b,"+fakeBase {
		t.Fatalf("poll after late replication: %+v, %v (want B's change only)", cs, err)
	}
	if cs.ServerChanged || cs.Next.ContextCSN != joinCSNs([]string{a2, b2}) {
		t.Errorf("next cursor %+v", cs.Next)
	}
	// A provider the cursor never saw: a full cycle.
	mu.Lock()
	contextCSN = a2 + " " + b2 + " " + csnAt(30, "003")
	mu.Unlock()
	if cs, err = s.Changes(context.Background(), cs.Next); err != nil || !cs.ServerChanged || !strings.Contains(cs.Why, "not seen") {
		t.Errorf("new server ID: %+v, %v (want a full cycle)", cs, err)
	}
}

// matchCSNFilter evaluates the and/or/>=/<= filters csnFilter builds on
// one entryCSN value, as slapd's CSN ordering (string order) does.
func matchCSNFilter(f *ber.Packet, csn string) bool {
	switch uint64(f.Tag) {
	case ldap.FilterAnd:
		for _, c := range f.Children {
			if !matchCSNFilter(c, csn) {
				return false
			}
		}
		return true
	case ldap.FilterOr:
		for _, c := range f.Children {
			if matchCSNFilter(c, csn) {
				return true
			}
		}
		return false
	case ldap.FilterGreaterOrEqual:
		return csn >= f.Children[1].Data.String()
	case ldap.FilterLessOrEqual:
		return csn <= f.Children[1].Data.String()
	}
	return false
}
