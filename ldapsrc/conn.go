package ldapsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// conn is one bound directory connection, used for a whole cycle.
type conn struct {
	*ldap.Conn
	url  string
	stop func() bool
}

func (c *conn) Close() {
	c.stop()
	_ = c.Conn.Close()
}

// connect tries each URL in order and returns the first connection that
// binds. Errors from every URL are reported, so an operator sees why each
// one failed.
func (s *Source) connect(ctx context.Context) (*conn, error) {
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	password, err := s.readPassword()
	if err != nil {
		return nil, err
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
			errs = append(errs, fmt.Errorf("%s: %w", raw, describeBindError(s.cfg.BindDN, err)))
			// A wrong password is wrong on every DC; trying the others only
			// risks locking the account out faster.
			var le *ldap.Error
			if errors.As(err, &le) && le.ResultCode == ldap.LDAPResultInvalidCredentials {
				break
			}
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

func (s *Source) dial(ctx context.Context, raw string, tlsCfg *tls.Config) (*conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: parse URL: %w", raw, err)
	}
	host := u.Hostname()
	cfg := tlsCfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	dialer := &net.Dialer{Timeout: s.cfg.Timeout}
	lc, err := ldap.DialURL(raw, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", raw, describeDialError(err, cfg.ServerName))
	}
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

func (s *Source) tlsConfig() (*tls.Config, error) {
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
