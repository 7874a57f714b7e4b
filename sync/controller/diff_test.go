package controller

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/provision"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

func TestDiffShowsNamespacesAndTemplateObjects(t *testing.T) {
	rep := &Report{
		Plans: []plan.BindingPlan{{Ref: kube.ExecutorRef("runai-gamma"), Create: true, Add: []string{"gus"}}},
		Provision: ProvisionReport{
			Namespaces: []plan.NamespaceAction{
				{Project: "gamma", Namespace: "runai-gamma", Create: true, Labels: map[string]string{"runai/queue": "gamma"}},
				{Project: "bare", Namespace: "runai-bare", Labels: map[string]string{"runai/queue": "bare"}},
			},
			Templates: []TemplateChange{
				{Key: provision.Key{Kind: "RoleBinding", Namespace: "runai-gamma", Name: "runai-scheduler-rw"}, Project: "gamma", Create: true},
				{Key: provision.Key{Kind: "RoleBinding", Namespace: "runai-alpha", Name: "runai-scheduler-rw"}, Project: "alpha", Field: "subjects"},
			},
		},
	}
	var text bytes.Buffer
	if err := PrintPlan(&text, rep, "text"); err != nil {
		t.Fatal(err)
	}
	want := `Namespace/runai-bare (label)
+ label runai/queue=bare
Namespace/runai-gamma (create)
+ label runai/queue=gamma
RoleBinding/runai-alpha/runai-scheduler-rw (bring back to the project template: subjects differs)
RoleBinding/runai-gamma/runai-scheduler-rw (create from the project template)
RoleBinding/runai-gamma/runai-job-executor-manual (create)
+ gus
`
	if text.String() != want {
		t.Errorf("diff text:\n%s\nwant:\n%s", text.String(), want)
	}

	var js bytes.Buffer
	if err := PrintPlan(&js, rep, "json"); err != nil {
		t.Fatal(err)
	}
	var out []planJSON
	if err := json.Unmarshal(js.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 5 || out[1].Kind != "Namespace" || !out[1].Create || out[1].Labels["runai/queue"] != "gamma" ||
		!out[3].Template || !out[3].Create || out[2].Field != "subjects" || out[4].Template || strings.Join(out[4].Add, ",") != "gus" {
		t.Errorf("diff -o json:\n%s", js.String())
	}
	// Entries without users still carry empty lists, as bindings do.
	if !strings.Contains(js.String(), `"add": []`) {
		t.Errorf("namespace entries lack add: []:\n%s", js.String())
	}
}
