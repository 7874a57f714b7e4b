package ldapsrc

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// OpenLDAP change cursors, one per server ID.
//
// An entryCSN is "YYYYmmddHHMMSS.uuuuuuZ#count#sid#mod": the time and
// server ID (SID) of the provider that made the change. Replicated
// (multi-provider or mirror-mode) OpenLDAP keeps a multi-valued contextCSN
// on the naming context, the highest CSN it holds from each SID. A change
// made on provider B reaches provider A with B's CSN, possibly after A made
// newer changes of its own: one cursor (the highest CSN over all SIDs)
// would be past it already. So the cursor is the contextCSN itself, one
// value per SID, and a poll asks, for each SID whose value moved, for the
// entries between its old and new value.
//
// A filter cannot select by the SID inside entryCSN (CSN syntax has no
// substring rule), so each SID's range also returns other SIDs' entries
// with CSNs in it; those their own SID's cursor already covers are dropped
// (csnSeen), the others are new and kept.

// csnSID returns the server ID field of a CSN, "" when malformed.
func csnSID(csn string) string {
	parts := strings.Split(csn, "#")
	if len(parts) != 4 {
		return ""
	}
	return parts[2]
}

// csnsBySID maps each SID to its CSN, from contextCSN values (space-
// separated, as Cursor.ContextCSN holds them). A malformed value, or two
// for one SID, keeps the highest under the SID it names ("" if none).
func csnsBySID(joined string) map[string]string {
	m := map[string]string{}
	for _, v := range strings.Fields(joined) {
		sid := csnSID(v)
		if v > m[sid] {
			m[sid] = v
		}
	}
	return m
}

// csnRange is one SID's changes since the cursor: (From, To].
type csnRange struct{ SID, From, To string }

// csnRanges compares the contextCSN at the cursor with the current one.
// reset is true when the history cannot be followed from the cursor: a SID
// the cursor does not know (a new provider, whose changes may be older
// than any cursor value) or a SID whose CSN went back (a restored
// database); then only a full cycle loses nothing.
func csnRanges(since, now map[string]string) (ranges []csnRange, reset bool) {
	for sid, to := range now {
		from, ok := since[sid]
		switch {
		case !ok || to < from:
			return nil, true
		case to > from:
			ranges = append(ranges, csnRange{SID: sid, From: from, To: to})
		}
	}
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].SID < ranges[j].SID })
	return ranges, false
}

// csnFilter selects the entries whose entryCSN lies in any of the ranges
// (bounds included: csnSeen drops the entry at a cursor).
func csnFilter(ranges []csnRange) string {
	terms := make([]string, len(ranges))
	for i, r := range ranges {
		terms[i] = fmt.Sprintf("(&(entryCSN>=%s)(entryCSN<=%s))", ldap.EscapeFilter(r.From), ldap.EscapeFilter(r.To))
	}
	if len(terms) == 1 {
		return terms[0]
	}
	return "(|" + strings.Join(terms, "") + ")"
}

// csnSeen says whether a change with this entryCSN was already covered by
// the cursor: at or below the cursor's value for its own SID. An entry of
// a SID the cursor does not know is new.
func csnSeen(entryCSN string, since map[string]string) bool {
	at, ok := since[csnSID(entryCSN)]
	return ok && entryCSN <= at
}

// maxCSN is the highest of the cursor's values (Cursor.CSN).
func maxCSN(bySID map[string]string) string {
	m := ""
	for _, v := range bySID {
		if v > m {
			m = v
		}
	}
	return m
}

// changesBySID is the poll of a server with contextCSN whose value moved
// from since.ContextCSN to now: the entries each moved SID changed, the
// cursor advanced to now.
func (s *changeFeed) changesBySID(ctx context.Context, c *conn, since Cursor, now string, cs *ChangeSet) (*ChangeSet, error) {
	before, after := csnsBySID(since.ContextCSN), csnsBySID(now)
	cs.Next.ContextCSN = now
	cs.Next.CSN = maxCSN(after)
	ranges, reset := csnRanges(before, after)
	if reset {
		cs.ServerChanged = true
		cs.Why = fmt.Sprintf("contextCSN names a server ID the cursor has not seen (a new provider) or one whose CSN went back (a restored database): was %q, now %q",
			since.ContextCSN, now)
		return cs, nil
	}
	if len(ranges) == 0 {
		return cs, nil // the same values, listed differently
	}
	seen := map[string]bool{}
	err := s.changedEntries(ctx, c, s.changeBases(), csnFilter(ranges), nil, cs, func(e *ldap.Entry) {
		if csnSeen(e.GetAttributeValue("entryCSN"), before) {
			seen[e.DN] = true
		}
	})
	if len(seen) > 0 {
		kept := cs.Entries[:0]
		for _, ch := range cs.Entries {
			if !seen[ch.DN] {
				kept = append(kept, ch)
			}
		}
		cs.Entries = kept
	}
	return cs, err
}
