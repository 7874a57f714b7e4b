package harness

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Fixed identity of the test domain.
const (
	SambaRealm         = "EXAMPLE.TEST"
	SambaDomain        = "EXAMPLE"
	SambaBaseDN        = "DC=example,DC=test"
	SambaAdminDN       = "CN=Administrator,CN=Users," + SambaBaseDN
	SambaAdminPassword = "Harness-Adm1n-Passw0rd" // meets the default AD complexity policy
	sambaHostName      = "dc1"                    // short: NetBIOS names have 15 characters at most
	sambaUPNSuffix     = "example.test"
)

// userAccountControl flags (MS-ADTS 2.2.16).
const (
	uacAccountDisable   = 0x0002
	uacNormalAccount    = 0x0200
	uacWorkstationTrust = 0x1000
)

// Samba is a running Samba 4 Active Directory domain controller serving LDAP on 127.0.0.1:389
// and LDAPS on 127.0.0.1:636 (and ::1).
type Samba struct {
	Dir           string // provisioned tree, smb.conf in Dir/etc, log in Dir/samba.log
	BaseDN        string // DC=example,DC=test
	Realm         string // EXAMPLE.TEST
	Domain        string // NetBIOS domain name, EXAMPLE
	DomainSID     string // S-1-5-21-…: SIDs outside it are foreign, see AddForeignMember
	AdminDN       string // CN=Administrator,CN=Users,DC=example,DC=test
	AdminPassword string
	LDAPSURL      string // ldaps://localhost:636; the certificate matches localhost, 127.0.0.1, ::1
	// LDAPURL is ldap://localhost:389. Samba refuses simple binds on it without StartTLS
	// ("ldap server require strong auth" defaults to yes), like a hardened AD.
	LDAPURL string
	CAFile  string // PEM of the CA that issued Samba's certificate
	CA      *CA

	spec processSpec

	mu   sync.Mutex
	proc *process
	conn *ldap.Conn // admin connection shared by the seeding helpers
	lock *os.File   // host-wide lock: Samba's ports are fixed
}

// StartSamba provisions a fresh domain in dir (which should be empty, e.g. t.TempDir()), starts
// samba on the fixed LDAP ports and returns once an LDAPS bind as Administrator succeeds.
//
// Provisioning takes several seconds, so the first call provisions a template under
// <repo>/.cache/samba and later calls copy it: every instance is a fresh, identical domain
// (same domain SID). Call Stop when done; the kernel also kills samba if this process dies.
func StartSamba(ctx context.Context, dir string) (*Samba, error) {
	s, err := startSamba(ctx, dir)
	if err != nil {
		return nil, withPrereqs(err)
	}
	return s, nil
}

