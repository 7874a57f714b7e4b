package harness_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

const inChain = "1.2.840.113556.1.4.1941" // LDAP_MATCHING_RULE_IN_CHAIN

func TestSamba(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	s, err := harness.StartSamba(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("start Samba (integration tests need it, never skip): %v", err)
	}
	t.Cleanup(s.Stop)
	t.Logf("Samba provisioned (or copied from template) and ready in %v; domain SID %s", time.Since(start), s.DomainSID)

	must := func(dn string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return dn
	}
	ou := must(s.AddOU("harness"))
	alice := must(s.AddUser(ou, "alice", true))
	bob := must(s.AddUser(ou, "bob", true))
	carol := must(s.AddUser(ou, "carol", false))
	pc := must(s.AddComputer(ou, "pc1"))
	ga := must(s.AddGroup(ou, "group-a"))
	gb := must(s.AddGroup(ou, "group-b"))
	foreignSID := "S-1-5-21-1111111111-2222222222-3333333333-1105"
	fsp := s.ForeignPrincipalDN(foreignSID)

	// A cycle, as AD allows: group-a ∋ group-b ∋ group-a.
	if err := s.AddMembers(ga, alice, gb); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMembers(gb, bob, carol, pc, ga); err != nil {
		t.Fatal(err)
	}
	if err := s.AddForeignMember(gb, foreignSID); err != nil {
		t.Fatal(err)
	}

	c, err := s.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	search := func(base, filter string, attrs ...string) []*ldap.Entry {
		t.Helper()
		res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
		if err != nil {
			t.Fatalf("search %s under %s: %v", filter, base, err)
		}
		return res.Entries
	}
	dns := func(es []*ldap.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, strings.ToLower(e.DN))
		}
		slices.Sort(out)
		return out
	}
	want := func(list ...string) []string {
		out := make([]string, len(list))
		for i, dn := range list {
			out[i] = strings.ToLower(dn)
		}
		slices.Sort(out)
		return out
	}

	t.Run("userAccountControl", func(t *testing.T) {
		for dn, uac := range map[string]string{alice: "512", carol: "514", pc: "4096"} {
			if got := search(dn, "(objectClass=*)", "userAccountControl")[0].GetAttributeValue("userAccountControl"); got != uac {
				t.Errorf("%s: userAccountControl %s, want %s", dn, got, uac)
			}
		}
		if err := s.SetEnabled(carol, true); err != nil {
			t.Fatal(err)
		}
		if got := search(carol, "(objectClass=*)", "userAccountControl")[0].GetAttributeValue("userAccountControl"); got != "512" {
			t.Errorf("carol after SetEnabled(true): %s, want 512", got)
		}
		if err := s.SetEnabled(carol, false); err != nil {
			t.Fatal(err)
		}
		// The usual "enabled users" filter: bit 2 (ACCOUNTDISABLE) not set.
		enabled := search(ou, "(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))")
		if got, w := dns(enabled), want(alice, bob); !slices.Equal(got, w) {
			t.Errorf("enabled users %v, want %v", got, w)
		}
	})

	t.Run("in-chain with cycle", func(t *testing.T) {
		// Only people: the computer is objectClass user too, but objectCategory Computer.
		people := search(s.BaseDN, fmt.Sprintf("(&(objectCategory=person)(objectClass=user)(memberOf:%s:=%s))", inChain, ga))
		if got, w := dns(people), want(alice, bob, carol); !slices.Equal(got, w) {
			t.Errorf("in-chain people of group-a: %v, want %v", got, w)
		}
		// Everything: the cycle makes group-a a transitive member of itself, and the
		// foreign principal and the computer come along.
		all := search(s.BaseDN, fmt.Sprintf("(memberOf:%s:=%s)", inChain, ga))
		if got, w := dns(all), want(alice, bob, carol, pc, ga, gb, fsp); !slices.Equal(got, w) {
			t.Errorf("in-chain members of group-a: %v, want %v", got, w)
		}
		// Same from the other side of the cycle.
		if got, w := dns(search(s.BaseDN, fmt.Sprintf("(memberOf:%s:=%s)", inChain, gb))), want(alice, bob, carol, pc, ga, gb, fsp); !slices.Equal(got, w) {
			t.Errorf("in-chain members of group-b: %v, want %v", got, w)
		}
		// And the reverse: groups a user is in, transitively.
		groups := search(s.BaseDN, fmt.Sprintf("(member:%s:=%s)", inChain, alice))
		if got, w := dns(groups), want(ga, gb); !slices.Equal(got, w) {
			t.Errorf("in-chain groups of alice: %v, want %v", got, w)
		}

		if err := s.RemoveMembers(gb, bob); err != nil {
			t.Fatal(err)
		}
		people = search(s.BaseDN, fmt.Sprintf("(&(objectCategory=person)(memberOf:%s:=%s))", inChain, ga))
		if got, w := dns(people), want(alice, carol); !slices.Equal(got, w) {
			t.Errorf("in-chain people of group-a after removing bob: %v, want %v", got, w)
		}
	})

	t.Run("foreign security principal and computer", func(t *testing.T) {
		e := search(fsp, "(objectClass=*)", "objectClass", "objectCategory", "objectSid")
		if len(e) != 1 {
			t.Fatalf("foreign principal %s: %d entries", fsp, len(e))
		}
		if oc := e[0].GetAttributeValues("objectClass"); !slices.Contains(oc, "foreignSecurityPrincipal") {
			t.Errorf("foreign principal objectClass %v", oc)
		}
		if cat := e[0].GetAttributeValue("objectCategory"); !strings.HasPrefix(cat, "CN=Foreign-Security-Principal,CN=Schema,") {
			t.Errorf("foreign principal objectCategory %s", cat)
		}
		if sid, err := harness.SIDString(e[0].GetRawAttributeValue("objectSid")); err != nil || sid != foreignSID {
			t.Errorf("foreign principal objectSid %s (%v), want %s", sid, err, foreignSID)
		}
		members := search(gb, "(objectClass=*)", "member")[0].GetAttributeValues("member")
		if !slices.ContainsFunc(members, func(m string) bool { return strings.EqualFold(m, fsp) }) {
			t.Errorf("group-b members %v lack %s", members, fsp)
		}

		e = search(pc, "(objectClass=*)", "objectClass", "objectCategory", "sAMAccountName")
		if oc := e[0].GetAttributeValues("objectClass"); !slices.Contains(oc, "computer") || !slices.Contains(oc, "user") {
			t.Errorf("computer objectClass %v", oc)
		}
		if cat := e[0].GetAttributeValue("objectCategory"); !strings.HasPrefix(cat, "CN=Computer,CN=Schema,") {
			t.Errorf("computer objectCategory %s", cat)
		}
		if sam := e[0].GetAttributeValue("sAMAccountName"); sam != "pc1$" {
			t.Errorf("computer sAMAccountName %s", sam)
		}
	})

	t.Run("ranged retrieval", func(t *testing.T) {
		sams := make([]string, 25)
		for i := range sams {
			sams[i] = fmt.Sprintf("ranged%02d", i)
		}
		members, err := s.AddUsers(ou, sams, true)
		if err != nil {
			t.Fatal(err)
		}
		big := must(s.AddGroup(ou, "big"))
		if err := s.AddMembers(big, members...); err != nil {
			t.Fatal(err)
		}
		var got []string
		var ranges []string
		for lo := 0; ; {
			e := search(big, "(objectClass=*)", fmt.Sprintf("member;range=%d-%d", lo, lo+9))
			if len(e) != 1 || len(e[0].Attributes) != 1 {
				t.Fatalf("range from %d: unexpected reply %+v", lo, e)
			}
			a := e[0].Attributes[0]
			ranges = append(ranges, a.Name)
			got = append(got, a.Values...)
			if strings.HasSuffix(a.Name, "-*") {
				break
			}
			lo += len(a.Values)
		}
		if w := []string{"member;range=0-9", "member;range=10-19", "member;range=20-*"}; !slices.Equal(ranges, w) {
			t.Errorf("ranges %v, want %v", ranges, w)
		}
		if g, w := want(got...), want(members...); !slices.Equal(g, w) {
			t.Errorf("ranged members %v, want %v", g, w)
		}
	})

	t.Run("service account bind", func(t *testing.T) {
		svc := must(s.AddUser(ou, "svc-sync", true))
		if err := s.SetPassword(svc, "Sync-Passw0rd-1"); err != nil {
			t.Fatal(err)
		}
		sc, err := s.BindConn(ctx, svc, "Sync-Passw0rd-1")
		if err != nil {
			t.Fatal(err)
		}
		sc.Close()
		if sc, err := s.BindConn(ctx, "svc-sync@example.test", "wrong"); err == nil {
			sc.Close()
			t.Error("bind with a wrong password succeeded")
		} else if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("bind with a wrong password: %v, want invalid credentials", err)
		}
	})

	t.Run("plain LDAP needs StartTLS", func(t *testing.T) {
		// Samba's default "ldap server require strong auth = yes": no simple bind in clear.
		pc, err := ldap.DialURL(s.LDAPURL)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if err := pc.Bind(s.AdminDN, s.AdminPassword); !ldap.IsErrorWithCode(err, ldap.LDAPResultStrongAuthRequired) {
			t.Errorf("simple bind over %s: %v, want strongAuthRequired", s.LDAPURL, err)
		}
		tc, err := ldap.DialURL(s.LDAPURL)
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		if err := tc.StartTLS(s.TLSConfig()); err != nil {
			t.Fatalf("StartTLS on %s: %v", s.LDAPURL, err)
		}
		if err := tc.Bind(s.AdminDN, s.AdminPassword); err != nil {
			t.Errorf("bind after StartTLS: %v", err)
		}
	})

	t.Run("bulk users", func(t *testing.T) {
		sams := make([]string, 300)
		for i := range sams {
			sams[i] = fmt.Sprintf("bulk%04d", i)
		}
		bulkOU := must(s.AddOU("bulk"))
		start := time.Now()
		if _, err := s.AddUsers(bulkOU, sams, true); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		t.Logf("AddUsers: %d users in %v (%v per user)", len(sams), d, d/time.Duration(len(sams)))
		res, err := c.SearchWithPaging(ldap.NewSearchRequest(bulkOU, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=user)", []string{"sAMAccountName"}, nil), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Entries) != len(sams) {
			t.Errorf("bulk OU has %d users, want %d", len(res.Entries), len(sams))
		}
	})

	// Last: it breaks the connections opened above.
	t.Run("restart", func(t *testing.T) {
		start := time.Now()
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("Samba restarted in %v", time.Since(start))
		if _, err := s.AddUser(ou, "after-restart", true); err != nil {
			t.Fatalf("seeding after restart: %v", err)
		}
		rc, err := s.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		res, err := rc.Search(ldap.NewSearchRequest(alice, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=user)", []string{"sAMAccountName"}, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("alice after restart: %v", err)
		}
	})
}

