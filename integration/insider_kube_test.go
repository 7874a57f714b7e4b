package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Issue 24 items 1, 2 and 8, each played by the insider's own identity on
// the real kube-apiserver against the daemon running as shipped: deploy/
// installed (RBAC, admission policy), the ServiceAccount's token, and
// deploy/config.yaml itself (leader election, polls every 5s, repair, the
// guard's defaults), only its directory replaced.

// shippedConfig writes deploy/config.yaml with the env's Samba in place
// of the example directory (its groups' OU as ldap.groupBaseDN), listening
// on addr, and returns its path.
func (e *env) shippedConfig(addr string) string {
	e.t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "config.yaml"))
	if err != nil {
		e.t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		e.t.Fatalf("deploy/config.yaml: %v", err)
	}
	ldap, _ := cfg["ldap"].(map[string]any)
	server, _ := cfg["server"].(map[string]any)
	if ldap == nil || server == nil {
		e.t.Fatalf("deploy/config.yaml has no ldap or server section:\n%s", data)
	}
	for k, v := range map[string]any{"urls": []string{e.samba.LDAPSURL}, "caFile": e.samba.CAFile, "bindDN": e.bindUPN,
		"bindPasswordFile": e.pwFile, "baseDN": e.ou, "groupBaseDN": e.ou} {
		ldap[k] = v
	}
	server["address"] = addr
	if data, err = yaml.Marshal(cfg); err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, fmt.Sprintf("shipped-config-%d.yaml", time.Now().UnixNano()))
	writeFile(e.t, path, data)
	return path
}

// shippedDaemon installs deploy/ and starts `run` with the
// ServiceAccount's token and the shipped settings.
func (e *env) shippedDaemon() *daemon {
	e.t.Helper()
	e.installDeploy()
	kc, _ := e.saKubeconfig()
	addr := freeAddr(e.t)
	d := startDaemon(e.t, e.shippedConfig(addr), kc, addr)
	waitUntil(e.t, "the daemon leads and is ready", func() error {
		if m, _ := get("http://" + addr + "/metrics"); !strings.Contains(m, "\nrunai_ldap_sync_leader 1\n") {
			return fmt.Errorf("not leader")
		}
		if _, code := get("http://" + addr + "/readyz"); code != 200 {
			return fmt.Errorf("readyz %d", code)
		}
		return nil
	})
	return d
}

// bombRecord is the record: gzip+base64 of a JSON list of about
// 16 MB, some 25 KB encoded.
func bombRecord(t *testing.T) string {
	var plain bytes.Buffer
	plain.WriteByte('[')
	for i := 0; plain.Len() < 16<<20; i++ {
		if i > 0 {
			plain.WriteByte(',')
		}
		plain.WriteString(`"aaaaaaaaaaaaaaaaaaaa"`)
	}
	plain.WriteByte(']')
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	_, _ = zw.Write(plain.Bytes())
	_ = zw.Close()
	v := "gzip+base64:" + base64.StdEncoding.EncodeToString(z.Bytes())
	if len(v) > 64<<10 {
		t.Fatalf("bomb record is %d bytes", len(v))
	}
	return v
}

