package doctor

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		statuses []Status
		want     int
	}{
		{nil, ExitOK},
		{[]Status{OK, OK}, ExitOK},
		{[]Status{OK, Warn}, ExitWarnings},
		{[]Status{Warn, Fail, OK}, ExitFailures},
	} {
		r := &Report{}
		for _, s := range tc.statuses {
			r.add(Check{Name: "x", Status: s})
		}
		if got := r.ExitCode(); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.statuses, got, tc.want)
		}
	}
}

func TestWrite(t *testing.T) {
	r := &Report{}
	r.add(Check{Name: CheckBindLDAP, Status: OK, Message: "bound"})
	r.add(Check{Name: CheckGroups, Status: Warn, Message: "group x was not found", Fix: "create it"})
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ok    ldap.bind", "warn  ldap.groups          group x was not found", "fix: create it", "1 ok, 1 warnings, 0 failures"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Checks  []Check        `json:"checks"`
		Summary map[string]int `json:"summary"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil || len(got.Checks) != 2 || got.Checks[1].Fix != "create it" || got.Summary["warn"] != 1 {
		t.Errorf("JSON %s: %+v %v", js.String(), got, err)
	}
}

func TestDaemonAccess(t *testing.T) {
	cfg := config.Default()
	cfg.Kubernetes.RunaiNamespace = "runai"
	all := map[string]bool{}
	for _, a := range DaemonAccess(&cfg, "runai-alpha", []string{"runai-scheduler-rw"}) {
		all[a.String()] = true
	}
	for _, want := range []string{
		"list namespaces", "watch namespaces",
		"create rolebindings.rbac.authorization.k8s.io",
		"patch clusterrolebindings.rbac.authorization.k8s.io runai-job-viewer-manual",
		"update rolebindings.rbac.authorization.k8s.io runai-job-executor-manual in runai-alpha",
		"patch rolebindings.rbac.authorization.k8s.io runai-cli-index-map-editor in runai",
		"update leases.coordination.k8s.io runai-ldap-sync in runai",
		"bind clusterroles.rbac.authorization.k8s.io runai-scheduler-rw",
		"update configmaps runai-ldap-sync-state in runai",
	} {
		if !all[want] {
			t.Errorf("DaemonAccess lacks %q", want)
		}
	}
	if all["create namespaces"] {
		t.Error("create namespaces asked without projects.createNamespaces")
	}
	a := Access{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "ns"}
	if got := a.CanI("alice"); got != "kubectl auth can-i create pods/exec -n ns --as alice" {
		t.Errorf("CanI: %s", got)
	}
}

func TestDaemonUser(t *testing.T) {
	cfg := config.Default()
	cfg.Kubernetes.RunaiNamespace = "runai"
	for _, tc := range []struct{ flag, caller, want string }{
		{"", "harness-admin", "system:serviceaccount:runai:runai-ldap-sync"},
		{"", "system:serviceaccount:ops:sync", "system:serviceaccount:ops:sync"},
		{"my-release", "harness-admin", "system:serviceaccount:runai:my-release"},
		{"ops/sync", "harness-admin", "system:serviceaccount:ops:sync"},
		{"system:serviceaccount:a:b", "system:serviceaccount:ops:sync", "system:serviceaccount:a:b"},
	} {
		d := &Doctor{Config: &cfg, DaemonUser: tc.flag}
		if got := d.daemonUser(tc.caller); got != tc.want {
			t.Errorf("--service-account %q as %s: %s, want %s", tc.flag, tc.caller, got, tc.want)
		}
	}
}
