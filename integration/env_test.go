package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// env is one test's world: an OU of its own in the shared Samba, a
// service account to bind as, and a fresh kube-apiserver with Run:AI's
// ClusterRoles and namespace.
type env struct {
	t        *testing.T
	dir      string
	samba    *harness.Samba
	ou       string // DN of the test's OU, used as ldap.baseDN
	api      *harness.APIServer
	cs       kubernetes.Interface
	bindUPN  string
	password string
	pwFile   string
	users    map[string]string // sAMAccountName -> DN
	groups   map[string]string // cn -> DN
	apiOpts  harness.APIServerOptions
}

var ouNameRE = regexp.MustCompile(`[^A-Za-z0-9]+`)

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, harness.APIServerOptions{})
}

// newEnvWith is newEnv with options for its kube-apiserver (e.g. tokens
// of more users).
func newEnvWith(t *testing.T, apiOpts harness.APIServerOptions) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, dir: t.TempDir(), users: map[string]string{}, groups: map[string]string{}, apiOpts: apiOpts}
	ouName := ouNameRE.ReplaceAllString(t.Name(), "-")
	var err error
	if e.samba, err = harness.StartSamba(ctx, filepath.Join(e.dir, "samba")); err != nil {
		t.Fatalf("start Samba AD DC: %v", err)
	}
	t.Cleanup(e.samba.Stop)
	samba := e.samba
	if e.ou, err = samba.AddOU(ouName); err != nil {
		t.Fatalf("add OU: %v", err)
	}
	// The service account lives in the OU too, so each test binds as its own.
	sam := "svc-" + fmt.Sprintf("%x", time.Now().UnixNano())[6:]
	svcDN, err := samba.AddUser(e.ou, sam, true)
	if err != nil {
		t.Fatalf("add service account: %v", err)
	}
	e.password = "Sync-Pa55-" + sam
	if err := samba.SetPassword(svcDN, e.password); err != nil {
		t.Fatalf("set service account password: %v", err)
	}
	e.bindUPN = sam + "@example.test"
	e.pwFile = filepath.Join(e.dir, "bind-password")
	if err := os.WriteFile(e.pwFile, []byte(e.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	e.startKube()
	return e
}

// newKubeEnv is an env without Samba, for tests against slapd.
func newKubeEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), users: map[string]string{}, groups: map[string]string{}}
	e.startKube()
	return e
}

// startKube starts the env's kube-apiserver with Run:AI's ClusterRoles
// and namespace.
func (e *env) startKube() {
	t, ctx := e.t, context.Background()
	var err error
	if e.api, err = harness.StartAPIServer(ctx, etcd, filepath.Join(e.dir, "apiserver"), e.apiOpts); err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	t.Cleanup(e.api.Stop)
	if e.cs, err = kubernetes.NewForConfig(e.api.RestConfig()); err != nil {
		t.Fatal(err)
	}
	e.namespace("runai", nil)
	for _, role := range []string{model.ViewerRole, model.ExecutorRole, model.IndexMapRole} {
		// Stand-ins for Run:AI's ClusterRoles, with a rule each (the real
		// ones list jobs, pods, configmaps...).
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}}
		if _, err := e.cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create ClusterRole %s: %v", role, err)
		}
	}
}

func (e *env) user(sam string, enabled bool) string {
	e.t.Helper()
	dn, err := e.samba.AddUser(e.ou, sam, enabled)
	if err != nil {
		e.t.Fatalf("add user %s: %v", sam, err)
	}
	e.users[sam] = dn
	return dn
}

// numberedUsers adds enabled users prefix0 … prefix<n-1> in one batch and
// returns their sAMAccountNames.
func (e *env) numberedUsers(prefix string, n int) []string {
	e.t.Helper()
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("%s%d", prefix, i))
	}
	dns, err := e.samba.AddUsers(e.ou, names, true)
	if err != nil {
		e.t.Fatalf("add users %s0..%s%d: %v", prefix, prefix, n-1, err)
	}
	for i, name := range names {
		e.users[name] = dns[i]
	}
	return names
}

// group creates a group whose members are users (by sAMAccountName) or
// groups (by cn) created before.
func (e *env) group(cn string, members ...string) string {
	e.t.Helper()
	return e.addGroupUnder(e.ou, cn, members...)
}

func (e *env) dns(names []string) []string {
	e.t.Helper()
	var out []string
	for _, m := range names {
		if dn, ok := e.users[m]; ok {
			out = append(out, dn)
		} else if dn, ok := e.groups[m]; ok {
			out = append(out, dn)
		} else {
			e.t.Fatalf("unknown member %q", m)
		}
	}
	return out
}

func (e *env) removeMembers(group string, members ...string) {
	e.t.Helper()
	if err := e.samba.RemoveMembers(e.groups[group], e.dns(members)...); err != nil {
		e.t.Fatalf("remove members from %s: %v", group, err)
	}
}

func (e *env) namespace(name string, labels map[string]string) {
	e.t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := e.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create namespace %s: %v", name, err)
	}
}

// config writes a configuration file for this env's Samba; body is
// appended YAML.
func (e *env) config(body string) string {
	e.t.Helper()
	return e.configVia(e.samba.LDAPSURL, e.samba.CAFile, "10s", body)
}

func (e *env) kubeconfig() string {
	path := filepath.Join(e.dir, "kubeconfig")
	if _, err := os.Stat(path); err != nil {
		if err := e.api.WriteKubeconfig(path, e.api.AdminToken); err != nil {
			e.t.Fatal(err)
		}
	}
	return path
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the binary under test against this env's cluster, as admin.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runAs(e.kubeconfig(), args...)
}

func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	// diff exits 1 when it lists changes (kubectl diff's convention).
	if r.code != 0 && !(len(args) > 0 && args[0] == "diff" && r.code == 1) {
		e.t.Fatalf("%v exited %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// binding reads a managed binding; nil if it does not exist.
func (e *env) binding(ref model.Ref) *model.Binding {
	e.t.Helper()
	kc, err := kube.NewClient(e.api.RestConfig(), 100, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := kc.Get(context.Background(), ref)
	if err != nil {
		e.t.Fatalf("get %s: %v", ref, err)
	}
	if !b.Exists {
		return nil
	}
	return b
}

func (e *env) usersOf(ref model.Ref) []string {
	e.t.Helper()
	b := e.binding(ref)
	if b == nil {
		e.t.Fatalf("%s does not exist", ref)
	}
	u := b.Users()
	sort.Strings(u)
	return u
}

func (e *env) expectUsers(ref model.Ref, want ...string) {
	e.t.Helper()
	sort.Strings(want)
	got := e.usersOf(ref)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		e.t.Errorf("%s users = %v, want %v", ref, got, want)
	}
}

// jsonPlan decodes `diff -o json`.
type jsonPlan struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Add       []string `json:"add"`
	Remove    []string `json:"remove"`
	Create    bool     `json:"create"`
	Held      []string `json:"held"`
	HeldAdd   []string `json:"heldAdd"`
	Adopt     []string `json:"adopt"`
	Disown    []string `json:"disown"`
	Leftovers []string `json:"leftovers"`
	// ApprovalKey approves exactly what is held.
	ApprovalKey string `json:"approvalKey"`
}

func decodePlan(t *testing.T, out string) map[string]jsonPlan {
	t.Helper()
	var plans []jsonPlan
	if err := json.Unmarshal([]byte(out), &plans); err != nil {
		t.Fatalf("diff -o json output is not JSON: %v\n%s", err, out)
	}
	m := map[string]jsonPlan{}
	for _, p := range plans {
		m[model.Ref{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name}.String()] = p
	}
	return m
}
