package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// user is what the resolver needs of one user entry.
type user struct {
	dn       string
	raw      string // the ID as the directory holds it
	id       string // normalised; empty when rejected
	skip     string // reason it cannot be bound, or ""
	rawIDKey string // lower-cased raw ID, for memberUid lookups
	identity string // identityKey, or ""
	primary  string // SID of the AD primary group (primary.go), or ""
	// alsoGroup: the entry is a group under the group base as well
	// (markGroupUsers); a member naming it is ambiguous.
	alsoGroup bool
}

// userIndex holds every user under the user base, read in one paged
// search, so that resolving members never costs a search per member.
type userIndex struct {
	byDN map[string]*user // normalised DN
	byID map[string]*user // lower-cased raw ID value
	// byPrimary: AD users by the SID of their primary group.
	byPrimary map[string][]*user
	// dupID: raw ID keys held by more than one entry, with their DNs. A
	// memberUid naming one is ambiguous, never the last entry read.
	dupID map[string][]string
}

func newUserIndex() *userIndex {
	return &userIndex{byDN: map[string]*user{}, byID: map[string]*user{}, byPrimary: map[string][]*user{}, dupID: map[string][]string{}}
}

// readUsers reads every user entry under the user base.
func (r *dirReader) readUsers(ctx context.Context) (*userIndex, error) {
	idx := newUserIndex()
	return idx, r.readUsersInto(ctx, "", idx)
}

// readUsersInto reads the user entries under the user base that also match
// extra (a filter, or "" for all) into idx.
func (r *dirReader) readUsersInto(ctx context.Context, extra string, idx *userIndex) error {
	cfg := r.src.cfg
	ad := cfg.Schema == config.SchemaActiveDirectory
	base := fmt.Sprintf("(%s=*)", cfg.UserIDAttribute)
	if ad {
		// AD contacts have no sAMAccountName: read them too, so that one
		// in a group is counted as a contact, not as an unresolved DN.
		base = fmt.Sprintf("(|(%s=*)(objectClass=contact))", cfg.UserIDAttribute)
	}
	filter := base + cfg.UserFilter + extra
	if filter != base {
		filter = "(&" + filter + ")"
	}
	// No objectClass outside AD: with many users its values are most of
	// the bytes read, and there an entry with the ID attribute that matches
	// userFilter is a user. AD needs it to tell computers from people.
	attrs := []string{cfg.UserIDAttribute, "userAccountControl", "nsAccountLock", "pwdAccountLockedTime", identityAttr(cfg)}
	if ad {
		attrs = append(attrs, "objectClass", "objectSid", "primaryGroupID", "accountExpires")
	}
	now := r.src.now()
	req := ldap.NewSearchRequest(r.userBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, attrs, nil)
	err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		u := &user{dn: e.DN, identity: identityKey(e, identityAttr(cfg))}
		raw := e.GetEqualFoldAttributeValues(cfg.UserIDAttribute)
		kind := "user"
		if ad {
			kind = classify(e)
		}
		switch {
		case kind == "group":
			return nil
		case kind != "user":
			u.skip = kind
		default:
			u.id, u.skip = r.account(e, raw, ad, now)
		}
		key := normalizeDN(e.DN)
		if _, dup := idx.byDN[key]; dup {
			return nil // read twice (targeted reads): once is enough
		}
		idx.byDN[key] = u
		if ad {
			if u.primary = primaryGroupSID(e.GetRawAttributeValue("objectSid"), e.GetAttributeValue("primaryGroupID")); u.primary != "" {
				idx.byPrimary[u.primary] = append(idx.byPrimary[u.primary], u)
			}
		}
		if len(raw) > 0 {
			u.raw = raw[0]
			u.rawIDKey = FoldASCII(strings.TrimSpace(raw[0]))
			if prev, dup := idx.byID[u.rawIDKey]; dup {
				if len(idx.dupID[u.rawIDKey]) == 0 {
					idx.dupID[u.rawIDKey] = []string{prev.dn}
				}
				idx.dupID[u.rawIDKey] = append(idx.dupID[u.rawIDKey], u.dn)
			}
			idx.byID[u.rawIDKey] = u
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read users under %s: %w", r.userBase(), err)
	}
	return nil
}

