package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// OpenLDAP (slapd) as a plain LDAP directory, the other kind of server the sync must handle.
//
// Every instance is a private slapd on free loopback ports with its own cn=config and mdb
// database under the caller's directory, so any number can run at once and no root is needed.
// The database is configured like a typical OpenLDAP deployment that serves AD-style clients:
//
//   - schemas core, cosine, nis (RFC 2307: posixGroup, memberUid), inetorgperson, and a fixed copy
//     of the distribution's msuser.ldif (Active Directory attributes: sAMAccountName,
//     userAccountControl, userPrincipalName, …), see fixMSUserSchema;
//   - the auxiliary class runaiTestUser (SlapdTestUserClass), which lets inetOrgPerson entries
//     carry sAMAccountName, userAccountControl and userPrincipalName;
//   - the memberof overlay maintaining memberOf on the members of groupOfNames entries — users
//     and nested groups alike — and the refint overlay keeping member, uniqueMember and memberOf
//     pointing at existing entries across deletes and renames.
//
// Quirks worth knowing when testing a client against it:
//
//   - memberOf is an operational attribute here (the overlay defines it so): a search returns it
//     only when asked for by name or with "+", never for "*". groupOfUniqueNames and posixGroup
//     do not produce memberOf.
//   - memberof updates memberOf within the add/modify/delete that changes a group, but refint
//     works in the background: right after a member is deleted or renamed, groups may still
//     name the old DN for a few milliseconds. Poll when testing that.
//   - groupOfNames and groupOfUniqueNames need at least one member. An empty group holds the
//     single placeholder value SlapdEmptyMember (the empty DN, which names no entry); clients must
//     ignore it. refint puts it back when the last real member is deleted.
//   - The root DN (AdminDN) is exempt from every limit. Size limits only apply to other binds,
//     such as ReaderDN.
//   - There is no LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941): a filter using it is
//     Undefined and silently matches nothing (no error), so nested membership must be resolved
//     by the client. The AD bitwise rules 1.2.840.113556.1.4.803/804 do work on
//     userAccountControl.
//   - DNs come back in slapd's own string form: an escaped comma written as `\,` is returned
//     as `\2C`, so clients must compare DNs parsed (ldap.DN.EqualFold), never as strings.
//   - Anonymous binds succeed but read nothing, as in AD.

const (
	// SlapdDefaultSuffix is the naming context when SlapdOptions.Suffix is empty.
	SlapdDefaultSuffix = "dc=example,dc=org"
	// SlapdAdminPassword is the password of AdminDN (the rootdn) and of cn=admin,cn=config.
	SlapdAdminPassword = "Harness-Adm1n-Passw0rd"
	// SlapdReaderPassword is the password of ReaderDN, an ordinary read-only account.
	SlapdReaderPassword = "Harness-Read3r-Passw0rd"
	// SlapdConfigDN is the root DN of the cn=config database (password SlapdAdminPassword), for
	// tests that change the configuration of a running server, e.g. olcSizeLimit.
	SlapdConfigDN = "cn=admin,cn=config"
	// SlapdDatabaseConfigDN is the config entry of the mdb database (olcSizeLimit, olcLimits, …).
	SlapdDatabaseConfigDN = "olcDatabase={1}mdb,cn=config"
	// SlapdTestUserClass is the auxiliary object class that allows sAMAccountName,
	// userAccountControl, userPrincipalName, objectGUID and objectSid on any entry.
	SlapdTestUserClass = "runaiTestUser"
	// SlapdEmptyMember is the placeholder member (and uniqueMember) value of an empty group: the
	// empty DN. groupOfNames requires a member, so OpenLDAP directories represent "no members"
	// with a value that names no entry; the empty DN is the usual choice (it is also what refint
	// substitutes here when the last member is deleted).
	SlapdEmptyMember = ""
)

// runaiOIDArc is a UUID-based OID (ITU-T X.667, 2.25.<uuid>): unique without registration.
const runaiOIDArc = "2.25.324861476969624494281156142630271211295"

// SlapdOptions configures StartSlapd. The zero value is a usable default.
type SlapdOptions struct {
	// Suffix is the naming context, SlapdDefaultSuffix if empty. Its first RDN must be dc=, o=
	// or ou=; the entry is created at start.
	Suffix string

	// SizeLimit is the database's size limit for binds other than the admin (the rootdn is
	// exempt from all limits), e.g. ReaderDN:
	//   - 0 keeps slapd's built-in default: 500 entries (soft and hard), and — a quirk of stock
	//     OpenLDAP that AD does not share — paged searches are capped at 500 entries in total too
	//     (size.prtotal defaults to the hard limit): past 500 they fail with sizeLimitExceeded,
	//     and a page size above 500 fails at once.
	//   - N > 0: a non-paged search matching more than N entries returns N of them and fails
	//     with sizeLimitExceeded (4); a paged search may return any total (size.prtotal=unlimited)
	//     and pages of any size the client asks for — unlike AD, which caps every page at
	//     MaxPageSize. For that, use SizeLimitConfig with size.pr=N: larger pages are then
	//     refused with adminLimitExceeded (11), "illegal pagedResults page size".
	//   - N < 0 removes the limit.
	SizeLimit int
	// SizeLimitConfig, if set, is used verbatim as the database's olcSizeLimit (see
	// slapd-config(5), olcLimits), e.g. "size.soft=100 size.hard=100 size.pr=100
	// size.prtotal=unlimited". It overrides SizeLimit.
	SizeLimitConfig string

	// LDIF is loaded with `slapadd -q` before the server starts: by far the fastest way to a large
	// directory (50,000 users and 1,000 groups in 2–4 s on two cores, 100,000 users and 10,000
	// groups in about 9 s; online adds are far slower). It must not contain the suffix
	// entry or ReaderDN, which StartSlapd creates. slapadd runs no overlays, so memberOf must be
	// written explicitly — LDIFBuilder does that.
	LDIF []byte

	// ExtraDatabaseConfig is added to the mdb database's config entry, one "attr: value" line
	// each, e.g. `olcLimits: dn.exact="cn=reader,dc=example,dc=org" size=unlimited`.
	ExtraDatabaseConfig []string
	// ExtraConfig is appended to the cn=config LDIF as is (more config entries, e.g. overlays).
	ExtraConfig string

	// SyncProv adds the syncprov overlay (what replicated OpenLDAP runs), which keeps the
	// suffix entry's contextCSN: the highest change sequence number of the database.
	SyncProv bool
	// ServerID, if not 0, is the server's olcServerID: the SID in the entryCSN of the changes it
	// makes. Replicas that accept writes need distinct ones (StartSlapdMirror sets them).
	ServerID int

	// AccessLog adds the accesslog overlay logging successful deletes (olcAccessLogOps: delete)
	// to a second mdb database, suffix SlapdAccessLogSuffix, under Dir/accesslog, readable by
	// every authenticated account (ReaderDN included). The main database's suffix entry then
	// carries auditContext: cn=accesslog.
	AccessLog bool
	// NoRefInt leaves out the refint overlay (and memberof's own referential integrity), as
	// many sites run: a deleted entry stays named in the groups it was a member of, so a
	// deletion changes no group entry.
	NoRefInt bool

	// LogLevel is passed to slapd -d; default "none" (only messages logged at every level).
	// "stats" logs every operation to Dir/slapd.log.
	LogLevel string

	// data, if set, replaces the generated base entries and LDIF: a slapcat of a peer, so
	// replicas start with the same entries, entryUUIDs and entryCSNs.
	data []byte
}

