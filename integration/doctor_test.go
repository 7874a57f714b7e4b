package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// writeLine is a line of diff's text output that adds or removes a user.
var writeLine = regexp.MustCompile(`(?m)^[+-] `)

type doctorCheck struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

type doctorJSON struct {
	Checks  []doctorCheck  `json:"checks"`
	Summary map[string]int `json:"summary"`
}

// named returns the checks called name.
func (d doctorJSON) named(name string) []doctorCheck {
	var out []doctorCheck
	for _, c := range d.Checks {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

func (d doctorJSON) String() string {
	var b strings.Builder
	for _, c := range d.Checks {
		fmt.Fprintf(&b, "%-4s %-20s %s\n", c.Status, c.Name, c.Message)
		if c.Fix != "" {
			fmt.Fprintf(&b, "     fix: %s\n", c.Fix)
		}
	}
	return b.String()
}

// doctor runs `doctor -o json` with kubeconfig and decodes its report.
func (e *env) doctor(kubeconfig string, args ...string) (doctorJSON, int) {
	e.t.Helper()
	r := e.runAs(kubeconfig, append([]string{"doctor", "-o", "json"}, args...)...)
	var d doctorJSON
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		e.t.Fatalf("doctor -o json: exit %d, not JSON: %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
	}
	return d, r.code
}

// expectCheck fails unless a check called name has status and its
// message (and fix) contain the given texts.
func expectCheck(t *testing.T, d doctorJSON, name, status, message, fix string) {
	t.Helper()
	for _, c := range d.named(name) {
		if c.Status == status && strings.Contains(c.Message, message) && strings.Contains(c.Fix, fix) {
			return
		}
	}
	t.Errorf("no %s check %s with message %q and fix %q in:\n%s", status, name, message, fix, d)
}

// runaiCLIRoles gives Run:AI's three ClusterRoles what Run:AI's CLI uses:
// viewers list pods and jobs, executors create pods and exec into them,
// every executor updates the ConfigMap runai-cli-index.
func (e *env) runaiCLIRoles() {
	e.t.Helper()
	rules := map[string][]rbacv1.PolicyRule{
		model.ViewerRole: {{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get", "list", "watch"}}},
		model.ExecutorRole: {{APIGroups: []string{""}, Resources: []string{"pods", "pods/exec", "pods/log"}, Verbs: []string{"get", "list", "create", "delete"}}},
		model.IndexMapRole: {{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"runai-cli-index"}, Verbs: []string{"get", "update", "patch"}}},
	}
	for name, r := range rules {
		cr, err := e.cs.RbacV1().ClusterRoles().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		cr.Rules = r
		if _, err := e.cs.RbacV1().ClusterRoles().Update(context.Background(), cr, metav1.UpdateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestDoctor runs `doctor` on real servers: a healthy setup is all ok,
// and each thing broken below is caught with its fix: IDs that are not the
// API server's user names (an OIDC-style prefix), a missing group, the
// admission policy not installed, a missing ClusterRole, a wrong password
// (tried once: the account's badPwdCount goes up by one).
func TestDoctor(t *testing.T) {
	const aliceToken, oidcToken = "alice-token-0123456789", "oidc-alice-token-0123456789"
	e := newEnvWith(t, harness.APIServerOptions{ExtraTokens: []harness.Token{
		{Token: aliceToken, User: "alice", UID: "alice"},
		{Token: oidcToken, User: "oidc:alice@example.test", UID: "oidc-alice"},
	}})
	ctx := context.Background()
	seedSample(e)
	e.group("runai-beta-viewers", "vera")
	e.runaiCLIRoles()
	// Polls see deletions: the bind account may read tombstones, and there
	// is one.
	sid, err := e.samba.SID(e.bindAccountDN())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.samba.GrantDeletedObjectsRead(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if err := e.samba.Delete(e.user("gone-before", true)); err != nil {
		t.Fatal(err)
	}
	// The bindings hold users (the cycle runs as admin before deploy/'s
	// admission policies, which let only the daemon write its state).
	cfg := e.config(groupsYAML + sampleProjects)
	e.mustRun("once", "--config", cfg)
	e.installDeploy()
	aliceKC, oidcKC := filepath.Join(e.dir, "alice-kubeconfig"), filepath.Join(e.dir, "oidc-kubeconfig")
	if err := e.api.WriteKubeconfig(aliceKC, aliceToken); err != nil {
		t.Fatal(err)
	}
	if err := e.api.WriteKubeconfig(oidcKC, oidcToken); err != nil {
		t.Fatal(err)
	}

	// Healthy, as a cluster admin with alice's kubeconfig for the IDs.
	d, code := e.doctor(e.kubeconfig(), "--config", cfg, "--user-kubeconfig", aliceKC)
	if code != 0 || d.Summary["ok"] != len(d.Checks) {
		t.Errorf("healthy setup: exit %d, want 0 and every check ok:\n%s", code, d)
	}
	for name, n := range map[string]int{"ldap.bind": 1, "ldap.bases": 1, "ldap.groups": 1, "ldap.deletions": 1, "kube.connect": 1,
		"runai.clusterroles": 3, "rbac.bind": 3, "rbac.daemon": 1, "admission-policy": 1, "grants": 3, "user-id": 1} {
		if got := len(d.named(name)); got != n {
			t.Errorf("%d %s checks, want %d", got, name, n)
		}
	}
	expectCheck(t, d, "user-id", "ok", "alice", "")
	expectCheck(t, d, "grants", "ok", "create pods/exec in runai-alpha", "")
	expectCheck(t, d, "ldap.groups", "ok", "all 5 groups of 2 projects found", "")

	// As the daemon's own ServiceAccount: its RBAC is checked with its own
	// access reviews; what it may not read is a warning, not a pass.
	saKC, _ := e.saKubeconfig()
	d, code = e.doctor(saKC, "--config", cfg, "--user-kubeconfig", aliceKC)
	expectCheck(t, d, "rbac.daemon", "ok", "system:serviceaccount:runai:runai-ldap-sync may do", "")
	expectCheck(t, d, "rbac.bind", "ok", "may bind ClusterRole runai-job-executor", "")
	expectCheck(t, d, "runai.clusterroles", "warn", "could not check", "cluster admin")
	if code != 1 || d.Summary["fail"] != 0 {
		t.Errorf("as the ServiceAccount: exit %d, want 1 (warnings only):\n%s", code, d)
	}

	// The API server calls alice oidc:alice@example.test (an OIDC username
	// prefix and claim upn): the IDs written do not match, and doctor says
	// which settings make them.
	d, code = e.doctor(e.kubeconfig(), "--config", cfg, "--user-kubeconfig", oidcKC)
	expectCheck(t, d, "user-id", "fail", "the directory yields alice", `set ldap.userIDAttribute: userPrincipalName, ldap.userIDPrefix: "oidc:"`)
	if code != 2 {
		t.Errorf("mismatched IDs: exit %d, want 2", code)
	}
	// With those settings, they match.
	fixed := e.configLDAP("  userIDAttribute: userPrincipalName\n  userIDPrefix: \"oidc:\"\n", groupsYAML+sampleProjects)
	d, _ = e.doctor(e.kubeconfig(), "--config", fixed, "--user-kubeconfig", oidcKC)
	expectCheck(t, d, "user-id", "ok", "oidc:alice@example.test", "")

	// A group of a current project is missing: a warning naming it.
	if err := e.samba.Delete(e.groups["runai-beta-viewers"]); err != nil {
		t.Fatal(err)
	}
	d, code = e.doctor(e.kubeconfig(), "--config", cfg, "--user-kubeconfig", aliceKC)
	expectCheck(t, d, "ldap.groups", "warn", "group runai-beta-viewers (groups.viewers runai-{project}-viewers, project beta) was not found", "create the group")
	if code != 1 {
		t.Errorf("missing group: exit %d, want 1:\n%s", code, d)
	}

	// The fence's parameters are looked up in another namespace: the
	// shipped fence then allows writes only from that namespace's
	// ServiceAccounts, so the daemon is refused every write.
	vab := e.cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	fence, err := vab.Get(ctx, fencePolicy, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	moved := fence.DeepCopy()
	moved.Spec.ParamRef.Namespace = "elsewhere"
	if _, err := vab.Update(ctx, moved, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d, code = e.doctor(e.kubeconfig(), "--config", cfg, "--user-kubeconfig", aliceKC)
	expectCheck(t, d, "admission-policy", "fail", "its parameters are in namespace elsewhere", "point the paramRef of ValidatingAdmissionPolicyBinding "+fencePolicy+" to namespace runai")
	if code != 2 {
		t.Errorf("fence parameters in another namespace: exit %d, want 2", code)
	}
	fence, err = vab.Get(ctx, fencePolicy, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fence.Spec.ParamRef.Namespace = "runai"
	if _, err := vab.Update(ctx, fence, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The guard store's policy is not installed: a stolen token could
	// write approvals.
	if err := e.cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, "runai-ldap-sync-state", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d, code = e.doctor(e.kubeconfig(), "--config", cfg, "--user-kubeconfig", aliceKC)
	expectCheck(t, d, "admission-policy.store", "fail", "no ValidatingAdmissionPolicy guards ConfigMap runai-ldap-sync-state", "runai-ldap-sync-state")
	expectCheck(t, d, "admission-policy", "ok", "ValidatingAdmissionPolicy "+fencePolicy, "")
	if code != 2 {
		t.Errorf("store policy not installed: exit %d, want 2", code)
	}

	// The admission policy is not installed.
	if err := e.cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, fencePolicy, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d, code = e.doctor(e.kubeconfig(), "--config", cfg, "--user-kubeconfig", aliceKC)
	expectCheck(t, d, "admission-policy", "fail", "no ValidatingAdmissionPolicy applies to system:serviceaccount:runai:runai-ldap-sync", "deploy/admission-policy.yaml")
	if code != 2 {
		t.Errorf("policy not installed: exit %d, want 2", code)
	}

	// A Run:AI ClusterRole is missing.
	if err := e.cs.RbacV1().ClusterRoles().Delete(ctx, model.ViewerRole, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d, _ = e.doctor(e.kubeconfig(), "--config", cfg, "--user-kubeconfig", aliceKC)
	expectCheck(t, d, "runai.clusterroles", "fail", "ClusterRole runai-job-viewer does not exist", "Run:AI")
	expectCheck(t, d, "grants", "fail", "may not list pods", "ClusterRole runai-job-viewer")

	// A wrong password: one bind, refused, not retried; nothing else of the
	// directory is checked.
	setLockoutPolicy(t, e.samba, 5, 30*time.Minute)
	before, _ := badPwdCount(t, e.samba, e.bindAccountDN())
	writeFile(t, e.pwFile, []byte("Wrong-Pa55-not-the-one\n"))
	d, code = e.doctor(e.kubeconfig(), "--config", cfg, "--user-kubeconfig", aliceKC)
	expectCheck(t, d, "ldap.bind", "fail", "refused the password for "+e.bindUPN, "ldap.bindPasswordFile")
	expectCheck(t, d, "ldap.groups", "warn", "not checked", "")
	if len(d.named("user-id")) != 0 || len(d.named("ldap.deletions")) != 0 {
		t.Errorf("directory checks ran after the bind failed:\n%s", d)
	}
	if code != 2 {
		t.Errorf("wrong password: exit %d, want 2", code)
	}
	after, locked := badPwdCount(t, e.samba, e.bindAccountDN())
	if after-before != 1 || locked {
		t.Errorf("badPwdCount went from %d to %d (locked %v): doctor must bind once", before, after, locked)
	}
	// Text output: one line per check with its status, the fix below.
	r := e.runAs(e.kubeconfig(), "doctor", "--config", cfg)
	if r.code != 2 || !strings.Contains(r.stdout, "fail  ldap.bind") || !strings.Contains(r.stdout, "fix: put the account's current password") {
		t.Errorf("doctor text: exit %d\n%s", r.code, r.stdout)
	}
}

// TestDiffExitCodes: diff exits 1 when it lists changes and 0 when there
// are none (kubectl diff's convention), and with an unreachable API server
// prints nothing on stdout and exits 2 with the error on stderr.
func TestDiffExitCodes(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	cfg := e.config(groupsYAML + sampleProjects)
	if r := e.run("diff", "--config", cfg); r.code != 1 || !strings.Contains(r.stdout, "+ alice") {
		t.Errorf("diff with changes: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.mustRun("once", "--config", cfg)
	// Nothing to write; the hand-added user is listed as a leftover, which
	// no cycle writes: still 0.
	if r := e.run("diff", "--config", cfg); r.code != 0 || writeLine.MatchString(r.stdout) || !strings.Contains(r.stdout, "? hand-added") {
		t.Errorf("diff without changes: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := e.run("diff", "--config", cfg, "-o", "json")
	for ref, p := range decodePlan(t, r.stdout) {
		if len(p.Add)+len(p.Remove) > 0 || p.Create {
			t.Errorf("diff -o json lists a change to %s: %+v", ref, p)
		}
	}
	if r.code != 0 {
		t.Errorf("diff -o json without changes: exit %d, want 0\n%s", r.code, r.stderr)
	}
	// Without the leftover, "no changes".
	e.setSubjects("runai-alpha", "alice", "bob", "carol", "erin")
	if r := e.run("diff", "--config", cfg); r.code != 0 || strings.TrimSpace(r.stdout) != "no changes" {
		t.Errorf("diff without changes: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.api.Stop()
	for _, format := range []string{"text", "json"} {
		r := e.run("diff", "--config", cfg, "-o", format)
		if r.code <= 1 || r.stdout != "" || !strings.Contains(r.stderr, "Error: the plan is incomplete") {
			t.Errorf("diff -o %s, API server down: exit %d (want >1), stdout %q (want nothing)\n%s", format, r.code, r.stdout, r.stderr)
		}
	}
}
