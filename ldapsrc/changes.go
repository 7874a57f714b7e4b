package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// Cursor marks a point in the directory's change history: a poll asks for
// what changed after it.
type Cursor struct {
	// Server identifies the domain controller the USN belongs to (its
	// rootDSE dsServiceName): USNs are per DC, so another server means the
	// cursor means nothing there.
	Server string `json:"server,omitempty"`
	// USN is Active Directory's highestCommittedUSN when the cursor was set.
	USN int64 `json:"usn,omitempty"`
	// CSN is the highest entryCSN known (OpenLDAP). CSNs start with a
	// fixed-width UTC timestamp, so they order as strings and are
	// comparable across replicas.
	CSN string `json:"csn,omitempty"`
	// ContextDN is the naming context whose contextCSN (kept by the
	// syncprov overlay) tells at a glance whether anything changed, and
	// ContextCSN its value at the cursor; empty without syncprov. Its
	// values, one per server ID, are the cursor of replicated servers
	// (csn.go); CSN alone serves only where there is no contextCSN.
	ContextDN  string `json:"contextDN,omitempty"`
	ContextCSN string `json:"contextCSN,omitempty"`
}

// Changed is one group or user entry changed after a cursor.
type Changed struct {
	DN string
	// Key is the normalised DN, comparable with Group.Reached.
	Key string
	// Group is true for group entries; Names are their group names.
	Group bool
	Names []string
	// IDKeys are a user entry's ID values as UIDKey, matching the Reached
	// entries of rfc2307 groups, whose members are named by ID.
	IDKeys []string
}

// UIDKey is how a member named by user ID (rfc2307 memberUid) appears in
// Group.Reached and Changed.IDKeys; it cannot collide with a DN.
func UIDKey(id string) string { return "uid:" + strings.ToLower(strings.TrimSpace(id)) }

// ChangeSet is the answer to one poll.
type ChangeSet struct {
	// Next is the cursor for the following poll, once these changes are
	// applied.
	Next Cursor
	// ServerChanged means the poll reached another domain controller than
	// the cursor's: what changed cannot be known, and a full cycle is due.
	ServerChanged bool
	Entries       []Changed
	// Searches the poll cost (the rootDSE read included).
	Searches int
}

// ErrNoChangeTracking means the directory offers neither USNs nor entryCSN,
// so changes can only be found by full cycles.
var ErrNoChangeTracking = errors.New("the directory exposes neither highestCommittedUSN nor entryCSN")

// csnClockMargin is how far before "now" a cursor starts when the directory
// does not say where its change history stands (no contextCSN): a server
// clock up to this much behind ours loses no change.
const csnClockMargin = 5 * time.Minute

// Mark returns a cursor for "now": take it before a full cycle reads the
// directory, so a change made during the read is seen by the next poll.
func (s *Source) Mark(ctx context.Context) (Cursor, error) {
	c, done, err := s.session(ctx)
	if err != nil {
		return Cursor{}, err
	}
	defer done()
	cur, _, err := s.mark(c)
	if err != nil {
		s.dropSession(c)
		return Cursor{}, err
	}
	return cur, nil
}

func (s *Source) mark(c *conn) (Cursor, int, error) {
	if s.cfg.Schema == config.SchemaActiveDirectory {
		srv, usn, err := s.readUSN(c)
		return Cursor{Server: srv, USN: usn}, 1, err
	}
	return s.markCSN(c)
}

// Changes returns the group and user entries under the configured bases
// changed after since. When nothing changed it costs one small search on
// an already-open connection: the rootDSE (AD) or the change search itself
// (OpenLDAP), which then returns no entry.
func (s *Source) Changes(ctx context.Context, since Cursor) (*ChangeSet, error) {
	c, done, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var cs *ChangeSet
	if s.cfg.Schema == config.SchemaActiveDirectory {
		cs, err = s.changesAD(ctx, c, since)
	} else {
		cs, err = s.changesCSN(ctx, c, since)
	}
	if err != nil {
		// The connection may be what failed (idle timeout, DC gone): the
		// next read dials again, possibly another server.
		s.dropSession(c)
		return nil, err
	}
	return cs, nil
}

// ClosePolls closes the shared connection (Close).
func (s *Source) ClosePolls() { s.Close() }

