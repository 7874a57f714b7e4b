// Command demo shows runai-ldap-sync end to end on this machine: it starts
// a real Samba AD domain controller and a real kube-apiserver, seeds a small
// sample, runs `diff` and `once`, prints the bindings, then lets the daemon
// report drift after a directory change, and cleans up. Run it with
// `make demo` (it needs root for Samba's fixed LDAP ports).
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> %s\033[0m\n", fmt.Sprintf(format, args...))
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "runai-ldap-sync-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step("building runai-ldap-sync")
	bin := filepath.Join(dir, "runai-ldap-sync")
	if err := sh(ctx, nil, "go", "build", "-o", bin, "./cmd/runai-ldap-sync"); err != nil {
		return err
	}

	step("starting a Samba Active Directory DC (EXAMPLE.TEST) and a kube-apiserver + etcd")
	samba, err := harness.StartSamba(ctx, filepath.Join(dir, "samba"))
	if err != nil {
		return err
	}
	defer samba.Stop()
	etcd, err := harness.StartEtcd(ctx, filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer etcd.Stop()
	api, err := harness.StartAPIServer(ctx, etcd, filepath.Join(dir, "apiserver"))
	if err != nil {
		return err
	}
	defer api.Stop()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := api.WriteKubeconfig(kubeconfig, api.AdminToken); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(api.RestConfig())
	if err != nil {
		return err
	}

	step("seeding Active Directory: OU=Demo with users and groups")
	d := &seed{s: samba, dns: map[string]string{}}
	d.ou("Demo")
	for _, u := range []string{"alice", "bob", "carol", "erin", "frank", "vera", "gina"} {
		d.user(u, true)
	}
	d.user("dave", false)
	d.group("runai-vision-core", "carol", "erin")
	d.group("runai-vision-executors", "alice", "bob", "dave", "runai-vision-core")
	d.group("runai-vision-viewers", "vera")
	d.group("runai-nlp-executors", "bob", "frank")
	d.group("runai-viewers", "gina")
	svc := d.user("svc-runai-sync", true)
	if d.err == nil {
		d.err = samba.SetPassword(svc, "Demo-Sync-Pa55")
	}
	if d.err != nil {
		return d.err
	}
	fmt.Println(`  runai-vision-executors: alice, bob, dave (disabled), group runai-vision-core (carol, erin)
  runai-vision-viewers:   vera
  runai-nlp-executors:    bob, frank
  runai-viewers:          gina (viewer of every project)`)

	step("seeding Kubernetes: Run:AI's ClusterRoles, namespace runai, two projects")
	if err := seedKube(ctx, cs); err != nil {
		return err
	}
	fmt.Println(`  namespace runai-vision  labelled runai/queue=vision, executor binding holds hand-added user "ops-oncall"
  namespace runai-nlp     labelled runai/queue=nlp`)

	pw := filepath.Join(dir, "bind-password")
	if err := os.WriteFile(pw, []byte("Demo-Sync-Pa55\n"), 0o600); err != nil {
		return err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`schedule: "@every 1h"
mode: enforce
ldap:
  urls: [%q]
  caFile: %s
  bindDN: svc-runai-sync@example.test
  bindPasswordFile: %s
  baseDN: "OU=Demo,DC=example,DC=test"
groups:
  executors: ["runai-{project}-executors"]
  viewers: ["runai-{project}-viewers"]
  globalViewers: ["runai-viewers"]
projects:
  namespaceLabel: runai/queue
incremental:
  pollInterval: 1s
server:
  address: %q
`, samba.LDAPSURL, samba.CAFile, pw, metricsAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	fmt.Printf("\nconfig.yaml:\n%s", indent(cfg))

	step("runai-ldap-sync diff  (computes the plan, writes nothing; exit status 1: there are changes)")
	// Exit status 1 means changes, as kubectl diff's; 2 an error.
	if err := sh(ctx, os.Stdout, bin, "diff", "--config", cfgPath, "--kubeconfig", kubeconfig); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			return err
		}
	}

	step("runai-ldap-sync once  (one sync cycle; JSON log lines on stderr)")
	if err := sh(ctx, nil, bin, "once", "--config", cfgPath, "--kubeconfig", kubeconfig); err != nil {
		return err
	}

	step("the bindings now")
	if err := printBindings(ctx, cs); err != nil {
		return err
	}

	step("an AD admin removes bob from runai-vision-executors; someone deletes alice from the binding by hand")
	if err := samba.RemoveMembers(d.dns["runai-vision-executors"], d.dns["bob"]); err != nil {
		return err
	}
	if err := removeSubject(ctx, cs, "runai-vision", "alice"); err != nil {
		return err
	}

	step("runai-ldap-sync run  (the daemon; its first cycle repairs the drift, /metrics shows what it found)")
	// While it runs, an AD admin adds frank to vision: a change poll carries
	// it to the binding in seconds, though the schedule is hourly.
	addFrank := func() error {
		step("while the daemon runs, an AD admin adds frank to runai-vision-executors (the schedule is hourly)")
		start := time.Now()
		if err := samba.AddMembers(d.dns["runai-vision-executors"], d.dns["frank"]); err != nil {
			return err
		}
		for time.Since(start) < 30*time.Second {
			rb, err := cs.RbacV1().RoleBindings("runai-vision").Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
			if err == nil && hasUser(rb.Subjects, "frank") {
				fmt.Printf("  frank is in RoleBinding/runai-vision/%s %.1f s later (a change poll, not a cycle)\n", model.ExecutorBinding, time.Since(start).Seconds())
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return fmt.Errorf("frank did not reach the binding within 30s")
	}
	if err := daemonOnce(ctx, bin, cfgPath, kubeconfig, metricsAddr, addFrank); err != nil {
		return err
	}

	step("the bindings now")
	if err := printBindings(ctx, cs); err != nil {
		return err
	}
	step("done: servers stopped, temporary files removed")
	return nil
}

type seed struct {
	s    *harness.Samba
	ouDN string
	dns  map[string]string
	err  error
}

func (d *seed) ou(name string) {
	if d.err == nil {
		d.ouDN, d.err = d.s.AddOU(name)
	}
}

func (d *seed) user(sam string, enabled bool) string {
	if d.err == nil {
		d.dns[sam], d.err = d.s.AddUser(d.ouDN, sam, enabled)
	}
	return d.dns[sam]
}

func (d *seed) group(cn string, members ...string) {
	if d.err != nil {
		return
	}
	d.dns[cn], d.err = d.s.AddGroup(d.ouDN, cn)
	var dns []string
	for _, m := range members {
		dns = append(dns, d.dns[m])
	}
	if d.err == nil {
		d.err = d.s.AddMembers(d.dns[cn], dns...)
	}
}

func seedKube(ctx context.Context, cs kubernetes.Interface) error {
	for _, role := range []string{model.ViewerRole, model.ExecutorRole, model.IndexMapRole} {
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}}
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for name, labels := range map[string]map[string]string{
		"runai": nil, "runai-vision": {"runai/queue": "vision"}, "runai-nlp": {"runai/queue": "nlp"},
	} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding, Namespace: "runai-vision"},
		RoleRef:    kube.ExpectedRoleRef(model.ExecutorBinding),
		Subjects:   []rbacv1.Subject{kube.UserSubject("ops-oncall")},
	}
	_, err := cs.RbacV1().RoleBindings("runai-vision").Create(ctx, rb, metav1.CreateOptions{})
	return err
}

