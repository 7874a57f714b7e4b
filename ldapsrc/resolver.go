package ldapsrc

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// uacDisabled is the ACCOUNTDISABLE bit of userAccountControl.
const uacDisabled = 0x2

// dirReader is one read of the directory over one connection: paged and
// ranged searches, the group and user indexes, and what it learnt of the
// server (page size) and of entries outside the bases.
type dirReader struct {
	src  *Source
	conn *conn
	// pageSize, once set, is the page size the server accepted.
	pageSize int
	// unseenIDs caches unseenIdentities, by normalised DN.
	unseenIDs map[string]unseenInfo
}

// resolver turns group names into members over one dirReader: the result,
// the skips (skipTally) and what each group names directly. Its stages:
// expansion (a full or targeted read), chainSearch (AD in-chain) and
// posixMembers (rfc2307).
type resolver struct {
	*dirReader
	res   *Result
	skips *skipTally
	// direct holds each found group's direct member DNs, to find members
	// the in-chain search cannot see (outside the base, dangling).
	direct map[string][]string
	// targeted reads only the entries the named groups lead to, instead
	// of every group and user (Source.ResolveTargeted).
	targeted bool
	// primary: groups whose primary members are added (primary.go).
	primary *primaryState
	warned  map[string]bool // groups warned about reaching Domain Users
}

func newResolver(s *Source, c *conn) *resolver {
	return &resolver{
		dirReader: &dirReader{src: s, conn: c},
		res:       &Result{Groups: map[string]*model.Group{}},
		skips:     newSkipTally(),
		direct:    map[string][]string{},
	}
}

func (r *dirReader) groupBase() string { return r.src.cfg.GroupBase() }

func (r *dirReader) userBase() string { return r.src.cfg.UserBase() }

func (r *resolver) resolve(ctx context.Context, names []string) (*Result, error) {
	for _, n := range names {
		r.res.Groups[n] = &model.Group{Name: n}
	}
	var err error
	switch r.src.cfg.Schema {
	case config.SchemaGroupOfNames:
		if r.targeted {
			err = r.resolveGroupOfNamesTargeted(ctx, names)
		} else {
			err = r.resolveGroupOfNames(ctx, names)
		}
	case config.SchemaRFC2307:
		err = r.resolveRFC2307(ctx, names)
	case config.SchemaActiveDirectory:
		if r.src.cfg.MemberResolution == config.ResolveExpand {
			// Every group and user in two paged searches, nesting expanded
			// here: far fewer searches than one in-chain search per group.
			if r.targeted {
				err = r.resolveGroupOfNamesTargeted(ctx, names)
			} else {
				err = r.resolveGroupOfNames(ctx, names)
			}
		} else {
			err = r.resolveAD(ctx, names)
		}
	default:
		err = r.resolveAD(ctx, names)
	}
	if err != nil {
		return nil, err
	}
	r.res.Skipped, r.res.SkippedSamples = r.skips.counts(), r.skips.samples
	return r.res, nil
}

// groupQuery says how groups look in a schema.
type groupQuery struct {
	classFilter string   // e.g. (objectClass=group)
	memberAttrs []string // attributes holding members, read completely
}

// findGroups looks up the named groups, one search per batch of names
// (never one per group), and records each one's DN and member values.
// A failed batch marks its groups failed; the others go on.
func (r *resolver) findGroups(ctx context.Context, names []string, q groupQuery) error {
	return r.inBatches(names, func(batch []string) error {
		if err := r.findGroupBatch(ctx, batch, q); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.failAll(batch, err)
		}
		return nil
	})
}