// Slapd is a running OpenLDAP server listening on 127.0.0.1 only.
type Slapd struct {
	URL      string // ldap://127.0.0.1:PORT, plain LDAP that also offers StartTLS
	LDAPSURL string // ldaps://localhost:TLSPORT; the certificate matches localhost and 127.0.0.1
	Suffix   string // naming context, e.g. dc=example,dc=org
	Domain   string // DNS domain of the suffix's dc= components, e.g. example.org: mail and UPN domain

	AdminDN       string // cn=admin,<suffix>: the rootdn, exempt from ACLs and limits
	AdminPassword string
	// ReaderDN (cn=reader,<suffix>) is an ordinary account that can read the whole directory
	// (not passwords) and is subject to size limits: bind as it to test limits.
	ReaderDN       string
	ReaderPassword string

	CAFile string // PEM of the CA that issued slapd's certificate
	CA     *CA
	Dir    string // slapd.d (cn=config), data (mdb), tls, slapd.log

	// LoadDuration is how long the slapadd of SlapdOptions.LDIF (and the base entries) took.
	LoadDuration time.Duration

	port, tlsPort int
	spec          processSpec

	mu   sync.Mutex
	proc *process
	conn *ldap.Conn // admin connection shared by the seeding helpers

	peer *Slapd // the provider this server replicates from (StartSlapdMirror)
}

// slapdBins locates the OpenLDAP programs, modules and schema files.
type slapdBins struct {
	slapd, slapadd string
	moduleDir      string
	schemaDir      string
}

var slapdBinsOnce onceErr[slapdBins]

func findSlapdBins() (slapdBins, error) {
	return slapdBinsOnce.get(func() (slapdBins, error) {
		const install = "apt-get install slapd ldap-utils (run make deps)"
		var b slapdBins
		findExe := func(name string) (string, error) {
			if p, err := exec.LookPath(name); err == nil {
				return p, nil
			}
			for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/sbin"} {
				p := filepath.Join(dir, name)
				if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 && !st.IsDir() {
					return p, nil
				}
			}
			return "", fmt.Errorf("harness: %s not found: %s", name, install)
		}
		var err error
		if b.slapd, err = findExe("slapd"); err != nil {
			return b, err
		}
		if b.slapadd, err = findExe("slapadd"); err != nil {
			return b, err
		}
		for _, dir := range []string{"/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap", "/usr/local/libexec/openldap"} {
			if _, err := os.Stat(filepath.Join(dir, "memberof.so")); err == nil {
				b.moduleDir = dir
				break
			}
		}
		if b.moduleDir == "" {
			return b, fmt.Errorf("harness: OpenLDAP module directory (with memberof.so) not found: %s", install)
		}
		for _, dir := range []string{"/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema"} {
			if _, err := os.Stat(filepath.Join(dir, "msuser.ldif")); err == nil {
				b.schemaDir = dir
				break
			}
		}
		if b.schemaDir == "" {
			return b, fmt.Errorf("harness: OpenLDAP schema directory (with msuser.ldif) not found: %s", install)
		}
		return b, nil
	})
}

// StartSlapd configures a fresh OpenLDAP server in dir (which should be empty, e.g. t.TempDir()),
// loads opts.LDIF offline if given, starts slapd on free loopback ports and returns once the
// admin can bind. Call Stop when done; the kernel also kills slapd if this process dies.
func StartSlapd(ctx context.Context, dir string, opts SlapdOptions) (*Slapd, error) {
	s, err := startSlapd(ctx, dir, opts)
	if err != nil {
		return nil, withPrereqs(err)
	}
	return s, nil
}

