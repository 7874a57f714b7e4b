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

// maxRangeIndex bounds a range bound: no directory holds two billion
// values of one attribute, and a bound beyond it would overflow hi+1.
const maxRangeIndex = 1<<31 - 1

// parseRange reads an attribute description like "member;range=0-1499" or
// "member;range=1500-*". ranged is false when desc is not a ranged form of
// attr; err is set when it is one but its range cannot be right (an end
// before the start, a bound that is not a small number): the values of
// such an attribute must not be used, nor skipped as if absent.
func parseRange(desc, attr string) (lo, hi int, last, ranged bool, err error) {
	base, opts, found := strings.Cut(desc, ";")
	if !found || !strings.EqualFold(base, attr) {
		return 0, 0, false, false, nil
	}
	for _, opt := range strings.Split(opts, ";") {
		r, isRange := strings.CutPrefix(strings.ToLower(opt), "range=")
		if !isRange {
			continue
		}
		bad := func(why string) (int, int, bool, bool, error) {
			return 0, 0, false, true, fmt.Errorf("attribute %q: %s", desc, why)
		}
		l, h, dash := strings.Cut(r, "-")
		if !dash {
			return bad("range has no end")
		}
		lo, ok := rangeBound(l)
		if !ok {
			return bad("range start is not a number up to 2^31-1")
		}
		if h == "*" {
			return lo, -1, true, true, nil
		}
		hi, ok := rangeBound(h)
		switch {
		case !ok:
			return bad("range end is not a number up to 2^31-1")
		case hi < lo:
			return bad("range ends before it starts")
		}
		return lo, hi, false, true, nil
	}
	return 0, 0, false, false, nil
}

// rangeBound parses one bound of a range: decimal digits only, at most
// maxRangeIndex.
func rangeBound(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > maxRangeIndex {
		return 0, false
	}
	return int(v), true
}

// checkCount says whether a range "lo-hi" holds exactly the hi-lo+1 values
// it claims. A server that names more than it sends (or the reverse) would
// make the next request skip or repeat values: a partial list.
func checkCount(desc string, lo, hi, n int) error {
	if hi-lo+1 != n {
		return fmt.Errorf("attribute %q names %d values but holds %d; the list cannot be trusted", desc, hi-lo+1, n)
	}
	return nil
}

// multiValued returns every value of attr in e, fetching the rest with
// range retrieval when the server sent only a range (Active Directory
// sends at most MaxValRange values, 1,500 by default, as
// "member;range=0-1499" with an empty "member").
func (r *dirReader) multiValued(ctx context.Context, e *ldap.Entry, attr string) ([]string, error) {
	var values []string
	next := -1
	for _, a := range e.Attributes {
		if strings.EqualFold(a.Name, attr) {
			values = append(values, a.Values...)
			continue
		}
		lo, hi, last, ranged, err := parseRange(a.Name, attr)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", e.DN, err)
		}
		if !ranged {
			continue
		}
		if lo != 0 {
			return nil, fmt.Errorf("entry %s: first range of %s starts at %d, not 0", e.DN, attr, lo)
		}
		values = append(values, a.Values...)
		if !last {
			if err := checkCount(a.Name, lo, hi, len(a.Values)); err != nil {
				return nil, fmt.Errorf("entry %s: %w", e.DN, err)
			}
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
			lo, hi, last, ranged, err := parseRange(a.Name, attr)
			if err != nil {
				return nil, fmt.Errorf("read %s of %s: %w", attr, e.DN, err)
			}
			if !ranged {
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
				if err := checkCount(a.Name, lo, hi, len(a.Values)); err != nil {
					return nil, fmt.Errorf("read %s of %s: %w", attr, e.DN, err)
				}
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
