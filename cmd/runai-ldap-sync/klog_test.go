package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestKlogLinesBecomeJSON(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("info", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l := newKlogLogger(log.Named("client-go"))
	l.Info("Successfully acquired lease", "lock", "runai/runai-ldap-sync")
	l.V(4).Info("verbose detail")
	l.WithValues("reflector", "rolebindings").Error(errors.New("connection refused"), "Failed to watch")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (verbose one dropped at info), got %d:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("not JSON:\n%s", buf.String())
	}
	if first["msg"] != "Successfully acquired lease" || first["lock"] != "runai/runai-ldap-sync" || first["logger"] != "client-go" {
		t.Errorf("info line %v", first)
	}
	if second["level"] != "error" || second["error"] != "connection refused" || second["reflector"] != "rolebindings" {
		t.Errorf("error line %v", second)
	}
}

func TestIdentityIsUniquePerProcess(t *testing.T) {
	a, b := identity(), identity()
	if a == b || !strings.Contains(a, "_") {
		t.Errorf("identities %q and %q", a, b)
	}
}