// readUSN reads the DC's identity and highest committed USN from its rootDSE.
func (s *Source) readUSN(c *conn) (server string, usn int64, err error) {
	s.Stats.Searches.Add(1)
	res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"highestCommittedUSN", "dsServiceName"}, nil))
	if err != nil {
		return "", 0, fmt.Errorf("read rootDSE highestCommittedUSN from %s: %w", c.url, describeSearchError(err))
	}
	s.Stats.Entries.Add(int64(len(res.Entries)))
	if len(res.Entries) != 1 {
		return "", 0, fmt.Errorf("read rootDSE of %s: %d entries: %w", c.url, len(res.Entries), ErrNoChangeTracking)
	}
	e := res.Entries[0]
	raw := e.GetAttributeValue("highestCommittedUSN")
	if raw == "" {
		return "", 0, fmt.Errorf("rootDSE of %s has no highestCommittedUSN (is ldap.schema right?): %w", c.url, ErrNoChangeTracking)
	}
	usn, err = strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("rootDSE of %s: highestCommittedUSN %q: %w", c.url, raw, err)
	}
	server = e.GetAttributeValue("dsServiceName")
	if server == "" {
		server = c.url
	}
	return server, usn, nil
}

func (s *Source) changesAD(ctx context.Context, c *conn, since Cursor) (*ChangeSet, error) {
	server, usn, err := s.readUSN(c)
	if err != nil {
		return nil, err
	}
	cs := &ChangeSet{Next: Cursor{Server: server, USN: usn}, Searches: 1}
	// Another DC, or the same one with its USN gone back (restored from a
	// backup): the cursor says nothing about what changed.
	if !strings.EqualFold(server, since.Server) || usn < since.USN {
		cs.ServerChanged = true
		return cs, nil
	}
	if usn <= since.USN {
		return cs, nil // idle: one rootDSE read
	}
	// Groups (membership, name) and users (enabled, ID): a change to a
	// member's group link updates the group's uSNChanged, not the user's.
	filter := fmt.Sprintf("(&(|(objectClass=group)(objectClass=user))(uSNChanged>=%d)(uSNChanged<=%d))", since.USN+1, usn)
	err = s.changedEntries(ctx, c, filter, cs, nil)
	return cs, err
}

// markCSN returns where the directory's change history stands: the
// contextCSN of the naming context holding the base DN when the server
// keeps one (syncprov; then idle polls read only that), else a CSN stepped
// back from our clock, so the first poll may see a few already-read
// changes again but never misses one.
func (s *Source) markCSN(c *conn) (Cursor, int, error) {
	searches := 1
	e, err := s.readBase(c, s.cfg.BaseDN, "entryCSN", "contextCSN")
	if err != nil {
		return Cursor{}, searches, err
	}
	if e == nil || e.GetAttributeValue("entryCSN") == "" {
		return Cursor{}, searches, fmt.Errorf("%s on %s has no entryCSN: %w", s.cfg.BaseDN, c.url, ErrNoChangeTracking)
	}
	ctxDN, ctxCSN := s.cfg.BaseDN, joinCSNs(e.GetAttributeValues("contextCSN"))
	if ctxCSN == "" {
		// The base may lie below the naming context that holds contextCSN.
		searches += 2
		ctxDN = ""
		if root, err := s.readBase(c, "", "namingContexts"); err == nil && root != nil {
			for _, nc := range root.GetAttributeValues("namingContexts") {
				if isAncestorOrSelf(nc, s.cfg.BaseDN) {
					if ne, err := s.readBase(c, nc, "contextCSN"); err == nil && ne != nil {
						if v := joinCSNs(ne.GetAttributeValues("contextCSN")); v != "" {
							ctxDN, ctxCSN = nc, v
						}
					}
					break
				}
			}
		}
	}
	if ctxDN != "" {
		return Cursor{CSN: maxString(strings.Split(ctxCSN, " ")), ContextDN: ctxDN, ContextCSN: ctxCSN}, searches, nil
	}
	return Cursor{CSN: clockCSN(time.Now().Add(-csnClockMargin))}, searches, nil
}

// readBase reads one entry's attributes; nil when it does not exist.
func (s *Source) readBase(c *conn, dn string, attrs ...string) (*ldap.Entry, error) {
	s.Stats.Searches.Add(1)
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", attrs, nil))
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %v of %q on %s: %w", attrs, dn, c.url, describeSearchError(err))
	}
	s.Stats.Entries.Add(int64(len(res.Entries)))
	if len(res.Entries) != 1 {
		return nil, nil
	}
	return res.Entries[0], nil
}