func startSamba(ctx context.Context, dir string) (*Samba, error) {
	ctx, cancel := withDefaultTimeout(ctx, 10*time.Minute) // includes waiting for another process's Samba
	defer cancel()

	sambaBin, toolBin, err := sambaBinaries()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	// Samba's ports are fixed, so test processes (go test runs packages in
	// parallel) take turns: wait for the host-wide lock instead of failing.
	lock, err := lockSamba(ctx)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = lock.Close()
		}
	}()
	if portOpen("127.0.0.1:389") || portOpen("127.0.0.1:636") {
		return nil, errors.New("harness: something already listens on 127.0.0.1:389 or :636 — a Samba left by an earlier run, " +
			"or Samba tests running in parallel processes (keep them in one package or use `go test -p 1`); " +
			"find it with `ss -ltnp 'sport = :636'` and stop it")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("harness: samba dir: %w", err)
	}

	tmpl, err := sambaTemplate(ctx, sambaBin, toolBin)
	if err != nil {
		return nil, err
	}
	if err := copyTree(tmpl.dir, dir); err != nil {
		return nil, fmt.Errorf("harness: copy provisioned Samba template %s to %s (which must be empty): %w", tmpl.dir, dir, err)
	}

	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(dir, "tls")
	caFile, err := ca.WriteFiles(tlsDir)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := ca.writeServerCert(tlsDir, "samba", []string{"localhost", sambaHostName + "." + sambaUPNSuffix}, loopbackIPs)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"run", "ncalrpc", "winbindd", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("harness: create samba %s dir: %w", sub, err)
		}
	}
	conf, err := instanceSmbConf(tmpl, dir, caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "etc", "smb.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, fmt.Errorf("harness: write %s: %w", confPath, err)
	}

	s := &Samba{
		Dir:           dir,
		BaseDN:        SambaBaseDN,
		Realm:         SambaRealm,
		Domain:        SambaDomain,
		AdminDN:       SambaAdminDN,
		AdminPassword: SambaAdminPassword,
		LDAPSURL:      "ldaps://localhost:636",
		LDAPURL:       "ldap://localhost:389",
		CAFile:        caFile,
		CA:            ca,
		spec: processSpec{
			name: "samba",
			path: sambaBin,
			// -i keeps samba in the foreground and makes it exit when stdin closes: the pipe
			// is both how Stop asks it to exit and a second guard against orphans.
			args: []string{"-i", "-M", "single", "-s", confPath},
			env: []string{
				// The database is throw-away: skip fsync on the tdb files too (ldb:nosync in
				// smb.conf covers the LMDB partitions).
				"TDB_NO_FSYNC=1",
				// Samba copies whole index records (all users of an objectClass) on every add;
				// past ~3,000 users they cross glibc's mmap threshold and each add pays for
				// mmap/munmap and page faults, tripling its cost. Keep them on the heap.
				"GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824",
			},
			dir:       dir,
			logPath:   filepath.Join(dir, "samba.log"),
			stdinPipe: true,
		},
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	sid, err := s.domainSID()
	if err != nil {
		s.Down()
		return nil, err
	}
	s.DomainSID = sid
	s.lock, ok = lock, true
	return s, nil
}

// sambaLockPath is the host-wide lock file that serialises Samba instances.
const sambaLockPath = "/tmp/runai-ldap-sync-samba.lock"

