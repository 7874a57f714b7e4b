package ldapsrc

import (
	"crypto/sha256"
	"slices"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"
)

// Polls return every user entry whose change stamp moved, for any
// attribute: a telephoneNumber or a lastLogon written by the DC would make
// every group that reaches the user be read again at every poll. A user
// entry is therefore reported only when what resolution reads of it
// (digestAttrs, its DN, its identity) differs from what a poll reported
// before — and only a poll whose cursor the caller then advanced counts as
// reported: a poll not applied (the caller keeps its cursor) or a full
// cycle (a new cursor from Mark) forgets every digest, so nothing is
// dropped that a binding might not reflect yet.

// digestAttrs are the user attributes resolution reads, besides the user
// ID attribute.
var digestAttrs = []string{"objectClass", "userAccountControl", "accountExpires", "primaryGroupID", "nsAccountLock", "pwdAccountLockedTime"}

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

// userDigest hashes what resolution reads of a user entry.
func userDigest(e *ldap.Entry, idAttr, identity string) string {
	h := sha256.New()
	write := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	write(normalizeDN(e.DN))
	write(identity)
	for _, a := range append([]string{idAttr}, digestAttrs...) {
		vals := slices.Clone(e.GetEqualFoldAttributeValues(a))
		slices.Sort(vals)
		write(strings.ToLower(a))
		write(strings.Join(vals, "\x00"))
		h.Write([]byte{1})
	}
	return string(h.Sum(nil)[:16])
}
