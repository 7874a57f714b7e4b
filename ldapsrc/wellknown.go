package ldapsrc

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"go.uber.org/zap"
)

// Well-known all-accounts groups (Active Directory). A group owner may nest
// any of them into their own group; resolved, it would grant every account
// of the domain. Unless ldap.allowWellKnownGroups is set, a project group
// that reaches one is that group's error: it grants nobody, and the others
// are resolved as usual.
const (
	sidEveryone           = "S-1-1-0"
	sidAuthenticatedUsers = "S-1-5-11"
	domainComputersRID    = "515"
)

// wellKnownName names the all-accounts group sid is, or "" for any other.
func wellKnownName(sid string) string {
	switch sid {
	case sidEveryone:
		return "Everyone"
	case sidAuthenticatedUsers:
		return "Authenticated Users"
	}
	if !strings.HasPrefix(sid, "S-1-5-21-") {
		return ""
	}
	switch sidRID(sid) {
	case domainUsersRID:
		return "Domain Users"
	case domainComputersRID:
		return "Domain Computers"
	}
	return ""
}

// foreignSID returns the SID a ForeignSecurityPrincipal DN is named by
// (CN=S-1-5-11,CN=ForeignSecurityPrincipals,…), or "".
func foreignSID(dn string) string {
	return strings.ToUpper(cnIn(dn, "ForeignSecurityPrincipals"))
}

// wellKnownPrincipal names the well-known security principal dn is
// (CN=Everyone,CN=WellKnown Security Principals,CN=Configuration,…, where
// AD and Samba keep Everyone, Authenticated Users, Interactive, Network,
// ...), or "". Each stands for a class of logons, never for one person,
// and none lies in the domain partition a member search reads.
func wellKnownPrincipal(dn string) string {
	return cnIn(dn, "WellKnown Security Principals")
}

// cnIn returns x when dn is CN=x,CN=container,…, else "".
func cnIn(dn, container string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) < 2 || len(parsed.RDNs[0].Attributes) != 1 || len(parsed.RDNs[1].Attributes) != 1 {
		return ""
	}
	first, second := parsed.RDNs[0].Attributes[0], parsed.RDNs[1].Attributes[0]
	if !strings.EqualFold(first.Type, "CN") || !strings.EqualFold(second.Type, "CN") || !strings.EqualFold(second.Value, container) {
		return ""
	}
	return first.Value
}

// WellKnownGroupError: a project group reaches an all-accounts group.
type WellKnownGroupError struct {
	Group string // the project group's name
	Name  string // Domain Users, Everyone, ...
	SID   string
	DN    string // the well-known group's (or principal's) DN
}

func (e *WellKnownGroupError) Error() string {
	return fmt.Sprintf("group %q reaches %s (%s, %s), which holds every account of the domain: the group grants nobody until that nesting is removed from it (or set ldap.allowWellKnownGroups: true if every account really should have this access)",
		e.Group, e.Name, e.SID, e.DN)
}

// refuseWellKnown returns the error for a project group that reaches the
// group or principal sid at dn, or nil when sid is no all-accounts group or
// the configuration allows them. Each refusal is counted (model.SkipWellKnown)
// and logged with the fix.
func (r *resolver) refuseWellKnown(group, sid, dn string) error {
	name := wellKnownName(sid)
	if name == "" {
		name = wellKnownPrincipal(dn)
	}
	if name == "" || r.src.cfg.AllowWellKnownGroups {
		return nil
	}
	err := &WellKnownGroupError{Group: group, Name: name, SID: sid, DN: dn}
	r.skips.add(model.SkipWellKnown, dn)
	r.src.log.Warn("a project group reaches an all-accounts group: refused, the group grants nobody",
		zap.String("group", group), zap.String("wellKnown", name), zap.String("dn", dn),
		zap.String("fix", "remove "+name+" from the group (or its nested groups); set ldap.allowWellKnownGroups: true only if every account should have this access"))
	return err
}

// MemberError: one member value of a group names no single entry (two
// entries answer to it, or one that is both a group and a user), so the
// group's members cannot be known. It is
// the group's error: the member is never taken for the other entry.
type MemberError struct {
	Group  string   // the project group's name
	Member string   // the member value (a DN, or an rfc2307 memberUid)
	Found  []string // the DNs of the entries it matches
}

func (e *MemberError) Error() string {
	if len(e.Found) == 1 {
		return fmt.Sprintf("member %q of group %q is ambiguous: %s is both a group and a user; the group is not used until it is one or the other", e.Member, e.Group, e.Found[0])
	}
	return fmt.Sprintf("member %q of group %q is ambiguous: %s all answer to it; the group is not used until only one does (rename or remove the others)",
		e.Member, e.Group, strings.Join(e.Found, ", "))
}

// accountExpiresNever: AD's accountExpires of an account that never
// expires is 0 or this.
const accountExpiresNever = math.MaxInt64

// windowsEpochOffset is 1601-01-01 to 1970-01-01 in 100 ns intervals.
const windowsEpochOffset = 116444736000000000

// expired reads AD's accountExpires (100 ns intervals since 1601, UTC): an
// account past it can no longer log in, so it loses access like a
// disabled one.
func expired(e *ldap.Entry, now time.Time) bool {
	raw := e.GetEqualFoldAttributeValue("accountExpires")
	if raw == "" {
		return false
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || v <= 0 || v == accountExpiresNever {
		return false
	}
	return !now.Before(windowsTime(v))
}

func windowsTime(v int64) time.Time {
	d := v - windowsEpochOffset
	return time.Unix(d/1e7, (d%1e7)*100).UTC()
}
