package controller

import (
	"context"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
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
	cl.NSs[0].HoldsExecutor = true
	cl.NSs = append(cl.NSs, model.Namespace{Name: "monitoring", Labels: map[string]string{"runai/queue": "alpha", config.ProvisionedLabel: "true"}})
	rec := &controllertest.Recorder{}
	m := metrics.NewMetrics("test")
	s := New(testConfig(), dir, cl, zap.NewNop(), m).WithEvents(rec)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if cl.Objects[model.ExecutorRef("monitoring")] != nil || cl.Objects[model.ExecutorRef("runai-alpha")] == nil {
		t.Fatalf("the copy moved the project: %v", cl.Objects)
	}
	var found bool
	for _, e := range rec.Take() {
		if e.Ref.Kind == kube.KindNamespace && e.Ref.Name == "monitoring" && e.Reason == ReasonProjectLabelCopied && strings.Contains(e.Message, "runai/queue=alpha") {
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