func removeSubject(ctx context.Context, cs kubernetes.Interface, ns, user string) error {
	rb, err := cs.RbacV1().RoleBindings(ns).Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
	if err != nil {
		return err
	}
	var keep []rbacv1.Subject
	for _, s := range rb.Subjects {
		if s.Name != user {
			keep = append(keep, s)
		}
	}
	rb.Subjects = keep
	_, err = cs.RbacV1().RoleBindings(ns).Update(ctx, rb, metav1.UpdateOptions{})
	return err
}

func printBindings(ctx context.Context, cs kubernetes.Interface) error {
	show := func(ref string, subjects []rbacv1.Subject, annotations map[string]string) {
		var names []string
		for _, s := range subjects {
			names = append(names, s.Kind+":"+s.Name)
		}
		sort.Strings(names)
		fmt.Printf("  %-58s %s\n", ref, strings.Join(names, " "))
		fmt.Printf("  %-58s managed by runai-ldap-sync: %s\n", "", annotations[model.ManagedAnnotation])
	}
	crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, model.ViewerBinding, metav1.GetOptions{})
	if err != nil {
		return err
	}
	show("ClusterRoleBinding/"+crb.Name, crb.Subjects, crb.Annotations)
	for _, ns := range []string{"runai-vision", "runai-nlp"} {
		rb, err := cs.RbacV1().RoleBindings(ns).Get(ctx, model.ExecutorBinding, metav1.GetOptions{})
		if err != nil {
			return err
		}
		show("RoleBinding/"+ns+"/"+rb.Name, rb.Subjects, rb.Annotations)
	}
	rb, err := cs.RbacV1().RoleBindings("runai").Get(ctx, model.IndexMapBinding, metav1.GetOptions{})
	if err != nil {
		return err
	}
	show("RoleBinding/runai/"+rb.Name, rb.Subjects, rb.Annotations)
	return nil
}

// daemonOnce starts the daemon, waits for its first cycle, prints the drift
// metrics, runs meanwhile, and stops it with SIGTERM.
func daemonOnce(ctx context.Context, bin, cfg, kubeconfig, addr string, meanwhile func() error) error {
	cmd := exec.CommandContext(ctx, bin, "run", "--config", cfg, "--kubeconfig", kubeconfig)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill() }()
	deadline := time.Now().Add(time.Minute)
	for {
		if body, err := httpGet("http://" + addr + "/readyz"); err == nil && strings.HasPrefix(body, "ok") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon not ready within a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	body, err := httpGet("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	fmt.Println("\n  drift found by the cycle (before its writes), from /metrics:")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "runai_ldap_sync_binding_drift") && !strings.HasSuffix(line, " 0") ||
			strings.HasPrefix(line, "runai_ldap_sync_cycles_total") ||
			strings.HasPrefix(line, "runai_ldap_sync_members_skipped{reason=\"disabled\"}") {
			fmt.Println("  " + line)
		}
	}
	if err := meanwhile(); err != nil {
		return err
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return cmd.Wait()
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url) //nolint:gosec // loopback
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func sh(ctx context.Context, stdout io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	if stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

func hasUser(subjects []rbacv1.Subject, name string) bool {
	for _, s := range subjects {
		if s.Kind == rbacv1.UserKind && s.Name == name {
			return true
		}
	}
	return false
}
