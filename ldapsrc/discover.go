package ldapsrc

import (
	"context"
	"fmt"
	"regexp"
	"sort"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// DiscoveredProject is a project named by a directory group
// (projects.fromGroups).
type DiscoveredProject struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	DN    string `json:"dn"`
}

// Discovery is what one search for project groups found.
type Discovery struct {
	// Projects are the valid project names, sorted and unique.
	Projects []DiscoveredProject
	// Invalid are groups that match the pattern but whose {project} part is
	// not a valid project name (upper case, too long, ...): skipped.
	Invalid []DiscoveredProject
}

// Names returns the discovered project names.
func (d *Discovery) Names() []string {
	out := make([]string, len(d.Projects))
	for i, p := range d.Projects {
		out[i] = p.Name
	}
	return out
}

// PatternFilter turns a fromGroups pattern into a search filter over the
// group name attribute and the regexp that extracts the project from a
// name: "runai-{project}-executors" gives (cn=runai-*-executors) and
// ^runai-(.+)-executors$. The text around {project} is escaped, so a '*'
// or ')' in it matches only itself. Directories compare names without
// regard to case; so does the regexp.
func PatternFilter(attr, pattern string) (string, *regexp.Regexp) {
	prefix, suffix := config.SplitPattern(pattern)
	filter := fmt.Sprintf("(%s=%s*%s)", attr, ldap.EscapeFilter(prefix), ldap.EscapeFilter(suffix))
	re := regexp.MustCompile("(?i)^" + regexp.QuoteMeta(prefix) + "(.+)" + regexp.QuoteMeta(suffix) + "$")
	return filter, re
}

// groupClassFilter is how groups look in each schema.
func groupClassFilter(schema string) string {
	switch schema {
	case config.SchemaGroupOfNames:
		return "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
	case config.SchemaRFC2307:
		return "(objectClass=posixGroup)"
	}
	return "(objectClass=group)"
}

// DiscoverProjects finds the groups whose name matches fg.Pattern, in one
// paged search, and returns the projects they name. An error means nothing
// is known (never: no projects).
func (s *Source) DiscoverProjects(ctx context.Context, fg config.FromGroups) (*Discovery, error) {
	ctx, cancel := s.cycleContext(ctx, "discovering projects")
	defer cancel()
	conn, done, err := s.session(ctx)
	if err != nil {
		return nil, s.overran(ctx, err)
	}
	defer done()
	defer func() {
		if conn.IsClosing() {
			s.dropSession(conn)
		}
	}()
	r := newResolver(s, conn)
	base := fg.BaseDN
	if base == "" {
		base = r.groupBase()
	}
	attr := s.cfg.GroupNameAttribute
	nameFilter, re := PatternFilter(attr, fg.Pattern)
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&"+groupClassFilter(s.cfg.Schema)+nameFilter+")", []string{attr}, nil)
	valid := map[string]DiscoveredProject{}
	invalid := map[string]DiscoveredProject{}
	err = r.pagedSearch(ctx, req, func(e *ldap.Entry) error {
		for _, v := range e.GetEqualFoldAttributeValues(attr) {
			m := re.FindStringSubmatch(v)
			if m == nil {
				continue
			}
			p := DiscoveredProject{Name: m[1], Group: v, DN: e.DN}
			if !config.ValidProjectName(p.Name) {
				invalid[FoldASCII(v)] = p
				continue
			}
			if _, dup := valid[p.Name]; !dup {
				valid[p.Name] = p
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("discover projects from groups matching %q under %s: %w", fg.Pattern, base, s.overran(ctx, err))
	}
	d := &Discovery{}
	for _, p := range valid {
		d.Projects = append(d.Projects, p)
	}
	for _, p := range invalid {
		d.Invalid = append(d.Invalid, p)
	}
	sort.Slice(d.Projects, func(i, j int) bool { return d.Projects[i].Name < d.Projects[j].Name })
	sort.Slice(d.Invalid, func(i, j int) bool { return d.Invalid[i].Group < d.Invalid[j].Group })
	return d, nil
}