func startSlapd(ctx context.Context, dir string, opts SlapdOptions) (*Slapd, error) {
	ctx, cancel := withDefaultTimeout(ctx, 2*time.Minute)
	defer cancel()

	bins, err := findSlapdBins()
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("harness: slapd dir: %w", err)
	}
	suffix := opts.Suffix
	if suffix == "" {
		suffix = SlapdDefaultSuffix
	}
	baseEntry, domain, err := suffixEntry(suffix)
	if err != nil {
		return nil, err
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
	certFile, keyFile, err := ca.writeServerCert(tlsDir, "slapd", []string{"localhost"}, loopbackIPs)
	if err != nil {
		return nil, err
	}

	s := &Slapd{
		Suffix:         suffix,
		Domain:         domain,
		AdminDN:        "cn=admin," + suffix,
		AdminPassword:  SlapdAdminPassword,
		ReaderDN:       "cn=reader," + suffix,
		ReaderPassword: SlapdReaderPassword,
		CAFile:         caFile,
		CA:             ca,
		Dir:            dir,
	}

	schemaDir := filepath.Join(dir, "schema")
	if err := os.MkdirAll(schemaDir, 0o755); err != nil {
		return nil, fmt.Errorf("harness: create %s: %w", schemaDir, err)
	}
	msuser, err := os.ReadFile(filepath.Join(bins.schemaDir, "msuser.ldif"))
	if err != nil {
		return nil, fmt.Errorf("harness: read msuser schema: %w", err)
	}
	fixed, err := fixMSUserSchema(msuser)
	if err != nil {
		return nil, err
	}
	msuserFile := filepath.Join(schemaDir, "msuser-fixed.ldif")
	if err := os.WriteFile(msuserFile, fixed, 0o644); err != nil {
		return nil, fmt.Errorf("harness: write %s: %w", msuserFile, err)
	}
	runaiFile := filepath.Join(schemaDir, "runai-test.ldif")
	if err := os.WriteFile(runaiFile, []byte(runaiTestSchema), 0o644); err != nil {
		return nil, fmt.Errorf("harness: write %s: %w", runaiFile, err)
	}

	dataDir := filepath.Join(dir, "data")
	confDir := filepath.Join(dir, "slapd.d")
	for _, d := range []string{dataDir, confDir, filepath.Join(dir, "accesslog")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("harness: create %s: %w", d, err)
		}
	}
	sizeLimit, err := sizeLimitConfig(opts)
	if err != nil {
		return nil, err
	}
	config := slapdConfigLDIF(slapdConfig{
		dir:        dir,
		dataDir:    dataDir,
		moduleDir:  bins.moduleDir,
		schemaDir:  bins.schemaDir,
		schemas:    []string{msuserFile, runaiFile},
		suffix:     suffix,
		rootDN:     s.AdminDN,
		password:   s.AdminPassword,
		caFile:     caFile,
		certFile:   certFile,
		keyFile:    keyFile,
		sizeLimit:  sizeLimit,
		extraDB:    opts.ExtraDatabaseConfig,
		extraConf:  opts.ExtraConfig,
		readerDN:   s.ReaderDN,
		configPass: s.AdminPassword,
		syncProv:   opts.SyncProv,
		accessLog:  opts.AccessLog,
		noRefInt:   opts.NoRefInt,
		serverID:   opts.ServerID,
	})
	configFile := filepath.Join(dir, "config.ldif")
	if err := os.WriteFile(configFile, config, 0o600); err != nil {
		return nil, fmt.Errorf("harness: write %s: %w", configFile, err)
	}
	if err := runSlapdTool(ctx, filepath.Join(dir, "slapadd-config.log"), bins.slapadd, nil,
		"-n0", "-F", confDir, "-l", configFile); err != nil {
		return nil, fmt.Errorf("harness: load cn=config: %w", err)
	}

	// The base entries and the caller's data go in offline, in one slapadd.
	var base bytes.Buffer
	base.Write(baseEntry)
	writeLDIFEntryStart(&base, s.ReaderDN)
	base.WriteString("objectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\n")
	base.WriteString("description: read-only account of the test harness, subject to size limits\n")
	writeLDIFAttr(&base, "userPassword", s.ReaderPassword)
	base.WriteString("\n")
	data := io.MultiReader(&base, bytes.NewReader(opts.LDIF), strings.NewReader("\n"))
	if opts.data != nil {
		data = bytes.NewReader(opts.data)
	}
	loadStart := time.Now()
	if err := runSlapdTool(ctx, filepath.Join(dir, "slapadd-data.log"), bins.slapadd, data,
		"-q", "-F", confDir, "-b", suffix); err != nil {
		return nil, fmt.Errorf("harness: load data with slapadd: %w", err)
	}
	s.LoadDuration = time.Since(loadStart)

	logLevel := opts.LogLevel
	if logLevel == "" {
		logLevel = "none"
	}
	// Ports are only on the command line, so a lost race for a free port is retried with others.
	var lastErr error
	for range 3 {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		s.port, s.tlsPort = ports[0], ports[1]
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.port)
		s.LDAPSURL = fmt.Sprintf("ldaps://localhost:%d", s.tlsPort)
		s.spec = processSpec{
			name: "slapd",
			path: bins.slapd,
			// -d keeps slapd in the foreground, logging to stderr (the log file).
			args: []string{"-F", confDir,
				"-h", fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", s.port, s.tlsPort),
				"-d", logLevel},
			dir:        dir,
			logPath:    filepath.Join(dir, "slapd.log"),
			stopSignal: syscall.SIGTERM,
		}
		lastErr = s.start(ctx)
		if lastErr == nil {
			return s, nil
		}
		if ctx.Err() != nil || !strings.Contains(lastErr.Error(), "exited before becoming ready") {
			break
		}
	}
	return nil, lastErr
}

func (s *Slapd) start(ctx context.Context) error {
	p, err := startServer(ctx, s.spec, s.Conn, syscall.SIGKILL)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// Stop shuts slapd down cleanly (SIGTERM) and waits for it to exit. It is safe to call more
// than once.
func (s *Slapd) Stop() { s.halt(syscall.SIGTERM) }

// Kill kills slapd with SIGKILL, like a crash. The data survives (the kernel still holds it);
// Restart brings the server back.
func (s *Slapd) Kill() { s.halt(syscall.SIGKILL) }

func (s *Slapd) halt(sig os.Signal) {
	s.mu.Lock()
	p, conn := s.proc, s.conn
	s.proc, s.conn = nil, nil
	s.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	p.stop(sig, 10*time.Second)
}

// Restart stops slapd if it runs and starts it again on the same ports and data, for fault
// tests. Connections from before the restart are broken.
func (s *Slapd) Restart(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	s.Stop()
	return s.start(ctx)
}

// TLSConfig returns a client TLS config trusting slapd's CA, for server name localhost.
func (s *Slapd) TLSConfig() *tls.Config { return s.CA.TLSConfig("localhost") }

// Conn returns a new plain-LDAP connection to URL bound as the admin (rootdn). The caller
// closes it.
func (s *Slapd) Conn(ctx context.Context) (*ldap.Conn, error) {
	return s.BindConn(ctx, s.AdminDN, s.AdminPassword)
}

// ReaderConn returns a new plain-LDAP connection bound as ReaderDN, which is subject to size
// limits. The caller closes it.
func (s *Slapd) ReaderConn(ctx context.Context) (*ldap.Conn, error) {
	return s.BindConn(ctx, s.ReaderDN, s.ReaderPassword)
}

// BindConn returns a new plain-LDAP connection to URL bound as bindDN. The caller closes it.
func (s *Slapd) BindConn(ctx context.Context, bindDN, password string) (*ldap.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
	if err != nil {
		return nil, fmt.Errorf("harness: dial %s: %w", s.URL, err)
	}
	return bindOn(raw, false, s.URL, bindDN, password)
}

// admin returns the shared admin connection, reconnecting if it broke.
func (s *Slapd) admin() (*ldap.Conn, error) { return sharedConn(&s.mu, &s.conn, s.Conn) }

// runSlapdTool runs an OpenLDAP tool to completion, with its output in logPath.
func runSlapdTool(ctx context.Context, logPath, path string, stdin io.Reader, args ...string) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = stdin
	cmd.SysProcAttr = sysProcAttr()
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		return fmt.Errorf("%s %s: %w\n--- last lines of %s ---\n%s", path, strings.Join(args, " "), err, logPath, logTail(logPath, 30))
	}
	return nil
}

