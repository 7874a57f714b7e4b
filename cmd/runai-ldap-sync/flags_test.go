package main

import (
	"bytes"
	"strings"
	"testing"
)

// --approve-removals approves one cycle of `once`; `run` refuses it, so
// the guard can never be switched off for the life of a pod.
func TestApproveRemovalsIsForOnceOnly(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--approve-removals", "--config", "/nonexistent"}, &out, &errOut); code != exitUsage {
		t.Errorf("run --approve-removals exited %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errOut.String(), "approve-removals") {
		t.Errorf("the refusal does not name the flag: %q", errOut.String())
	}
	errOut.Reset()
	// once accepts it (and then fails on the missing file, a config error).
	code := run([]string{"once", "--approve-removals", "--config", "/nonexistent"}, &out, &errOut)
	if strings.Contains(errOut.String(), "flag provided but not defined") {
		t.Errorf("once refused --approve-removals (exit %d): %q", code, errOut.String())
	}
}