// account returns the user ID a user entry is bound as, or why it is not:
// disabled, expired (AD's accountExpires, read when ad), without an ID
// (raw holds the ID attribute's values), or with an invalid one.
func (r *dirReader) account(e *ldap.Entry, raw []string, ad bool, now time.Time) (id, skip string) {
	switch {
	case disabled(e):
		return "", model.SkipDisabled
	case ad && expired(e, now):
		return "", model.SkipExpired
	case len(raw) == 0:
		return "", model.SkipNoID
	}
	cfg := r.src.cfg
	id, err := NormalizeID(raw[0], cfg.UserIDCase, cfg.UserIDPrefix)
	if err != nil {
		r.src.log.Debug("member rejected", zap.String("dn", e.DN), zap.Error(err))
		return "", model.SkipInvalidID
	}
	return id, ""
}

// disabled reads the account-disabled markers of the common directories:
// AD's userAccountControl bit, 389-DS/FreeIPA's nsAccountLock, and the
// OpenLDAP password policy lock.
func disabled(e *ldap.Entry) bool {
	if uac := e.GetAttributeValue("userAccountControl"); uac != "" {
		if v, err := strconv.ParseInt(uac, 10, 64); err == nil && v&uacDisabled != 0 {
			return true
		}
	}
	if strings.EqualFold(e.GetAttributeValue("nsAccountLock"), "true") {
		return true
	}
	return e.GetAttributeValue("pwdAccountLockedTime") != ""
}

// gon is a group entry of the groupOfNames kind (or an AD group with
// memberResolution expand): its DN and member DNs.
type gon struct {
	dn       string
	identity string // identityKey, or ""
	sid      string // AD objectSid, whose primary members belong too
	members  []string
	// err: the members could not be read completely (a bad range); every
	// group that reaches this one fails with it.
	err error
}

// groupIndex holds group entries by normalised DN and by lower-cased name.
type groupIndex struct {
	byDN   map[string]*gon
	byName map[string][]*gon
}

func newGroupIndex() *groupIndex {
	return &groupIndex{byDN: map[string]*gon{}, byName: map[string][]*gon{}}
}

// groupClassFilter: groupOfNames, or AD with memberResolution expand.
func (r *dirReader) groupClassFilter() string { return groupClassFilter(r.src.cfg.Schema) }

// readGroupsInto reads the group entries under the group base that also
// match extra (a filter, or "" for all) into idx, members read completely.
func (r *dirReader) readGroupsInto(ctx context.Context, extra string, idx *groupIndex) error {
	nameAttr := r.src.cfg.GroupNameAttribute
	filter := r.groupClassFilter()
	if extra != "" {
		filter = "(&" + filter + extra + ")"
	}
	idAttr := identityAttr(r.src.cfg)
	req := ldap.NewSearchRequest(r.groupBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{nameAttr, "member", "uniqueMember", idAttr, "objectSid"}, nil)
	err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		key := normalizeDN(e.DN)
		if _, dup := idx.byDN[key]; dup {
			return nil
		}
		g := &gon{dn: e.DN, identity: identityKey(e, idAttr), sid: decodeSID(e.GetRawAttributeValue("objectSid"))}
		for _, attr := range []string{"member", "uniqueMember"} {
			vals, err := r.multiValued(ctx, e, attr)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				g.err = fmt.Errorf("read members of group %s: %w", e.DN, err)
				break
			}
			for _, v := range vals {
				if attr == "uniqueMember" {
					v = stripUID(v)
				}
				if v != "" { // an empty group holds one empty placeholder member
					g.members = append(g.members, v)
				}
			}
		}
		idx.byDN[key] = g
		for _, n := range e.GetEqualFoldAttributeValues(nameAttr) {
			idx.byName[FoldASCII(n)] = append(idx.byName[FoldASCII(n)], g)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read groups under %s: %w", r.groupBase(), err)
	}
	return nil
}

// resolveGroupOfNames reads every user under the user base in one paged
// search, then only the groups the named groups reach (by name, then level
// by level by DN, never every group under the group base: a group
// creator's large groups elsewhere cost nothing), and expands nesting here
// with cycle detection and a depth limit.
func (r *resolver) resolveGroupOfNames(ctx context.Context, names []string) error {
	users, err := r.readUsers(ctx)
	if err != nil {
		r.failAll(names, err)
		return nil
	}
	if err := r.markGroupUsers(ctx, users); err != nil {
		r.failAll(names, err)
		return nil
	}
	groups := newGroupIndex()
	if err := r.readReachable(ctx, names, groups, users, false); err != nil {
		r.failAll(names, err)
		return nil
	}
	return r.expand(ctx, names, groups, users)
}

