package ldapsrc

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func TestNormalizeID(t *testing.T) {
	tests := []struct {
		raw, idCase, prefix, want string
		ok                        bool
	}{
		{"Alice", "lower", "", "alice", true},
		{"Alice", "preserve", "", "Alice", true},
		{" bob ", "lower", "oidc:", "oidc:bob", true},
		{"", "lower", "", "", false},
		{"   ", "lower", "", "", false},
		{"bad\x00id", "lower", "", "", false},
		{"tab\tid", "lower", "", "", false},
		{"System:Masters", "lower", "", "", false},
		{"system:admin", "preserve", "", "", false},
		{"masters", "lower", "system:", "", false},
		{strings.Repeat("a", MaxUserIDLength+1), "lower", "", "", false},
		// Only ASCII: a non-ASCII ID could pass for another (the Kelvin
		// sign folds to k under Unicode rules).
		{"Jürgen", "lower", "", "", false},
		{"José", "preserve", "", "", false},
		{"\u212Aate", "lower", "", "", false},
		{"KATE", "lower", "", "kate", true},
		// Invisible and reordering characters: a look-alike of another name.
		{"alice\u200b", "lower", "", "", false},        // zero-width space
		{"al\u200dice", "lower", "", "", false},        // zero-width joiner
		{"\u202eecila", "lower", "", "", false},        // right-to-left override
		{"alice\u2066x\u2069", "lower", "", "", false}, // bidi isolate
		{"\ufeffalice", "lower", "", "", false},        // byte-order mark
		{"ali\u00adce", "lower", "", "", false},        // soft hyphen
		{"ali\u2028ce", "lower", "", "", false},        // line separator
		{"alice\ue000", "lower", "", "", false},        // private use
		{"alice\xff", "lower", "", "", false},          // not UTF-8
	}
	for _, tc := range tests {
		got, err := NormalizeID(tc.raw, tc.idCase, tc.prefix)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizeID(%q, %s, %q) = %q, %v; want %q ok=%v", tc.raw, tc.idCase, tc.prefix, got, err, tc.want, tc.ok)
		}
	}
}

func TestDNCompare(t *testing.T) {
	if !dnEqual("CN=Alice Smith,OU=Users,DC=Example,DC=Test", "cn=alice smith, ou=users,dc=example, dc=test") {
		t.Error("DNs differing in case and spacing must be equal")
	}
	if dnEqual("CN=a,DC=x", "CN=b,DC=x") {
		t.Error("different DNs equal")
	}
	for _, pair := range [][2]string{
		{"CN=A,  DC=X", "cn=a,dc=x"},
		{"CN = Alice Smith , OU=People,DC=Example", "cn=alice smith,ou=people,dc=example"},
		{`CN=Smith\, John,DC=x`, `cn=smith\2c john,dc=x`},
		{"CN=a+UID=b,DC=x", "uid=b+cn=a,dc=x"},
	} {
		if normalizeDN(pair[0]) != normalizeDN(pair[1]) {
			t.Errorf("normalizeDN(%q) = %q != normalizeDN(%q) = %q", pair[0], normalizeDN(pair[0]), pair[1], normalizeDN(pair[1]))
		}
	}
	if normalizeDN("CN=a,DC=x") == normalizeDN("CN=b,DC=x") {
		t.Error("different DNs collide")
	}
	// Escapes are kept: a group whose CN holds an escaped comma and equals
	// sign is never the user whose DN reads the same unescaped (AD returns
	// the "=" as \3D), and Unicode folding joins nothing.
	user := "CN=alice2,OU=People,OU=Site1,DC=x"
	for _, group := range []string{`CN=alice2\,OU\=People,OU=Site1,DC=x`, `CN=alice2\,OU\3DPeople,OU=Site1,DC=x`} {
		if normalizeDN(group) == normalizeDN(user) {
			t.Errorf("normalizeDN(%q) = normalizeDN(%q) = %q", group, user, normalizeDN(user))
		}
		if normalizeDN(group) != normalizeDN(`cn=ALICE2\2cou\3dpeople,ou=site1,dc=X`) {
			t.Errorf("normalizeDN(%q) = %q: the escaped forms of one DN differ", group, normalizeDN(group))
		}
	}
	if normalizeDN("CN=\u212Aate,DC=x") == normalizeDN("CN=kate,DC=x") {
		t.Error("the Kelvin sign folded to k in a DN key")
	}
	// The fast path and the parsed one agree.
	for _, dn := range []string{"CN=Alice Smith,OU=Users,DC=x", "cn=a=b,dc=x", "CN= a ,DC=x"} {
		if normalizeDN(dn) != slowNormalizeDN(dn) {
			t.Errorf("normalizeDN(%q) = %q, slowNormalizeDN = %q", dn, normalizeDN(dn), slowNormalizeDN(dn))
		}
	}
}

// A DN that is already its own key comes back as it is, without an
// allocation, and exactly when the fast path would give it back unchanged.
func TestNormalizeDNOwnKey(t *testing.T) {
	for _, dn := range []string{
		"uid=u000001,ou=people,dc=bench,dc=example", "cn=alice smith,ou=users,dc=x", "cn=a=b,dc=x",
		"CN=a,dc=x", "cn= a,dc=x", "cn=a ,dc=x", "cn=a, dc=x", " cn=a", "cn=a ", "cn", "cn=a,,dc=x", "cn=a,dc", "",
		`cn=a\,b,dc=x`, "cn=a+uid=b,dc=x", "cn=é,dc=x",
	} {
		want := dn
		if plainDN(dn) {
			var b strings.Builder
			for i, rdn := range strings.Split(dn, ",") {
				typ, val, _ := strings.Cut(rdn, "=")
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(FoldASCII(strings.TrimSpace(typ)) + "=" + FoldASCII(strings.TrimSpace(val)))
			}
			want = b.String()
		}
		fast := plainDN(dn) && want == dn && !strings.Contains(dn, ",,") && strings.Contains(dn, "=") && !strings.HasSuffix(dn, ",")
		for _, rdn := range strings.Split(dn, ",") {
			fast = fast && strings.Contains(rdn, "=")
		}
		if ownKey(dn) != fast {
			t.Errorf("ownKey(%q) = %v, want %v", dn, ownKey(dn), fast)
		}
		if ownKey(dn) && normalizeDN(dn) != dn {
			t.Errorf("normalizeDN(%q) = %q, want it unchanged", dn, normalizeDN(dn))
		}
	}
	dn := "uid=u000001,ou=people,dc=bench,dc=example"
	if n := testing.AllocsPerRun(100, func() { _ = normalizeDN(dn) }); n != 0 {
		t.Errorf("normalizeDN of a DN that is its own key allocated %v times", n)
	}
}

func TestClassify(t *testing.T) {
	tests := map[string][]string{
		"user":             {"top", "person", "organizationalPerson", "user"},
		model.SkipComputer: {"top", "person", "organizationalPerson", "user", "computer"},
		"group":            {"top", "group"},
		model.SkipForeign:  {"top", "foreignSecurityPrincipal"},
		// AD contacts are persons too, but no account.
		model.SkipContact: {"top", "person", "organizationalPerson", "contact"},
		model.SkipOther:   {"top", "device"},
	}
	for want, ocs := range tests {
		e := ldap.NewEntry("CN=x", map[string][]string{"objectClass": ocs})
		if got := classify(e); got != want {
			t.Errorf("classify(%v) = %q, want %q", ocs, got, want)
		}
	}
}
