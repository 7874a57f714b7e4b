package ldapsrc

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

func TestPatternFilter(t *testing.T) {
	tests := []struct {
		pattern, filter string
		match           map[string]string // group name -> project ("" = no match)
	}{
		{"runai-{project}-executors", "(cn=runai-*-executors)", map[string]string{
			"runai-vision-executors": "vision", "RUNAI-Vision-EXECUTORS": "Vision",
			"runai--executors": "", "runai-vision-viewers": "", "xrunai-vision-executors": "",
		}},
		{"{project}-gpu", "(cn=*-gpu)", map[string]string{"nlp-gpu": "nlp", "nlp-gpu-x": ""}},
		{"team-{project}", "(cn=team-*)", map[string]string{"team-a": "a"}},
		// Filter metacharacters around {project} match only themselves.
		{"a*)(cn={project}", `(cn=a\2a\29\28cn=*)`, map[string]string{"a*)(cn=x": "x", "abc)(cn=x": ""}},
		{"g.{project}+", `(cn=g.*+)`, map[string]string{"g.a+": "a", "gxa+": "", "g.a": ""}},
	}
	for _, tc := range tests {
		filter, re := PatternFilter("cn", tc.pattern)
		if filter != tc.filter {
			t.Errorf("%s: filter %s, want %s", tc.pattern, filter, tc.filter)
		}
		if _, err := ldap.CompileFilter(filter); err != nil {
			t.Errorf("%s: filter %s does not compile: %v", tc.pattern, filter, err)
		}
		for name, want := range tc.match {
			got := ""
			if m := re.FindStringSubmatch(name); m != nil {
				got = m[1]
			}
			if got != want {
				t.Errorf("%s: %q gives project %q, want %q", tc.pattern, name, got, want)
			}
		}
	}
}

func TestDiscoverProjects(t *testing.T) {
	groups := []*ldap.Entry{
		ldap.NewEntry("CN=runai-vision-executors,OU=G,"+fakeBase, map[string][]string{"cn": {"runai-vision-executors"}}),
		ldap.NewEntry("CN=runai-nlp-executors,OU=G,"+fakeBase, map[string][]string{"cn": {"runai-nlp-executors"}}),
		// Upper case is not a Run:AI project name: reported, not guessed at.
		ldap.NewEntry("CN=runai-Bad-executors,OU=G,"+fakeBase, map[string][]string{"cn": {"runai-Bad-executors"}}),
		ldap.NewEntry("CN=runai-nlp-executors,OU=Old,"+fakeBase, map[string][]string{"cn": {"runai-nlp-executors"}}),
		// The server's matching is looser than the pattern; the regexp decides.
		ldap.NewEntry("CN=other,OU=G,"+fakeBase, map[string][]string{"cn": {"other"}}),
	}
	for _, schema := range []struct{ name, class string }{
		{config.SchemaActiveDirectory, "(objectClass=group)"},
		{config.SchemaGroupOfNames, "(objectClass=groupOfUniqueNames)"},
		{config.SchemaRFC2307, "(objectClass=posixGroup)"},
	} {
		f := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
			// Two pages, to prove the search is paged.
			if req.Cookie == "" {
				return fakeAnswer{Entries: groups[:2], Cookie: "2"}
			}
			return fakeAnswer{Entries: groups[2:]}
		})
		src := fakeSource(t, f.URL(), schema.name, 2)
		d, err := src.DiscoverProjects(context.Background(), config.FromGroups{Pattern: "runai-{project}-executors", BaseDN: "OU=G," + fakeBase})
		if err != nil {
			t.Fatalf("%s: %v", schema.name, err)
		}
		if got := d.Names(); !reflect.DeepEqual(got, []string{"nlp", "vision"}) {
			t.Errorf("%s: projects %v", schema.name, got)
		}
		if len(d.Invalid) != 1 || d.Invalid[0].Group != "runai-Bad-executors" {
			t.Errorf("%s: invalid %+v", schema.name, d.Invalid)
		}
		s := f.Searches()
		if len(s) != 2 || s[0].BaseDN != "OU=G,"+fakeBase || !strings.Contains(s[0].Filter, schema.class) ||
			!strings.Contains(s[0].Filter, "(cn=runai-*-executors)") || s[0].PageSize != 2 {
			t.Errorf("%s: searches %+v", schema.name, s)
		}
	}

	// A failed search is an error, never an empty list.
	f := newFakeLDAP(t, func(req fakeSearch) fakeAnswer {
		if req.Cookie == "" {
			return fakeAnswer{Entries: groups[:2], Cookie: "2"}
		}
		return fakeAnswer{Code: ldap.LDAPResultSizeLimitExceeded}
	})
	src := fakeSource(t, f.URL(), config.SchemaActiveDirectory, 2)
	if d, err := src.DiscoverProjects(context.Background(), config.FromGroups{Pattern: "runai-{project}-executors"}); err == nil {
		t.Errorf("a search cut short gave %+v and no error", d)
	} else if !strings.Contains(err.Error(), "runai-{project}-executors") || !strings.Contains(err.Error(), fakeBase) {
		t.Errorf("error does not say what failed: %v", err)
	}
}
