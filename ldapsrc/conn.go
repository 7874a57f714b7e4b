package ldapsrc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// packetMu serialises changes to go-asn1-ber's packet cap.
var packetMu sync.Mutex

// setMaxPacket caps the size of one LDAP message read from any server.
// go-asn1-ber keeps the cap in a package variable (2 GiB by default), so
// it is process-wide; New sets it, once the daemon starts, before any
// connection reads.
func setMaxPacket(n int64) {
	if n <= 0 {
		n = config.DefaultMaxPacketBytes
	}
	packetMu.Lock()
	defer packetMu.Unlock()
	if ber.MaxPacketLengthBytes != n {
		ber.MaxPacketLengthBytes = n
	}
}

// conn is one bound directory connection.
type conn struct {
	*ldap.Conn
	url  string
	stop func() bool
}

func (c *conn) Close() {
	c.stop()
	_ = c.Conn.Close()
}

// connector holds what it takes to reach the directory: the settings,
// the bind password, the connection every read shares, and the request
// counts.
type connector struct {
	cfg   config.LDAP
	log   *zap.Logger
	Stats Stats
	// readPassword is swappable for tests; by default it reads the file on
	// every connection, so a rotated Secret is picked up without a restart.
	readPassword func() (string, error)

	// pinMu guards pinned, the connection every read shares (session).
	pinMu  sync.Mutex
	pinned *conn
	// fpKey keys PasswordFingerprint.
	fpKey [32]byte
	// refused is the fingerprint of the last password the directory
	// refused, "" when none.
	refusedMu sync.Mutex
	refused   string
}

// session returns the connection every read of the daemon shares, dialling
// (bounded by ctx) when there is none or it broke. One connection means one
// server: a poll and the reads it triggers, and a cycle's mark and its
// resolve, see the same domain controller, so a change seen on one DC is
// never re-read from another that has not replicated it yet. When the
// connection breaks, the next use dials in URL order again, possibly
// reaching another server; the cursor's Server then says so (ServerChanged)
// and a full cycle runs. ctx ending during the use closes the connection
// (a shutdown never waits for a server that does not answer). Call done
// when finished.
func (s *connector) session(ctx context.Context) (c *conn, done func(), err error) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	if s.pinned != nil && s.pinned.IsClosing() {
		s.pinned.Close()
		s.pinned = nil
	}
	if s.pinned == nil {
		c, err := s.connect(ctx)
		if err != nil {
			return nil, nil, err
		}
		// The connection outlives this use: only the use's ctx may close it.
		c.stop()
		c.stop = func() bool { return false }
		s.pinned = c
	}
	c = s.pinned
	stop := context.AfterFunc(ctx, func() { _ = c.Conn.Close() })
	return c, func() { stop() }, nil
}

// dropSession closes the shared connection if it is still c, after a
// failure that may be the connection's: the next read dials again.
func (s *connector) dropSession(c *conn) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	if s.pinned == c && c != nil {
		s.pinned.Close()
		s.pinned = nil
	}
}

// Close closes the shared connection (at the end of a leadership term or
// of the process). The Source stays usable: the next read dials again.
func (s *connector) Close() {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	if s.pinned != nil {
		s.pinned.Close()
		s.pinned = nil
	}
}

// ErrInvalidCredentials matches (errors.Is) a bind the directory refused
// for its credentials (LDAP result 49; AD's data 52e and friends). The same
// password will be refused again, and every try counts toward the
// account's lockout: wait for the password file to change
// (PasswordFingerprint) before trying again.
var ErrInvalidCredentials = errors.New("the directory refused the bind credentials")

// CredentialsError is a bind refused for its credentials.
type CredentialsError struct {
	// Fingerprint identifies the refused password (PasswordFingerprint);
	// it is a keyed hash that never leaves the process.
	Fingerprint string
	// Locked: the account is locked out (AD data 775); the password may be
	// right, and the lockout ends on its own.
	Locked bool
	err    error
}

