package harness

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
)

// Seeding helpers. They share one Administrator connection over LDAPS and behave like a real AD:
// entries are created exactly as an LDAP client would create them, so Samba fills in objectSid,
// objectGUID, memberOf, primaryGroupID (513, Domain Users) and the rest itself.

// AddOU creates OU=name directly under the base DN and returns its DN.
func (s *Samba) AddOU(name string) (dn string, err error) {
	return s.AddOUUnder(s.BaseDN, name)
}

// AddOUUnder creates OU=name under parentDN (for nested OUs) and returns its DN.
func (s *Samba) AddOUUnder(parentDN, name string) (dn string, err error) {
	dn = "OU=" + ldap.EscapeDN(name) + "," + parentDN
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"organizationalUnit"})
	return dn, s.add(req)
}

// AddUser creates CN=sam,parentDN: a user with sAMAccountName sam, userPrincipalName and mail
// sam@example.test, and userAccountControl 512 (enabled) or 514 (disabled). Samba, unlike a
// default Windows policy, accepts an enabled account without a password; set one with
// SetPassword to bind as the user.
func (s *Samba) AddUser(parentDN, sam string, enabled bool) (dn string, err error) {
	req := userAddRequest(parentDN, sam, enabled)
	return req.DN, s.add(req)
}

// AddUsers creates many users like AddUser, pipelining the adds over the shared connection, and
// returns their DNs in the order of sams. Every user is attempted; the error joins the failures.
func (s *Samba) AddUsers(parentDN string, sams []string, enabled bool) ([]string, error) {
	dns := make([]string, len(sams))
	err := s.pipeline(len(sams), func(c *ldap.Conn, i int) error {
		req := userAddRequest(parentDN, sams[i], enabled)
		dns[i] = req.DN
		if err := c.Add(req); err != nil {
			return fmt.Errorf("harness: add %s: %w", req.DN, err)
		}
		return nil
	})
	return dns, err
}

func userAddRequest(parentDN, sam string, enabled bool) *ldap.AddRequest {
	uac := uacNormalAccount
	if !enabled {
		uac |= uacAccountDisable
	}
	req := ldap.NewAddRequest("CN="+ldap.EscapeDN(sam)+","+parentDN, nil)
	req.Attribute("objectClass", []string{"user"})
	req.Attribute("sAMAccountName", []string{sam})
	req.Attribute("userPrincipalName", []string{sam + "@" + sambaUPNSuffix})
	req.Attribute("mail", []string{sam + "@" + sambaUPNSuffix})
	req.Attribute("userAccountControl", []string{strconv.Itoa(uac)})
	return req
}

// SetPassword sets a user's password as an administrator reset (unicodePwd replaced with the
// quoted UTF-16LE password, which AD accepts only over an encrypted connection). The password
// must satisfy the default policy: 7+ characters from three of upper, lower, digit, symbol, and
// not contain the account name.
func (s *Samba) SetPassword(dn, password string) error {
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace("unicodePwd", []string{EncodeUnicodePwd(password)})
	return s.modify(req)
}

// EncodeUnicodePwd encodes a password as AD's unicodePwd attribute wants it.
func EncodeUnicodePwd(password string) string {
	u := utf16.Encode([]rune(`"` + password + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}

// AddGroup creates CN=cn,parentDN as a global security group (AD's default groupType,
// -2147483646) with sAMAccountName cn, and returns its DN.
func (s *Samba) AddGroup(parentDN, cn string) (dn string, err error) {
	dn = "CN=" + ldap.EscapeDN(cn) + "," + parentDN
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"group"})
	req.Attribute("sAMAccountName", []string{cn})
	return dn, s.add(req)
}

// AddMembers adds members (DNs) to a group in one modify. Large lists go in chunks, as a client
// would, since one huge modify is slow to process.
func (s *Samba) AddMembers(groupDN string, memberDNs ...string) error {
	return s.changeMembers(groupDN, memberDNs, true)
}

// RemoveMembers removes members (DNs) from a group.
func (s *Samba) RemoveMembers(groupDN string, memberDNs ...string) error {
	return s.changeMembers(groupDN, memberDNs, false)
}

func (s *Samba) changeMembers(groupDN string, memberDNs []string, add bool) error {
	const chunk = 1000
	for len(memberDNs) > 0 {
		n := min(chunk, len(memberDNs))
		req := ldap.NewModifyRequest(groupDN, nil)
		if add {
			req.Add("member", memberDNs[:n])
		} else {
			req.Delete("member", memberDNs[:n])
		}
		if err := s.modify(req); err != nil {
			return err
		}
		memberDNs = memberDNs[n:]
	}
	return nil
}

