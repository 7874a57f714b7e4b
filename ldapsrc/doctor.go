package ldapsrc

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// Reads for `doctor`. Every one goes through the shared session, so a
// doctor run binds once: a refused password is never tried a second time.

// BaseCheck is one configured base DN and whether the bind account can
// read it.
type BaseCheck struct {
	Key string // the setting, e.g. ldap.baseDN
	DN  string
	// Found is false when the entry does not exist or is not visible to
	// the bind account (AD answers both the same way).
	Found bool
	Err   error
}

// CheckBases reads every configured base entry. The error is a failure to
// connect or bind (then nothing was read).
func (s *Source) CheckBases(ctx context.Context, fg *config.FromGroups) ([]BaseCheck, error) {
	c, done, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []BaseCheck
	add := func(key, dn string) {
		if dn == "" {
			return
		}
		e, err := s.readBase(c, dn, "1.1")
		out = append(out, BaseCheck{Key: key, DN: dn, Found: e != nil && err == nil, Err: err})
	}
	add("ldap.baseDN", s.cfg.BaseDN)
	add("ldap.groupBaseDN", s.cfg.GroupBaseDN)
	add("ldap.userBaseDN", s.cfg.UserBaseDN)
	if fg != nil {
		add("projects.fromGroups.baseDN", fg.BaseDN)
	}
	return out, nil
}

// PersonAttributes are the attributes a user ID is commonly taken from,
// which FindPeople reads (with ldap.userIDAttribute).
var PersonAttributes = []string{"sAMAccountName", "userPrincipalName", "mail", "uid", "cn"}

// Person is a user entry found by FindPeople: its DN and the values of
// ldap.userIDAttribute and PersonAttributes (by attribute name as
// configured or listed).
type Person struct {
	DN    string
	Attrs map[string][]string
}

// FindPeople searches the user base for entries whose ldap.userIDAttribute
// or one of PersonAttributes equals one of names (case-insensitively, as
// the directory compares them). At most a few entries are returned.
func (s *Source) FindPeople(ctx context.Context, names []string) ([]Person, error) {
	c, done, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	attrs := personAttrs(s.cfg.UserIDAttribute)
	var or strings.Builder
	for _, n := range names {
		for _, a := range attrs {
			fmt.Fprintf(&or, "(%s=%s)", a, ldap.EscapeFilter(n))
		}
	}
	filter := "(|" + or.String() + ")"
	if s.cfg.UserFilter != "" {
		filter = "(&" + s.cfg.UserFilter + filter + ")"
	}
	base := s.cfg.UserBase()
	s.Stats.Searches.Add(1)
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 10, 0, false,
		filter, append(attrs, "objectClass"), nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("search users under %s: %w", base, describeSearchError(err))
	}
	var out []Person
	for _, e := range res.Entries {
		if isGroupEntry(e) {
			continue
		}
		p := Person{DN: e.DN, Attrs: map[string][]string{}}
		for _, a := range attrs {
			if v := e.GetEqualFoldAttributeValues(a); len(v) > 0 {
				p.Attrs[a] = v
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DN < out[j].DN })
	return out, nil
}

// personAttrs is the configured ID attribute, then PersonAttributes
// without it.
func personAttrs(idAttr string) []string {
	out := []string{idAttr}
	for _, a := range PersonAttributes {
		if !strings.EqualFold(a, idAttr) {
			out = append(out, a)
		}
	}
	return out
}
