package model

// Skip reasons: why a member of a group did not become a subject. The
// directory adapter sets them; metrics and explain name them.
const (
	SkipDisabled  = "disabled"          // userAccountControl bit 0x2
	SkipExpired   = "expired"           // AD accountExpires in the past
	SkipComputer  = "computer"          // computer accounts are not people
	SkipContact   = "contact"           // AD contact objects: no account to log in with
	SkipForeign   = "foreign_principal" // cross-forest member, CN=<SID>,CN=ForeignSecurityPrincipals
	SkipNoID      = "missing_id"        // entry has no user ID attribute
	SkipInvalidID = "invalid_id"        // empty, control/format/bidi characters, system: prefix, too long
	SkipOther     = "not_a_user"        // some other object class
	// SkipOutsideBase: a member DN outside the user base DN.
	SkipOutsideBase = "outside_base"
	// SkipUnresolved: a member DN that points to nothing the search can see.
	SkipUnresolved = "unresolved"
	// SkipWellKnown: an all-accounts group (Domain Users, Everyone, ...)
	// reached through a project group and refused.
	SkipWellKnown = "well_known_group"
)

// SkipReasons lists every reason, so metrics can report zeros too.
var SkipReasons = []string{SkipDisabled, SkipExpired, SkipWellKnown, SkipComputer, SkipContact, SkipForeign, SkipNoID, SkipInvalidID, SkipOther, SkipOutsideBase, SkipUnresolved}