// markGroupUsers finds the user entries that are groups under the group
// base too (groupOfNames with uidObject, say): the full read does not read
// a member DN it knows as a user again as a group, so without this it
// would take such an entry for one or the other. expand makes a member
// naming one that group's error, as a targeted read does. AD groups are
// never users (classify), so only other schemas need the search, and it
// returns nothing on most directories.
func (r *resolver) markGroupUsers(ctx context.Context, users *userIndex) error {
	cfg := r.src.cfg
	if cfg.Schema == config.SchemaActiveDirectory {
		return nil
	}
	filter := "(&" + r.groupClassFilter() + fmt.Sprintf("(%s=*)", cfg.UserIDAttribute) + cfg.UserFilter + ")"
	req := ldap.NewSearchRequest(r.groupBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"1.1"}, nil)
	err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		if u, ok := users.byDN[normalizeDN(e.DN)]; ok {
			u.alsoGroup = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find entries that are both a group and a user under %s: %w", r.groupBase(), err)
	}
	return nil
}

// targetedBatch bounds the DNs or names in one OR filter (inBatches).
const targetedBatch = 100

// resolveGroupOfNamesTargeted resolves a few groups without reading the
// whole directory: the named groups, then, level by level, exactly the
// entries their members name (groups and users, by DN in batches), then
// the same expansion as a full read. For incremental syncs, where a change
// touches a handful of groups out of thousands.
func (r *resolver) resolveGroupOfNamesTargeted(ctx context.Context, names []string) error {
	groups, users := newGroupIndex(), newUserIndex()
	if err := r.readReachable(ctx, names, groups, users, true); err != nil {
		r.failAll(names, err)
		return nil
	}
	// AD primary groups are in no member value: the users whose primary
	// group is one of the groups read.
	var sids []string
	for _, g := range groups.byDN {
		sids = append(sids, g.sid)
	}
	if err := r.readPrimaryMembers(ctx, sids, users); err != nil {
		r.failAll(names, err)
		return nil
	}
	return r.expand(ctx, names, groups, users)
}

// readReachable reads the named groups and, level by level, the groups
// their members name; with readUsers also the users they name, else only
// the member DNs that are no user of users (read whole before). Members
// are read for these groups only, so memory follows what the project
// groups reach, not what the group base holds.
func (r *resolver) readReachable(ctx context.Context, names []string, groups *groupIndex, users *userIndex, readUsers bool) error {
	nameAttr := r.src.cfg.GroupNameAttribute
	if err := r.inBatches(names, func(batch []string) error {
		return r.readGroupsInto(ctx, orFilter(nameAttr, batch), groups)
	}); err != nil {
		return err
	}
	dnAttr := "entryDN" // OpenLDAP, 389-DS
	if r.src.cfg.Schema == config.SchemaActiveDirectory {
		dnAttr = "distinguishedName"
	}
	known := map[string]bool{}
	frontier := make([]*gon, 0, len(groups.byDN))
	for key, g := range groups.byDN {
		known[key] = true
		frontier = append(frontier, g)
	}
	// One level more than the depth limit, so that a chain too deep is
	// still seen, and reported, as one.
	for level := 0; level <= r.src.cfg.MaxNestingDepth && len(frontier) > 0; level++ {
		var need []string
		for _, g := range frontier {
			if g.err != nil {
				continue
			}
			for _, m := range g.members {
				key := normalizeDN(m)
				if known[key] {
					continue
				}
				known[key] = true
				if _, isUser := users.byDN[key]; isUser && !readUsers {
					continue
				}
				need = append(need, m)
			}
		}
		before := len(groups.byDN)
		err := r.inBatches(need, func(batch []string) error {
			f := orFilter(dnAttr, batch)
			if err := r.readGroupsInto(ctx, f, groups); err != nil {
				return err
			}
			if !readUsers {
				return nil
			}
			return r.readUsersInto(ctx, f, users)
		})
		if err != nil {
			return err
		}
		frontier = frontier[:0]
		if len(groups.byDN) > before {
			for _, m := range need {
				if g, ok := groups.byDN[normalizeDN(m)]; ok {
					frontier = append(frontier, g)
				}
			}
		}
	}
	return nil
}