// joinCSNs is a comparable form of a multi-valued contextCSN (one value
// per replica): sorted, space-separated.
func joinCSNs(vs []string) string {
	vs = slices.Clone(vs)
	slices.Sort(vs)
	return strings.Join(vs, " ")
}

func isAncestorOrSelf(ancestor, dn string) bool {
	a, errA := ldap.ParseDN(ancestor)
	d, errD := ldap.ParseDN(dn)
	if errA != nil || errD != nil {
		return false
	}
	return a.EqualFold(d) || a.AncestorOfFold(d)
}

func (s *Source) changesCSN(ctx context.Context, c *conn, since Cursor) (*ChangeSet, error) {
	if since.CSN == "" {
		return nil, fmt.Errorf("poll without a cursor: %w", ErrNoChangeTracking)
	}
	cs := &ChangeSet{Next: since}
	if since.ContextDN != "" {
		// syncprov keeps the highest CSN on the naming context: one base
		// read tells whether anything changed at all.
		e, err := s.readBase(c, since.ContextDN, "contextCSN")
		cs.Searches++
		if err != nil {
			return nil, err
		}
		now := ""
		if e != nil {
			now = joinCSNs(e.GetAttributeValues("contextCSN"))
		}
		if now != "" && now == since.ContextCSN {
			return cs, nil
		}
		if now != "" && since.ContextCSN != "" {
			// One cursor per server ID (csn.go).
			return s.changesBySID(ctx, c, since, now, cs)
		}
		cs.Next.ContextCSN = now
	}
	// Strictly after the cursor: the entry at the cursor was seen already.
	csn := ldap.EscapeFilter(since.CSN)
	filter := fmt.Sprintf("(&(entryCSN>=%s)(!(entryCSN=%s)))", csn, csn)
	err := s.changedEntries(ctx, c, filter, cs, func(e *ldap.Entry) {
		if v := e.GetAttributeValue("entryCSN"); v > cs.Next.CSN {
			cs.Next.CSN = v
		}
	})
	return cs, err
}

// changedEntries runs the change search under the group and user bases
// (once when one contains the other) and collects the entries.
func (s *Source) changedEntries(ctx context.Context, c *conn, filter string, cs *ChangeSet, each func(*ldap.Entry)) error {
	r := newResolver(s, c)
	nameAttr := s.cfg.GroupNameAttribute
	seen := map[string]bool{}
	for _, base := range searchBases(r.groupBase(), r.userBase()) {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, []string{"objectClass", nameAttr, s.cfg.UserIDAttribute, "entryCSN"}, nil)
		before := s.Stats.Searches.Load()
		err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
			key := normalizeDN(e.DN)
			if seen[key] {
				return nil
			}
			seen[key] = true
			ch := Changed{DN: e.DN, Key: key}
			if isGroupEntry(e) {
				ch.Group = true
				ch.Names = e.GetEqualFoldAttributeValues(nameAttr)
			} else {
				for _, id := range e.GetEqualFoldAttributeValues(s.cfg.UserIDAttribute) {
					ch.IDKeys = append(ch.IDKeys, UIDKey(id))
				}
			}
			cs.Entries = append(cs.Entries, ch)
			if each != nil {
				each(e)
			}
			return nil
		})
		cs.Searches += int(s.Stats.Searches.Load() - before)
		if err != nil {
			return fmt.Errorf("search changes under %s: %w", base, err)
		}
	}
	return nil
}

func isGroupEntry(e *ldap.Entry) bool {
	for _, oc := range e.GetEqualFoldAttributeValues("objectClass") {
		switch strings.ToLower(oc) {
		case "group", "groupofnames", "groupofuniquenames", "posixgroup":
			return true
		}
	}
	return false
}

// searchBases returns the distinct bases to search, dropping one that lies
// under another.
func searchBases(a, b string) []string {
	if dnEqual(a, b) {
		return []string{a}
	}
	pa, errA := ldap.ParseDN(a)
	pb, errB := ldap.ParseDN(b)
	if errA == nil && errB == nil {
		if pa.AncestorOfFold(pb) {
			return []string{a}
		}
		if pb.AncestorOfFold(pa) {
			return []string{b}
		}
	}
	return []string{a, b}
}

// clockCSN formats t as the timestamp part of an OpenLDAP CSN, the lowest
// CSN of that microsecond.
func clockCSN(t time.Time) string {
	return t.UTC().Format("20060102150405.000000Z") + "#000000#000#000000"
}

func maxString(vs []string) string {
	m := ""
	for _, v := range vs {
		if v > m {
			m = v
		}
	}
	return m
}
