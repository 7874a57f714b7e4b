package harness

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// StartSlapdMirror starts two OpenLDAP providers in mirror mode, as replicated sites run them:
// server IDs 1 (a) and 2 (b), the syncprov overlay on both, and each replicating the other
// with syncrepl (refreshAndPersist, retrying every second). b starts from a slapcat of a, so
// both hold the same entries, entryUUIDs and entryCSNs. Either accepts writes; a change made
// on one reaches the other with the CSN (and server ID) of the server that made it.
// PauseReplication holds back what one of them receives. Stop both when done.
func StartSlapdMirror(ctx context.Context, dirA, dirB string, opts SlapdOptions) (a, b *Slapd, err error) {
	opts.SyncProv = true
	optsA, optsB := opts, opts
	optsA.ServerID, optsB.ServerID = 1, 2
	if a, err = StartSlapd(ctx, dirA, optsA); err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			a.Stop()
			if b != nil {
				b.Stop()
			}
		}
	}()
	slapcat := "/usr/sbin/slapcat"
	if p, lerr := exec.LookPath("slapcat"); lerr == nil {
		slapcat = p
	}
	// back-mdb serves slapcat and slapd at once: a consistent read of the running server.
	cmd := exec.CommandContext(ctx, slapcat, "-F", filepath.Join(a.Dir, "slapd.d"), "-b", a.Suffix, "-o", "ldif-wrap=no")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	optsB.data, err = cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("harness: slapcat of the first provider: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	optsB.LDIF = nil
	if b, err = StartSlapd(ctx, dirB, optsB); err != nil {
		return nil, nil, err
	}
	a.peer, b.peer = b, a
	for _, s := range []*Slapd{a, b} {
		if err = s.setSyncProvider(ctx, s.peer.URL); err != nil {
			return nil, nil, err
		}
	}
	return a, b, nil
}

// PauseReplication makes this server's consumer (StartSlapdMirror) ask a port nobody listens
// on: changes made on the peer meanwhile stay there, while both servers keep accepting writes.
// ResumeReplication lets them through, with their original CSNs.
func (s *Slapd) PauseReplication(ctx context.Context) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	return s.setSyncProvider(ctx, fmt.Sprintf("ldap://127.0.0.1:%d", ports[0]))
}

// ResumeReplication points this server's consumer at its peer again.
func (s *Slapd) ResumeReplication(ctx context.Context) error {
	if s.peer == nil {
		return fmt.Errorf("harness: %s replicates from no peer (StartSlapdMirror)", s.URL)
	}
	return s.setSyncProvider(ctx, s.peer.URL)
}

// setSyncProvider (re)configures the database's syncrepl consumer online, through cn=config.
func (s *Slapd) setSyncProvider(ctx context.Context, provider string) error {
	if s.peer == nil {
		return fmt.Errorf("harness: %s has no replication peer", s.URL)
	}
	c, err := s.BindConn(ctx, SlapdConfigDN, SlapdAdminPassword)
	if err != nil {
		return err
	}
	defer c.Close()
	// One consumer per server: rid 1 is unique.
	syncrepl := fmt.Sprintf(`{0}rid=001 provider=%s bindmethod=simple binddn="%s" credentials="%s" searchbase="%s" `+
		`type=refreshAndPersist retry="1 +" timeout=3 network-timeout=3`,
		provider, s.peer.AdminDN, s.peer.AdminPassword, s.peer.Suffix)
	req := ldap.NewModifyRequest(SlapdDatabaseConfigDN, nil)
	req.Replace("olcSyncrepl", []string{syncrepl})
	req.Replace("olcMultiProvider", []string{"TRUE"})
	if err := c.Modify(req); err != nil {
		return fmt.Errorf("harness: configure syncrepl on %s from %s: %w", s.URL, provider, err)
	}
	return nil
}
