package ldapsrc

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// maxRangeRounds bounds range retrieval, in case a server keeps answering
// with ranges that do not advance.
const maxRangeRounds = 10000

// parseRange reads an attribute description like "member;range=0-1499" or
// "member;range=1500-*". ok is false when desc is not a ranged form of attr.
func parseRange(desc, attr string) (lo, hi int, last, ok bool) {
	base, opts, found := strings.Cut(desc, ";")
	if !found || !strings.EqualFold(base, attr) {
		return 0, 0, false, false
	}
	for _, opt := range strings.Split(opts, ";") {
		r, isRange := strings.CutPrefix(strings.ToLower(opt), "range=")
		if !isRange {
			continue
		}
		l, h, dash := strings.Cut(r, "-")
		if !dash {
			return 0, 0, false, false
		}
		var err error
		if lo, err = strconv.Atoi(l); err != nil {
			return 0, 0, false, false
		}
		if h == "*" {
			return lo, -1, true, true
		}
		if hi, err = strconv.Atoi(h); err != nil || hi < lo {
			return 0, 0, false, false
		}
		return lo, hi, false, true
	}
	return 0, 0, false, false
}

// multiValued returns every value of attr in e, fetching the rest with
// range retrieval when the server sent only a range (Active Directory
// sends at most MaxValRange values, 1,500 by default, as
// "member;range=0-1499" with an empty "member").
func (r *resolver) multiValued(ctx context.Context, e *ldap.Entry, attr string) ([]string, error) {
	var values []string
	next := -1
	for _, a := range e.Attributes {
		if strings.EqualFold(a.Name, attr) {
			values = append(values, a.Values...)
			continue
		}
		lo, hi, last, ok := parseRange(a.Name, attr)
		if !ok {
			continue
		}
		if lo != 0 {
			return nil, fmt.Errorf("entry %s: first range of %s starts at %d, not 0", e.DN, attr, lo)
		}
		values = append(values, a.Values...)
		if !last {
			next = hi + 1
		}
	}
	for round := 0; next >= 0; round++ {
		if round >= maxRangeRounds {
			return nil, fmt.Errorf("entry %s: range retrieval of %s did not end after %d rounds", e.DN, attr, round)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		req := ldap.NewSearchRequest(e.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{fmt.Sprintf("%s;range=%d-*", attr, next)}, nil)
		r.src.Stats.Searches.Add(1)
		res, err := r.conn.Search(req)
		if err != nil {
			return nil, fmt.Errorf("read %s of %s from value %d: %w", attr, e.DN, next, describeSearchError(err))
		}
		if len(res.Entries) != 1 {
			return nil, fmt.Errorf("read %s of %s from value %d: entry vanished", attr, e.DN, next)
		}
		r.src.Stats.Entries.Add(1)
		got := false
		for _, a := range res.Entries[0].Attributes {
			lo, hi, last, ok := parseRange(a.Name, attr)
			if !ok {
				continue
			}
			if lo != next {
				return nil, fmt.Errorf("read %s of %s: asked for values from %d, got a range from %d", attr, e.DN, next, lo)
			}
			got = true
			values = append(values, a.Values...)
			if last {
				next = -1
			} else {
				next = hi + 1
			}
		}
		if !got {
			// A server that answers a range request without a range has
			// lost track; a short list here would drop members.
			return nil, fmt.Errorf("read %s of %s from value %d: the server returned no range", attr, e.DN, next)
		}
	}
	return values, nil
}
