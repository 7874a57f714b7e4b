package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// --approve-removals approves one named binding for one cycle of `once`;
// `run` refuses it, so the guard can never be switched off for the life
// of a pod, nor for every binding at once.
func TestApproveRemovalsIsForOnceOnly(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--approve-removals", "ClusterRoleBinding/runai-job-viewer-manual", "--config", "/nonexistent"}, &out, &errOut); code != exitUsage {
		t.Errorf("run --approve-removals exited %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errOut.String(), "approve-removals") {
		t.Errorf("the refusal does not name the flag: %q", errOut.String())
	}
	errOut.Reset()
	// once accepts it (and then fails on the missing file, a config error).
	code := run([]string{"once", "--approve-removals", "RoleBinding/runai-p1/runai-job-executor-manual", "--config", "/nonexistent"}, &out, &errOut)
	if strings.Contains(errOut.String(), "flag provided but not defined") || strings.Contains(errOut.String(), "names no binding") {
		t.Errorf("once refused --approve-removals (exit %d): %q", code, errOut.String())
	}
	// A binding must be named: no approve-everything.
	errOut.Reset()
	for _, bad := range []string{"true", "all", "RoleBinding/x", "ClusterRoleBinding/"} {
		errOut.Reset()
		if code := run([]string{"once", "--approve-removals", bad, "--config", "/nonexistent"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "names no binding") {
			t.Errorf("--approve-removals %q: exit %d, %q", bad, code, errOut.String())
		}
	}
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]model.Ref{
		"ClusterRoleBinding/runai-job-viewer-manual":     model.ViewerRef(),
		"RoleBinding/runai-p1/runai-job-executor-manual": model.ExecutorRef("runai-p1"),
	} {
		if got, err := parseRef(in); err != nil || got != want || got.String() != in {
			t.Errorf("parseRef(%q) = %v, %v", in, got, err)
		}
	}
}