// suffixEntry returns the LDIF of the suffix entry and the DNS domain of its dc= components.
func suffixEntry(suffix string) (entry []byte, domain string, err error) {
	dn, err := ldap.ParseDN(suffix)
	if err != nil || len(dn.RDNs) == 0 || len(dn.RDNs[0].Attributes) != 1 {
		return nil, "", fmt.Errorf("harness: slapd suffix %q: not a DN with a single-valued first RDN (%v)", suffix, err)
	}
	var dcs []string
	for _, rdn := range dn.RDNs {
		for _, a := range rdn.Attributes {
			if strings.EqualFold(a.Type, "dc") {
				dcs = append(dcs, a.Value)
			}
		}
	}
	domain = strings.Join(dcs, ".")
	if domain == "" {
		domain = "example.org"
	}
	first := dn.RDNs[0].Attributes[0]
	var b bytes.Buffer
	writeLDIFEntryStart(&b, suffix)
	switch strings.ToLower(first.Type) {
	case "dc":
		b.WriteString("objectClass: dcObject\nobjectClass: organization\n")
		writeLDIFAttr(&b, "dc", first.Value)
		writeLDIFAttr(&b, "o", first.Value)
	case "o":
		b.WriteString("objectClass: organization\n")
		writeLDIFAttr(&b, "o", first.Value)
	case "ou":
		b.WriteString("objectClass: organizationalUnit\n")
		writeLDIFAttr(&b, "ou", first.Value)
	default:
		return nil, "", fmt.Errorf("harness: slapd suffix %q: first RDN must be dc=, o= or ou=", suffix)
	}
	b.WriteString("\n")
	return b.Bytes(), domain, nil
}

func sizeLimitConfig(opts SlapdOptions) (string, error) {
	if opts.SizeLimitConfig != "" {
		if strings.ContainsAny(opts.SizeLimitConfig, "\r\n") {
			return "", errors.New("harness: SlapdOptions.SizeLimitConfig must be one line")
		}
		return opts.SizeLimitConfig, nil
	}
	switch n := opts.SizeLimit; {
	case n == 0:
		return "", nil // slapd's built-in default
	case n < 0:
		return "unlimited", nil
	default:
		return fmt.Sprintf("size.soft=%d size.hard=%d size.prtotal=unlimited", n, n), nil
	}
}

type slapdConfig struct {
	dir, dataDir, moduleDir, schemaDir string
	schemas                            []string // extra schema LDIF files after the standard ones
	suffix, rootDN, password           string
	caFile, certFile, keyFile          string
	sizeLimit                          string
	extraDB                            []string
	extraConf                          string
	readerDN                           string
	configPass                         string
	syncProv                           bool
	accessLog, noRefInt                bool
	serverID                           int
}

// SlapdAccessLogSuffix is the accesslog database's suffix (SlapdOptions.AccessLog).
const SlapdAccessLogSuffix = "cn=accesslog"

// slapdDBIndexes are the mdb equality indexes: everything clients and the overlays search by.
var slapdDBIndexes = []string{
	"objectClass eq",
	"entryUUID eq",
	"cn eq,sub",
	"uid eq",
	"mail eq",
	"member eq",
	"uniqueMember eq",
	"memberOf eq",
	"memberUid eq",
	"gidNumber eq",
	"uidNumber eq",
	"sAMAccountName eq",
	"userPrincipalName eq",
}

