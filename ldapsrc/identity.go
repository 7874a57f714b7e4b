package ldapsrc

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// Stable identities: an entry keeps its objectGUID (Active Directory) or
// entryUUID (OpenLDAP, 389-DS) through renames and moves, and a new entry
// never gets an old one's. Both are set by the server and cannot be
// written by clients, so a user who may create or rename objects cannot
// make one entry pass for another. They only ever decide which groups a
// poll reads again: access itself always comes from reading the groups.
const (
	attrObjectGUID = "objectGUID"
	attrEntryUUID  = "entryUUID"

	guidPrefix = "guid:"
	uuidPrefix = "uuid:"
)

// identityAttr is the attribute that holds an entry's stable identity in
// the configured schema.
func identityAttr(cfg config.LDAP) string {
	if cfg.Schema == config.SchemaActiveDirectory {
		return attrObjectGUID
	}
	return attrEntryUUID
}

// FormatGUID renders a binary objectGUID the way AD tools show it
// (PowerShell's ObjectGUID, ADSI Edit): the first three fields are stored
// little-endian. ok is false for anything but 16 bytes.
func FormatGUID(b []byte) (s string, ok bool) {
	if len(b) != 16 {
		return "", false
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]),
		b[8:10], b[10:16]), true
}

// identityKey returns an entry's identity as a key comparable with
// Group.Reached and Changed.ID ("guid:…" or "uuid:…"), or "" when the
// entry carries none we can read (then its DN stands in for it).
func identityKey(e *ldap.Entry, attr string) string {
	switch attr {
	case attrObjectGUID:
		if s, ok := FormatGUID(e.GetEqualFoldRawAttributeValue(attrObjectGUID)); ok {
			return guidPrefix + s
		}
	case attrEntryUUID:
		if v := strings.ToLower(strings.TrimSpace(e.GetEqualFoldAttributeValue(attrEntryUUID))); validUUID(v) {
			return uuidPrefix + v
		}
	}
	return ""
}

// validUUID accepts the RFC 4122 text form only, so a value that is not
// one never becomes a key.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// reachKey is how an entry appears in Group.Reached: by its identity when
// it has one, else by its normalised DN (a member DN that names no entry
// we could read, which a new entry at that DN would fill).
func reachKey(dn, identity string) string {
	if identity != "" {
		return identity
	}
	return normalizeDN(dn)
}

// IdentityLabel renders an identity key for people: "objectGUID
// 6f1c…", "entryUUID 0d5e…"; "" for "".
func IdentityLabel(key string) string {
	switch {
	case strings.HasPrefix(key, guidPrefix):
		return attrObjectGUID + " " + strings.TrimPrefix(key, guidPrefix)
	case strings.HasPrefix(key, uuidPrefix):
		return attrEntryUUID + " " + strings.TrimPrefix(key, uuidPrefix)
	}
	return key
}
