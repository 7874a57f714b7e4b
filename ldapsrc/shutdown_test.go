package ldapsrc

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// silentServer accepts TCP connections and never says a word: a hung DC,
// or a firewall that blackholes after the handshake. No real server can
// be made to do that on demand; the daemon-level test is
// TestSIGTERMDuringADialToASilentServer.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// Every step of a connection (TLS handshake, StartTLS, bind) ends when the
// context does, well before ldap.timeout.
func TestConnectEndsWithTheContext(t *testing.T) {
	addr := silentServer(t)
	for _, tc := range []struct {
		name, url string
		startTLS  bool
	}{
		{"ldaps handshake", "ldaps://" + addr, false},
		{"StartTLS", "ldap://" + addr, true},
		{"bind", "ldap://" + addr, false},
	} {
		s := fakeSource(t, tc.url, "activeDirectory", 500)
		s.cfg.Timeout = 30 * time.Second
		s.cfg.StartTLS = tc.startTLS
		s.cfg.InsecureSkipVerify = true
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err := s.Mark(ctx)
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Errorf("%s: a silent server answered?", tc.name)
		}
		if took > 2*time.Second {
			t.Errorf("%s: took %v after the context ended at 200ms (ldap.timeout 30s)", tc.name, took)
		}
	}
}

// A bind refused for its credentials is a CredentialsError carrying the
// refused password's fingerprint, which changes with the file.
func TestRefusedBindIsACredentialsError(t *testing.T) {
	srv := newFakeLDAP(t, func(fakeSearch) fakeAnswer { return fakeAnswer{} })
	srv.refuseBind = true
	s := fakeSource(t, srv.URL(), "activeDirectory", 500)
	_, err := s.Mark(context.Background())
	var ce *CredentialsError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Mark = %v, want a CredentialsError", err)
	}
	fp, ferr := s.PasswordFingerprint()
	if ferr != nil || fp != ce.Fingerprint {
		t.Errorf("fingerprint of the file %q, of the refused password %q (%v)", fp, ce.Fingerprint, ferr)
	}
	s.readPassword = func() (string, error) { return "another", nil }
	if fp2, _ := s.PasswordFingerprint(); fp2 == fp {
		t.Error("the fingerprint did not change with the password")
	}
}
