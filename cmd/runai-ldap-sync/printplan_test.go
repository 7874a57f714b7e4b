package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

func TestDiffShowsNamespacesAndTemplateObjects(t *testing.T) {
	rep := &controller.Report{
		Plans: []plan.BindingPlan{{Ref: model.ExecutorRef("runai-gamma"), Create: true, Add: []string{"gus"},
			Writes: []model.Change{{Ref: model.ExecutorRef("runai-gamma"), Create: true, Add: []string{"gus"}}}, Shards: 1}},
		Provision: controller.ProvisionReport{
			Namespaces: []plan.NamespaceAction{
				{Project: "gamma", Namespace: "runai-gamma", Create: true, Labels: map[string]string{"runai/queue": "gamma"}},
				{Project: "bare", Namespace: "runai-bare", Labels: map[string]string{"runai/queue": "bare"}},
			},
			Templates: []controller.TemplateChange{
				{Key: template.Key{Kind: "RoleBinding", Namespace: "runai-gamma", Name: "runai-scheduler-rw"}, Project: "gamma", Create: true},
				{Key: template.Key{Kind: "RoleBinding", Namespace: "runai-alpha", Name: "runai-scheduler-rw"}, Project: "alpha", Field: "subjects"},
			},
		},
	}
	var text bytes.Buffer
	if err := printPlan(&text, rep, "text"); err != nil {
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
	if err := printPlan(&js, rep, "json"); err != nil {
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

// diff shows what the ownership rules and the guard will do to a binding:
// adopted, forgotten and leftover users, held additions, a stale approval,
// and the command that approves exactly what is held.
func TestDiffShowsOwnershipAndApprovals(t *testing.T) {
	ref := model.ExecutorRef("runai-alpha")
	rep := &controller.Report{Plans: []plan.BindingPlan{{Ref: ref, Add: []string{"bob"}, Held: []string{"carol"}, HeldAdd: []string{"dan"},
		Adopt: []string{"alice"}, Disown: []string{"old"}, Leftovers: []string{"zed"}, StaleApproval: "true", ApprovalKey: "sha256:0123456789abcdef",
		ApproveCommand: plan.ApproveCommand("runai", ref, "sha256:0123456789abcdef")}}}
	var text bytes.Buffer
	if err := printPlan(&text, rep, "text"); err != nil {
		t.Fatal(err)
	}
	want := `RoleBinding/runai-alpha/runai-job-executor-manual
+ bob
! carol (removal held by the guard)
! +dan (addition held by the guard)
= alice (granted by the directory, already here: now managed)
~ old (gone from the binding: dropped from the ownership record)
? zed (leftover: not granted by the directory, not managed; kept)
~ approval "true" on the binding removed: approvals are read from the guard's store only
  approve exactly the held changes with: kubectl -n runai annotate configmap runai-ldap-sync-state approve.runai-ldap-sync.github.io/0123456789abcdef="RoleBinding/runai-alpha/runai-job-executor-manual"
`
	if text.String() != want {
		t.Errorf("diff text:\n%s\nwant:\n%s", text.String(), want)
	}
	var js bytes.Buffer
	if err := printPlan(&js, rep, "json"); err != nil {
		t.Fatal(err)
	}
	var out []planJSON
	if err := json.Unmarshal(js.Bytes(), &out); err != nil || len(out) != 1 {
		t.Fatalf("diff -o json: %v\n%s", err, js.String())
	}
	if p := out[0]; p.ApprovalKey != "sha256:0123456789abcdef" || !strings.HasPrefix(p.ApproveCommand, "kubectl -n runai annotate configmap") ||
		strings.Join(p.Adopt, ",") != "alice" || strings.Join(p.Leftovers, ",") != "zed" || strings.Join(p.HeldAdd, ",") != "dan" ||
		strings.Join(p.Disown, ",") != "old" || p.ApprovalRemoved != "true" {
		t.Errorf("diff -o json: %+v", p)
	}
	// A binding with only a leftover to report is listed.
	rep.Plans = []plan.BindingPlan{{Ref: ref, Leftovers: []string{"zed"}}}
	text.Reset()
	if err := printPlan(&text, rep, "text"); err != nil || !strings.Contains(text.String(), "? zed") {
		t.Errorf("leftover-only binding: %q, %v", text.String(), err)
	}
}

// diff shows which shard each user goes to or leaves, for a binding spread
// over shards.
func TestDiffShowsShards(t *testing.T) {
	ref := model.ViewerRef()
	s2, s3 := model.ShardRef(ref, 2), model.ShardRef(ref, 3)
	rep := &controller.Report{Plans: []plan.BindingPlan{{Ref: ref, Add: []string{"newbie"}, Remove: []string{"gone"}, Shards: 4,
		Writes: []model.Change{{Ref: s2, Remove: []string{"gone"}}, {Ref: s3, Create: true, Add: []string{"mover", "newbie"}}},
		Moves:  []model.Change{{Ref: ref, Remove: []string{"mover"}}}}}}
	var text bytes.Buffer
	if err := printPlan(&text, rep, "text"); err != nil {
		t.Fatal(err)
	}
	want := `ClusterRoleBinding/runai-job-viewer-manual (4 bindings: it and 3 shards)
+ newbie
- gone
  shard runai-job-viewer-manual-2: - gone
  shard runai-job-viewer-manual-3 (create): + mover, + newbie
  shard runai-job-viewer-manual: moves out mover (after the writes above)
`
	if text.String() != want {
		t.Errorf("diff text:\n%s\nwant:\n%s", text.String(), want)
	}
	var js bytes.Buffer
	if err := printPlan(&js, rep, "json"); err != nil {
		t.Fatal(err)
	}
	var out []planJSON
	if err := json.Unmarshal(js.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || len(out[0].Shards) != 3 || out[0].Shards[1].Name != s3.Name || !out[0].Shards[1].Create ||
		strings.Join(out[0].Shards[2].MoveOut, ",") != "mover" || out[0].ShardCount != 4 {
		t.Errorf("diff -o json:\n%s", js.String())
	}
}