func (e *CredentialsError) Error() string {
	if e.err == nil {
		return ErrInvalidCredentials.Error()
	}
	return e.err.Error()
}
func (e *CredentialsError) Unwrap() error        { return e.err }
func (e *CredentialsError) Is(target error) bool { return target == ErrInvalidCredentials }

// PasswordFingerprint returns a keyed hash of the bind password file's
// content, to notice cheaply that it changed. The key is random per
// Source, so the value says nothing about the password outside this
// process; it is never logged.
func (s *connector) PasswordFingerprint() (string, error) {
	pw, err := s.readPassword()
	if err != nil {
		return "", err
	}
	return s.fingerprint(pw), nil
}

// rememberRefused records the fingerprint of a password the directory
// refused; refusedBefore reports whether fp is that one. The Source lives
// as long as the process, so a new leadership term (which starts its own
// backoff and credential state in the controller) still never retries it.
func (s *connector) rememberRefused(fp string) {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	s.refused = fp
}

func (s *connector) refusedBefore(fp string) bool {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	return s.refused != "" && s.refused == fp
}

func (s *connector) fingerprint(pw string) string {
	m := hmac.New(sha256.New, s.fpKey[:])
	m.Write([]byte(pw))
	return hex.EncodeToString(m.Sum(nil))
}

// connect tries each URL in order and returns the first connection that
// binds. Errors from every URL are reported, so an operator sees why each
// one failed. Every step (dial, TLS, bind) ends when ctx does.
func (s *connector) connect(ctx context.Context) (*conn, error) {
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	password, err := s.readPassword()
	if err != nil {
		return nil, err
	}
	fp := s.fingerprint(password)
	if s.refusedBefore(fp) {
		// Every bind with a refused password counts toward the account's
		// lockout, on every DC: never again in this process, whichever
		// leadership term or command asks, until the file changes.
		return nil, &ConnectError{Errs: []error{&CredentialsError{Fingerprint: fp, err: fmt.Errorf(
			"bind as %s not tried: the directory refused this password before (LDAP result 49), and each try counts toward the account's lockout; it is tried again once ldap.bindPasswordFile holds another password", s.cfg.BindDN)}}}
	}
	var errs []error
	for _, raw := range s.cfg.URLs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("connect to directory: %w", err)
		}
		c, err := s.dial(ctx, raw, tlsCfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Stats.Binds.Add(1)
		if err := c.Bind(s.cfg.BindDN, password); err != nil {
			c.Close()
			werr := fmt.Errorf("%s: %w", raw, describeBindError(s.cfg.BindDN, err))
			// A wrong password is wrong on every DC; trying the others only
			// risks locking the account out faster.
			var le *ldap.Error
			if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInvalidCredentials {
				locked := strings.Contains(le.Err.Error(), "data 775")
				if !locked {
					// A locked account may have the right password: only
					// a refused one is remembered.
					s.rememberRefused(fp)
				}
				errs = append(errs, &CredentialsError{Fingerprint: fp, Locked: locked, err: werr})
				break
			}
			errs = append(errs, werr)
			continue
		}
		return c, nil
	}
	return nil, &ConnectError{Errs: errs}
}

// ConnectError means no directory server could be reached and bound.
type ConnectError struct{ Errs []error }

func (e *ConnectError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return "no directory server could be used: " + strings.Join(msgs, "; ")
}

func (e *ConnectError) Unwrap() []error { return e.Errs }

