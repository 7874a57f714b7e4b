package model

// Group is what one directory group name resolved to.
type Group struct {
	// Name as requested (after {project} expansion).
	Name string
	// DN of the group entry; empty when not found.
	DN string
	// Identity is the group entry's stable identity (objectGUID or
	// entryUUID, as a Reached key); empty when the server shows none.
	Identity string
	// Found is false when no group of that name exists. A missing group
	// contributes no members but is not an error.
	Found bool
	// Members are the normalised user IDs, sorted and unique.
	Members []string
	// Err is set when the lookup failed; Members must then not be used.
	Err error
	// MightGrant, with Err set, are users the group may grant although it
	// failed (for an ambiguous name, every candidate's members): kept, like
	// its last known members, never added (plan.DesiredState). Non-nil
	// (even empty) means the source knows them all: the failure then holds
	// back only these, even with no last known members.
	MightGrant []string
	// Memberships explains every member entry seen (only when the source
	// traces).
	Memberships []Membership
	// Reached holds the group, every nested group and every member entry
	// it names, bound or skipped (only when the source records reach): a
	// change to any of them may change Members. Entries read are held by
	// their stable identity (objectGUID, entryUUID), so a rename, a move
	// or a deletion is matched; a member DN that names nothing readable by
	// its normalised DN.
	Reached []string
}

// Membership is why one member entry of a group is, or is not, a subject.
type Membership struct {
	// RawID is the user ID as the directory holds it.
	RawID string `json:"rawID"`
	// ID is the normalised user ID; empty when rejected.
	ID string `json:"id,omitempty"`
	// DN of the member entry.
	DN string `json:"dn"`
	// Path lists the groups from the resolved group down to the one that
	// holds the member directly.
	Path []string `json:"path"`
	// Skip is why the member is not bound (disabled, invalid_id, ...), or "".
	Skip string `json:"skip,omitempty"`
	// Identity is the entry's stable identity as the server holds it
	// (IdentityLabel form: "objectGUID …", "entryUUID …"), or "".
	Identity string `json:"identity,omitempty"`
}
