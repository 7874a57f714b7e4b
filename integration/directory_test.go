package integration

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// These tests resolve groups with the real resolver against the real
// directories, one directory shape per test.

func sameAsTargeted(t *testing.T, cfg config.LDAP, names []string, full *ldapsrc.Result) {
	t.Helper()
	tr, err := ldapsrc.New(cfg, zap.NewNop()).ResolveTargeted(context.Background(), names)
	if err != nil {
		t.Fatalf("targeted resolve: %v", err)
	}
	allOK := true
	for name, f := range full.Groups {
		g := tr.Groups[name]
		if f.Err != nil {
			// A full read can hit a limit (size, depth) a targeted one
			// does not reach; the targeted answer is then not compared.
			allOK = false
			continue
		}
		if g == nil || g.Err != nil || g.Found != f.Found || !strings.EqualFold(g.DN, f.DN) || strings.Join(g.Members, ",") != strings.Join(f.Members, ",") {
			t.Errorf("group %q: targeted read %+v differs from full read %+v", name, g, f)
		}
	}
	if allOK && !reflect.DeepEqual(nonZero(tr.Skipped), nonZero(full.Skipped)) {
		t.Errorf("skipped: targeted %v, full %v", tr.Skipped, full.Skipped)
	}
}

func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func TestActiveDirectoryShapes(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"alice", "bob", "carol", "erin"} {
		e.user(u, true)
	}
	e.user("dave", false)
	// Nesting with a cycle: a ∋ b ∋ c ∋ a.
	e.group("cyc-a", "alice")
	e.group("cyc-b", "bob", "cyc-a")
	e.group("cyc-c", "carol", "cyc-b")
	if err := e.samba.AddMembers(e.groups["cyc-a"], e.groups["cyc-c"]); err != nil {
		t.Fatal(err)
	}
	// Not users: a computer, a foreign security principal, a disabled user.
	pc, err := e.samba.AddComputer(e.ou, "gpu-node-1")
	if err != nil {
		t.Fatal(err)
	}
	e.group("mixed", "erin", "dave")
	if err := e.samba.AddMembers(e.groups["mixed"], pc); err != nil {
		t.Fatal(err)
	}
	if err := e.samba.AddForeignMember(e.groups["mixed"], "S-1-5-21-1111111111-2222222222-3333333333-1234"); err != nil {
		t.Fatal(err)
	}
	// A member from another OU, outside a narrowed user base.
	other, err := e.samba.AddOU("Elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	far, err := e.samba.AddUser(other, "farouk", true)
	if err != nil {
		t.Fatal(err)
	}
	e.group("far", "alice")
	if err := e.samba.AddMembers(e.groups["far"], far); err != nil {
		t.Fatal(err)
	}

	t.Run("nested cycle resolves from every entry point", func(t *testing.T) {
		done := make(chan *ldapsrc.Result, 1)
		go func() { done <- resolve(t, e.adConfig(nil), "cyc-a", "cyc-b", "cyc-c") }()
		select {
		case res := <-done:
			for _, g := range []string{"cyc-a", "cyc-b", "cyc-c"} {
				wantMembers(t, res, g, "alice", "bob", "carol")
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a nesting cycle hung the resolver")
		}
	})

	t.Run("disabled, computer and foreign members are skipped and counted", func(t *testing.T) {
		res := resolve(t, e.adConfig(func(c *config.LDAP) { c.BaseDN = e.samba.BaseDN; c.GroupBaseDN = e.ou }), "mixed")
		wantMembers(t, res, "mixed", "erin")
		for reason, n := range map[string]int{model.SkipDisabled: 1, model.SkipComputer: 1, model.SkipForeign: 1} {
			if res.Skipped[reason] != n {
				t.Errorf("skipped[%s] = %d, want %d (all: %v)", reason, res.Skipped[reason], n, res.Skipped)
			}
		}
	})

	t.Run("subtree search from the domain root ignores referrals", func(t *testing.T) {
		res := resolve(t, e.adConfig(func(c *config.LDAP) { c.BaseDN = e.samba.BaseDN }), "cyc-a", "far")
		wantMembers(t, res, "cyc-a", "alice", "bob", "carol")
		wantMembers(t, res, "far", "alice", "farouk")
	})

	t.Run("members outside the user base are skipped and counted", func(t *testing.T) {
		res := resolve(t, e.adConfig(func(c *config.LDAP) { c.BaseDN = e.samba.BaseDN; c.UserBaseDN = e.ou }), "far")
		wantMembers(t, res, "far", "alice")
		if res.Skipped[model.SkipOutsideBase] != 1 {
			t.Errorf("skipped = %v, want outside_base 1", res.Skipped)
		}
	})

	t.Run("group names and DNs compare case-insensitively", func(t *testing.T) {
		upper := strings.ToUpper(e.ou[:3]) + e.ou[3:]
		res := resolve(t, e.adConfig(func(c *config.LDAP) { c.BaseDN = strings.ReplaceAll(upper, ",", ", ") }), "CYC-A", "Mixed")
		wantMembers(t, res, "CYC-A", "alice", "bob", "carol")
		wantMembers(t, res, "Mixed", "erin")
	})

	t.Run("a missing group is reported, not an error", func(t *testing.T) {
		res := resolve(t, e.adConfig(nil), "no-such-group", "cyc-a")
		if g := res.Groups["no-such-group"]; g.Found || g.Err != nil || g.Members != nil {
			t.Errorf("missing group: %+v", g)
		}
		wantMembers(t, res, "cyc-a", "alice", "bob", "carol")
	})

	t.Run("hostile group names are escaped", func(t *testing.T) {
		res := resolve(t, e.adConfig(nil), "*", "cyc-*", "*)(cn=*", `cyc-a\`, "cyc-a\x00")
		for name, g := range res.Groups {
			if g.Found || len(g.Members) > 0 {
				t.Errorf("%q matched %s with members %v", name, g.DN, g.Members)
			}
		}
	})

	// The subtests above run the default, expand; inChain must agree.
	t.Run("memberResolution inChain gives the same answers, one search per group", func(t *testing.T) {
		inChain := func(c *config.LDAP) { c.MemberResolution = config.ResolveInChain }
		res := resolve(t, e.adConfig(inChain), "cyc-a", "cyc-b", "mixed", "no-such-group")
		for _, g := range []string{"cyc-a", "cyc-b"} {
			wantMembers(t, res, g, "alice", "bob", "carol")
		}
		wantMembers(t, res, "mixed", "erin")
		for reason, n := range map[string]int{model.SkipDisabled: 1, model.SkipComputer: 1, model.SkipForeign: 1} {
			if res.Skipped[reason] != n {
				t.Errorf("skipped[%s] = %d, want %d (all: %v)", reason, res.Skipped[reason], n, res.Skipped)
			}
		}
		if g := res.Groups["no-such-group"]; g.Found || g.Err != nil {
			t.Errorf("missing group: %+v", g)
		}
		res = resolve(t, e.adConfig(func(c *config.LDAP) { inChain(c); c.BaseDN = e.samba.BaseDN; c.UserBaseDN = e.ou }), "far")
		wantMembers(t, res, "far", "alice")
		if res.Skipped[model.SkipOutsideBase] != 1 {
			t.Errorf("skipped = %v, want outside_base 1", res.Skipped)
		}
	})

	t.Run("alternative ID attributes, case and prefix", func(t *testing.T) {
		res := resolve(t, e.adConfig(func(c *config.LDAP) { c.UserIDAttribute = "userPrincipalName"; c.UserIDPrefix = "oidc:" }), "cyc-a")
		wantMembers(t, res, "cyc-a", "oidc:alice@example.test", "oidc:bob@example.test", "oidc:carol@example.test")
		res = resolve(t, e.adConfig(func(c *config.LDAP) { c.UserIDAttribute = "mail"; c.UserIDCase = config.CasePreserve }), "mixed")
		wantMembers(t, res, "mixed", "erin@example.test")
	})
}

func TestActiveDirectoryLargeGroupAndPaging(t *testing.T) {
	e := newEnv(t)
	const n = 2600
	sams := make([]string, n)
	for i := range sams {
		sams[i] = fmt.Sprintf("bulk%04d", i)
	}
	start := time.Now()
	dns, err := e.samba.AddUsers(e.ou, sams, true)
	if err != nil {
		t.Fatal(err)
	}
	big, err := e.samba.AddGroup(e.ou, "big")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.samba.AddMembers(big, dns...); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d users in one group in %s", n, time.Since(start).Round(time.Millisecond))
	// Pages of 300 and a configured size far above any server maximum.
	for _, pageSize := range []int{300, 5000} {
		res := resolve(t, e.adConfig(func(c *config.LDAP) { c.PageSize = pageSize }), "big")
		g := res.Groups["big"]
		if g.Err != nil || len(g.Members) != n {
			t.Fatalf("pageSize %d: err=%v, %d members, want %d", pageSize, g.Err, len(g.Members), n)
		}
		if res.Skipped[model.SkipUnresolved] != 0 {
			t.Errorf("pageSize %d: %v", pageSize, res.Skipped)
		}
	}
}

func TestActiveDirectoryConnections(t *testing.T) {
	e := newEnv(t)
	e.user("alice", true)
	e.group("g", "alice")

	t.Run("failover to the next URL", func(t *testing.T) {
		res := resolve(t, e.adConfig(func(c *config.LDAP) { c.URLs = []string{"ldaps://localhost:1", e.samba.LDAPSURL} }), "g")
		wantMembers(t, res, "g", "alice")
	})
	t.Run("StartTLS with the CA", func(t *testing.T) {
		res := resolve(t, e.adConfig(func(c *config.LDAP) { c.URLs = []string{e.samba.LDAPURL}; c.StartTLS = true }), "g")
		wantMembers(t, res, "g", "alice")
	})

	other, err := harness.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := other.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	failures := []struct {
		name   string
		mutate func(*config.LDAP)
		want   []string
	}{
		{"unknown authority", func(c *config.LDAP) { c.CAFile = otherCA }, []string{"unknown authority", "ldap.caFile"}},
		{"name mismatch", func(c *config.LDAP) { c.ServerName = "dc9.example.test" }, []string{`"dc9.example.test"`, "localhost", "ldap.serverName"}},
		{"wrong password", func(c *config.LDAP) {
			if err := os.WriteFile(c.BindPasswordFile, []byte("Wrong-Passw0rd"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"wrong bind DN or password", "ldap.bindPasswordFile"}},
		{"unreachable", func(c *config.LDAP) { c.URLs = []string{"ldaps://localhost:1"} }, []string{"connection refused", "is the server up"}},
		{"plain LDAP refused by the server", func(c *config.LDAP) { c.URLs = []string{e.samba.LDAPURL}; c.AllowInsecure = true }, []string{"requires TLS"}},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ldapsrc.New(e.adConfig(tc.mutate), zap.NewNop()).Resolve(context.Background(), []string{"g"})
			if err == nil {
				t.Fatal("resolve succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), e.password) {
				t.Fatal("error contains the password")
			}
		})
	}
	t.Run("disabled service account", func(t *testing.T) {
		svc := "CN=" + strings.TrimSuffix(e.bindUPN, "@example.test") + "," + e.ou
		if err := e.samba.SetEnabled(svc, false); err != nil {
			t.Fatal(err)
		}
		defer e.samba.SetEnabled(svc, true) //nolint:errcheck
		_, err := ldapsrc.New(e.adConfig(nil), zap.NewNop()).Resolve(context.Background(), []string{"g"})
		if err == nil || !strings.Contains(err.Error(), "disabled") {
			t.Errorf("want a 'disabled' bind error, got %v", err)
		}
	})
}

func TestOpenLDAPGroupOfNames(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{SizeLimit: 100})
	ous := slapdOUs(t, s, "people", "groups")
	people, groups := ous[0], ous[1]
	dn := map[string]string{}
	var err error
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		if dn[u], err = s.AddUser(people, u, harness.UserOpts{Disabled: u == "dave"}); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(cn string, members ...string) string {
		t.Helper()
		d, err := s.AddGroupOfNames(groups, cn, members...)
		if err != nil {
			t.Fatal(err)
		}
		dn[cn] = d
		return d
	}
	// Three levels of nesting plus a cycle back to the top.
	mk("lvl3", dn["carol"])
	mk("lvl2", dn["bob"], dn["lvl3"])
	mk("top", dn["alice"], dn["dave"], dn["lvl2"], "uid=ghost,"+people, "uid=far,dc=elsewhere,dc=org")
	if err := s.AddMembers(dn["lvl3"], "member", dn["top"]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddGroupOfUniqueNames(groups, "uniq", dn["erin"]+"#'0101'B", dn["alice"]); err != nil {
		t.Fatal(err)
	}
	mk("empty")
	// Many users: the reader's size limit (100) forces paging.
	var many []string
	for i := 0; i < 350; i++ {
		many = append(many, fmt.Sprintf("m%03d", i))
	}
	manyDNs, err := s.AddUsers(people, many, harness.UserOpts{})
	if err != nil {
		t.Fatal(err)
	}
	mk("many", manyDNs...)

	res := resolve(t, slapdConfig(t, s, config.SchemaGroupOfNames, func(c *config.LDAP) { c.PageSize = 50 }), "top", "lvl2", "uniq", "empty", "many", "absent")
	wantMembers(t, res, "top", "alice", "bob", "carol")
	wantMembers(t, res, "lvl2", "alice", "bob", "carol")
	wantMembers(t, res, "uniq", "alice", "erin")
	wantMembers(t, res, "empty")
	if g := res.Groups["many"]; g.Err != nil || len(g.Members) != 350 {
		t.Errorf("many: err=%v members=%d", g.Err, len(g.Members))
	}
	if g := res.Groups["absent"]; g.Found || g.Err != nil {
		t.Errorf("absent: %+v", g)
	}
	for reason, n := range map[string]int{model.SkipDisabled: 1, model.SkipUnresolved: 1, model.SkipOutsideBase: 1} {
		if res.Skipped[reason] != n {
			t.Errorf("skipped[%s] = %d, want %d (all %v)", reason, res.Skipped[reason], n, res.Skipped)
		}
	}

	t.Run("depth limit is an error, never a shorter list", func(t *testing.T) {
		res := resolve(t, slapdConfig(t, s, config.SchemaGroupOfNames, func(c *config.LDAP) { c.MaxNestingDepth = 2 }), "top", "lvl3")
		if g := res.Groups["top"]; g.Err == nil || g.Members != nil {
			t.Errorf("top: %+v", g)
		}
	})
	t.Run("StartTLS", func(t *testing.T) {
		res := resolve(t, slapdConfig(t, s, config.SchemaGroupOfNames, func(c *config.LDAP) { c.URLs = []string{s.URL}; c.StartTLS = true }), "uniq")
		wantMembers(t, res, "uniq", "alice", "erin")
	})
	t.Run("a search cut short by the size limit is an error", func(t *testing.T) {
		// Without paging control of its own, the reader hits the limit of 100.
		res := resolve(t, slapdConfig(t, s, config.SchemaGroupOfNames, func(c *config.LDAP) { c.PageSize = 10000 }), "many")
		if g := res.Groups["many"]; g.Err == nil && len(g.Members) != 350 {
			t.Errorf("a short answer was used: %d members", len(g.Members))
		}
	})
}

func TestOpenLDAPRFC2307(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	people, err := s.AddOU("people")
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range []string{"alice", "bob", "dave"} {
		if _, err := s.AddUser(people, u, harness.UserOpts{Disabled: u == "dave", UIDNumber: 1000 + i, GIDNumber: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddPosixGroup(s.Suffix, "ml-team", 5000, "alice", "BOB", "dave", "ghost"); err != nil {
		t.Fatal(err)
	}
	res := resolve(t, slapdConfig(t, s, config.SchemaRFC2307, nil), "ml-team", "nope")
	wantMembers(t, res, "ml-team", "alice", "bob")
	if res.Skipped[model.SkipDisabled] != 1 || res.Skipped[model.SkipUnresolved] != 1 {
		t.Errorf("skipped = %v, want disabled 1, unresolved 1", res.Skipped)
	}
}

// TestOpenLDAPEndToEnd runs the daemon with the groupOfNames schema.
func TestOpenLDAPEndToEnd(t *testing.T) {
	e := newEnv(t)
	s := startSlapd(t, harness.SlapdOptions{})
	people, _ := s.AddOU("people")
	a, _ := s.AddUser(people, "Alice", harness.UserOpts{})
	b, _ := s.AddUser(people, "bob", harness.UserOpts{})
	core, err := s.AddGroupOfNames(s.Suffix, "runai-alpha-core", b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddGroupOfNames(s.Suffix, "runai-alpha-executors", a, core); err != nil {
		t.Fatal(err)
	}
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	cfg := e.slapdDaemonConfig(s, "", "")
	e.mustRun("once", "--config", cfg)
	e.expectUsers(model.ExecutorRef("runai-alpha"), "alice", "bob")
	e.expectUsers(model.IndexMapRef("runai"), "alice", "bob")
}
