// The kube-apiserver's audit log, for counting exactly which requests a client made.

package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

// daemonUserAgent is the User-Agent of the daemon's API client (its
// leader election's is another).
const daemonUserAgent = "runai-ldap-sync"

// auditLog is a kube-apiserver audit log (metadata of every request), for
// counting exactly which requests a client made.
type auditLog string

// auditEvent is what tests read of an audit.k8s.io/v1 Event.
type auditEvent struct {
	Verb       string `json:"verb"`
	UserAgent  string `json:"userAgent"`
	RequestURI string `json:"requestURI"`
	ObjectRef  struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
}

// withAuditLog returns kube-apiserver options that log each request once,
// when it completes, to the returned log.
func withAuditLog(t *testing.T) (harness.APIServerOptions, auditLog) {
	t.Helper()
	dir := t.TempDir()
	policy := filepath.Join(dir, "audit-policy.yaml")
	writeFile(t, policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived, ResponseStarted]\nrules:\n- level: Metadata\n"))
	path := filepath.Join(dir, "audit.log")
	return harness.APIServerOptions{ExtraArgs: []string{"--audit-policy-file=" + policy, "--audit-log-path=" + path, "--audit-log-mode=blocking"}}, auditLog(path)
}

// requests returns the requests logged so far (whole lines) whose
// User-Agent is ua.
func (a auditLog) requests(t *testing.T, ua string) []auditEvent {
	t.Helper()
	data, err := os.ReadFile(string(a))
	if err != nil {
		t.Fatal(err)
	}
	var out []auditEvent
	for _, line := range strings.Split(string(data[:bytes.LastIndexByte(data, '\n')+1]), "\n") {
		var ev auditEvent
		if line == "" || json.Unmarshal([]byte(line), &ev) != nil || ev.UserAgent != ua {
			continue
		}
		out = append(out, ev)
	}
	return out
}
