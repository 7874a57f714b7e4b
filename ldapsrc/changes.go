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
	// Base is where Active Directory change searches run: the naming
	// context holding the configured bases, so that an entry moved out of
	// them, or deleted (tombstones live in CN=Deleted Objects), is still
	// returned. Empty: the configured bases.
	Base string `json:"base,omitempty"`
	// Deletions: the bind account can read deleted objects (AD's Show
	// Deleted control) or the server's access log (OpenLDAP accesslog
	// overlay, LogBase), so polls see deletions. Without it a deleted entry
	// reaches the bindings at the next full cycle, unless the deletion also
	// changed a group (OpenLDAP refint).
	Deletions bool `json:"deletions,omitempty"`
	// LogBase is the OpenLDAP accesslog database polls read deletions
	// from, LogTime the reqStart of the newest log entry seen, and LogSeen
	// the reqStart values within accessLogSlack of it already reported,
	// space-separated (a string keeps Cursor comparable; accesslog.go).
	LogBase string `json:"logBase,omitempty"`
	LogTime string `json:"logTime,omitempty"`
	LogSeen string `json:"logSeen,omitempty"`
}

// Changed is one group or user entry changed after a cursor.
type Changed struct {
	DN string
	// Key is the normalised DN, comparable with Group.Reached.
	Key string
	// ID is the entry's stable identity (objectGUID, entryUUID), as in
	// Group.Reached: it matches the entry after a rename, a move or a
	// deletion. Empty when the server shows none.
	ID string
	// Deleted: the entry was deleted (an AD tombstone).
	Deleted bool
	// Outside: the entry lies outside the configured bases (moved out, or
	// deleted): it matters only to the groups that reached it, never by
	// its names or IDs.
	Outside bool
	// Group is true for group entries; Names are their group names.
	Group bool
	Names []string
	// IDKeys are a user entry's ID values as UIDKey, matching the Reached
	// entries of rfc2307 groups, whose members are named by ID.
	IDKeys []string
}

// UIDKey is how a member named by user ID (rfc2307 memberUid) appears in
// Group.Reached and Changed.IDKeys; it cannot collide with a DN.
func UIDKey(id string) string { return "uid:" + FoldASCII(strings.TrimSpace(id)) }