func lockSamba(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(sambaLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("harness: open %s: %w", sambaLockPath, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("harness: lock %s: %w", sambaLockPath, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("harness: waited for another test process's Samba to stop (lock %s): %w", sambaLockPath, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Samba) start(ctx context.Context) error {
	p, err := startServer(ctx, s.spec, s.Conn, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// Stop stops samba, waits for it to exit and releases the host-wide Samba
// lock. It is safe to call more than once.
func (s *Samba) Stop() {
	s.Down()
	s.mu.Lock()
	lock := s.lock
	s.lock = nil
	s.mu.Unlock()
	if lock != nil {
		_ = lock.Close() // closing the file drops the flock
	}
}

// Down stops the samba process but keeps the instance (and the ports'
// lock), for fault tests: Up starts it again on the same database.
func (s *Samba) Down() {
	s.mu.Lock()
	p, conn := s.proc, s.conn
	s.proc, s.conn = nil, nil
	s.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	p.stop(nil, 15*time.Second)
}

// Restart stops samba if it runs and starts it again on the same database, for fault tests.
// Connections from before the restart are broken.
func (s *Samba) Restart(ctx context.Context) error {
	s.Down()
	return s.Up(ctx)
}

// Up starts samba again after Down.
func (s *Samba) Up(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	return s.start(ctx)
}

// TLSConfig returns a client TLS config trusting Samba's CA, for localhost.
func (s *Samba) TLSConfig() *tls.Config { return s.CA.TLSConfig("localhost") }

// Conn returns a new LDAPS connection bound as Administrator. The caller closes it.
func (s *Samba) Conn(ctx context.Context) (*ldap.Conn, error) {
	return s.BindConn(ctx, s.AdminDN, s.AdminPassword)
}

// BindConn returns a new LDAPS connection bound as the given DN (or UPN). The caller closes it.
func (s *Samba) BindConn(ctx context.Context, bindDN, password string) (*ldap.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: s.TLSConfig()}
	raw, err := d.DialContext(ctx, "tcp", "localhost:636")
	if err != nil {
		return nil, fmt.Errorf("harness: dial %s: %w", s.LDAPSURL, err)
	}
	return bindOn(raw, true, s.LDAPSURL, bindDN, password)
}

// admin returns the shared Administrator connection, reconnecting if it broke.
func (s *Samba) admin() (*ldap.Conn, error) { return sharedConn(&s.mu, &s.conn, s.Conn) }

func (s *Samba) domainSID() (string, error) {
	c, err := s.admin()
	if err != nil {
		return "", err
	}
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"objectSid"}, nil))
	if err != nil {
		return "", fmt.Errorf("harness: read domain SID: %w", err)
	}
	if len(res.Entries) != 1 {
		return "", fmt.Errorf("harness: read domain SID: %d entries for %s", len(res.Entries), s.BaseDN)
	}
	return SIDString(res.Entries[0].GetRawAttributeValue("objectSid"))
}

// sambaBinaries finds samba and samba-tool, or says how to install them.
func sambaBinaries() (sambaBin, toolBin string, err error) {
	find := func(name string) (string, error) {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} { // sbin is often off PATH
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		return "", fmt.Errorf("harness: %s not found: apt-get install --no-install-recommends samba samba-common-bin samba-ad-dc samba-ad-provision (run make deps)", name)
	}
	if sambaBin, err = find("samba"); err != nil {
		return "", "", err
	}
	if toolBin, err = find("samba-tool"); err != nil {
		return "", "", err
	}
	return sambaBin, toolBin, nil
}

// sambaTmpl is a provisioned domain that instances copy.
type sambaTmpl struct {
	dir     string // the template tree
	origDir string // the path it was provisioned at, which its smb.conf names
}

// sambaTemplateVersion changes whenever the provisioning below changes, invalidating caches.
const sambaTemplateVersion = "1"

var sambaTemplateOnce onceErr[sambaTmpl]

func sambaTemplate(ctx context.Context, sambaBin, toolBin string) (sambaTmpl, error) {
	return sambaTemplateOnce.get(func() (sambaTmpl, error) { return loadOrProvision(ctx, sambaBin, toolBin) })
}

func provisionArgs(target string) []string {
	return []string{
		"domain", "provision",
		"--targetdir=" + target,
		"--server-role=dc",
		"--dns-backend=NONE",
		"--realm=" + SambaRealm,
		"--domain=" + SambaDomain,
		"--host-name=" + sambaHostName,
		"--adminpass=" + SambaAdminPassword,
		"--option=netbios name=" + strings.ToUpper(sambaHostName),
		"--option=interfaces=lo",
		"--option=bind interfaces only=yes",
		"--option=server services=ldap",
		// LMDB: bulk adds are 2-4 times faster than with tdb (and stay linear given the
		// GLIBC_TUNABLES in StartSamba). nosync: the database is throw-away.
		"--backend-store=mdb",
		"--option=ldb:nosync=true",
		"--option=pid directory=" + filepath.Join(target, "run"),
		"--option=ncalrpc dir=" + filepath.Join(target, "ncalrpc"),
		"--option=winbindd socket directory=" + filepath.Join(target, "winbindd"),
		"--option=log file=" + filepath.Join(target, "log", "samba.log"),
	}
}

// loadOrProvision returns the cached template for this Samba version, provisioning it first if
// needed. Concurrent test processes may both provision; the first rename wins.
func loadOrProvision(ctx context.Context, sambaBin, toolBin string) (sambaTmpl, error) {
	out, err := exec.CommandContext(ctx, sambaBin, "-V").CombinedOutput()
	if err != nil {
		return sambaTmpl{}, fmt.Errorf("harness: %s -V: %w: %s", sambaBin, err, out)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", sambaTemplateVersion, out, strings.Join(provisionArgs("T"), "\n"))
	key := hex.EncodeToString(h.Sum(nil))[:16]

	cacheRoot := filepath.Join(os.TempDir(), "runai-ldap-sync-cache")
	if root, err := RepoRoot(); err == nil {
		cacheRoot = filepath.Join(root, ".cache")
	}
	final := filepath.Join(cacheRoot, "samba", "template-"+key)
	if orig, err := os.ReadFile(filepath.Join(final, "harness-provisioned-at")); err == nil {
		return sambaTmpl{dir: final, origDir: string(orig)}, nil
	}

	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return sambaTmpl{}, fmt.Errorf("harness: create samba template cache: %w", err)
	}
	work, err := os.MkdirTemp(filepath.Dir(final), "provisioning-")
	if err != nil {
		return sambaTmpl{}, fmt.Errorf("harness: create samba provisioning dir: %w", err)
	}
	defer os.RemoveAll(work) // gone after a successful rename too
	target := filepath.Join(work, "t")
	logPath := filepath.Join(work, "provision.log")
	cmd := exec.CommandContext(ctx, toolBin, provisionArgs(target)...)
	cmd.Env = append(os.Environ(), "TDB_NO_FSYNC=1")
	cmd.SysProcAttr = sysProcAttr()
	out, err = cmd.CombinedOutput()
	if err != nil {
		_ = os.WriteFile(logPath, out, 0o644)
		return sambaTmpl{}, fmt.Errorf("harness: samba-tool domain provision failed: %w\n--- last lines ---\n%s", err, logTail(logPath, 30))
	}
	if err := os.WriteFile(filepath.Join(target, "harness-provisioned-at"), []byte(target), 0o644); err != nil {
		return sambaTmpl{}, fmt.Errorf("harness: mark samba template: %w", err)
	}
	if err := os.Rename(target, final); err != nil {
		// Another process won the race: use its template.
		if orig, rerr := os.ReadFile(filepath.Join(final, "harness-provisioned-at")); rerr == nil {
			return sambaTmpl{dir: final, origDir: string(orig)}, nil
		}
		return sambaTmpl{}, fmt.Errorf("harness: install samba template at %s: %w", final, err)
	}
	// Templates of older Samba versions or harness revisions are dead weight (tens of MB each).
	if old, err := filepath.Glob(filepath.Join(filepath.Dir(final), "template-*")); err == nil {
		for _, o := range old {
			if o != final {
				_ = os.RemoveAll(o)
			}
		}
	}
	return sambaTmpl{dir: final, origDir: target}, nil
}

// instanceSmbConf rewrites the template's smb.conf for an instance in dir and adds its TLS files.
func instanceSmbConf(tmpl sambaTmpl, dir, caFile, certFile, keyFile string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(tmpl.dir, "etc", "smb.conf"))
	if err != nil {
		return nil, fmt.Errorf("harness: read template smb.conf: %w", err)
	}
	// The provisioned databases hold no absolute paths; smb.conf is the only file naming them.
	conf := strings.ReplaceAll(string(data), tmpl.origDir, dir)
	extra := strings.Join([]string{
		"",
		"\t# added by the runai-ldap-sync test harness",
		"\ttls enabled = yes",
		"\ttls keyfile = " + keyFile,
		"\ttls certfile = " + certFile,
		"\ttls cafile = " + caFile,
		"",
	}, "\n")
	const global = "[global]\n"
	i := strings.Index(conf, global)
	if i < 0 {
		return nil, fmt.Errorf("harness: template smb.conf has no [global] section")
	}
	i += len(global)
	return []byte(conf[:i] + extra + conf[i:]), nil
}

// copyTree copies regular files, directories and symlinks from src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case strings.HasSuffix(path, ".ldb-lock"):
			return nil // LMDB lock files hold the provisioning process's reader table; LMDB recreates them
		case d.Type().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return nil // sockets and the like are runtime state, not part of the template
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