func slapdConfigLDIF(c slapdConfig) []byte {
	var b bytes.Buffer
	line := func(attr, value string) { writeLDIFAttr(&b, attr, value) }
	raw := func(s string) { b.WriteString(s); b.WriteByte('\n') }

	raw("dn: cn=config")
	raw("objectClass: olcGlobal")
	raw("cn: config")
	line("olcPidFile", filepath.Join(c.dir, "slapd.pid"))
	line("olcArgsFile", filepath.Join(c.dir, "slapd.args"))
	line("olcTLSCACertificateFile", c.caFile)
	line("olcTLSCertificateFile", c.certFile)
	line("olcTLSCertificateKeyFile", c.keyFile)
	raw("olcToolThreads: 2")
	if c.serverID != 0 {
		line("olcServerID", strconv.Itoa(c.serverID))
	}
	raw("")

	raw("dn: cn=module{0},cn=config")
	raw("objectClass: olcModuleList")
	raw("cn: module{0}")
	line("olcModulePath", c.moduleDir)
	raw("olcModuleLoad: {0}back_mdb")
	raw("olcModuleLoad: {1}memberof")
	raw("olcModuleLoad: {2}refint")
	mod := 3
	if c.syncProv {
		raw("olcModuleLoad: {3}syncprov")
		mod++
	}
	if c.accessLog {
		raw(fmt.Sprintf("olcModuleLoad: {%d}accesslog", mod))
	}
	raw("")

	raw("dn: cn=schema,cn=config")
	raw("objectClass: olcSchemaConfig")
	raw("cn: schema")
	raw("")
	for _, name := range []string{"core", "cosine", "nis", "inetorgperson"} {
		raw("include: file://" + filepath.Join(c.schemaDir, name+".ldif"))
		raw("")
	}
	for _, f := range c.schemas {
		raw("include: file://" + f)
		raw("")
	}

	raw("dn: olcDatabase={-1}frontend,cn=config")
	raw("objectClass: olcDatabaseConfig")
	raw("objectClass: olcFrontendConfig")
	raw("olcDatabase: {-1}frontend")
	raw("")

	raw("dn: olcDatabase={0}config,cn=config")
	raw("objectClass: olcDatabaseConfig")
	raw("olcDatabase: {0}config")
	line("olcRootDN", SlapdConfigDN)
	line("olcRootPW", c.configPass)
	raw("")

	raw("dn: " + SlapdDatabaseConfigDN)
	raw("objectClass: olcDatabaseConfig")
	raw("objectClass: olcMdbConfig")
	raw("olcDatabase: {1}mdb")
	line("olcDbDirectory", c.dataDir)
	line("olcSuffix", c.suffix)
	line("olcRootDN", c.rootDN)
	line("olcRootPW", c.password)
	// Throw-away data: no fsync makes online adds fast. LMDB's map is sparse; 8 GiB is address
	// space, not disk.
	raw("olcDbNoSync: TRUE")
	raw("olcDbMaxSize: 8589934592")
	for _, idx := range slapdDBIndexes {
		line("olcDbIndex", idx)
	}
	if c.syncProv {
		line("olcDbIndex", "entryCSN eq")
	}
	if c.sizeLimit != "" {
		line("olcSizeLimit", c.sizeLimit)
	}
	// Like AD: authenticated users read everything but passwords; anonymous only binds.
	raw("olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none")
	raw("olcAccess: {1}to * by users read by * none")
	for _, l := range c.extraDB {
		raw(strings.TrimRight(l, "\r\n"))
	}
	raw("")

	// memberof first: it maintains memberOf on the members of groupOfNames entries; with
	// olcMemberOfRefInt it also fixes groups when an entry's memberOf changes.
	raw("dn: olcOverlay={0}memberof," + SlapdDatabaseConfigDN)
	raw("objectClass: olcOverlayConfig")
	raw("objectClass: olcMemberOfConfig")
	raw("olcOverlay: {0}memberof")
	raw("olcMemberOfDangling: ignore")
	if c.noRefInt {
		raw("olcMemberOfRefInt: FALSE")
	} else {
		raw("olcMemberOfRefInt: TRUE")
	}
	raw("olcMemberOfGroupOC: groupOfNames")
	raw("olcMemberOfMemberAD: member")
	raw("olcMemberOfMemberOfAD: memberOf")
	raw("")

	ov := 1 // the next overlay's index
	if !c.noRefInt {
		ov++
		raw("dn: olcOverlay={1}refint," + SlapdDatabaseConfigDN)
		raw("objectClass: olcOverlayConfig")
		raw("objectClass: olcRefintConfig")
		raw("olcOverlay: {1}refint")
		raw("olcRefintAttribute: member")
		raw("olcRefintAttribute: uniqueMember")
		raw("olcRefintAttribute: memberOf")
		// Deleting a group's last member would violate groupOfNames' MUST member: refint puts the
		// empty-DN placeholder in instead (without this it silently leaves the dangling DN).
		raw("olcRefintNothing:")
		raw("")
	}

	if c.syncProv {
		raw(fmt.Sprintf("dn: olcOverlay={%d}syncprov,%s", ov, SlapdDatabaseConfigDN))
		raw("objectClass: olcOverlayConfig")
		raw("objectClass: olcSyncProvConfig")
		raw(fmt.Sprintf("olcOverlay: {%d}syncprov", ov))
		ov++
		raw("olcSpCheckpoint: 100 1")
		raw("")
	}

	if c.accessLog {
		// The log database comes after the main one, so SlapdDatabaseConfigDN stays {1}mdb:
		// offline (slapadd) the overlay finds its log database by suffix when it opens.
		raw("dn: olcDatabase={2}mdb,cn=config")
		raw("objectClass: olcDatabaseConfig")
		raw("objectClass: olcMdbConfig")
		raw("olcDatabase: {2}mdb")
		line("olcDbDirectory", filepath.Join(c.dir, "accesslog"))
		line("olcSuffix", SlapdAccessLogSuffix)
		raw("olcDbNoSync: TRUE")
		raw("olcDbMaxSize: 1073741824")
		raw("olcDbIndex: objectClass eq")
		raw("olcDbIndex: reqStart eq")
		// Read by every authenticated account here; docs/operations.md grants the bind account alone.
		raw("olcAccess: {0}to * by users read by * none")
		raw("")
		raw(fmt.Sprintf("dn: olcOverlay={%d}accesslog,%s", ov, SlapdDatabaseConfigDN))
		raw("objectClass: olcOverlayConfig")
		raw("objectClass: olcAccessLogConfig")
		raw(fmt.Sprintf("olcOverlay: {%d}accesslog", ov))
		line("olcAccessLogDB", SlapdAccessLogSuffix)
		raw("olcAccessLogOps: delete")
		raw("olcAccessLogSuccess: TRUE")
		raw("olcAccessLogPurge: 07+00:00 01+00:00")
		raw("")
	}

	if c.extraConf != "" {
		b.WriteString(c.extraConf)
		if !strings.HasSuffix(c.extraConf, "\n") {
			b.WriteByte('\n')
		}
		raw("")
	}
	return b.Bytes()
}

// runaiTestSchema is the harness's auxiliary class. sAMAccountName, userAccountControl and
// userPrincipalName come from msuser; objectGUID/objectSid too, for tests of binary identifiers.
const runaiTestSchema = `dn: cn=runaitest,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: runaitest
olcObjectClasses: ( ` + runaiOIDArc + `.1.1 NAME '` + SlapdTestUserClass + `'
  DESC 'runai-ldap-sync test harness: Active Directory account attributes on any entry'
  SUP top AUXILIARY
  MAY ( sAMAccountName $ userAccountControl $ userPrincipalName $ objectGUID $ objectSid ) )
`

// msuserEqualityBySyntax gives attribute types of msuser.ldif, which has no matching rules at
// all, the rules their syntax calls for, so filters on them work.
var msuserEqualityBySyntax = map[string]string{
	"1.3.6.1.4.1.1466.115.121.1.15": "EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch", // Directory String
	"1.3.6.1.4.1.1466.115.121.1.44": "EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch", // Printable String
	"1.3.6.1.4.1.1466.115.121.1.26": "EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch",
	"1.3.6.1.4.1.1466.115.121.1.27": "EQUALITY integerMatch ORDERING integerOrderingMatch",
	"1.3.6.1.4.1.1466.115.121.1.12": "EQUALITY distinguishedNameMatch",
	"1.3.6.1.4.1.1466.115.121.1.40": "EQUALITY octetStringMatch",
	"1.3.6.1.4.1.1466.115.121.1.7":  "EQUALITY booleanMatch",
	"1.3.6.1.4.1.1466.115.121.1.24": "EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch",
	"1.3.6.1.4.1.1466.115.121.1.38": "EQUALITY objectIdentifierMatch",
	"1.3.6.1.4.1.1466.115.121.1.36": "EQUALITY numericStringMatch",
}