func (r *dirReader) inBatches(values []string, fn func([]string) error) error {
	for start := 0; start < len(values); start += targetedBatch {
		if err := fn(values[start:min(start+targetedBatch, len(values))]); err != nil {
			return err
		}
	}
	return nil
}

// orFilter matches entries whose attr equals one of values.
func orFilter(attr string, values []string) string {
	var b strings.Builder
	b.WriteString("(|")
	for _, v := range values {
		fmt.Fprintf(&b, "(%s=%s)", attr, ldap.EscapeFilter(v))
	}
	b.WriteString(")")
	return b.String()
}

func (r *resolver) failAll(names []string, err error) {
	for _, n := range names {
		r.res.Groups[n].Err = err
	}
}

// expand resolves each named group from the groups and users read: nesting
// expanded breadth-first with cycle detection and the depth limit.
func (r *resolver) expand(ctx context.Context, names []string, groups *groupIndex, users *userIndex) error {
	for _, n := range names {
		res := r.res.Groups[n]
		top := groups.named(n, res)
		if top == nil {
			if cands := groups.byName[FoldASCII(n)]; len(cands) > 1 {
				if err := r.mightGrant(ctx, n, res, cands, groups, users); err != nil {
					return err
				}
			}
			continue
		}
		x := newExpansion(r, n, res, top, groups, users)
		if err := x.run(ctx, top); err != nil {
			return err
		}
		if res.Err == nil {
			x.finish()
		}
	}
	return nil
}

// mightGrant sets res.MightGrant, for a name two or more groups answer to,
// to the union of every candidate's members, resolved as a group of its own
// (same nesting, skips and member errors) from the entries already read:
// the plan then holds back only these users. A candidate that fails leaves
// MightGrant nil (unknown: the last known members decide). An error is the
// whole read's.
func (r *resolver) mightGrant(ctx context.Context, n string, res *model.Group, cands []*gon, groups *groupIndex, users *userIndex) error {
	union := map[string]struct{}{}
	for _, c := range cands {
		if c.err != nil {
			return nil
		}
		scratch := &model.Group{Name: n, Found: true, DN: c.dn, Identity: c.identity}
		x := newExpansion(r, n, scratch, c, groups, users)
		if err := x.run(ctx, c); err != nil {
			return err
		}
		if scratch.Err != nil {
			return nil
		}
		for m := range x.members {
			union[m] = struct{}{}
		}
	}
	res.MightGrant = model.SortedKeys(union)
	return nil
}

// named returns the one group named n, recorded in res; nil when there is
// none, or when the name is ambiguous or the entry failed (res.Err).
func (idx *groupIndex) named(n string, res *model.Group) *gon {
	found := idx.byName[FoldASCII(n)]
	switch len(found) {
	case 0:
		return nil
	case 1:
	default:
		dns := make([]string, len(found))
		for i, g := range found {
			dns[i] = g.dn
		}
		res.Err = fmt.Errorf("group name %q is ambiguous: %s all match; narrow ldap.groupBaseDN or use a unique ldap.groupNameAttribute", n, strings.Join(dns, ", "))
		return nil
	}
	res.Found, res.DN, res.Identity = true, found[0].dn, found[0].identity
	if found[0].err != nil {
		res.Err = found[0].err
		return nil
	}
	return found[0]
}

// expansion is one named group's walk over the groups and users read: the
// members bound, the groups visited, the entries reached, and the member
// DNs read as neither a group nor a user. A failure is the group's Err.
type expansion struct {
	r       *resolver
	name    string
	res     *model.Group
	groups  *groupIndex
	users   *userIndex
	t       *tracer
	members map[string]struct{}
	visited map[string]bool
	reached []string
	unseen  []string
}

func newExpansion(r *resolver, name string, res *model.Group, top *gon, groups *groupIndex, users *userIndex) *expansion {
	x := &expansion{r: r, name: name, res: res, groups: groups, users: users,
		members: map[string]struct{}{}, visited: map[string]bool{normalizeDN(top.dn): true}}
	if r.src.Trace {
		x.t = newTracer()
		x.t.group(top.dn, name, top.members)
	}
	if r.src.Reach {
		x.reached = append(x.reached, reachKey(top.dn, top.identity))
	}
	return x
}