// AddForeignMember adds a member by SID only (member: <SID=S-1-5-21-…>), as a trusted domain's
// user appears in AD. For a SID outside DomainSID Samba creates
// CN=<sid>,CN=ForeignSecurityPrincipals,<base DN> (objectClass foreignSecurityPrincipal) and
// stores that DN as the member.
func (s *Samba) AddForeignMember(groupDN, sid string) error {
	if !strings.HasPrefix(sid, "S-1-") {
		return fmt.Errorf("harness: add foreign member %q to %s: not a SID string (S-1-5-21-…)", sid, groupDN)
	}
	req := ldap.NewModifyRequest(groupDN, nil)
	req.Add("member", []string{"<SID=" + sid + ">"})
	return s.modify(req)
}

// ForeignPrincipalDN is the DN Samba gives the foreignSecurityPrincipal for sid.
func (s *Samba) ForeignPrincipalDN(sid string) string {
	return "CN=" + sid + ",CN=ForeignSecurityPrincipals," + s.BaseDN
}

// SetEnabled enables or disables an account by flipping ACCOUNTDISABLE (0x2) in
// userAccountControl, keeping its other flags (512 ⇄ 514 for a normal user).
func (s *Samba) SetEnabled(userDN string, enabled bool) error {
	c, err := s.admin()
	if err != nil {
		return err
	}
	res, err := c.Search(ldap.NewSearchRequest(userDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=user)", []string{"userAccountControl"}, nil))
	if err != nil {
		return fmt.Errorf("harness: read userAccountControl of %s: %w", userDN, err)
	}
	if len(res.Entries) != 1 {
		return fmt.Errorf("harness: read userAccountControl of %s: not a user", userDN)
	}
	uac, err := strconv.Atoi(res.Entries[0].GetAttributeValue("userAccountControl"))
	if err != nil {
		return fmt.Errorf("harness: parse userAccountControl of %s: %w", userDN, err)
	}
	if enabled {
		uac &^= uacAccountDisable
	} else {
		uac |= uacAccountDisable
	}
	req := ldap.NewModifyRequest(userDN, nil)
	req.Replace("userAccountControl", []string{strconv.Itoa(uac)})
	return s.modify(req)
}

// AddComputer creates an enabled workstation account CN=name,parentDN (objectClass computer,
// sAMAccountName name$, userAccountControl 4096). Computers are users too in AD
// (objectClass top/person/organizationalPerson/user/computer, objectCategory Computer), which is
// why user filters must exclude them.
func (s *Samba) AddComputer(parentDN, name string) (dn string, err error) {
	dn = "CN=" + ldap.EscapeDN(name) + "," + parentDN
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"computer"})
	req.Attribute("sAMAccountName", []string{name + "$"})
	req.Attribute("userAccountControl", []string{strconv.Itoa(uacWorkstationTrust)})
	return dn, s.add(req)
}

// Delete removes an entry (not a subtree).
func (s *Samba) Delete(dn string) error { return deleteEntry(s.admin, dn) }

// Rename moves or renames an entry: newRDN like "CN=new", newParentDN "" to stay in place.
func (s *Samba) Rename(dn, newRDN, newParentDN string) error {
	return renameEntry(s.admin, dn, newRDN, newParentDN)
}

// Modify applies an arbitrary modify request over the admin connection.
func (s *Samba) Modify(req *ldap.ModifyRequest) error { return s.modify(req) }

func (s *Samba) add(req *ldap.AddRequest) error { return addEntry(s.admin, req) }

func (s *Samba) modify(req *ldap.ModifyRequest) error { return modifyEntry(s.admin, req) }

// pipeline runs op(0..n-1) with several requests in flight on the admin connection.
func (s *Samba) pipeline(n int, op func(c *ldap.Conn, i int) error) error {
	return pipeline(s.admin, n, op)
}

// SIDString renders a binary objectSid as S-1-…
func SIDString(b []byte) (string, error) {
	if len(b) < 8 || len(b) != 8+4*int(b[1]) {
		return "", fmt.Errorf("harness: malformed SID of %d bytes", len(b))
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "S-%d-%d", b[0], auth)
	for i := 0; i < int(b[1]); i++ {
		fmt.Fprintf(&sb, "-%d", binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return sb.String(), nil
}