// vmHWM is a process's peak resident set size in MiB.
func vmHWM(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb >> 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestInsiderNamespaceAdminCannotBloatTheDaemon: the admin of an
// unrelated namespace creates the six bombs (managed names, the
// shard label, a 16 MB gzipped record each) and label-matching bindings of
// about 1 MB. The daemon, running as shipped, keeps syncing, stays far
// below its memory limit (deploy/), and `once` too; the bombs are never decoded. A
// bomb on a planned binding (a project's) is that binding's error only.
func TestInsiderNamespaceAdminCannotBloatTheDaemon(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user("alice", true)
	e.user("bob", true)
	e.group("runai-alpha-executors", "alice")
	e.group("runai-beta-executors", "alice")
	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	e.namespace("runai-beta", map[string]string{"runai/queue": "beta"})
	admin := e.insider("team", "team-admin", true, rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}})

	bomb := bombRecord(t)
	shard := map[string]string{model.ShardOfLabel: "x"}
	rb := func(ns, name string, roleRef rbacv1.RoleRef, subjects []rbacv1.Subject) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: shard,
			Annotations: map[string]string{model.ManagedAnnotation: bomb}}, RoleRef: roleRef, Subjects: subjects}
	}
	for _, name := range []string{model.ExecutorBinding, model.ExecutorBinding + "-1", model.ExecutorBinding + "-2",
		model.IndexMapBinding + "-1", model.IndexMapBinding + "-2", model.IndexMapBinding + "-3"} {
		if _, err := admin.RbacV1().RoleBindings("team").Create(ctx, rb("team", name, kube.ExpectedRoleRef(name), nil), metav1.CreateOptions{}); err != nil {
			t.Fatalf("the namespace admin creates %s: %v", name, err)
		}
	}
	subjects := make([]rbacv1.Subject, 8000)
	for i := range subjects {
		subjects[i] = kube.UserSubject(fmt.Sprintf("%0100d", i))
	}
	const big = 20
	for i := 0; i < big; i++ {
		b := rb("team", fmt.Sprintf("big-%d", i), kube.ExpectedRoleRef(model.ExecutorBinding), subjects)
		delete(b.Annotations, model.ManagedAnnotation)
		if _, err := admin.RbacV1().RoleBindings("team").Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the namespace admin creates a 1 MB binding: %v", err)
		}
	}
	// And, by beta's own admin, a bomb on beta's executor binding: planned,
	// so read, within its bounds, and beta's error alone.
	betaAdmin := e.insider("runai-beta", "beta-admin", true, rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}})
	betaBomb := rb("runai-beta", model.ExecutorBinding, kube.ExpectedRoleRef(model.ExecutorBinding), nil)
	betaBomb.Labels = nil
	if _, err := betaAdmin.RbacV1().RoleBindings("runai-beta").Create(ctx, betaBomb, metav1.CreateOptions{}); err != nil {
		t.Fatalf("beta's admin creates the bomb on beta's executor binding: %v", err)
	}

	d := e.shippedDaemon()
	e.waitUsers(alphaExec, 60*time.Second, "alice")
	// Polls go on: a member added now is synced.
	if err := e.samba.AddMembers(e.groups["runai-alpha-executors"], e.users["bob"]); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(alphaExec, 60*time.Second, "alice", "bob")
	if !d.alive() {
		t.Fatal("the daemon died")
	}
	if rss := vmHWM(t, d.cmd.Process.Pid); rss > 150 {
		t.Errorf("daemon peak RSS %d MiB with the bombs (issue: about 1,000 MiB; the Deployment's limit is 320Mi)", rss)
	} else {
		t.Logf("daemon peak RSS with the bombs: %d MiB", rss)
	}
	if b := e.binding(model.ExecutorRef("runai-beta")); len(b.Users()) != 0 {
		t.Errorf("beta, whose record is over its bounds, was written: %v", b.Users())
	}
	if m, _ := get("http://" + d.addr + "/metrics"); !strings.Contains(m, `namespace="runai-beta",reason="ownership_record"} 1`) {
		t.Errorf("beta's over-bound record is not reported as its error:\n%s", grepLines(m, "binding_sync_errors"))
	}
	if strings.Contains(d.logs.String(), "team") && strings.Contains(d.logs.String(), "ownership record") {
		t.Errorf("a binding in the unrelated namespace was decoded:\n%s", grepLines(d.logs.String(), "team"))
	}
	d.stop(syscall.SIGTERM, 30*time.Second)

	// `once`, which reads with LIST, the same.
	r := e.runAs(e.kubeconfig(), "once", "--config", e.shippedConfig(freeAddr(t)))
	if r.code != 0 && r.code != 1 {
		t.Fatalf("once exited %d:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, `"namespace":"team"`) {
		t.Errorf("once reports on the unrelated namespace:\n%s", grepLines(r.stderr, "team"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestInsiderLabellerCannotMoveAProject replays the issue's
// `kubectl label ns monitoring runai/queue=p1
// runai-ldap-sync.github.io/provisioned=true` with a token that may only
// patch namespaces, against the daemon running as shipped. p1 stays in
// runai-p1 (which holds its executor binding) though monitoring is older;
// the copy is reported by an Event in monitoring and the skip metric. The
// viewer ClusterRoleBinding's Events are in the Run:AI namespace, none in
// default (item 8).
func TestInsiderLabellerCannotMoveAProject(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.namespace("monitoring", nil)      // older than the project's namespace
	time.Sleep(1100 * time.Millisecond) // creationTimestamp has a resolution of one second
	e.user("alice", true)
	e.user("bob", true)
	e.user("vera", true)
	e.group("runai-p1-executors", "alice")
	e.group("runai-viewers", "vera")
	e.namespace("runai-p1", map[string]string{"runai/queue": "p1"})
	labeller := e.insider("default", "labeller", false, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"patch"}})

	d := e.shippedDaemon()
	p1 := model.ExecutorRef("runai-p1")
	e.waitUsers(p1, 60*time.Second, "alice")

	patch := fmt.Sprintf(`{"metadata":{"labels":{"runai/queue":"p1",%q:"true"}}}`, config.ProvisionedLabel)
	if _, err := labeller.CoreV1().Namespaces().Patch(ctx, "monitoring", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("the labeller labels monitoring: %v", err)
	}
	// The label change queues a full cycle, which reports the copy.
	waitUntil(t, "a ProjectLabelCopied Event in monitoring", func() error {
		evs, err := e.cs.CoreV1().Events("monitoring").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Reason == "ProjectLabelCopied" && ev.InvolvedObject.Kind == "Namespace" && strings.Contains(ev.Message, "runai/queue=p1") {
				return nil
			}
		}
		return fmt.Errorf("%d events, none ProjectLabelCopied", len(evs.Items))
	})
	// The gauge is set when that cycle ends, just after the Event.
	waitUntil(t, "projects_skipped{reason=copied_label} 1", func() error {
		if m, _ := get("http://" + d.addr + "/metrics"); !strings.Contains(m, `runai_ldap_sync_projects_skipped{reason="copied_label"} 1`) {
			return fmt.Errorf("no copied_label skip in the metrics:\n%s", grepLines(m, "projects_skipped"))
		}
		return nil
	})
	if err := e.samba.AddMembers(e.groups["runai-p1-executors"], e.users["bob"]); err != nil {
		t.Fatal(err)
	}
	e.waitUsers(p1, 60*time.Second, "alice", "bob")
	if _, err := e.cs.RbacV1().RoleBindings("monitoring").Get(ctx, model.ExecutorBinding, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the copied label moved p1: an executor binding exists in monitoring (%v)", err)
	}

	// Item 8: the viewer binding's Events name users: in runai, not default.
	// Its first creation is only logged (one summary line per cycle), so
	// change it: bob joins the global viewers.
	if err := e.samba.AddMembers(e.groups["runai-viewers"], e.users["bob"]); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the viewer binding's Event in runai", func() error {
		evs, err := e.cs.CoreV1().Events("runai").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.InvolvedObject.Kind == model.KindClusterRoleBinding && ev.InvolvedObject.Name == model.ViewerBinding {
				return nil
			}
		}
		return fmt.Errorf("%d events in runai, none about the viewer binding", len(evs.Items))
	})
	evs, err := e.cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		t.Errorf("an Event in default: %s %s/%s: %s", ev.Reason, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)
	}
}