// run resolves the group top: refused when it is an all-accounts group
// itself, else walked and its unseen members settled. A refusal or a
// member's failure is res.Err; an error is the whole read's.
func (x *expansion) run(ctx context.Context, top *gon) error {
	if err := x.r.refuseWellKnown(x.name, top.sid, top.dn); err != nil {
		x.res.Err = err
		return nil
	}
	x.walk(top)
	if x.res.Err == nil && len(x.unseen) > 0 {
		return x.resolveUnseen(ctx)
	}
	return nil
}

// walk visits the nesting breadth-first from top until done or failed.
func (x *expansion) walk(top *gon) {
	type item struct {
		g     *gon
		depth int
	}
	queue := []item{{top, 0}}
	for len(queue) > 0 && x.res.Err == nil {
		it := queue[0]
		queue = queue[1:]
		for _, m := range it.g.members {
			sub, err := x.member(m, it.depth)
			if err != nil {
				x.res.Err = err
				break
			}
			if sub != nil {
				queue = append(queue, item{sub, it.depth + 1})
			}
		}
		if x.res.Err != nil {
			break
		}
		x.primaryMembers(it.g)
	}
}

// member takes one member DN of a group at depth: it returns a nested
// group still to visit, binds a user, or keeps a DN read as neither.
func (x *expansion) member(m string, depth int) (*gon, error) {
	r := x.r
	key := normalizeDN(m)
	sub, isGroup := x.groups.byDN[key]
	u, isUser := x.users.byDN[key]
	if isGroup && isUser || isUser && u.alsoGroup {
		// One index: a DN that names a group and a user is neither, never
		// the one looked up first.
		found := []string{u.dn}
		if isGroup && !dnEqual(sub.dn, u.dn) {
			found = append(found, sub.dn)
		}
		return nil, &MemberError{Group: x.name, Member: m, Found: found}
	}
	if r.src.Reach {
		// By identity where the entry was read: a rename or a move keeps
		// it (the others in resolveUnseen).
		if isGroup {
			x.reached = append(x.reached, reachKey(m, sub.identity))
		} else if isUser {
			x.reached = append(x.reached, reachKey(m, u.identity))
		}
	}
	switch {
	case isGroup:
		return x.nested(key, sub, depth)
	case isUser:
		r.skips.take(u, x.members)
		x.t.entry(u.dn, u.raw, u.id, u.skip, u.identity)
		return nil, nil
	}
	// A foreign principal's name ends the walk at once (settleUnseen,
	// which also reads SIDs, would refuse it too, after the walk).
	if err := r.refuseWellKnown(x.name, foreignSID(m), m); err != nil {
		return nil, err
	}
	x.unseen = append(x.unseen, m)
	return nil, nil
}

// nested returns a nested group to visit; nil when it was visited before
// (a nesting cycle, or a group reached twice).
func (x *expansion) nested(key string, sub *gon, depth int) (*gon, error) {
	if x.visited[key] {
		return nil, nil
	}
	if sub.err != nil {
		return nil, sub.err
	}
	if err := x.r.refuseWellKnown(x.name, sub.sid, sub.dn); err != nil {
		return nil, err
	}
	if maxDepth := x.r.src.cfg.MaxNestingDepth; depth+1 >= maxDepth {
		return nil, fmt.Errorf("group %q nests deeper than ldap.maxNestingDepth (%d) at %s; raise the limit or flatten the groups", x.name, maxDepth, sub.dn)
	}
	x.visited[key] = true
	x.t.group(sub.dn, "", sub.members)
	return sub, nil
}

// primaryMembers binds the AD primary members of g (primary.go).
func (x *expansion) primaryMembers(g *gon) {
	pm := x.users.byPrimary[g.sid]
	if len(pm) > 0 && sidRID(g.sid) == domainUsersRID {
		x.r.warnDomainWide(x.name, g.dn, len(pm))
	}
	for _, u := range pm {
		if x.r.src.Reach {
			x.reached = append(x.reached, reachKey(u.dn, u.identity))
		}
		x.t.group(g.dn, "", []string{u.dn})
		x.r.skips.take(u, x.members)
		x.t.entry(u.dn, u.raw, u.id, u.skip, u.identity)
	}
}

