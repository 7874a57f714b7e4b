package ldapsrc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// inChainRule is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: a filter
// (memberOf:<rule>:=<groupDN>) matches every transitive member, so nested
// groups cost one search, and the server handles nesting cycles.
const inChainRule = "1.2.840.113556.1.4.1941"

func (r *resolver) resolveAD(ctx context.Context, names []string) error {
	if err := r.findGroups(ctx, names, groupQuery{classFilter: "(objectClass=group)", memberAttrs: []string{"member"}}); err != nil {
		return err
	}
	// Members: one paged search per group, never one per member.
	for _, n := range names {
		g := r.res.Groups[n]
		if g.Err != nil || !g.Found {
			continue
		}
		if gs := r.primaryGroups().sids[n]; len(gs) > 0 {
			if err := r.refuseWellKnown(n, gs[0].sid, g.DN); err != nil {
				g.Err = err
				continue
			}
		}
		var t *tracer
		if r.src.Trace {
			t = newTracer()
		}
		members, reached, err := r.members(ctx, g.DN, g.Identity, r.direct[n], t, n)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			g.Err = fmt.Errorf("resolve members of group %q (%s): %w", n, g.DN, err)
			continue
		}
		g.Members, g.Reached = members, reached
		if t != nil {
			g.Memberships = t.memberships(g.DN, n)
		}
	}
	// Primary groups are in no member value (primary.go).
	r.addPrimaryMembers(ctx, names)
	return nil
}

// members returns the sorted, unique user IDs of every transitive member of
// the group, skipping (and counting) what is not an enabled user, and, with
// Source.Reach, every entry reached (see Group.Reached).
func (r *resolver) members(ctx context.Context, groupDN, groupID string, direct []string, t *tracer, name string) ([]string, []string, error) {
	c := &chainSearch{r: r, name: name, t: t, now: r.src.now(),
		named: map[string]string{}, found: map[string]string{normalizeDN(groupDN): reachKey(groupDN, groupID)}, ids: map[string]struct{}{}}
	for _, dn := range direct {
		c.named[normalizeDN(dn)] = dn
	}
	t.group(groupDN, name, direct)
	if err := c.search(ctx, groupDN); err != nil {
		return nil, nil, err
	}
	reached, err := c.unseen(ctx)
	if err != nil {
		return nil, nil, err
	}
	return model.SortedKeys(c.ids), reached, nil
}

// chainSearch is one group's in-chain member search: what the group and
// its nested groups name, what the search returned, and the user IDs.
type chainSearch struct {
	r    *resolver
	name string
	t    *tracer
	now  time.Time
	// named holds every member DN named by the group or a nested group,
	// found every entry the search returned (as its reach key), both by
	// normalised DN: the difference is what the search could not see.
	named map[string]string
	found map[string]string
	ids   map[string]struct{}
}

// search reads every transitive member under the user base, and the
// nested groups under the group base when that lies outside it.
func (c *chainSearch) search(ctx context.Context, groupDN string) error {
	r := c.r
	chain := fmt.Sprintf("(memberOf:%s:=%s)", inChainRule, ldap.EscapeFilter(groupDN))
	attrs := []string{"objectClass", "userAccountControl", "member", r.src.cfg.UserIDAttribute, attrObjectGUID, "objectSid", "accountExpires"}
	each := func(e *ldap.Entry) error { return c.entry(ctx, e) }
	req := ldap.NewSearchRequest(r.userBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, chain, attrs, nil)
	if err := r.pagedSearch(ctx, req, each); err != nil {
		return err
	}
	// With ldap.groupBaseDN outside the user base, the search above returns
	// no nested group that lives there (users under the user base it still
	// finds: the rule follows nesting wherever the groups are). Nested
	// groups matter for what they name (a member outside the user base is
	// outside_base, not unresolved) and for polls (a change to one must be
	// matched), so fetch them from the group base, in one more search per
	// group and only when one of them lies there.
	if gb := r.groupBase(); !isAncestorOrSelf(r.userBase(), gb) && r.unseenUnder(c.named, c.found, gb) {
		req := ldap.NewSearchRequest(gb, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, "(&(objectClass=group)"+chain+")", attrs, nil)
		if err := r.pagedSearch(ctx, req, each); err != nil {
			return fmt.Errorf("find nested groups under %s: %w", gb, err)
		}
	}
	return nil
}

