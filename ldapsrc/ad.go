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
		members, reached, err := r.members(ctx, g.DN, r.direct[n], t, n)
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
func (r *resolver) members(ctx context.Context, groupDN string, direct []string, t *tracer, name string) ([]string, []string, error) {
	cfg := r.src.cfg
	filter := fmt.Sprintf("(memberOf:%s:=%s)", inChainRule, ldap.EscapeFilter(groupDN))
	req := ldap.NewSearchRequest(r.userBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, []string{"objectClass", "userAccountControl", "member", "objectSid", cfg.UserIDAttribute}, nil)
	seen := map[string]struct{}{}
	// Every member DN named by the group or a nested group, and every entry
	// the in-chain search returned: the difference is what it could not see.
	named := map[string]string{}
	for _, dn := range direct {
		named[normalizeDN(dn)] = dn
	}
	found := map[string]struct{}{normalizeDN(groupDN): {}}
	t.group(groupDN, name, direct)
	err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		found[normalizeDN(e.DN)] = struct{}{}
		switch kind := classify(e); kind {
		case "group":
			// Nested group: its members come in this same search; its
			// primary members from addPrimaryMembers.
			if sid := decodeSID(e.GetRawAttributeValue("objectSid")); sid != "" && r.primary != nil {
				r.primary.sids[name] = append(r.primary.sids[name], groupSID{sid, e.DN})
			}
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
			t.entry(e.DN, e.GetEqualFoldAttributeValue(cfg.UserIDAttribute), "", kind)
			return nil
		}
		if uac := e.GetAttributeValue("userAccountControl"); uac != "" {
			v, err := strconv.ParseInt(uac, 10, 64)
			if err == nil && v&uacDisabled != 0 {
				r.skip(SkipDisabled, e.DN)
				t.entry(e.DN, e.GetEqualFoldAttributeValue(cfg.UserIDAttribute), "", SkipDisabled)
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
			t.entry(e.DN, raw[0], "", SkipInvalidID)
			return nil
		}
		seen[id] = struct{}{}
		t.entry(e.DN, raw[0], id, "")
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var reached []string
	if r.src.Reach {
		reached = make([]string, 0, len(found)+len(named))
		for key := range found {
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
