package controller

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// A copied project label and provisioned marker (issue 24 item 2) move
// nothing: alpha stays in runai-alpha, which holds its binding; the copy
// is reported by an Event in the copying namespace and the skip metric.
func TestCopiedLabelMovesNothingAndIsReported(t *testing.T) {
	dir, cl := newFixture()
	cl.nss[0].HoldsExecutor = true
	cl.nss = append(cl.nss, model.Namespace{Name: "monitoring", Labels: map[string]string{"runai/queue": "alpha", config.ProvisionedLabel: "true"}})
	rec := &fakeRecorder{}
	m := metrics.NewMetrics("test")
	s := New(testConfig(), dir, cl, zap.NewNop(), m).WithEvents(rec)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if cl.bindings[model.ExecutorRef("monitoring")] != nil || cl.bindings[model.ExecutorRef("runai-alpha")] == nil {
		t.Fatalf("the copy moved the project: %v", cl.bindings)
	}
	var found bool
	for _, e := range rec.take() {
		if e.ref.Kind == kube.KindNamespace && e.ref.Name == "monitoring" && e.reason == ReasonProjectLabelCopied && strings.Contains(e.message, "runai/queue=alpha") {
			found = true
		}
	}
	if !found {
		t.Error("no ProjectLabelCopied Event on namespace monitoring")
	}
	if got := testCounter(t, m, "runai_ldap_sync_projects_skipped", `reason="copied_label"`); got != 1 {
		t.Errorf("projects_skipped{reason=copied_label} = %v, want 1", got)
	}
}