func (r *resolver) findGroupBatch(ctx context.Context, names []string, q groupQuery) error {
	attr := r.src.cfg.GroupNameAttribute
	byKey := make(map[string]string, len(names))
	for _, n := range names {
		// Directories compare names case-insensitively; so do we.
		byKey[FoldASCII(n)] = n
	}
	idAttr := identityAttr(r.src.cfg)
	req := ldap.NewSearchRequest(r.groupBase(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(&"+q.classFilter+orFilter(attr, names)+")", append([]string{attr, idAttr, "objectSid"}, q.memberAttrs...), nil)
	dups := map[string][]string{}
	err := r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		for _, v := range e.GetEqualFoldAttributeValues(attr) {
			name, ok := byKey[FoldASCII(v)]
			if !ok {
				continue
			}
			g := r.res.Groups[name]
			if g.Found && !dnEqual(g.DN, e.DN) {
				dups[name] = append(dups[name], e.DN)
				continue
			}
			g.Found, g.DN, g.Identity = true, e.DN, identityKey(e, idAttr)
			if sid := decodeSID(e.GetRawAttributeValue("objectSid")); sid != "" {
				r.primaryGroups().sids[name] = []groupSID{{sid, e.DN}}
			}
			var direct []string
			for _, ma := range q.memberAttrs {
				vals, err := r.multiValued(ctx, e, ma)
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					// This group's members cannot be read completely: its
					// error, not its batch's.
					g.Err = fmt.Errorf("read members of group %q: %w", name, err)
					break
				}
				direct = append(direct, vals...)
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

// unseenReason says why a member DN named by a group was not returned by
// the member search.
func (r *dirReader) unseenReason(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return model.SkipUnresolved
	}
	for _, rdn := range parsed.RDNs {
		for _, av := range rdn.Attributes {
			if strings.EqualFold(av.Type, "CN") && strings.EqualFold(av.Value, "ForeignSecurityPrincipals") {
				return model.SkipForeign
			}
		}
	}
	if base, err := ldap.ParseDN(r.userBase()); err == nil && !base.AncestorOfFold(parsed) {
		return model.SkipOutsideBase
	}
	return model.SkipUnresolved
}

// classify says what kind of entry a member is, from its objectClass values.
func classify(e *ldap.Entry) string {
	var isUser, isPerson bool
	for _, oc := range e.GetEqualFoldAttributeValues("objectClass") {
		switch strings.ToLower(oc) {
		case "computer":
			return model.SkipComputer
		case "contact":
			// An AD contact is a person (top, person, organizationalPerson,
			// contact) but no account: nobody can log in as it.
			return model.SkipContact
		case "foreignsecurityprincipal":
			return model.SkipForeign
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
	return model.SkipOther
}

// dnEqual reports whether two DNs name one entry as the one index keys
// them (normalizeDN): case-insensitively in ASCII only, spacing ignored,
// escapes kept. DNs that differ under Unicode folding alone (the Kelvin
// sign K) are two entries: a check for duplicates fails closed.
func dnEqual(a, b string) bool {
	return normalizeDN(a) == normalizeDN(b)
}

// normalizeDN gives a map key under which equal DNs collide and distinct
// DNs never do: the parsed RDN values, folded in ASCII only and escaped
// again (RFC 4514), so the group CN=alice\,OU\=People,… keeps its escaped
// comma and never becomes the key of the user CN=alice,OU=People,…. Most
// DNs have no escapes, quotes, multi-valued RDNs or non-ASCII bytes: those
// take a fast path (ASCII lower-case, spaces around separators dropped)
// that allocates once, which matters when a cycle normalises hundreds of
// thousands of them; it gives the same key as the parsed path. A DN that
// is already its own key (OpenLDAP's, mostly) is returned as it is.
func normalizeDN(s string) string {
	if ownKey(s) {
		return s
	}
	if plainDN(s) {
		var b strings.Builder
		b.Grow(len(s))
		for _, rdn := range strings.Split(s, ",") {
			typ, val, ok := strings.Cut(rdn, "=")
			if !ok {
				return slowNormalizeDN(s)
			}
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(FoldASCII(strings.TrimSpace(typ)))
			b.WriteByte('=')
			b.WriteString(FoldASCII(strings.TrimSpace(val)))
		}
		return b.String()
	}
	return slowNormalizeDN(s)
}

// ownKey reports whether the fast path of normalizeDN would give s back
// unchanged: plainDN, no upper-case letter, no space at either end or next
// to a separator, and a type in every RDN.
func ownKey(s string) bool {
	typed := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z', c < ' ' || c > '~':
			return false
		case c == '\\' || c == '"' || c == '+' || c == '#' || c == ';' || c == '<' || c == '>':
			return false
		case c == ' ':
			if i == 0 || i == len(s)-1 || isDNSep(s[i-1]) || isDNSep(s[i+1]) {
				return false
			}
		case c == '=':
			typed = true
		case c == ',':
			if !typed {
				return false
			}
			typed = false
		}
	}
	return typed
}

func isDNSep(c byte) bool { return c == ',' || c == '=' }

// plainDN: printable ASCII with nothing RFC 4514 escapes or quotes.
func plainDN(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < ' ' || c > '~':
			return false
		case c == '\\' || c == '"' || c == '+' || c == '#' || c == ';' || c == '<' || c == '>':
			return false
		}
	}
	return true
}

func slowNormalizeDN(s string) string {
	dn, err := ldap.ParseDN(s)
	if err != nil {
		// Not a DN: a key no parsed DN can have.
		return "unparsable:" + FoldASCII(s)
	}
	parts := make([]string, 0, len(dn.RDNs))
	for _, rdn := range dn.RDNs {
		avs := make([]string, 0, len(rdn.Attributes))
		for _, av := range rdn.Attributes {
			// String escapes the value again (RFC 4514).
			avs = append(avs, (&ldap.AttributeTypeAndValue{Type: FoldASCII(av.Type), Value: FoldASCII(av.Value)}).String())
		}
		sort.Strings(avs)
		parts = append(parts, strings.Join(avs, "+"))
	}
	return strings.Join(parts, ",")
}

// FoldASCII lower-cases A–Z only. Group names, user IDs and DN keys are
// compared with it, never with Unicode case folding, under which the
// Kelvin sign K (U+212A) is k and a name could be made to pass for
// another.
func FoldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
