package ldapsrc

import (
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// Moved from config's TestParseErrorsNameTheField: DN and filter syntax is
// the LDAP parser's to judge.
func TestCheckConfigNamesTheField(t *testing.T) {
	valid := func() *config.Config {
		return &config.Config{LDAP: config.LDAP{BaseDN: "DC=example,DC=test", UserFilter: "(objectClass=person)"},
			Projects: config.Projects{FromGroups: &config.FromGroups{Pattern: "runai-{project}-executors", BaseDN: "OU=Groups,DC=example,DC=test"}}}
	}
	if err := CheckConfig(valid()); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
	for _, tc := range []struct {
		name             string
		edit             func(c *config.Config)
		wantField, wantT string
	}{
		{"bad base dn", func(c *config.Config) { c.LDAP.BaseDN = "example.test" }, "ldap.baseDN", "not a valid DN"},
		{"bad user filter", func(c *config.Config) { c.LDAP.UserFilter = "(objectClass=person" }, "ldap.userFilter", "not an LDAP filter"},
		{"pattern bad base", func(c *config.Config) { c.Projects.FromGroups.BaseDN = "not a dn" }, "projects.fromGroups.baseDN", "not a valid DN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(c)
			err := CheckConfig(c)
			verr, ok := err.(config.ValidationError)
			if !ok {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			found := false
			for _, fe := range verr {
				found = found || (fe.Field == tc.wantField && strings.Contains(fe.Message, tc.wantT))
			}
			if !found {
				t.Errorf("no FieldError for %q saying %q in %v", tc.wantField, tc.wantT, verr)
			}
		})
	}
}
