package ldapsrc

import "testing"

func TestParseRange(t *testing.T) {
	tests := []struct {
		desc     string
		lo, hi   int
		last, ok bool
	}{
		{"member;range=0-1499", 0, 1499, false, true},
		{"Member;Range=1500-*", 1500, -1, true, true},
		{"member", 0, 0, false, false},
		{"memberOf;range=0-10", 0, 0, false, false},
		{"member;range=5", 0, 0, false, false},
		{"member;range=10-5", 0, 0, false, false},
		{"member;binary;range=0-*", 0, -1, true, true},
	}
	for _, tc := range tests {
		lo, hi, last, ok := parseRange(tc.desc, "member")
		if lo != tc.lo || hi != tc.hi || last != tc.last || ok != tc.ok {
			t.Errorf("parseRange(%q) = %d %d %v %v, want %d %d %v %v", tc.desc, lo, hi, last, ok, tc.lo, tc.hi, tc.last, tc.ok)
		}
	}
}