func TestKube(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()

	start := time.Now()
	etcd, err := harness.StartEtcd(ctx, filepath.Join(dir, "etcd"))
	if err != nil {
		t.Fatalf("start etcd (integration tests need it, never skip): %v", err)
	}
	t.Cleanup(etcd.Stop)
	t.Logf("etcd ready in %v at %s", time.Since(start), etcd.ClientURL)

	viewer := harness.Token{Token: "viewer-token", User: "viewer", Groups: []string{"viewers"}}
	start = time.Now()
	a, err := harness.StartAPIServer(ctx, etcd, filepath.Join(dir, "a"), harness.APIServerOptions{ExtraTokens: []harness.Token{viewer}})
	if err != nil {
		t.Fatalf("start kube-apiserver (integration tests need it, never skip): %v", err)
	}
	t.Cleanup(a.Stop)
	t.Logf("apiserver a ready in %v at %s", time.Since(start), a.URL)
	start = time.Now()
	b, err := harness.StartAPIServer(ctx, etcd, filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	t.Logf("apiserver b ready in %v at %s", time.Since(start), b.URL)

	ca, err := kubernetes.NewForConfig(a.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Through the kubeconfig, as kubectl and the product's --kubeconfig flag would.
	bcfg, err := clientcmd.BuildConfigFromFlags("", b.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := kubernetes.NewForConfig(bcfg)
	if err != nil {
		t.Fatal(err)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-in-a"}}
	if _, err := ca.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace missing in a: %v", err)
	}
	if _, err := cb.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace in b: err %v, want NotFound (clusters must be isolated)", err)
	}

	// The extra token authenticates, and RBAC is enforced: no role is bound to it.
	cv, err := kubernetes.NewForConfig(a.RestConfigFor(viewer.Token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cv.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("viewer lists namespaces: err %v, want Forbidden", err)
	}

	// kubectl, when built alongside, works with the kubeconfig too.
	if bin, err := harness.BinDir(); err == nil {
		if kubectl := filepath.Join(bin, "kubectl"); fileExists(kubectl) {
			out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", a.Kubeconfig, "get", "namespace", ns.Name, "-o", "name").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "namespace/"+ns.Name {
				t.Errorf("kubectl get namespace: %v: %s", err, out)
			}
		}
	}

	start = time.Now()
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("apiserver a restarted in %v", time.Since(start))
	if _, err := ca.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace after restart: %v", err)
	}
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
