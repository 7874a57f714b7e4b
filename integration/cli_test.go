// One-shot commands of the binary under test (once, diff, explain, check-config,
// doctor) and what they print.

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

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

// runAs runs the daemon binary with the given kubeconfig.
func (e *env) runAs(kubeconfig string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--kubeconfig", kubeconfig)...)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := exitStatus(err)
	if code == exitNotRun {
		e.t.Fatalf("run %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// exitNotRun is exitStatus's answer for a process that could not be
// started or waited for.
const exitNotRun = -1000

// exitStatus is the exit status of a process whose Run or Wait returned
// err: its exit code, the negated signal if a signal killed it, or
// exitNotRun.
func exitStatus(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case !errors.As(err, &ee):
		return exitNotRun
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -int(ws.Signal())
	}
	return ee.ExitCode()
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
