package ldapsrc

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// inChainRule is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: a filter
// (memberOf:<rule>:=<groupDN>) matches every transitive member, so nested
// groups cost one search, and the server handles nesting cycles.
const inChainRule = "1.2.840.113556.1.4.1941"

// uacDisabled is the ACCOUNTDISABLE bit of userAccountControl.
const uacDisabled = 0x2

// groupBatch bounds how many names go into one OR filter.
const groupBatch = 100

const maxSkipSamples = 5

type resolver struct {
	src  *Source
	conn *conn
	res  *Result
	// skipped holds the DNs seen per reason, so one disabled user in ten
	// groups counts once.
	skipped map[string]map[string]struct{}
	// direct holds each found group's direct member DNs, to find members
	// the in-chain search cannot see (outside the base, dangling).
	direct map[string][]string
}

func newResolver(s *Source, c *conn) *resolver {
	return &resolver{
		src:     s,
		conn:    c,
		res:     &Result{Groups: map[string]*Group{}, Skipped: map[string]int{}, SkippedSamples: map[string][]string{}},
		skipped: map[string]map[string]struct{}{},
		direct:  map[string][]string{},
	}
}

func (r *resolver) groupBase() string {
	if r.src.cfg.GroupBaseDN != "" {
		return r.src.cfg.GroupBaseDN
	}
	return r.src.cfg.BaseDN
}

func (r *resolver) userBase() string {
	if r.src.cfg.UserBaseDN != "" {
		return r.src.cfg.UserBaseDN
	}
	return r.src.cfg.BaseDN
}

func (r *resolver) resolve(ctx context.Context, names []string) (*Result, error) {
	for _, n := range names {
		r.res.Groups[n] = &Group{Name: n}
	}
	// Find the groups: one search per batch of names, not one per group.
	for start := 0; start < len(names); start += groupBatch {
		end := min(start+groupBatch, len(names))
		if err := r.findGroups(ctx, names[start:end]); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			for _, n := range names[start:end] {
				r.res.Groups[n].Err = err
			}
		}
	}
	// Resolve members: one paged search per group, never one per member.
	for _, n := range names {
		g := r.res.Groups[n]
		if g.Err != nil || !g.Found {
			continue
		}
		members, err := r.members(ctx, g.DN, r.direct[n])
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			g.Err = fmt.Errorf("resolve members of group %q (%s): %w", n, g.DN, err)
			continue
		}
		g.Members = members
	}
	for reason, dns := range r.skipped {
		r.res.Skipped[reason] = len(dns)
	}
	return r.res, nil
}

// findGroups looks up a batch of group names and records each one's DN.
func (r *resolver) findGroups(ctx context.Context, names []string) error {
	attr := r.src.cfg.GroupNameAttribute
	var b strings.Builder
	b.WriteString("(&(objectClass=group)(|")
	byKey := make(map[string]string, len(names))
	for _, n := range names {
		fmt.Fprintf(&b, "(%s=%s)", attr, ldap.EscapeFilter(n))
		// AD compares names case-insensitively; so do we.
		byKey[strings.ToLower(n)] = n
	}
	b.WriteString("))")
	req := ldap.NewSearchRequest(r.groupBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, b.String(), []string{attr, "member"}, nil)
	dups := map[string][]string{}
	err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		for _, v := range e.GetEqualFoldAttributeValues(attr) {
			name, ok := byKey[strings.ToLower(v)]
			if !ok {
				continue
			}
			g := r.res.Groups[name]
			if g.Found && !dnEqual(g.DN, e.DN) {
				dups[name] = append(dups[name], e.DN)
				continue
			}
			g.Found, g.DN = true, e.DN
			direct, err := r.multiValued(ctx, e, "member")
			if err != nil {
				return err
			}
			r.direct[name] = direct
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find groups under %s: %w", r.groupBase(), err)
	}
	for name, others := range dups {
		g := r.res.Groups[name]
		// Two groups answer to one name: picking one would be a guess that
		// could grant or remove access wrongly.
		g.Err = fmt.Errorf("group name %q is ambiguous: %s and %s both match; narrow ldap.groupBaseDN or use a unique ldap.groupNameAttribute",
			name, g.DN, strings.Join(others, ", "))
	}
	return nil
}