// fixMSUserSchema makes the distribution's msuser.ldif usable next to the memberof overlay:
//   - its memberOf attribute type is dropped: the overlay defines memberOf (same OID) itself, as
//     an operational attribute, and object classes may not list it;
//   - attribute types without EQUALITY get the matching rules of their syntax, so
//     (sAMAccountName=alice) and (userAccountControl=512) can be searched;
//   - comments go and folded lines are joined.
func fixMSUserSchema(src []byte) ([]byte, error) {
	// Unfold: a line starting with one space continues the previous one.
	var logical []string
	for _, l := range strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "#"):
			continue
		case strings.HasPrefix(l, " ") && len(logical) > 0 && logical[len(logical)-1] != "":
			logical[len(logical)-1] += l[1:]
		default:
			logical = append(logical, l)
		}
	}
	macros := map[string]string{}
	resolve := func(oid string) string {
		for range 10 {
			name, rest, _ := strings.Cut(oid, ":")
			m, ok := macros[strings.ToLower(name)]
			if !ok {
				return oid
			}
			if rest != "" {
				oid = m + "." + rest
			} else {
				oid = m
			}
		}
		return oid
	}
	var out strings.Builder
	droppedMemberOf, fixedSAM := false, false
	for _, l := range logical {
		attr, value, ok := strings.Cut(l, ":")
		if !ok {
			out.WriteString(l + "\n")
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(attr) {
		case "olcobjectidentifier":
			if f := strings.Fields(value); len(f) == 2 {
				macros[strings.ToLower(f[0])] = resolve(f[1])
			}
		case "olcattributetypes":
			toks := strings.Fields(value)
			name := tokenAfter(toks, "NAME")
			if strings.EqualFold(name, "memberOf") {
				droppedMemberOf = true
				continue
			}
			if tokenAfter(toks, "EQUALITY") == "" {
				if rule, ok := msuserEqualityBySyntax[resolve(tokenAfter(toks, "SYNTAX"))]; ok {
					for i, t := range toks {
						if t == "SYNTAX" {
							toks = append(toks[:i:i], append(strings.Fields(rule), toks[i:]...)...)
							break
						}
					}
					if strings.EqualFold(name, "sAMAccountName") {
						fixedSAM = true
					}
				}
			}
			l = attr + ": " + strings.Join(toks, " ")
		case "olcobjectclasses":
			l = attr + ": " + strings.Join(dropListMember(strings.Fields(value), "memberOf"), " ")
		}
		out.WriteString(l + "\n")
	}
	if !droppedMemberOf || !fixedSAM {
		return nil, fmt.Errorf("harness: msuser.ldif is not the expected file (memberOf dropped: %v, sAMAccountName fixed: %v)", droppedMemberOf, fixedSAM)
	}
	return []byte(out.String()), nil
}

// tokenAfter returns the token following key, without quotes, or "".
func tokenAfter(toks []string, key string) string {
	for i, t := range toks {
		if t == key && i+1 < len(toks) {
			return strings.Trim(toks[i+1], "'")
		}
	}
	return ""
}

// dropListMember removes name from the "( a $ b $ c )" lists of an object class description,
// with its "$" separator, keeping parentheses glued to names as in "(a".
func dropListMember(toks []string, name string) []string {
	out := make([]string, 0, len(toks))
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		bare := strings.Trim(t, "()")
		if !strings.EqualFold(bare, name) {
			out = append(out, t)
			continue
		}
		open, closing := strings.HasPrefix(t, "("), strings.HasSuffix(t, ")")
		switch {
		case open && closing: // "(memberOf)": the only element
			out = append(out, "()")
		case !open && len(out) > 0 && out[len(out)-1] == "$": // "… $ memberOf" [")"]
			out = out[:len(out)-1]
			if closing {
				out[len(out)-1] += ")"
			}
		case i+1 < len(toks) && toks[i+1] == "$": // "memberOf $ …" or "(memberOf $ …"
			i++
			if open {
				toks[i+1] = "(" + toks[i+1]
			}
		default:
			out = append(out, t)
		}
	}
	return out
}

// --- seeding -------------------------------------------------------------------------------

// UserOpts describes a user created by Slapd.AddUser or LDIFBuilder.AddUser.
type UserOpts struct {
	// Disabled sets userAccountControl to 514 (ACCOUNTDISABLE|NORMAL_ACCOUNT) instead of 512.
	Disabled bool
	// Password, if set, becomes userPassword (stored as given) so the user can bind.
	Password string
	// GivenName and Surname; cn is "GivenName Surname". Defaults: the uid and "User".
	GivenName, Surname string
	// Mail overrides the default uid@<domain>.
	Mail string
	// UIDNumber > 0 adds posixAccount (uidNumber, gidNumber GIDNumber or UIDNumber,
	// homeDirectory /home/<uid>) for RFC 2307 tests.
	UIDNumber, GIDNumber int
}

// SlapdUserDN is the DN AddUser gives uid under parentDN.
func SlapdUserDN(parentDN, uid string) string { return "uid=" + ldap.EscapeDN(uid) + "," + parentDN }

// SlapdGroupDN is the DN the group helpers give cn under parentDN.
func SlapdGroupDN(parentDN, cn string) string { return "cn=" + ldap.EscapeDN(cn) + "," + parentDN }

// SlapdOUDN is the DN AddOU gives name under parentDN.
func SlapdOUDN(parentDN, name string) string { return "ou=" + ldap.EscapeDN(name) + "," + parentDN }

// slapdUserAttrs lists a user's attributes (without memberOf) in a stable order.
func slapdUserAttrs(uid, domain string, o UserOpts, emit func(attr string, values ...string)) {
	given, sur := o.GivenName, o.Surname
	if given == "" {
		given = uid
	}
	if sur == "" {
		sur = "User"
	}
	mail := o.Mail
	if mail == "" {
		mail = uid + "@" + domain
	}
	uac := "512"
	if o.Disabled {
		uac = "514"
	}
	classes := []string{"top", "person", "organizationalPerson", "inetOrgPerson", SlapdTestUserClass}
	if o.UIDNumber > 0 {
		classes = append(classes, "posixAccount")
	}
	emit("objectClass", classes...)
	emit("uid", uid)
	emit("cn", given+" "+sur)
	emit("givenName", given)
	emit("sn", sur)
	emit("displayName", given+" "+sur)
	emit("mail", mail)
	emit("sAMAccountName", uid)
	emit("userPrincipalName", uid+"@"+domain)
	emit("userAccountControl", uac)
	if o.Password != "" {
		emit("userPassword", o.Password)
	}
	if o.UIDNumber > 0 {
		gid := o.GIDNumber
		if gid <= 0 {
			gid = o.UIDNumber
		}
		emit("uidNumber", strconv.Itoa(o.UIDNumber))
		emit("gidNumber", strconv.Itoa(gid))
		emit("homeDirectory", "/home/"+uid)
	}
}