// ChangeSet is the answer to one poll.
type ChangeSet struct {
	// Next is the cursor for the following poll, once these changes are
	// applied.
	Next Cursor
	// ServerChanged means the poll reached another domain controller than
	// the cursor's: what changed cannot be known, and a full cycle is due.
	ServerChanged bool
	// Why says, with ServerChanged, what the poll saw (for the log).
	Why     string
	Entries []Changed
	// LogErr: the OpenLDAP access log could not be read. The poll's other
	// changes stand; Next no longer follows the log (Deletions is false),
	// so deletions wait for the next full cycle, whose mark looks again.
	LogErr error
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

// changeFeed follows the directory's changes between full reads: it marks
// where the change history stands and reads what changed since (polls).
type changeFeed struct {
	*connector
	// src resolves the entries a poll reads, as a full read would.
	src *Source
	// digests remembers what polls reported of user entries (digest.go).
	digests digestMemo
	// digestOn is what a user entry's digest covers (userDigestAttrs); nil:
	// no user entry is dropped.
	digestOn []string
}

// Mark returns a cursor for "now": take it before a full cycle reads the
// directory, so a change made during the read is seen by the next poll.
func (s *changeFeed) Mark(ctx context.Context) (Cursor, error) {
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

func (s *changeFeed) mark(c *conn) (Cursor, int, error) {
	if s.cfg.Schema == config.SchemaActiveDirectory {
		return s.markAD(c)
	}
	return s.markCSN(c)
}

// deletedObjectsWKGUID names a naming context's Deleted Objects container
// whatever its name (MS-ADTS 6.1.1.4).
const deletedObjectsWKGUID = "18e2ea80684f11d2b9aa00c04f79f805"

// markAD reads the DC's USN and, once per cycle, where change searches
// run (the naming context holding the bases) and whether the bind account
// can read tombstones there.
func (s *changeFeed) markAD(c *conn) (Cursor, int, error) {
	srv, usn, err := s.readUSN(c)
	if err != nil {
		return Cursor{}, 1, err
	}
	cur, searches := Cursor{Server: srv, USN: usn}, 1
	root, err := s.readBase(c, "", "namingContexts")
	searches++
	if err != nil {
		return Cursor{}, searches, err
	}
	if root != nil {
		cur.Base = coveringContext(root.GetAttributeValues("namingContexts"), s.changeBases())
	}
	if cur.Base != "" {
		searches++
		cur.Deletions = s.tombstonesVisible(c, cur.Base)
	}
	return cur, searches, nil
}

// tombstonesVisible reports whether the Show Deleted control returns
// deleted objects to the bind account: AD lists them only to accounts
// granted List Contents and Read Property on CN=Deleted Objects (Domain
// Admins by default). A container with no tombstone at all reads as not
// visible, until the first deletion.
func (s *changeFeed) tombstonesVisible(c *conn, nc string) bool {
	s.Stats.Searches.Add(1)
	res, err := c.Search(ldap.NewSearchRequest("<WKGUID="+deletedObjectsWKGUID+","+nc+">", ldap.ScopeSingleLevel,
		ldap.NeverDerefAliases, 1, 0, false, "(isDeleted=TRUE)", []string{"1.1"},
		[]ldap.Control{ldap.NewControlMicrosoftShowDeleted()}))
	if err != nil {
		return ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded)
	}
	s.Stats.Entries.Add(int64(len(res.Entries)))
	return len(res.Entries) > 0
}

// coveringContext returns the longest naming context that holds every
// base, or "".
func coveringContext(contexts, bases []string) string {
	best := ""
	for _, nc := range contexts {
		all := true
		for _, b := range bases {
			if !isAncestorOrSelf(nc, b) {
				all = false
				break
			}
		}
		if all && len(nc) > len(best) {
			best = nc
		}
	}
	return best
}

// changeBases returns the fewest subtrees that cover ldap.baseDN and the
// group and user bases: searching the base DN as well sees an entry moved
// out of the user base but not out of the directory part we read.
func (s *changeFeed) changeBases() []string {
	r := &dirReader{src: s.src}
	return coverBases(s.cfg.BaseDN, r.groupBase(), r.userBase())
}

// coverBases drops bases that lie under (or equal) another.
func coverBases(bases ...string) []string {
	var out []string
	for i, b := range bases {
		covered := false
		for j, o := range bases {
			if i == j || b == "" || o == "" {
				continue
			}
			if isAncestorOrSelf(o, b) && (!isAncestorOrSelf(b, o) || j < i) {
				covered = true
				break
			}
		}
		if !covered && b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Changes returns the group and user entries changed after since: under
// the naming context holding the bases on AD (Cursor.Base: moved-out and,
// where readable, deleted entries included), under the base DN and the
// group and user bases elsewhere. When nothing changed it costs one small search on
// an already-open connection: the rootDSE (AD) or the change search itself
// (OpenLDAP), which then returns no entry.
func (s *changeFeed) Changes(ctx context.Context, since Cursor) (*ChangeSet, error) {
	c, done, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	s.digests.begin(since)
	var cs *ChangeSet
	if s.cfg.Schema == config.SchemaActiveDirectory {
		cs, err = s.changesAD(ctx, c, since)
	} else {
		cs, err = s.changesCSN(ctx, c, since)
	}
	if err != nil || cs.ServerChanged {
		s.digests.end(Cursor{}, false)
	} else {
		s.digests.end(cs.Next, true)
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
func (s *changeFeed) ClosePolls() { s.Close() }

// readUSN reads the DC's identity and highest committed USN from its rootDSE.
func (s *changeFeed) readUSN(c *conn) (server string, usn int64, err error) {
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

func (s *changeFeed) changesAD(ctx context.Context, c *conn, since Cursor) (*ChangeSet, error) {
	server, usn, err := s.readUSN(c)
	if err != nil {
		return nil, err
	}
	cs := &ChangeSet{Next: Cursor{Server: server, USN: usn, Base: since.Base, Deletions: since.Deletions}, Searches: 1}
	// Another DC, or the same one with its USN gone back (restored from a
	// backup): the cursor says nothing about what changed.
	if !strings.EqualFold(server, since.Server) {
		cs.ServerChanged, cs.Why = true, "another domain controller answered (its dsServiceName differs)"
		return cs, nil
	}
	if usn < since.USN {
		cs.ServerChanged, cs.Why = true, "the domain controller's highestCommittedUSN went back (restored from a backup?)"
		return cs, nil
	}
	if usn <= since.USN {
		return cs, nil // idle: one rootDSE read
	}
	// Groups (membership, name) and users (enabled, ID): a change to a
	// member's group link updates the group's uSNChanged, not the user's.
	// A deletion sets the tombstone's uSNChanged, and Show Deleted returns
	// tombstones to an account allowed to read them (it changes nothing
	// for one that is not).
	filter := fmt.Sprintf("(&(|(objectClass=group)(objectClass=user))(uSNChanged>=%d)(uSNChanged<=%d))", since.USN+1, usn)
	bases := s.changeBases()
	if since.Base != "" {
		bases = []string{since.Base}
	}
	err = s.changedEntries(ctx, c, bases, filter, []ldap.Control{ldap.NewControlMicrosoftShowDeleted()}, cs, nil)
	return cs, err
}

// markCSN returns where the directory's change history stands: the
// contextCSN of the naming context holding the base DN when the server
// keeps one (syncprov; then idle polls read only that), else a CSN stepped
// back from our clock, so the first poll may see a few already-read
// changes again but never misses one.
func (s *changeFeed) markCSN(c *conn) (Cursor, int, error) {
	searches := 1
	e, err := s.readBase(c, s.cfg.BaseDN, "entryCSN", "contextCSN")
	if err != nil {
		return Cursor{}, searches, err
	}
	if e == nil || e.GetAttributeValue("entryCSN") == "" {
		return Cursor{}, searches, fmt.Errorf("%s on %s has no entryCSN: %w", s.cfg.BaseDN, c.url, ErrNoChangeTracking)
	}
	// The naming context holding the base: where syncprov keeps
	// contextCSN and the accesslog overlay names its log (auditContext).
	searches++
	var contexts []string
	nc := ""
	if root, err := s.readBase(c, "", "namingContexts"); err == nil && root != nil {
		contexts = root.GetAttributeValues("namingContexts")
		for _, n := range contexts {
			if isAncestorOrSelf(n, s.cfg.BaseDN) {
				nc = n
				break
			}
		}
	}
	ctxDN, ctxCSN := s.cfg.BaseDN, joinCSNs(e.GetAttributeValues("contextCSN"))
	if ctxCSN == "" {
		// The base may lie below the naming context that holds contextCSN.
		ctxDN = ""
		if nc != "" {
			searches++
			if ne, err := s.readBase(c, nc, "contextCSN"); err == nil && ne != nil {
				if v := joinCSNs(ne.GetAttributeValues("contextCSN")); v != "" {
					ctxDN, ctxCSN = nc, v
				}
			}
		}
	}
	var cur Cursor
	if ctxDN != "" {
		cur = Cursor{CSN: maxString(strings.Split(ctxCSN, " ")), ContextDN: ctxDN, ContextCSN: ctxCSN}
	} else {
		cur = Cursor{CSN: clockCSN(time.Now().Add(-csnClockMargin))}
	}
	if nc != "" {
		logBase, n := s.accessLogBase(c, nc, contexts)
		searches += n
		if logBase != "" {
			cur.Deletions, cur.LogBase, cur.LogTime = true, logBase, logMarkTime(cur.CSN)
		}
	}
	return cur, searches, nil
}

// readBase reads one entry's attributes; nil when it does not exist.
func (s *changeFeed) readBase(c *conn, dn string, attrs ...string) (*ldap.Entry, error) {
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

func (s *changeFeed) changesCSN(ctx context.Context, c *conn, since Cursor) (*ChangeSet, error) {
	cs, moved, err := s.changedSinceCSN(ctx, c, since)
	if err != nil || cs.ServerChanged {
		return cs, err
	}
	if moved {
		// Something changed (a delete moves contextCSN too): what the
		// access log says was deleted.
		if err := s.logDeletions(ctx, c, since, cs); err != nil {
			// A log gone or no longer readable must not hold back the
			// changes polls do see.
			cs.LogErr = err
			cs.Next.Deletions, cs.Next.LogBase, cs.Next.LogTime, cs.Next.LogSeen = false, "", "", ""
		}
	}
	return cs, nil
}

// changedSinceCSN returns the entries changed after since; moved is false
// when contextCSN says nothing changed at all.
func (s *changeFeed) changedSinceCSN(ctx context.Context, c *conn, since Cursor) (cs *ChangeSet, moved bool, err error) {
	if since.CSN == "" {
		return nil, false, fmt.Errorf("poll without a cursor: %w", ErrNoChangeTracking)
	}
	cs = &ChangeSet{Next: since}
	if since.ContextDN != "" {
		// syncprov keeps the highest CSN on the naming context: one base
		// read tells whether anything changed at all.
		e, err := s.readBase(c, since.ContextDN, "contextCSN")
		cs.Searches++
		if err != nil {
			return nil, false, err
		}
		now := ""
		if e != nil {
			now = joinCSNs(e.GetAttributeValues("contextCSN"))
		}
		if now != "" && now == since.ContextCSN {
			return cs, false, nil
		}
		if now != "" && since.ContextCSN != "" {
			// One cursor per server ID (csn.go).
			cs, err = s.changesBySID(ctx, c, since, now, cs)
			return cs, true, err
		}
		cs.Next.ContextCSN = now
	}
	// Strictly after the cursor: the entry at the cursor was seen already.
	csn := ldap.EscapeFilter(since.CSN)
	filter := fmt.Sprintf("(&(entryCSN>=%s)(!(entryCSN=%s)))", csn, csn)
	err = s.changedEntries(ctx, c, s.changeBases(), filter, nil, cs, func(e *ldap.Entry) {
		if v := e.GetAttributeValue("entryCSN"); v > cs.Next.CSN {
			cs.Next.CSN = v
		}
	})
	return cs, true, err
}

// changedEntries runs the change search under bases and collects the
// entries: by identity always; by group name only under the group base,
// by user ID only under the user base, so that an entry elsewhere (moved
// out, deleted, or made there by someone who may create objects) matters
// only to the groups that reached it before.
func (s *changeFeed) changedEntries(ctx context.Context, c *conn, bases []string, filter string, controls []ldap.Control, cs *ChangeSet, each func(*ldap.Entry)) error {
	r := &dirReader{src: s.src, conn: c}
	nameAttr := s.cfg.GroupNameAttribute
	idAttr := identityAttr(s.cfg)
	groupBase, errG := ldap.ParseDN(r.groupBase())
	userBase, errU := ldap.ParseDN(r.userBase())
	if errG != nil || errU != nil {
		return fmt.Errorf("parse the group or user base DN: %w", errors.Join(errG, errU))
	}
	userAttrs := s.digestOn
	if userAttrs == nil {
		userAttrs = append([]string{s.cfg.UserIDAttribute}, digestAttrs...)
	}
	attrs := append([]string{nameAttr, "entryCSN", idAttr, "isDeleted"}, userAttrs...)
	seen := map[string]bool{}
	for _, base := range bases {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, attrs, slices.Clone(controls))
		before := s.Stats.Searches.Load()
		err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
			key := normalizeDN(e.DN)
			if seen[key] {
				return nil
			}
			seen[key] = true
			ch := Changed{DN: e.DN, Key: key, ID: identityKey(e, idAttr),
				Deleted: strings.EqualFold(e.GetAttributeValue("isDeleted"), "TRUE")}
			dn, err := ldap.ParseDN(e.DN)
			inGroups := err == nil && !ch.Deleted && (groupBase.EqualFold(dn) || groupBase.AncestorOfFold(dn))
			inUsers := err == nil && !ch.Deleted && (userBase.EqualFold(dn) || userBase.AncestorOfFold(dn))
			ch.Outside = !inGroups && !inUsers
			if isGroupEntry(e) {
				ch.Group = true
				if inGroups {
					ch.Names = e.GetEqualFoldAttributeValues(nameAttr)
				}
			} else if inUsers {
				for _, id := range e.GetEqualFoldAttributeValues(s.cfg.UserIDAttribute) {
					ch.IDKeys = append(ch.IDKeys, UIDKey(id))
				}
			}
			if s.digestOn != nil && !ch.Group && !ch.Deleted && !ch.Outside && s.digests.seen(reachKey(e.DN, ch.ID), userDigest(e, s.digestOn, ch.ID)) {
				// Only attributes resolution does not read changed
				// (digest.go): the entry's groups need no new read.
				if each != nil {
					each(e)
				}
				return nil
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