func (s *connector) dial(ctx context.Context, raw string, tlsCfg *tls.Config) (*conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: parse URL: %w", raw, err)
	}
	host := u.Hostname()
	cfg := tlsCfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	port := u.Port()
	if port == "" {
		port = ldap.DefaultLdapPort
		if u.Scheme == "ldaps" {
			port = ldap.DefaultLdapsPort
		}
	}
	// Dial and handshake here rather than in ldap.DialURL, which cannot be
	// interrupted: a shutdown must not wait ldap.timeout per server.
	dctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", raw, describeDialError(err, cfg.ServerName))
	}
	if u.Scheme == "ldaps" {
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("%s: %w", raw, describeDialError(err, cfg.ServerName))
		}
		nc = tc
	}
	lc := ldap.NewConn(nc, u.Scheme == "ldaps")
	lc.Start()
	lc.SetTimeout(s.cfg.Timeout)
	// Closing the connection is the only way to interrupt a request in
	// flight when the context ends (shutdown, cycle deadline).
	c := &conn{Conn: lc, url: raw}
	c.stop = context.AfterFunc(ctx, func() { _ = lc.Close() })
	if u.Scheme == "ldap" && s.cfg.StartTLS {
		if err := lc.StartTLS(cfg); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: StartTLS: %w", raw, describeDialError(err, cfg.ServerName))
		}
	}
	return c, nil
}

func (s *connector) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         s.cfg.ServerName,
		InsecureSkipVerify: s.cfg.InsecureSkipVerify, //nolint:gosec // explicit, documented opt-in
	}
	if s.cfg.CAFile != "" {
		pem, err := os.ReadFile(s.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ldap.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap.caFile %s holds no PEM certificate", s.cfg.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// describeDialError turns TLS verification failures into advice.
func describeDialError(err error, serverName string) error {
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("the server's certificate is signed by an unknown authority (issuer %q): set ldap.caFile to the CA certificate that issued it: %w",
			unknown.Cert.Issuer.String(), err)
	case errors.As(err, &hostErr):
		return fmt.Errorf("the server's certificate is not valid for the name %q we connected to (it names %s): use that name in ldap.urls or set ldap.serverName: %w",
			serverName, certNames(hostErr.Certificate), err)
	case errors.As(err, &invalid):
		return fmt.Errorf("the server's certificate is invalid (%s): renew it on the server: %w", invalidReason(invalid.Reason), err)
	case errors.As(err, &verify):
		return fmt.Errorf("the server's certificate did not verify: %w", err)
	}
	return fmt.Errorf("connect: %w (is the server up and the port reachable?)", err)
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no names"
	}
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return fmt.Sprintf("only the common name %q, which Go no longer trusts", c.Subject.CommonName)
	}
	return strings.Join(names, ", ")
}

func invalidReason(r x509.InvalidReason) string {
	switch r {
	case x509.Expired:
		return "expired or not yet valid"
	case x509.NotAuthorizedToSign:
		return "issuer not allowed to sign"
	default:
		return fmt.Sprintf("reason %d", r)
	}
}

// describeBindError says plainly why a bind failed. Active Directory puts a
// sub-code ("data 52e") in the diagnostic message of invalidCredentials.
func describeBindError(bindDN string, err error) error {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return fmt.Errorf("bind as %s: %w (is the server reachable?)", bindDN, err)
	}
	switch le.ResultCode {
	case ldap.LDAPResultInvalidCredentials:
		msg := le.Err.Error()
		why := "wrong bind DN or password"
		switch {
		case strings.Contains(msg, "data 775"):
			why = "the account is locked out"
		case strings.Contains(msg, "data 533"):
			why = "the account is disabled"
		case strings.Contains(msg, "data 532"), strings.Contains(msg, "data 773"):
			why = "the account's password has expired or must be reset"
		case strings.Contains(msg, "data 701"):
			why = "the account has expired"
		case strings.Contains(msg, "data 525"):
			why = "no such user (check ldap.bindDN)"
		}
		return fmt.Errorf("bind as %s refused: %s; check ldap.bindDN and the password in ldap.bindPasswordFile (LDAP result 49)", bindDN, why)
	case ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired:
		return fmt.Errorf("bind as %s refused: the server requires TLS; use ldaps:// or ldap.startTLS: true: %w", bindDN, err)
	case ldap.ErrorNetwork:
		return fmt.Errorf("bind as %s: connection lost: %w", bindDN, err)
	}
	return fmt.Errorf("bind as %s: %w", bindDN, err)
}
