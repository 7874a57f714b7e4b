package ldapsrc

import (
	"context"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		desc             string
		lo, hi           int
		last, ranged, ok bool
	}{
		{"member;range=0-1499", 0, 1499, false, true, true},
		{"Member;Range=1500-*", 1500, -1, true, true, true},
		{"member", 0, 0, false, false, true},
		{"memberOf;range=0-10", 0, 0, false, false, true},
		{"member;binary;range=0-*", 0, -1, true, true, true},
		// Ranged, but wrong: an error, never "not a range" (whose values
		// would then be dropped without a word).
		{"member;range=5", 0, 0, false, true, false},
		{"member;range=10-5", 0, 0, false, true, false},
		{"member;range=0-9223372036854775807", 0, 0, false, true, false},
		{"member;range=0-2147483648", 0, 0, false, true, false},
		{"member;range=-1-5", 0, 0, false, true, false},
		{"member;range=+0-5", 0, 0, false, true, false},
		{"member;range=0-", 0, 0, false, true, false},
		{"member;range=x-*", 0, 0, false, true, false},
	}
	for _, tc := range tests {
		lo, hi, last, ranged, err := parseRange(tc.desc, "member")
		if lo != tc.lo || hi != tc.hi || last != tc.last || ranged != tc.ranged || (err == nil) != tc.ok {
			t.Errorf("parseRange(%q) = %d %d %v %v %v, want %d %d %v %v ok=%v", tc.desc, lo, hi, last, ranged, err, tc.lo, tc.hi, tc.last, tc.ranged, tc.ok)
		}
	}
}

// TestBadRangeFailsTheGroup serves a group whose member ranges are wrong in
// each way a hostile or broken server could make them; each is an error for
// that group (never a partial list), and the other group still resolves.
func TestBadRangeFailsTheGroup(t *testing.T) {
	two := []string{userDN(0), userDN(1)}
	for name, tc := range map[string]struct {
		first *ldap.EntryAttribute // in the group search
		next  *ldap.EntryAttribute // answer to the follow-up range read
	}{
		// hi+1 would wrap to a negative index and end the loop: the first
		// two members would have been taken as the whole group.
		"overflowing end":     {first: &ldap.EntryAttribute{Name: "member;range=0-9223372036854775807", Values: two}},
		"end before start":    {first: &ldap.EntryAttribute{Name: "member;range=1-0", Values: two}},
		"end past the count":  {first: &ldap.EntryAttribute{Name: "member;range=0-4", Values: two}},
		"fewer than it names": {first: &ldap.EntryAttribute{Name: "member;range=0-1", Values: two[:1]}},
		"later range end past the count": {
			first: &ldap.EntryAttribute{Name: "member;range=0-1", Values: two},
			next:  &ldap.EntryAttribute{Name: "member;range=2-1000", Values: []string{userDN(2)}},
		},
		"later range end before start": {
			first: &ldap.EntryAttribute{Name: "member;range=0-1", Values: two},
			next:  &ldap.EntryAttribute{Name: "member;range=2-1", Values: []string{userDN(2)}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
				switch {
				case strings.Contains(req.Filter, "objectClass=group"):
					bad := ldap.NewEntry("CN=bad,"+fakeBase, map[string][]string{"cn": {"bad"}})
					bad.Attributes = append(bad.Attributes, tc.first, &ldap.EntryAttribute{Name: "member"})
					ok := ldap.NewEntry("CN=ok,"+fakeBase, map[string][]string{"cn": {"ok"}, "member": {userDN(0)}})
					return fakeAnswer{Entries: []*ldap.Entry{bad, ok}}
				case req.Scope == ldap.ScopeBaseObject:
					if tc.next == nil {
						t.Errorf("a bad first range was followed by a range read: %+v", req)
						return fakeAnswer{Code: ldap.LDAPResultOperationsError}
					}
					e := ldap.NewEntry(req.BaseDN, nil)
					e.Attributes = []*ldap.EntryAttribute{tc.next}
					return fakeAnswer{Entries: []*ldap.Entry{e}}
				case strings.Contains(req.Filter, "CN=ok"):
					return pageOf(req, 1, userEntry)
				case strings.Contains(req.Filter, inChainRule):
					return pageOf(req, 3, userEntry)
				}
				return fakeAnswer{}
			})
			res, err := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 100).Resolve(context.Background(), []string{"bad", "ok"})
			if err != nil {
				t.Fatal(err)
			}
			if g := res.Groups["bad"]; g.Err == nil || g.Members != nil {
				t.Fatalf("a bad range must fail the group, got members %v err %v", g.Members, g.Err)
			}
			if g := res.Groups["ok"]; g.Err != nil || len(g.Members) != 1 {
				t.Errorf("the other group must still resolve: %+v", g)
			}
		})
	}
}
