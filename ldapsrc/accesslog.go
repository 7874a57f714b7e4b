package ldapsrc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Deletions on OpenLDAP, from the accesslog overlay (slapo-accesslog).
//
// A deleted entry leaves nothing behind for an entryCSN search, but a
// server with the accesslog overlay writes each delete to its log database
// as an auditDelete entry: reqStart (when the operation began), reqDN and
// reqEntryUUID (the deleted entry's entryUUID, OpenLDAP 2.5 and later). The
// database the overlay logs to is named by the auditContext attribute of
// the logged database's suffix entry, and must be one of the server's own
// naming contexts: the log is never looked for anywhere a directory user
// could write. A logged deletion only makes polls read again the groups
// that reached the deleted entry (by entryUUID, else by DN); it names no
// group and no user ID, so it never grants anything by itself.
//
// The cursor is the reqStart of the newest log entry seen. reqStart is the
// server's clock to the second plus a counter within the second
// ("20261201224956.000007Z"), unique per log entry, so it orders as a
// string. A delete is logged when it ends, so one that began before a
// later one was seen may appear after it: each poll asks for the window
// accessLogSlack before the cursor too, and Cursor.LogSeen keeps the
// entries of that window already reported, so each is reported once.

// accessLogSlack is how long a delete may take and still be seen by polls
// (the log entry appears when it ends, dated when it began).
const accessLogSlack = time.Minute

// reqTimeLayout is the form of reqStart: generalized time with six
// fraction digits.
const reqTimeLayout = "20060102150405.000000Z"

// logEntry is one auditDelete log entry.
type logEntry struct {
	Start, DN, EntryUUID string
}

// logWindowStart is the lowest reqStart a poll asks for: the cursor less
// accessLogSlack; the cursor itself when it is not a generalized time.
func logWindowStart(cursor string) string {
	t, err := time.Parse(reqTimeLayout, cursor)
	if err != nil {
		return cursor
	}
	return t.Add(-accessLogSlack).UTC().Format(reqTimeLayout)
}

// logMarkTime is where the log cursor starts at a mark: the second of the
// mark's CSN (the server's clock with syncprov), the counter zero, less
// accessLogSlack so a delete in flight at the mark is seen. A deletion seen
// twice only reads its groups again.
func logMarkTime(csn string) string {
	if len(csn) < 14 {
		return ""
	}
	t, err := time.Parse("20060102150405", csn[:14])
	if err != nil {
		return ""
	}
	return t.Add(-accessLogSlack).UTC().Format(reqTimeLayout)
}

// newLogDeletions picks the log entries not reported yet and returns them
// as deleted Changed entries, with the cursor that follows: the newest
// reqStart seen, and the reported reqStarts still within accessLogSlack of
// it. Entries without reqStart or reqDN are dropped.
func newLogDeletions(entries []logEntry, seen []string, sinceTime string) (out []Changed, nextTime string, nextSeen []string) {
	reported := map[string]bool{}
	for _, s := range seen {
		reported[s] = true
	}
	nextTime = sinceTime
	var fresh []string
	for _, e := range entries {
		if e.Start == "" || e.DN == "" || reported[e.Start] {
			continue
		}
		if e.Start < logWindowStart(sinceTime) {
			continue // before the window: reported by an earlier poll
		}
		reported[e.Start] = true
		fresh = append(fresh, e.Start)
		ch := Changed{DN: e.DN, Key: normalizeDN(e.DN), Deleted: true, Outside: true}
		if v := strings.ToLower(strings.TrimSpace(e.EntryUUID)); validUUID(v) {
			ch.ID = uuidPrefix + v
		}
		out = append(out, ch)
		if e.Start > nextTime {
			nextTime = e.Start
		}
	}
	low := logWindowStart(nextTime)
	for _, s := range append(slices.Clone(seen), fresh...) {
		if s >= low {
			nextSeen = append(nextSeen, s)
		}
	}
	slices.Sort(nextSeen)
	return out, nextTime, slices.Compact(nextSeen)
}

// accessLogBase returns the accesslog database logging deletes of the
// naming context nc, when the bind account can read it: nc's auditContext,
// if it is one of the server's naming contexts (contexts) and its suffix
// entry reads back. "" otherwise.
func (s *changeFeed) accessLogBase(c *conn, nc string, contexts []string) (string, int) {
	searches := 1
	e, err := s.readBase(c, nc, "auditContext")
	if err != nil || e == nil {
		return "", searches
	}
	logDN := e.GetAttributeValue("auditContext")
	if logDN == "" || !slices.ContainsFunc(contexts, func(n string) bool { return sameDN(n, logDN) }) {
		return "", searches
	}
	searches++
	le, err := s.readBase(c, logDN, "objectClass")
	if err != nil || le == nil {
		return "", searches
	}
	return logDN, searches
}

func sameDN(a, b string) bool {
	x, errX := ldap.ParseDN(a)
	y, errY := ldap.ParseDN(b)
	return errX == nil && errY == nil && x.EqualFold(y)
}

// logDeletions adds to cs the deletions the access log holds since the
// cursor, and moves cs.Next's log cursor on.
func (s *changeFeed) logDeletions(ctx context.Context, c *conn, since Cursor, cs *ChangeSet) error {
	if since.LogBase == "" || since.LogTime == "" {
		return nil
	}
	filter := fmt.Sprintf("(&(objectClass=auditDelete)(reqResult=0)(reqStart>=%s))", ldap.EscapeFilter(logWindowStart(since.LogTime)))
	req := ldap.NewSearchRequest(since.LogBase, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"reqStart", "reqDN", "reqEntryUUID"}, nil)
	r := &dirReader{src: s.src, conn: c}
	var entries []logEntry
	before := s.Stats.Searches.Load()
	err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		entries = append(entries, logEntry{Start: e.GetAttributeValue("reqStart"), DN: e.GetAttributeValue("reqDN"),
			EntryUUID: e.GetAttributeValue("reqEntryUUID")})
		return nil
	})
	cs.Searches += int(s.Stats.Searches.Load() - before)
	if err != nil {
		return fmt.Errorf("search deletions in the access log %s (check the bind account may read it): %w", since.LogBase, err)
	}
	out, next, seen := newLogDeletions(entries, strings.Fields(since.LogSeen), since.LogTime)
	cs.Entries = append(cs.Entries, out...)
	cs.Next.LogTime, cs.Next.LogSeen = next, strings.Join(seen, " ")
	return nil
}
