package harness

import (
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// SetPrimaryGroup makes groupDN the primary group of userDN (primaryGroupID = the group's RID),
// as ADUC's "Set Primary Group" does. AD accepts it only for a group the user is a member of
// already; the membership then no longer appears in the group's member values.
func (s *Samba) SetPrimaryGroup(userDN, groupDN string) error {
	c, err := s.admin()
	if err != nil {
		return err
	}
	res, err := c.Search(ldap.NewSearchRequest(groupDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=group)", []string{"objectSid"}, nil))
	if err != nil || len(res.Entries) != 1 {
		return fmt.Errorf("harness: read objectSid of %s: %v", groupDN, err)
	}
	sid, err := SIDString(res.Entries[0].GetRawAttributeValue("objectSid"))
	if err != nil {
		return err
	}
	req := ldap.NewModifyRequest(userDN, nil)
	req.Replace("primaryGroupID", []string{sid[strings.LastIndexByte(sid, '-')+1:]})
	return s.modify(req)
}
