package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// hostileNames would, put into a filter unescaped, match other groups (or
// break the filter).
var hostileNames = []string{
	"*",
	"*)(cn=*",
	"runai-*",
	"runai-alpha*",
	"runai-alpha-executors)(cn=*",
	"*)(|(cn=runai-alpha-executors",
	`runai-alpha-executors\`,
	`\2a`,
	"runai-alpha-executors\x00",
	"\x00",
	"runai-alpha-executors)(objectClass=*",
}

// TestHostileGroupNamesMatchNothingElse resolves hostile group names
// against the real AD: every value put into a filter is escaped, so each
// is looked up literally and matches no other group.
func TestHostileGroupNamesMatchNothingElse(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()

	// Unescaped, such a filter does match other groups: the danger is real.
	admin, err := e.samba.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	raw, err := admin.Search(ldap.NewSearchRequest(e.ou, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=group)(cn=*)(cn=*))", []string{"cn"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw.Entries) < 5 {
		t.Fatalf("test premise: the injected filter should match every group, got %d", len(raw.Entries))
	}

	cfg, err := config.Load(e.config(groupsYAML + sampleProjects))
	if err != nil {
		t.Fatal(err)
	}
	src := ldapsrc.New(cfg.LDAP, zap.NewNop())
	names := append([]string{"runai-alpha-executors"}, hostileNames...)
	res, err := src.Resolve(ctx, names)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	// The control group resolves normally in the same call.
	if g := res.Groups["runai-alpha-executors"]; g == nil || !g.Found || strings.Join(g.Members, ",") != "alice,bob,carol,erin" {
		t.Fatalf("control group: %+v", g)
	}
	for _, n := range hostileNames {
		g := res.Groups[n]
		if g == nil {
			t.Errorf("%q: not in the result", n)
			continue
		}
		if g.Found || len(g.Members) > 0 {
			t.Errorf("%q matched %s with members %v: the name reached the filter unescaped", n, g.DN, g.Members)
		}
	}
}

// TestHostileProjectNamesAreRejected: a project name is the one value a
// user of the cluster (not the admin) controls. A static project with a
// filter character is refused at load; a namespace label cannot even hold
// one; a label value that is a valid label but not a project name is
// skipped and reported.
func TestHostileProjectNamesAreRejected(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()

	r := e.run("check-config", "--config", e.config(groupsYAML+"projects:\n  static:\n  - name: \"*)(cn=*\"\n"))
	if r.code != 2 || !strings.Contains(r.stderr, "projects.static[0].name") {
		t.Errorf("check-config with a hostile static project: exit %d\n%s", r.code, r.stderr)
	}
	bad := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "evil", Labels: map[string]string{"runai/queue": "*)(cn=*"}}}
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, bad, metav1.CreateOptions{}); err == nil {
		t.Error("the API server accepted a label value with filter characters")
	}
	e.namespace("odd", map[string]string{"runai/queue": "Alpha_X.1"})

	// A template with a wildcard is matched literally too: runai-alpha*
	// is not runai-alpha-executors.
	cfg := e.config(`groups:
  executors: ["runai-{project}*"]
  viewers: ["runai-{project}-viewers"]
` + sampleProjects)
	r = e.mustRun("once", "--config", cfg)
	if !strings.Contains(r.stderr, `"reason":"invalid_name"`) || !strings.Contains(r.stderr, `"project":"Alpha_X.1"`) {
		t.Errorf("invalid project label not reported:\n%s", r.stderr)
	}
	if b := e.binding(model.ExecutorRef("odd")); b != nil {
		t.Errorf("a binding was created for an invalid project: %+v", b)
	}
	e.expectUsers(alphaExec, "hand-added")
	e.expectUsers(viewer, "vera")
}

// TestBindPasswordNeverAppears greps every output of successful and failing
// runs of once and diff for the bind password.
func TestBindPasswordNeverAppears(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	ctx := context.Background()
	cfg := e.config(groupsYAML + sampleProjects)
	var outputs []string
	add := func(r result) { outputs = append(outputs, r.stdout, r.stderr) }
	add(e.mustRun("diff", "--config", cfg, "-o", "json"))
	add(e.mustRun("once", "--config", cfg))
	add(e.run("once", "--config", cfg, "--log-level", "debug"))

	// Wrong password: the bind error names the DN, never the password.
	wrong := "Wrong-" + e.password
	writeFile(t, e.pwFile, []byte(wrong+"\n"))
	r := e.run("once", "--config", cfg, "--log-level", "debug")
	if r.code == 0 || !strings.Contains(r.stderr, "refused") {
		t.Errorf("wrong password: exit %d\n%s", r.code, r.stderr)
	}
	add(r)
	add(e.run("diff", "--config", cfg))
	// Directory down.
	writeFile(t, e.pwFile, []byte(e.password+"\n"))
	e.samba.Down()
	r = e.run("once", "--config", cfg)
	if r.code == 0 {
		t.Error("once succeeded with the directory down")
	}
	add(r)
	// check-config prints the file's errors, not the password file.
	add(e.run("check-config", "--config", cfg))
	if err := os.WriteFile(filepath.Join(e.dir, "broken.yaml"), []byte("ldap: {bindPasswordFile: "+e.pwFile+"}\nmode: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add(e.run("check-config", "--config", filepath.Join(e.dir, "broken.yaml")))

	events, err := e.cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) == 0 {
		t.Error("once recorded no Events")
	}
	evJSON, _ := json.Marshal(events)
	outputs = append(outputs, string(evJSON))
	for _, ref := range sampleRefs {
		if b := e.binding(ref); b != nil {
			j, _ := json.Marshal(b)
			outputs = append(outputs, string(j))
		}
	}
	for i, out := range outputs {
		for _, pw := range []string{e.password, wrong} {
			if strings.Contains(out, pw) {
				t.Errorf("output %d contains a bind password:\n%s", i, out)
			}
		}
	}
	t.Logf("checked %d outputs for the bind password", len(outputs))
}
