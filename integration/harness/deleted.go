package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// grantACEScript appends one ACE to an entry's DACL through Samba's own
// Python bindings on the DC's database (deleted-object containers need the
// show_deleted control, which `samba-tool dsacl` does not send).
const grantACEScript = `
import sys, ldb
from samba.samdb import SamDB
from samba.auth import system_session
from samba.param import LoadParm
from samba.ndr import ndr_unpack, ndr_pack
from samba.dcerpc import security
smbconf, dbpath, dn, ace = sys.argv[1:5]
lp = LoadParm()
lp.load(smbconf)
db = SamDB(url=dbpath, session_info=system_session(lp), lp=lp)
ctrls = ["show_deleted:1", "sd_flags:1:4"]
res = db.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"], controls=ctrls)
sd = ndr_unpack(security.descriptor, res[0]["nTSecurityDescriptor"][0])
new = security.descriptor.from_sddl(sd.as_sddl() + ace, security.dom_sid(db.get_domain_sid()))
m = ldb.Message()
m.dn = ldb.Dn(db, dn)
m["nTSecurityDescriptor"] = ldb.MessageElement(ndr_pack(new), ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
db.modify(m, controls=ctrls)
`

// GrantDeletedObjectsRead lets the account with objectSid sid list and read
// the domain's deleted objects, as an AD admin does with
//
//	dsacls "CN=Deleted Objects,DC=…" /takeownership
//	dsacls "CN=Deleted Objects,DC=…" /G DOMAIN\account:LCRP
//
// so that searches with the Show Deleted control return tombstones to it.
func (s *Samba) GrantDeletedObjectsRead(ctx context.Context, sid string) error {
	_, toolBin, err := sambaBinaries()
	if err != nil {
		return err
	}
	python, err := interpreterOf(toolBin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dn := "CN=Deleted Objects," + s.BaseDN
	cmd := exec.CommandContext(ctx, python, "-c", grantACEScript,
		filepath.Join(s.Dir, "etc", "smb.conf"), filepath.Join(s.Dir, "private", "sam.ldb"), dn, "(A;;LCRP;;;"+sid+")")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("harness: grant %s list and read on %s: %w\n%s", sid, dn, err, out)
	}
	return nil
}

// SID reads an entry's objectSid as S-1-….
func (s *Samba) SID(dn string) (string, error) {
	c, err := s.admin()
	if err != nil {
		return "", err
	}
	res, err := c.Search(newBaseSearch(dn, "objectSid"))
	if err != nil {
		return "", fmt.Errorf("harness: read objectSid of %s: %w", dn, err)
	}
	if len(res.Entries) != 1 {
		return "", fmt.Errorf("harness: read objectSid of %s: %d entries", dn, len(res.Entries))
	}
	return SIDString(res.Entries[0].GetRawAttributeValue("objectSid"))
}

// GUID reads an entry's raw objectGUID.
func (s *Samba) GUID(dn string) ([]byte, error) {
	c, err := s.admin()
	if err != nil {
		return nil, err
	}
	res, err := c.Search(newBaseSearch(dn, "objectGUID"))
	if err != nil {
		return nil, fmt.Errorf("harness: read objectGUID of %s: %w", dn, err)
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("harness: read objectGUID of %s: %d entries", dn, len(res.Entries))
	}
	return res.Entries[0].GetRawAttributeValue("objectGUID"), nil
}

// interpreterOf returns the interpreter a script names on its #! line
// (samba-tool's Python, which has Samba's bindings).
func interpreterOf(script string) (string, error) {
	f, err := os.Open(script)
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	if !strings.HasPrefix(line, "#!") {
		return "", fmt.Errorf("harness: %s has no #! line", script)
	}
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(fields) == 0 {
		return "", fmt.Errorf("harness: %s has an empty #! line", script)
	}
	if filepath.Base(fields[0]) == "env" && len(fields) > 1 {
		return exec.LookPath(fields[1])
	}
	return fields[0], nil
}

func newBaseSearch(dn string, attrs ...string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", attrs, nil)
}