// AddOU creates ou=name directly under the suffix and returns its DN.
func (s *Slapd) AddOU(name string) (dn string, err error) { return s.AddOUUnder(s.Suffix, name) }

// AddOUUnder creates ou=name under parentDN and returns its DN.
func (s *Slapd) AddOUUnder(parentDN, name string) (dn string, err error) {
	dn = SlapdOUDN(parentDN, name)
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"organizationalUnit"})
	req.Attribute("ou", []string{name})
	return dn, s.add(req)
}

// AddUser creates uid=<uid>,parentDN: an inetOrgPerson with the runaiTestUser class, mail and
// userPrincipalName uid@<Domain>, sAMAccountName uid and userAccountControl 512 (514 if
// opts.Disabled).
func (s *Slapd) AddUser(parentDN, uid string, opts UserOpts) (dn string, err error) {
	req := s.userAddRequest(parentDN, uid, opts)
	return req.DN, s.add(req)
}

// AddUsers creates users like AddUser with the same options, pipelining the adds, and returns
// their DNs in the order of uids. Every user is attempted; the error joins the failures.
func (s *Slapd) AddUsers(parentDN string, uids []string, opts UserOpts) ([]string, error) {
	dns := make([]string, len(uids))
	err := s.pipeline(len(uids), func(c *ldap.Conn, i int) error {
		req := s.userAddRequest(parentDN, uids[i], opts)
		dns[i] = req.DN
		if err := c.Add(req); err != nil {
			return fmt.Errorf("harness: add %s: %w", req.DN, err)
		}
		return nil
	})
	return dns, err
}

func (s *Slapd) userAddRequest(parentDN, uid string, opts UserOpts) *ldap.AddRequest {
	req := ldap.NewAddRequest(SlapdUserDN(parentDN, uid), nil)
	slapdUserAttrs(uid, s.Domain, opts, func(attr string, values ...string) { req.Attribute(attr, values) })
	return req
}

// AddGroupOfNames creates cn=<cn>,parentDN as a groupOfNames with the given member DNs, or with
// the single placeholder SlapdEmptyMember if there are none. The memberof overlay then adds
// memberOf to each member entry, groups included.
func (s *Slapd) AddGroupOfNames(parentDN, cn string, memberDNs ...string) (dn string, err error) {
	return s.addGroup(parentDN, cn, "groupOfNames", "member", memberDNs)
}

// AddGroupOfUniqueNames creates cn=<cn>,parentDN as a groupOfUniqueNames (uniqueMember), with
// SlapdEmptyMember if there are no members. No memberOf is maintained for these.
func (s *Slapd) AddGroupOfUniqueNames(parentDN, cn string, memberDNs ...string) (dn string, err error) {
	return s.addGroup(parentDN, cn, "groupOfUniqueNames", "uniqueMember", memberDNs)
}

func (s *Slapd) addGroup(parentDN, cn, class, attr string, members []string) (string, error) {
	dn := SlapdGroupDN(parentDN, cn)
	if len(members) == 0 {
		members = []string{SlapdEmptyMember}
	}
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{class})
	req.Attribute("cn", []string{cn})
	// Large groups are created with their first members and grown in chunks, as a client would.
	const chunk = 1000
	first := members[:min(chunk, len(members))]
	req.Attribute(attr, first)
	if err := s.add(req); err != nil {
		return dn, err
	}
	return dn, s.AddMembers(dn, attr, members[len(first):]...)
}

// AddPosixGroup creates cn=<cn>,parentDN as an RFC 2307 posixGroup (structural, so never also a
// groupOfNames) with gidNumber gid and the given memberUid values (user names, not DNs).
func (s *Slapd) AddPosixGroup(parentDN, cn string, gid int, memberUids ...string) (dn string, err error) {
	dn = SlapdGroupDN(parentDN, cn)
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"posixGroup"})
	req.Attribute("cn", []string{cn})
	req.Attribute("gidNumber", []string{strconv.Itoa(gid)})
	if len(memberUids) > 0 {
		req.Attribute("memberUid", memberUids)
	}
	return dn, s.add(req)
}

// AddMembers adds values to a group's member attribute (member, uniqueMember or memberUid), in
// chunks of 1,000 values per modify. A SlapdEmptyMember placeholder stays, as it does in many
// real directories; RemoveMembers(groupDN, attr, SlapdEmptyMember) removes it.
func (s *Slapd) AddMembers(groupDN, attr string, values ...string) error {
	const chunk = 1000
	for len(values) > 0 {
		n := min(chunk, len(values))
		req := ldap.NewModifyRequest(groupDN, nil)
		req.Add(attr, values[:n])
		if err := s.modify(req); err != nil {
			return err
		}
		values = values[n:]
	}
	return nil
}

// RemoveMembers removes values from a group's member attribute. If that would leave a
// groupOfNames or groupOfUniqueNames without members (a schema violation) the placeholder
// SlapdEmptyMember is added in the same modify.
func (s *Slapd) RemoveMembers(groupDN, attr string, values ...string) error {
	if len(values) == 0 {
		return nil
	}
	req := ldap.NewModifyRequest(groupDN, nil)
	req.Delete(attr, values)
	err := s.modify(req)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultObjectClassViolation) {
		return err
	}
	req = ldap.NewModifyRequest(groupDN, nil)
	req.Add(attr, []string{SlapdEmptyMember})
	req.Delete(attr, values)
	return s.modify(req)
}

// Delete removes an entry (not a subtree). refint removes it from groups; memberof removes the
// memberOf values pointing at a deleted group.
func (s *Slapd) Delete(dn string) error { return deleteEntry(s.admin, dn) }

// Rename moves or renames an entry: newRDN like "uid=new", newParentDN "" to stay in place.
// refint and memberof rewrite member and memberOf values to the new DN.
func (s *Slapd) Rename(dn, newRDN, newParentDN string) error {
	return renameEntry(s.admin, dn, newRDN, newParentDN)
}

// Modify applies an arbitrary modify request over the admin connection.
func (s *Slapd) Modify(req *ldap.ModifyRequest) error { return s.modify(req) }

// Add applies an arbitrary add request over the admin connection.
func (s *Slapd) Add(req *ldap.AddRequest) error { return s.add(req) }