// resolveUnseen settles the member DNs read neither as a group nor as a
// user (settleUnseen); a refusal is the group's error, any other error
// the whole read's.
func (x *expansion) resolveUnseen(ctx context.Context) error {
	reached, err := x.r.settleUnseen(ctx, x.name, x.unseen, x.reached)
	var wk *WellKnownGroupError
	if errors.As(err, &wk) {
		x.res.Err = err
		return nil
	}
	if err != nil {
		return err
	}
	x.reached = reached
	return nil
}

// finish records the members (and what was reached and traced).
func (x *expansion) finish() {
	x.res.Members, x.res.Reached = model.SortedKeys(x.members), x.reached
	if x.t != nil {
		x.res.Memberships = x.t.memberships(x.res.DN, x.name)
	}
}

// resolveRFC2307 finds posixGroups by name and validates their memberUid
// values against the users read in one search.
func (r *resolver) resolveRFC2307(ctx context.Context, names []string) error {
	if err := r.findGroups(ctx, names, groupQuery{classFilter: "(objectClass=posixGroup)", memberAttrs: []string{"memberUid"}}); err != nil {
		return err
	}
	need := false
	for _, n := range names {
		if g := r.res.Groups[n]; g.Found && g.Err == nil {
			need = true
		}
	}
	if !need {
		return nil
	}
	users := newUserIndex()
	var err error
	if r.targeted {
		// Only the accounts the groups name.
		var uids []string
		for _, n := range names {
			if g := r.res.Groups[n]; g.Found && g.Err == nil {
				uids = append(uids, r.direct[n]...)
			}
		}
		err = r.inBatches(model.SortedUnique(uids), func(batch []string) error {
			return r.readUsersInto(ctx, orFilter(r.src.cfg.UserIDAttribute, batch), users)
		})
	} else {
		err = r.readUsersInto(ctx, "", users)
	}
	if err != nil {
		for _, n := range names {
			if g := r.res.Groups[n]; g.Found && g.Err == nil {
				g.Err = err
			}
		}
		return nil
	}
	for _, n := range names {
		if g := r.res.Groups[n]; g.Found && g.Err == nil {
			r.posixMembers(n, g, users)
		}
	}
	return nil
}

// posixMembers binds the accounts a posixGroup's memberUid values name;
// a uid no account or two accounts answer to is skipped or fails the group.
func (r *resolver) posixMembers(n string, g *model.Group, users *userIndex) {
	members := map[string]struct{}{}
	if r.src.Reach {
		g.Reached = append(g.Reached, reachKey(g.DN, g.Identity))
	}
	for _, uid := range r.direct[n] {
		if r.src.Reach {
			// By ID: an account created or renamed to this uid later.
			g.Reached = append(g.Reached, UIDKey(uid))
		}
		key := FoldASCII(strings.TrimSpace(uid))
		if dns, dup := users.dupID[key]; dup {
			// Two accounts answer to this uid: which one the group
			// means cannot be known, so the group is not used.
			g.Err = &MemberError{Group: n, Member: "memberUid=" + uid, Found: dns}
			break
		}
		if u, ok := users.byID[key]; ok {
			if r.src.Reach {
				g.Reached = append(g.Reached, reachKey(u.dn, u.identity))
			}
			r.skips.take(u, members)
			if r.src.Trace {
				g.Memberships = append(g.Memberships, model.Membership{RawID: uid, ID: u.id, DN: u.dn, Path: []string{n}, Skip: u.skip, Identity: IdentityLabel(u.identity)})
			}
			continue
		}
		if r.src.Trace {
			g.Memberships = append(g.Memberships, model.Membership{RawID: uid, Path: []string{n}, Skip: model.SkipUnresolved})
		}
		// A memberUid naming no account: bound, it would grant access to
		// whoever later gets that name.
		r.skips.add(model.SkipUnresolved, "memberUid="+uid+" in "+g.DN)
	}
	if g.Err != nil {
		g.Reached, g.Memberships = nil, nil
		return
	}
	g.Members = model.SortedKeys(members)
}

// stripUID drops the optional "#'bitstring'B" suffix of a uniqueMember.
func stripUID(v string) string {
	if i := strings.LastIndex(v, "#'"); i > 0 && strings.HasSuffix(v, "'B") {
		return v[:i]
	}
	return v
}
