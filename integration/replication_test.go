package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// TestIncrementalOpenLDAPMirrorLateReplication: two OpenLDAP providers in
// mirror mode (server IDs 1 and 2), the daemon polling provider A. A change
// made on B reaches A only after A made a newer change of its own, which a
// poll already carried: B's change keeps B's older entryCSN. It must still
// reach its binding through a poll (one cursor per server ID), not wait for
// the next full cycle an hour away.
func TestIncrementalOpenLDAPMirrorLateReplication(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a, b, err := harness.StartSlapdMirror(ctx, t.TempDir(), t.TempDir(), harness.SlapdOptions{})
	if err != nil {
		t.Fatalf("start mirror-mode providers: %v", err)
	}
	t.Cleanup(a.Stop)
	t.Cleanup(b.Stop)

	people, err := a.AddOU("people")
	if err != nil {
		t.Fatal(err)
	}
	dn := map[string]string{}
	for _, u := range []string{"alice", "bob", "dave", "erin"} {
		if dn[u], err = a.AddUser(people, u, harness.UserOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	alpha, err := a.AddGroupOfNames(a.Suffix, "runai-alpha-executors", dn["alice"])
	if err != nil {
		t.Fatal(err)
	}
	beta, err := a.AddGroupOfNames(a.Suffix, "runai-beta-executors", dn["erin"])
	if err != nil {
		t.Fatal(err)
	}
	// B has written before (a user added there), so A's contextCSN holds a
	// value for B's server ID when the daemon sets its cursor.
	frank, err := b.AddUser(a.Suffix, "frank", harness.UserOpts{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the seeding replicated both ways", func() error {
		if v := readAttr(t, a, frank, "uid"); len(v) == 0 {
			return fmt.Errorf("frank (added on B) not on A yet")
		}
		if v := readAttr(t, b, beta, "member"); len(v) == 0 {
			return fmt.Errorf("beta (added on A) not on B yet")
		}
		if sids := csnSIDs(readAttr(t, a, a.Suffix, "contextCSN")); !sids["001"] || !sids["002"] {
			return fmt.Errorf("A's contextCSN has server IDs %v, want 001 and 002", sids)
		}
		return nil
	})

	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	e.namespace("runai-beta", map[string]string{"runai/queue": "beta"})
	addr := freeAddr(t)
	d := startDaemon(t, e.slapdDaemonConfig(a, "", incrementalYAML+fmt.Sprintf("server: {address: %q}\n", addr)), e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)
	alphaRef, betaRef := model.ExecutorRef("runai-alpha"), model.ExecutorRef("runai-beta")
	e.waitUsers(alphaRef, 10*time.Second, "alice")
	e.waitUsers(betaRef, 10*time.Second, "erin")
	d.waitMetric("runai_ldap_sync_directory_polls_total", `result="idle"`, 1, 10*time.Second)

	// A stops receiving from B; B's change waits there.
	if err := a.PauseReplication(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.AddMembers(alpha, "member", dn["bob"]); err != nil {
		t.Fatal(err)
	}
	lateCSN := readAttr(t, b, alpha, "entryCSN")[0]
	// A newer change on A, carried by a poll: the highest CSN A holds is
	// now past B's change.
	start := time.Now()
	if err := a.AddMembers(beta, "member", dn["dave"]); err != nil {
		t.Fatal(err)
	}
	expectPropagated(e, "change on A", betaRef, start, "dave", "erin")
	if newer := readAttr(t, a, beta, "entryCSN")[0]; !(lateCSN < newer) || !strings.Contains(lateCSN, "#002#") {
		t.Fatalf("B's change %s must be older than A's %s and carry server ID 002", lateCSN, newer)
	}
	if v := readAttr(t, a, alpha, "member"); len(v) != 1 {
		t.Fatalf("alpha on A has members %v: replication from B was not held back", v)
	}
	cycles := d.metric("runai_ldap_sync_cycles_total", "")

	// B's change reaches A with its own, older CSN.
	start = time.Now()
	if err := a.ResumeReplication(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "B's change replicated to A", func() error {
		if v := readAttr(t, a, alpha, "entryCSN"); len(v) == 0 || v[0] != lateCSN {
			return fmt.Errorf("alpha's entryCSN on A is %v, want B's %s", v, lateCSN)
		}
		return nil
	})
	t.Logf("B's change replicated to A %v after replication resumed", time.Since(start).Round(10*time.Millisecond))
	expectPropagated(e, "change made on B, replicated late", alphaRef, start, "alice", "bob")
	if v := d.metric("runai_ldap_sync_cycles_total", ""); v != cycles {
		t.Errorf("cycles_total went from %v to %v: the late change must come through a poll", cycles, v)
	}
}

// readAttr reads one attribute of an entry as the server's admin (nil when
// the entry does not exist).
func readAttr(t *testing.T, s *harness.Slapd, dn, attr string) []string {
	t.Helper()
	c, err := s.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{attr}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil
	}
	if err != nil {
		t.Fatalf("read %s of %s: %v", attr, dn, err)
	}
	return res.Entries[0].GetAttributeValues(attr)
}

// csnSIDs returns the server IDs of CSN values.
func csnSIDs(csns []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range csns {
		if parts := strings.Split(v, "#"); len(parts) == 4 {
			m[parts[2]] = true
		}
	}
	return m
}
