// The files the daemon reads: its configuration, and copies of certificates and
// templates beside it.

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// config writes a configuration file for this env's Samba; body is
// appended YAML.
func (e *env) config(body string) string {
	e.t.Helper()
	return e.configVia(e.samba.LDAPSURL, e.samba.CAFile, "10s", body)
}

// configLDAP writes a configuration for this env's Samba with more ldap
// settings (indented YAML lines, which continue configVia's ldap block)
// and body appended; the request timeout is the default's.
func (e *env) configLDAP(ldapExtra, body string) string {
	e.t.Helper()
	return e.configVia(e.samba.LDAPSURL, e.samba.CAFile, config.Default().LDAP.Timeout.String(), ldapExtra+body)
}

// configVia writes a configuration whose directory is ldapURL (e.g. a
// proxy), trusting the CA in caFile, with the given request timeout.
func (e *env) configVia(ldapURL, caFile, timeout, body string) string {
	e.t.Helper()
	base := fmt.Sprintf(`ldap:
  urls: [%q]
  caFile: %s
  bindDN: %q
  bindPasswordFile: %s
  baseDN: %q
  timeout: %s
`, ldapURL, caFile, e.bindUPN, e.pwFile, e.ou, timeout)
	path := filepath.Join(e.dir, fmt.Sprintf("config-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(base+body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// writeFile replaces a file's content atomically (as a Secret update does).
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// caCopy copies Samba's CA certificate to a file the test may overwrite.
func (e *env) caCopy() string {
	e.t.Helper()
	data, err := os.ReadFile(e.samba.CAFile)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, "ldap-ca.crt")
	writeFile(e.t, path, data)
	return path
}

// inDir copies a file into the env's directory, where the daemon's
// configuration files are written: the daemon reads only files in the
// directory of its configuration file.
func (e *env) inDir(path string) string {
	e.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	dst := filepath.Join(e.dir, fmt.Sprintf("copy-%d-%s", time.Now().UnixNano(), filepath.Base(path)))
	writeFile(e.t, dst, data)
	return dst
}
