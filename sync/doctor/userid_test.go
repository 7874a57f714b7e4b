package doctor

import (
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
)

func TestCandidates(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                      "alice",
		"oidc:alice@example.com":     "oidc:alice@example.com alice@example.com alice",
		"https://issuer.example#bob": "https://issuer.example#bob bob",
		"alice@example.com":          "alice@example.com alice",
		"oidc:":                      "oidc:",
	} {
		if got := strings.Join(Candidates(in), " "); got != want {
			t.Errorf("Candidates(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUserIDCheck(t *testing.T) {
	def := config.Default().LDAP // sAMAccountName, lower, no prefix
	alice := ldapsrc.Person{DN: "CN=Alice,OU=People,DC=example,DC=com", Attrs: map[string][]string{
		"sAMAccountName":    {"Alice"},
		"userPrincipalName": {"Alice@example.com"},
		"mail":              {"alice@example.com"},
	}}
	with := func(mut func(*config.LDAP)) config.LDAP {
		c := def
		mut(&c)
		return c
	}
	for _, tc := range []struct {
		name    string
		api     string
		people  []ldapsrc.Person
		cfg     config.LDAP
		status  Status
		fix     string // the whole fix, or a part of it
		message string
	}{
		{name: "match", api: "alice", people: []ldapsrc.Person{alice}, cfg: def, status: OK},
		{name: "prefix and UPN", api: "oidc:alice@example.com", people: []ldapsrc.Person{alice}, cfg: def, status: Fail,
			fix: `set ldap.userIDAttribute: userPrincipalName, ldap.userIDPrefix: "oidc:"`, message: "directory yields alice"},
		{name: "prefix only", api: "oidc:alice", people: []ldapsrc.Person{alice}, cfg: def, status: Fail,
			fix: `set ldap.userIDPrefix: "oidc:"`},
		{name: "case", api: "Alice", people: []ldapsrc.Person{alice}, cfg: def, status: Fail,
			fix: `set ldap.userIDCase: preserve`},
		{name: "issuer prefix, mail", api: "https://dex.example#alice@example.com", people: []ldapsrc.Person{alice},
			cfg: with(func(c *config.LDAP) { c.UserIDAttribute = "mail" }), status: Fail,
			fix: `set ldap.userIDPrefix: "https://dex.example#"`},
		{name: "prefix to drop", api: "alice", people: []ldapsrc.Person{alice},
			cfg: with(func(c *config.LDAP) { c.UserIDPrefix = "oidc:" }), status: Fail, fix: `set ldap.userIDPrefix: ""`},
		{name: "not a prefix", api: "oidc:malice", people: []ldapsrc.Person{alice}, cfg: def, status: Fail,
			fix: "--oidc-username-claim"},
		{name: "upper case claim no setting gives", api: "ALICE", people: []ldapsrc.Person{alice}, cfg: def, status: Fail,
			fix: "--oidc-username-claim"},
		{name: "nobody", api: "oidc:zed", cfg: def, status: Warn, fix: "--directory-user"},
		{name: "no ID attribute", api: "alice", people: []ldapsrc.Person{{DN: "CN=x", Attrs: map[string][]string{"mail": {"alice"}}}}, cfg: def,
			status: Fail, fix: "ldap.userIDAttribute: mail", message: "never bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := UserIDCheck(tc.api, tc.people, tc.cfg)
			if c.Status != tc.status || !strings.Contains(c.Fix, tc.fix) || !strings.Contains(c.Message, tc.message) {
				t.Errorf("got %s %q fix %q; want %s, fix containing %q, message containing %q", c.Status, c.Message, c.Fix, tc.status, tc.fix, tc.message)
			}
			if tc.status == OK && c.Fix != "" {
				t.Errorf("ok with a fix: %q", c.Fix)
			}
		})
	}
}
