package config

import (
	"net/url"
	"strings"
)

// OptOut is a setting that turns off one of the daemon's protections.
type OptOut struct {
	Key  string // the configuration key, e.g. ldap.insecureSkipVerify
	Risk string // what it exposes, for the warning
}

// OptOuts lists the protections this configuration turns off, so start-up
// (and check-config) can warn about each: a safety switch turned off by
// mistake should not go unnoticed until it matters.
func (c *Config) OptOuts() []OptOut {
	var out []OptOut
	add := func(key, risk string) { out = append(out, OptOut{Key: key, Risk: risk}) }
	if c.LDAP.InsecureSkipVerify {
		add("ldap.insecureSkipVerify", "the directory server's certificate is not verified: anyone on the network path can pose as it, read the bind password and choose every project's members")
	}
	if c.LDAP.AllowInsecure && !c.LDAP.StartTLS {
		for _, raw := range c.LDAP.URLs {
			if u, err := url.Parse(raw); err == nil && strings.EqualFold(u.Scheme, "ldap") {
				add("ldap.allowInsecure", "the bind password and every member list travel in clear text to "+raw)
				break
			}
		}
	}
	if c.LDAP.CAFile == "" && !c.LDAP.InsecureSkipVerify && (c.LDAP.StartTLS || !c.LDAP.AllowInsecure) {
		add("ldap.caFile", "unset: the domain controllers' certificates are checked against the public system roots, so a certificate any public CA issued for a name in ldap.urls is trusted with the bind password; set it to your domain's CA")
	}
	if c.Policy == PolicyAuthoritative {
		add("policy", "authoritative: every User subject of a managed binding that the directory does not name is removed, including users added by hand")
	}
	if c.Guard.MaxRemovePercent >= 100 {
		add("guard.maxRemovePercent", "100: removals are held only past guard.maxRemoveCount or when they would empty a binding")
	}
	if c.Guard.MaxAddCount == 0 {
		add("guard.maxAddCount", "0: additions are never held, so a group owner who nests a large group (Domain Users) into a project group grants all its members at once")
	}
	if c.Projects.LabelExistingNamespaces {
		risk := "an existing namespace named for a static project is labelled as its project, and gets that project's bindings"
		if c.Projects.FromGroups != nil {
			risk = "whoever can create a directory group matching projects.fromGroups.pattern can make an existing, unlabelled namespace runai-<name> (outside the built-in and excluded namespaces) a project with that group's members as executors"
		}
		add("projects.labelExistingNamespaces", risk)
	}
	if c.LDAP.AllowWellKnownGroups {
		add("ldap.allowWellKnownGroups", "a project group that reaches Domain Users, Domain Computers, Authenticated Users or Everyone grants every account of the domain: any owner of a project group can do that by nesting one")
	}
	if groupBase := c.LDAP.GroupBase(); DomainRoot(groupBase) {
		add("ldap.groupBaseDN", "groups are searched across the whole domain ("+groupBase+"): anyone delegated to create groups in any OU can create a group named like a project's (squat a missing one, or make one ambiguous); set ldap.groupBaseDN to an OU where only IT creates groups")
	}
	if fg := c.Projects.FromGroups; fg != nil && fg.BaseDN != "" && DomainRoot(fg.BaseDN) {
		add("projects.fromGroups.baseDN", "projects are discovered from groups across the whole domain ("+fg.BaseDN+"): anyone delegated to create groups in any OU can create a project; use an OU where only IT creates groups")
	}
	return out
}

// DomainRoot reports whether dn is a domain's root (only DC= components,
// e.g. DC=example,DC=com): a search there reaches every OU of the domain.
// DC values hold no escapes, so a plain split is enough (config does not
// parse LDAP syntax: ldapsrc.CheckConfig does).
func DomainRoot(dn string) bool {
	if strings.TrimSpace(dn) == "" || strings.ContainsAny(dn, "\\\"+;") {
		return false
	}
	for _, rdn := range strings.Split(dn, ",") {
		typ, val, ok := strings.Cut(rdn, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(typ), "DC") || strings.TrimSpace(val) == "" {
			return false
		}
	}
	return true
}
