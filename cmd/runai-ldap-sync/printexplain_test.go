package main

import (
	"bytes"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func TestPrintExplanation(t *testing.T) {
	ex := &controller.Explanation{User: "erin",
		Projects: []controller.ProjectExplanation{{Project: "alpha", Namespace: "runai-alpha", Executor: controller.BindingExplanation{
			Binding: model.ExecutorRef("runai-alpha"), Granted: true, Via: []string{"erin ← alpha-executors"},
			Entries: []string{"CN=erin,OU=People (objectGUID 1)"}, Holds: true, Shard: model.ExecutorBinding + "-1", Pending: "add"}}},
		Viewer: &controller.BindingExplanation{Binding: model.ViewerRef(), Why: []string{"not a member of runai-viewers"}, Holds: true, HandAdded: true,
			Error: "lookup failed"},
	}
	var out bytes.Buffer
	printExplanation(&out, ex)
	want := `user erin

project alpha (namespace runai-alpha)
  executor  RoleBinding/runai-alpha/runai-job-executor-manual: granted
            via erin ← alpha-executors
            entry CN=erin,OU=People (objectGUID 1)
            the binding holds them (added by runai-ldap-sync), in its shard runai-job-executor-manual-1
            next cycle: add

  viewer    ClusterRoleBinding/runai-job-viewer-manual: not granted
            not a member of runai-viewers
            the binding holds them (added by hand, never removed by runai-ldap-sync)
            left untouched: lookup failed
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