// SetEnabled sets userAccountControl to 512 (enabled) or 514 (disabled).
func (s *Slapd) SetEnabled(userDN string, enabled bool) error {
	uac := "514"
	if enabled {
		uac = "512"
	}
	req := ldap.NewModifyRequest(userDN, nil)
	req.Replace("userAccountControl", []string{uac})
	return s.modify(req)
}

func (s *Slapd) add(req *ldap.AddRequest) error { return addEntry(s.admin, req) }

func (s *Slapd) modify(req *ldap.ModifyRequest) error { return modifyEntry(s.admin, req) }

// pipeline runs op(0..n-1) with several requests in flight on the admin connection.
func (s *Slapd) pipeline(n int, op func(c *ldap.Conn, i int) error) error {
	return pipeline(s.admin, n, op)
}

// --- LDIF ----------------------------------------------------------------------------------

// LDIFBuilder writes a large directory as LDIF for SlapdOptions.LDIF (slapadd), quickly and with
// memberOf already filled in, since slapadd runs no overlays. It mirrors the online helpers:
// users are AddUser's entries, groups are groupOfNames with SlapdEmptyMember when empty, and every
// entry created by the builder that is a member of a builder group (users and nested groups, as
// with the memberof overlay) gets memberOf. Members are matched by the exact DN string the
// builder returned; other DNs are written as members but get no memberOf.
//
// Entries are written in the order they were added, so add parents first. The suffix entry
// exists already (StartSlapd creates it). Not safe for concurrent use.
type LDIFBuilder struct {
	domain  string
	entries []ldifEntry
	index   map[string]int32 // DN → entries index
	members int              // total member values, for sizing the output
}

type ldifEntry struct {
	kind    byte // 'o' OU, 'u' user, 'g' groupOfNames
	dn      string
	name    string // ou, uid or cn
	user    UserOpts
	members []string
}

// NewLDIFBuilder returns a builder for a directory under suffix (for the mail and UPN domain of
// users, as StartSlapd derives it).
func NewLDIFBuilder(suffix string) *LDIFBuilder {
	_, domain, err := suffixEntry(suffix)
	if err != nil {
		domain = "example.org"
	}
	return &LDIFBuilder{domain: domain, index: map[string]int32{}}
}

func (b *LDIFBuilder) push(e ldifEntry) string {
	b.index[e.dn] = int32(len(b.entries))
	b.entries = append(b.entries, e)
	return e.dn
}

// Len is the number of entries added so far.
func (b *LDIFBuilder) Len() int { return len(b.entries) }

// AddOU adds ou=name under parentDN and returns its DN.
func (b *LDIFBuilder) AddOU(parentDN, name string) string {
	return b.push(ldifEntry{kind: 'o', dn: SlapdOUDN(parentDN, name), name: name})
}

// AddUser adds a user exactly like Slapd.AddUser would create it and returns its DN.
func (b *LDIFBuilder) AddUser(parentDN, uid string, opts UserOpts) string {
	return b.push(ldifEntry{kind: 'u', dn: SlapdUserDN(parentDN, uid), name: uid, user: opts})
}

// AddGroup adds cn=<cn>,parentDN as a groupOfNames with the given members and returns its DN.
// The slice is kept, not copied.
func (b *LDIFBuilder) AddGroup(parentDN, cn string, memberDNs ...string) string {
	b.members += len(memberDNs)
	return b.push(ldifEntry{kind: 'g', dn: SlapdGroupDN(parentDN, cn), name: cn, members: memberDNs})
}

// AddMembers adds members to a group added earlier.
func (b *LDIFBuilder) AddMembers(groupDN string, memberDNs ...string) error {
	i, ok := b.index[groupDN]
	if !ok || b.entries[i].kind != 'g' {
		return fmt.Errorf("harness: LDIFBuilder: %s is not a group of this builder", groupDN)
	}
	b.entries[i].members = append(b.entries[i].members, memberDNs...)
	b.members += len(memberDNs)
	return nil
}

// Bytes renders the LDIF.
func (b *LDIFBuilder) Bytes() []byte {
	// memberOf of entry i: the groups listing it, in the order the groups were added.
	memberOf := make([][]int32, len(b.entries))
	for gi, e := range b.entries {
		if e.kind != 'g' {
			continue
		}
		for _, m := range e.members {
			if mi, ok := b.index[m]; ok {
				memberOf[mi] = append(memberOf[mi], int32(gi))
			}
		}
	}
	var size int
	for _, e := range b.entries {
		size += 2*len(e.dn) + 64
		if e.kind == 'u' {
			size += 400
		}
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+b.members*80*2))
	for i, e := range b.entries {
		writeLDIFEntryStart(buf, e.dn)
		switch e.kind {
		case 'o':
			buf.WriteString("objectClass: organizationalUnit\n")
			writeLDIFAttr(buf, "ou", e.name)
		case 'u':
			slapdUserAttrs(e.name, b.domain, e.user, func(attr string, values ...string) {
				for _, v := range values {
					writeLDIFAttr(buf, attr, v)
				}
			})
		case 'g':
			buf.WriteString("objectClass: groupOfNames\n")
			writeLDIFAttr(buf, "cn", e.name)
			if len(e.members) == 0 {
				writeLDIFAttr(buf, "member", SlapdEmptyMember)
			}
			for _, m := range e.members {
				writeLDIFAttr(buf, "member", m)
			}
		}
		for _, gi := range memberOf[i] {
			writeLDIFAttr(buf, "memberOf", b.entries[gi].dn)
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func writeLDIFEntryStart(b *bytes.Buffer, dn string) { writeLDIFAttr(b, "dn", dn) }

// writeLDIFAttr writes "attr: value", base64-encoding values that are not LDIF SAFE-STRINGs.
// Lines are not folded: slapadd accepts any length.
func writeLDIFAttr(b *bytes.Buffer, attr, value string) {
	b.WriteString(attr)
	switch {
	case value == "":
		b.WriteString(":")
	case ldifSafe(value):
		b.WriteString(": ")
		b.WriteString(value)
	default:
		b.WriteString(":: ")
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(value)))
	}
	b.WriteByte('\n')
}

// ldifSafe reports whether value is an RFC 2849 SAFE-STRING (the empty string is).
func ldifSafe(v string) bool {
	if v == "" {
		return true
	}
	switch v[0] {
	case ' ', ':', '<':
		return false
	}
	if v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			return false
		}
	}
	return true
}
