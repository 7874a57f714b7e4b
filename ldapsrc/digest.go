package ldapsrc

import (
	"crypto/sha256"
	"slices"
	"strings"
	"sync"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// Polls return every user entry whose change stamp moved, for any
// attribute: a telephoneNumber or a lastLogon written by the DC would make
// every group that reaches the user be read again at every poll. A user
// entry is therefore reported only when what resolution reads of it
// (digestAttrs, its DN, its identity) differs from what a poll reported
// before (ldap.userFilter's attributes included: a change to one takes the
// entry in or out of the users read) — and only a poll whose cursor the
// caller then advanced counts as
// reported: a poll not applied (the caller keeps its cursor) or a full
// cycle (a new cursor from Mark) forgets every digest, so nothing is
// dropped that a binding might not reflect yet.

// digestAttrs are the user attributes resolution reads, besides the user
// ID attribute and those ldap.userFilter tests.
var digestAttrs = []string{"objectClass", "userAccountControl", "accountExpires", "primaryGroupID", "nsAccountLock", "pwdAccountLockedTime"}

// userDigestAttrs lists what a poll digests of a user entry: the user ID
// attribute, digestAttrs and every attribute ldap.userFilter tests. nil
// when the filter tests attributes it does not name (an extensible match
// without a type): then no user entry is ever dropped.
func userDigestAttrs(cfg config.LDAP) []string {
	attrs := append([]string{cfg.UserIDAttribute}, digestAttrs...)
	if cfg.UserFilter == "" {
		return attrs
	}
	f, err := ldap.CompileFilter(cfg.UserFilter)
	if err != nil {
		return nil
	}
	named, ok := filterAttrs(f, nil)
	if !ok {
		return nil
	}
	for _, a := range named {
		if !slices.ContainsFunc(attrs, func(b string) bool { return strings.EqualFold(a, b) }) {
			attrs = append(attrs, a)
		}
	}
	return attrs
}

// filterAttrs appends to out the attributes a compiled filter tests; false
// when one of its items names none (it may test any attribute).
func filterAttrs(p *ber.Packet, out []string) ([]string, bool) {
	ok := true
	switch p.Tag {
	case ldap.FilterAnd, ldap.FilterOr, ldap.FilterNot:
		for _, c := range p.Children {
			if out, ok = filterAttrs(c, out); !ok {
				return out, false
			}
		}
	case ldap.FilterPresent:
		out = append(out, ber.DecodeString(p.Data.Bytes()))
	case ldap.FilterExtensibleMatch:
		ok = false
		for _, c := range p.Children {
			if c.Tag == ldap.MatchingRuleAssertionType {
				out, ok = append(out, ber.DecodeString(c.Data.Bytes())), true
			}
		}
	default: // equality, substrings, >=, <=, ~=: the attribute first
		if len(p.Children) == 0 {
			return out, false
		}
		out = append(out, ber.DecodeString(p.Children[0].Data.Bytes()))
	}
	return out, ok
}

// maxDigests bounds the memo: past it, it starts over (a poll then reports
// entries it could have dropped, never the reverse).
const maxDigests = 200_000

type digestMemo struct {
	mu      sync.Mutex
	applied map[string]string // entry key -> digest reported by an applied poll
	pending map[string]string // the last poll's digests
	next    Cursor            // the last poll's Next
	polled  bool
}

// begin starts a poll from since: the last poll's digests count once the
// caller advanced to its Next, and are all forgotten otherwise.
func (m *digestMemo) begin(since Cursor) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.polled && since == m.next {
		if m.applied == nil || len(m.applied)+len(m.pending) > maxDigests {
			m.applied = map[string]string{}
		}
		for k, d := range m.pending {
			m.applied[k] = d
		}
	} else {
		m.applied = nil
	}
	m.pending, m.polled = map[string]string{}, false
}

// seen records an entry's digest for this poll and reports whether an
// applied poll reported it with the same one.
func (m *digestMemo) seen(key, digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending[key] = digest
	return m.applied[key] == digest
}

// end records the poll's Next cursor; a failed poll counts as not applied.
func (m *digestMemo) end(next Cursor, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok {
		m.next, m.polled = next, true
	} else {
		m.applied, m.pending, m.polled = nil, nil, false
	}
}

// userDigest hashes what resolution reads of a user entry: its DN, its
// identity and attrs (userDigestAttrs).
func userDigest(e *ldap.Entry, attrs []string, identity string) string {
	h := sha256.New()
	write := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	write(normalizeDN(e.DN))
	write(identity)
	for _, a := range attrs {
		vals := slices.Clone(e.GetEqualFoldAttributeValues(a))
		slices.Sort(vals)
		write(strings.ToLower(a))
		write(strings.Join(vals, "\x00"))
		h.Write([]byte{1})
	}
	return string(h.Sum(nil)[:16])
}
