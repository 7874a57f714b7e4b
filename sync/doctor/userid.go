package doctor

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
)

// CheckUserID is the name of the user-ID shape check.
const CheckUserID = "user-id"

// Candidates are the directory names worth searching for the person the
// API server calls apiName: the name, the name without an OIDC prefix
// ("oidc:", "https://issuer#") and its part before '@'.
func Candidates(apiName string) []string {
	out := []string{apiName}
	rest := apiName
	if i := strings.LastIndexAny(rest, ":#"); i >= 0 {
		rest = rest[i+1:]
	}
	local, _, _ := strings.Cut(rest, "@")
	for _, c := range []string{rest, local} {
		if c != "" && !contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// idSetting is one way of configuring the user ID.
type idSetting struct {
	attr, prefix, idCase string
}

// changes lists the settings of s that differ from the configuration,
// as "key: value" lines.
func (s idSetting) changes(cfg config.LDAP) []string {
	var out []string
	if !strings.EqualFold(s.attr, cfg.UserIDAttribute) {
		out = append(out, fmt.Sprintf("ldap.userIDAttribute: %s", s.attr))
	}
	if s.prefix != cfg.UserIDPrefix {
		out = append(out, fmt.Sprintf("ldap.userIDPrefix: %q", s.prefix))
	}
	if s.idCase != cfg.UserIDCase {
		out = append(out, fmt.Sprintf("ldap.userIDCase: %s", s.idCase))
	}
	return out
}

// UserIDCheck compares the API server's name for a person (apiName, from
// a SelfSubjectReview with their credentials) with the ID the directory
// yields for them (people: the entries FindPeople found for Candidates)
// and, when they differ, names the settings that make them equal. Pure.
func UserIDCheck(apiName string, people []ldapsrc.Person, cfg config.LDAP) Check {
	c := Check{Name: CheckUserID}
	if len(people) == 0 {
		c.Status = Warn
		c.Message = fmt.Sprintf("no directory user matches %s (searched %s for %s)", apiName,
			strings.Join(append([]string{cfg.UserIDAttribute}, ldapsrc.PersonAttributes...), ", "), strings.Join(Candidates(apiName), ", "))
		c.Fix = "pass --directory-user with this person's account name in the directory, or run with the kubeconfig of a user who is in it"
		return c
	}
	p := people[0]
	note := ""
	if len(people) > 1 {
		note = fmt.Sprintf(" (%d entries match; pass --directory-user to pick another)", len(people))
	}
	raw := p.Attrs[cfg.UserIDAttribute]
	yielded := ""
	if len(raw) > 0 {
		id, err := ldapsrc.NormalizeID(raw[0], cfg.UserIDCase, cfg.UserIDPrefix)
		if err != nil {
			c.Status, c.Message = Fail, fmt.Sprintf("the directory's ID for %s is refused: %v%s", p.DN, err, note)
			c.Fix = "set ldap.userIDAttribute to an attribute holding a valid user name"
			return c
		}
		yielded = id
		if id == apiName {
			c.Status = OK
			c.Message = fmt.Sprintf("the API server calls %s %s, the ID the directory yields (ldap.userIDAttribute %s)%s", p.DN, apiName, cfg.UserIDAttribute, note)
			return c
		}
	}
	c.Status = Fail
	if yielded == "" {
		c.Message = fmt.Sprintf("the API server calls %s %s, but the entry has no %s (ldap.userIDAttribute): the user is never bound%s", p.DN, apiName, cfg.UserIDAttribute, note)
	} else {
		c.Message = fmt.Sprintf("the API server calls %s %s, but the directory yields %s (ldap.userIDAttribute %s): a binding for %s grants this user nothing%s",
			p.DN, apiName, yielded, cfg.UserIDAttribute, yielded, note)
	}
	if s, ok := matchSetting(apiName, p, cfg); ok {
		c.Fix = "set " + strings.Join(s.changes(cfg), ", ")
	} else {
		c.Fix = fmt.Sprintf("no attribute of %s gives %s with a prefix and case setting: check the API server's --oidc-username-claim and --oidc-username-prefix (or the AuthenticationConfiguration's claimMappings.username)", p.DN, apiName)
	}
	return c
}

// matchSetting finds the settings (attribute, prefix, case) that turn one
// of p's values into apiName, changing as few settings as possible; the
// configured attribute and case are tried first.
func matchSetting(apiName string, p ldapsrc.Person, cfg config.LDAP) (idSetting, bool) {
	attrs := []string{cfg.UserIDAttribute}
	for _, a := range ldapsrc.PersonAttributes {
		if !strings.EqualFold(a, cfg.UserIDAttribute) {
			attrs = append(attrs, a)
		}
	}
	cases := []string{cfg.UserIDCase, config.CaseLower, config.CasePreserve}
	var best idSetting
	bestN := -1
	for _, a := range attrs {
		for _, v := range p.Attrs[a] {
			for _, cs := range cases {
				id := strings.TrimSpace(v)
				if cs == config.CaseLower {
					id = strings.ToLower(id)
				}
				if id == "" || !strings.HasSuffix(apiName, id) {
					continue
				}
				s := idSetting{attr: a, prefix: strings.TrimSuffix(apiName, id), idCase: cs}
				if !prefixLike(s.prefix) {
					continue // "alice" in "oidc:malice" is not alice
				}
				if n := len(s.changes(cfg)); bestN < 0 || n < bestN {
					best, bestN = s, n
				}
			}
		}
	}
	return best, bestN >= 0
}

// prefixLike: an OIDC username prefix ends with a separator ("oidc:",
// "https://issuer#"), or is empty.
func prefixLike(p string) bool {
	if p == "" {
		return true
	}
	last := rune(p[len(p)-1])
	return !unicode.IsLetter(last) && !unicode.IsDigit(last)
}