// members returns the sorted, unique user IDs of every transitive member of
// the group, skipping (and counting) what is not an enabled user.
func (r *resolver) members(ctx context.Context, groupDN string, direct []string) ([]string, error) {
	cfg := r.src.cfg
	filter := fmt.Sprintf("(memberOf:%s:=%s)", inChainRule, ldap.EscapeFilter(groupDN))
	req := ldap.NewSearchRequest(r.userBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, []string{"objectClass", "userAccountControl", "member", cfg.UserIDAttribute}, nil)
	seen := map[string]struct{}{}
	// Every member DN named by the group or a nested group, and every entry
	// the in-chain search returned: the difference is what it could not see.
	named := map[string]string{}
	for _, dn := range direct {
		named[normalizeDN(dn)] = dn
	}
	found := map[string]struct{}{normalizeDN(groupDN): {}}
	err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		found[normalizeDN(e.DN)] = struct{}{}
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
			return nil
		case "user":
		default:
			r.skip(kind, e.DN)
			return nil
		}
		if uac := e.GetAttributeValue("userAccountControl"); uac != "" {
			v, err := strconv.ParseInt(uac, 10, 64)
			if err == nil && v&uacDisabled != 0 {
				r.skip(SkipDisabled, e.DN)
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
			return nil
		}
		seen[id] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for key, dn := range named {
		if _, ok := found[key]; ok {
			continue
		}
		r.skip(r.unseenReason(dn), dn)
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// unseenReason says why a member DN named by a group was not returned by
// the member search.
func (r *resolver) unseenReason(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return SkipUnresolved
	}
	for _, rdn := range parsed.RDNs {
		for _, av := range rdn.Attributes {
			if strings.EqualFold(av.Type, "CN") && strings.EqualFold(av.Value, "ForeignSecurityPrincipals") {
				return SkipForeign
			}
		}
	}
	if base, err := ldap.ParseDN(r.userBase()); err == nil && !base.AncestorOfFold(parsed) {
		return SkipOutsideBase
	}
	return SkipUnresolved
}

// classify says what kind of entry a member is, from its objectClass values.
func classify(e *ldap.Entry) string {
	var isUser, isPerson bool
	for _, oc := range e.GetEqualFoldAttributeValues("objectClass") {
		switch strings.ToLower(oc) {
		case "computer":
			return SkipComputer
		case "foreignsecurityprincipal":
			return SkipForeign
		case "group":
			return "group"
		case "user":
			isUser = true
		case "person", "inetorgperson":
			isPerson = true
		}
	}
	if isUser || isPerson {
		return "user"
	}
	return SkipOther
}

func (r *resolver) skip(reason, dn string) {
	m := r.skipped[reason]
	if m == nil {
		m = map[string]struct{}{}
		r.skipped[reason] = m
	}
	key := normalizeDN(dn)
	if _, ok := m[key]; ok {
		return
	}
	m[key] = struct{}{}
	if len(r.res.SkippedSamples[reason]) < maxSkipSamples {
		r.res.SkippedSamples[reason] = append(r.res.SkippedSamples[reason], dn)
	}
}

// dnEqual compares DNs the way the directory does: case-insensitively and
// ignoring spacing; unparsable DNs fall back to a case-insensitive compare.
func dnEqual(a, b string) bool {
	da, errA := ldap.ParseDN(a)
	db, errB := ldap.ParseDN(b)
	if errA != nil || errB != nil {
		return strings.EqualFold(a, b)
	}
	return da.EqualFold(db)
}

// normalizeDN gives a map key under which equal DNs collide.
func normalizeDN(s string) string {
	dn, err := ldap.ParseDN(s)
	if err != nil {
		return strings.ToLower(s)
	}
	parts := make([]string, 0, len(dn.RDNs))
	for _, rdn := range dn.RDNs {
		avs := make([]string, 0, len(rdn.Attributes))
		for _, av := range rdn.Attributes {
			avs = append(avs, strings.ToLower(av.Type)+"="+strings.ToLower(av.Value))
		}
		sort.Strings(avs)
		parts = append(parts, strings.Join(avs, "+"))
	}
	return strings.Join(parts, ",")
}