// entry takes one entry the search returned: a nested group, a user, or
// something skipped.
func (c *chainSearch) entry(ctx context.Context, e *ldap.Entry) error {
	r, cfg := c.r, c.r.src.cfg
	ident := identityKey(e, attrObjectGUID)
	c.found[normalizeDN(e.DN)] = reachKey(e.DN, ident)
	switch kind := classify(e); kind {
	case "group":
		return c.nestedGroup(ctx, e)
	case "user":
		return c.user(e, ident)
	default:
		if err := r.refuseWellKnown(c.name, decodeSID(e.GetRawAttributeValue("objectSid")), e.DN); err != nil {
			return err // Everyone or Authenticated Users, as foreign principals
		}
		r.skips.add(kind, e.DN)
		c.t.entry(e.DN, e.GetEqualFoldAttributeValue(cfg.UserIDAttribute), "", kind, ident)
		return nil
	}
}

// nestedGroup notes what a nested group names: its members come in this
// same search; its primary members from addPrimaryMembers.
func (c *chainSearch) nestedGroup(ctx context.Context, e *ldap.Entry) error {
	r := c.r
	sid := decodeSID(e.GetRawAttributeValue("objectSid"))
	if err := r.refuseWellKnown(c.name, sid, e.DN); err != nil {
		return err
	}
	if sid != "" && r.primary != nil {
		r.primary.sids[c.name] = append(r.primary.sids[c.name], groupSID{sid, e.DN})
	}
	nested, err := r.multiValued(ctx, e, "member")
	if err != nil {
		return err
	}
	for _, dn := range nested {
		c.named[normalizeDN(dn)] = dn
	}
	c.t.group(e.DN, "", nested)
	return nil
}

// user binds an enabled, unexpired user with a valid ID, and skips (and
// counts) the others.
func (c *chainSearch) user(e *ldap.Entry, ident string) error {
	raw := e.GetEqualFoldAttributeValues(c.r.src.cfg.UserIDAttribute)
	id, skip := c.r.account(e, raw, true, c.now)
	if skip == model.SkipNoID {
		c.r.skips.add(skip, e.DN) // not traced, as before
		return nil
	}
	rawID := e.GetEqualFoldAttributeValue(c.r.src.cfg.UserIDAttribute)
	if skip != "" {
		c.r.skips.add(skip, e.DN)
		c.t.entry(e.DN, rawID, "", skip, ident)
		return nil
	}
	c.ids[id] = struct{}{}
	c.t.entry(e.DN, rawID, id, "", ident)
	return nil
}

// unseen skips (and counts) the member DNs named but not returned, and
// returns every entry reached (with Source.Reach).
func (c *chainSearch) unseen(ctx context.Context) ([]string, error) {
	r := c.r
	var reached []string
	if r.src.Reach {
		reached = make([]string, 0, len(c.found)+len(c.named))
		for _, key := range c.found {
			reached = append(reached, key)
		}
	}
	var unseen []string
	for key, dn := range c.named {
		if _, ok := c.found[key]; !ok {
			unseen = append(unseen, dn)
		}
	}
	return r.settleUnseen(ctx, c.name, unseen, reached)
}

// settleUnseen takes the member DNs of the project group name that the
// member reads did not return (outside the bases, foreign, dangling): an
// all-accounts group among them, known by its foreign principal's name or
// by its SID (Domain Users in CN=Users under an OU base), is the group's
// error (*WellKnownGroupError); the others are skipped (and counted), and
// with Source.Reach appended to reached. Any other error is the whole
// read's.
func (r *resolver) settleUnseen(ctx context.Context, name string, unseen, reached []string) ([]string, error) {
	for _, dn := range unseen {
		if err := r.refuseWellKnown(name, foreignSID(dn), dn); err != nil {
			return nil, err
		}
	}
	ids, err := r.unseenIdentities(ctx, unseen)
	if err != nil {
		return nil, err
	}
	for _, dn := range unseen {
		info := ids[normalizeDN(dn)]
		if err := r.refuseWellKnown(name, info.sid, dn); err != nil {
			return nil, err
		}
		r.skips.add(r.unseenReason(dn), dn)
		if r.src.Reach {
			// By identity when the entry exists (moved out of the base: it
			// may move back); else by DN, which a new entry may fill.
			reached = append(reached, reachKey(dn, info.identity))
		}
	}
	return reached, nil
}

