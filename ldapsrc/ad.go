package ldapsrc

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
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
	return nil
}

// members returns the sorted, unique user IDs of every transitive member of
// the group, skipping (and counting) what is not an enabled user, and, with
// Source.Reach, every entry reached (see Group.Reached).
func (r *resolver) members(ctx context.Context, groupDN, groupID string, direct []string, t *tracer, name string) ([]string, []string, error) {
	cfg := r.src.cfg
	chain := fmt.Sprintf("(memberOf:%s:=%s)", inChainRule, ldap.EscapeFilter(groupDN))
	attrs := []string{"objectClass", "userAccountControl", "member", cfg.UserIDAttribute, attrObjectGUID}
	seen := map[string]struct{}{}
	// Every member DN named by the group or a nested group, and every entry
	// the in-chain search returned (with its identity): the difference is
	// what it could not see.
	named := map[string]string{}
	for _, dn := range direct {
		named[normalizeDN(dn)] = dn
	}
	found := map[string]string{normalizeDN(groupDN): reachKey(groupDN, groupID)}
	t.group(groupDN, name, direct)
	each := func(e *ldap.Entry) error {
		ident := identityKey(e, attrObjectGUID)
		found[normalizeDN(e.DN)] = reachKey(e.DN, ident)
		switch kind := classify(e); kind {
		case "group":
			// Nested group: its members come in this same search.
			nested, err := r.multiValued(ctx, e, "member")
			if err != nil {
				return err
			}
			for _, dn := range nested {
				named[normalizeDN(dn)] = dn
			}
			t.group(e.DN, "", nested)
			return nil
		case "user":
		default:
			r.skip(kind, e.DN)
			t.entry(e.DN, e.GetEqualFoldAttributeValue(cfg.UserIDAttribute), "", kind, ident)
			return nil
		}
		if uac := e.GetAttributeValue("userAccountControl"); uac != "" {
			v, err := strconv.ParseInt(uac, 10, 64)
			if err == nil && v&uacDisabled != 0 {
				r.skip(SkipDisabled, e.DN)
				t.entry(e.DN, e.GetEqualFoldAttributeValue(cfg.UserIDAttribute), "", SkipDisabled, ident)
				return nil
			}
		}
		raw := e.GetEqualFoldAttributeValues(cfg.UserIDAttribute)
		if len(raw) == 0 {
			r.skip(SkipNoID, e.DN)
			return nil
		}
		id, err := NormalizeID(raw[0], cfg.UserIDCase, cfg.UserIDPrefix)
		if err != nil {
			r.skip(SkipInvalidID, e.DN)
			r.src.log.Debug("member rejected", zap.String("dn", e.DN), zap.Error(err))
			t.entry(e.DN, raw[0], "", SkipInvalidID, ident)
			return nil
		}
		seen[id] = struct{}{}
		t.entry(e.DN, raw[0], id, "", ident)
		return nil
	}
	req := ldap.NewSearchRequest(r.userBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, chain, attrs, nil)
	if err := r.pagedSearch(ctx, req, each); err != nil {
		return nil, nil, err
	}
	// With ldap.groupBaseDN outside the user base, the search above returns
	// no nested group that lives there (users under the user base it still
	// finds: the rule follows nesting wherever the groups are). Nested
	// groups matter for what they name (a member outside the user base is
	// outside_base, not unresolved) and for polls (a change to one must be
	// matched), so fetch them from the group base, in one more search per
	// group and only when one of them lies there.
	if gb := r.groupBase(); !isAncestorOrSelf(r.userBase(), gb) && r.unseenUnder(named, found, gb) {
		req := ldap.NewSearchRequest(gb, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, "(&(objectClass=group)"+chain+")", attrs, nil)
		if err := r.pagedSearch(ctx, req, each); err != nil {
			return nil, nil, fmt.Errorf("find nested groups under %s: %w", gb, err)
		}
	}
	var reached []string
	if r.src.Reach {
		reached = make([]string, 0, len(found)+len(named))
		for _, key := range found {
			reached = append(reached, key)
		}
	}
	for key, dn := range named {
		if _, ok := found[key]; ok {
			continue
		}
		r.skip(r.unseenReason(dn), dn)
		if r.src.Reach {
			// A dangling member may come into existence.
			reached = append(reached, key)
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, reached, nil
}

// unseenUnder reports whether a member DN named so far but not returned
// lies under base.
func (r *resolver) unseenUnder(named, found map[string]string, base string) bool {
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
