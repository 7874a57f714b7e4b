package ldapsrc

import (
	"context"
	"errors"
	"net"
	"strings"
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

// A refused password is remembered by the Source, which lives as long as
// the process: a later connection (a new leadership term, a Ping) with the
// same password does not bind again, so it costs the account no lockout
// count; another password is tried.
func TestRefusedPasswordIsNeverRetried(t *testing.T) {
	srv := newFakeLDAP(t, func(fakeSearch) fakeAnswer { return fakeAnswer{} })
	srv.refuseBind = true
	s := fakeSource(t, srv.URL(), "activeDirectory", 500)
	if _, err := s.Mark(context.Background()); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Mark = %v, want refused credentials", err)
	}
	if n := s.Stats.Binds.Load(); n != 1 {
		t.Fatalf("binds = %d, want 1", n)
	}
	s.Close() // the term ends; the next one asks again
	for _, try := range []func() error{
		func() error { _, err := s.Mark(context.Background()); return err },
		func() error { return s.Ping(context.Background()) },
	} {
		err := try()
		var ce *CredentialsError
		if !errors.As(err, &ce) || ce.Locked || !strings.Contains(err.Error(), "not tried") {
			t.Errorf("again with the refused password: %v, want a CredentialsError saying it was not tried", err)
		}
	}
	if n := s.Stats.Binds.Load(); n != 1 {
		t.Errorf("binds = %d after two more tries with the refused password, want still 1", n)
	}
	s.readPassword = func() (string, error) { return "another", nil }
	_ = s.Ping(context.Background())
	if n := s.Stats.Binds.Load(); n != 2 {
		t.Errorf("binds = %d after the password changed, want 2 (the new one is tried)", n)
	}
}