// unseenUnder reports whether a member DN named so far but not returned
// lies under base.
func (r *dirReader) unseenUnder(named, found map[string]string, base string) bool {
	b, err := ldap.ParseDN(base)
	if err != nil {
		return false
	}
	for key, dn := range named {
		if _, ok := found[key]; ok {
			continue
		}
		if d, err := ldap.ParseDN(dn); err == nil && b.AncestorOfFold(d) {
			return true
		}
	}
	return false
}

// unseenInfo is what a member DN the member searches did not return is:
// its objectGUID (identityKey form) and objectSid, each "" when unknown.
type unseenInfo struct{ identity, sid string }

// unseenIdentities returns the objectGUIDs and objectSids of member DNs the
// member searches did not return (entries outside the bases, foreign
// principals), keyed by normalised DN; a DN that names nothing has none. A
// user moved out of the user base and back keeps only its objectGUID, so
// only by it can a poll see the move back; an all-accounts group outside
// the group base (Domain Users in CN=Users) is known by its SID
// (wellknown.go). One search per batch of DNs from the domain's root, and
// each DN looked up once per resolution however many groups name it;
// nothing when every member was seen. A failed lookup costs the polls that
// precision only (the DN stands in, the next cycle sees the move), never
// the group; and the well-known refusal falls back to the name of a
// foreign principal (the groups themselves are outside the bases, so
// nothing is granted through them).
func (r *dirReader) unseenIdentities(ctx context.Context, dns []string) (map[string]unseenInfo, error) {
	if r.unseenIDs == nil {
		r.unseenIDs = map[string]unseenInfo{}
	}
	var need []string
	for _, dn := range dns {
		if _, ok := r.unseenIDs[normalizeDN(dn)]; !ok {
			need = append(need, dn)
		}
	}
	if len(need) == 0 || r.src.cfg.Schema != config.SchemaActiveDirectory {
		return r.unseenIDs, nil
	}
	root := domainRoot(r.src.cfg.BaseDN)
	err := r.inBatches(need, func(batch []string) error {
		req := ldap.NewSearchRequest(root, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			orFilter("distinguishedName", batch), []string{attrObjectGUID, "objectSid"}, nil)
		return r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
			r.unseenIDs[normalizeDN(e.DN)] = unseenInfo{identity: identityKey(e, attrObjectGUID), sid: decodeSID(e.GetRawAttributeValue("objectSid"))}
			return nil
		})
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.src.log.Debug("could not read the identities of members outside the bases; polls match them by DN", zap.Error(err))
	}
	for _, dn := range need {
		if _, ok := r.unseenIDs[normalizeDN(dn)]; !ok {
			r.unseenIDs[normalizeDN(dn)] = unseenInfo{}
		}
	}
	return r.unseenIDs, nil
}

// domainRoot is the DC= suffix of dn (the AD domain naming context that
// holds it), or dn itself when it has none.
func domainRoot(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return dn
	}
	i := len(parsed.RDNs)
	for i > 0 && len(parsed.RDNs[i-1].Attributes) == 1 && strings.EqualFold(parsed.RDNs[i-1].Attributes[0].Type, "DC") {
		i--
	}
	if i == len(parsed.RDNs) {
		return dn
	}
	parts := strings.Split(dn, ",") // DC= values hold no escaped commas
	if len(parts) < len(parsed.RDNs)-i {
		return dn
	}
	tail := parts[len(parts)-(len(parsed.RDNs)-i):]
	for j := range tail {
		tail[j] = strings.TrimSpace(tail[j])
	}
	return strings.Join(tail, ",")
}
