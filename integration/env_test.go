package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
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

func (e *env) namespace(name string, labels map[string]string) {
	e.t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := e.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create namespace %s: %v", name, err)
	}
}
