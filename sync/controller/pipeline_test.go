package controller

import (
	"context"
	"errors"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"reflect"
	"testing"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

var testGroups = config.Groups{
	Executors:     []string{"runai-{project}-executors"},
	Viewers:       []string{"runai-{project}-viewers"},
	GlobalViewers: []string{"runai-viewers"},
}

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Groups = testGroups
	return &cfg
}

func newFixture() (*controllertest.Dir, *controllertest.Cluster) {
	dir := &controllertest.Dir{Members: map[string][]string{
		"runai-alpha-executors": {"alice", "bob", "dave"},
		"runai-alpha-viewers":   {"vera"},
		"runai-beta-executors":  {"carol", "erin", "frank"},
		"runai-viewers":         {"gina"},
	}, Failing: map[string]bool{}}
	cl := &controllertest.Cluster{
		NSs: []model.Namespace{
			{Name: "runai-alpha", Labels: map[string]string{"runai/queue": "alpha"}},
			{Name: "runai-beta", Labels: map[string]string{"runai/queue": "beta"}},
		},
		Objects: map[model.Ref]*model.Binding{},
		FailOn:  map[model.Ref]bool{},
	}
	return dir, cl
}

func TestCycleCreatesThenIsIdle(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), metrics.NewMetrics("test"))
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatalf("cycle: %v", rep.Err)
	}
	if rep.Applied != 4 || len(cl.Writes) != 4 {
		t.Fatalf("first cycle wrote %d bindings (%v), want 4", rep.Applied, cl.Writes)
	}
	if got := cl.Users(model.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "bob", "carol", "dave", "erin", "frank"}) {
		t.Errorf("index map = %v", got)
	}
	if got := cl.Users(model.ViewerRef()); !reflect.DeepEqual(got, []string{"gina", "vera"}) {
		t.Errorf("viewer = %v", got)
	}
	cl.Writes = nil
	rep = s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil || len(cl.Writes) != 0 {
		t.Errorf("second cycle: err=%v writes=%v, want no writes", rep.Err, cl.Writes)
	}
}

func TestCycleDryRunWritesNothing(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	rep := s.Cycle(context.Background(), CycleOptions{DryRun: true})
	if rep.Err != nil || len(cl.Writes) != 0 || len(rep.Changes()) != 4 {
		t.Errorf("dry run: err=%v writes=%v changes=%d", rep.Err, cl.Writes, len(rep.Changes()))
	}
}

func TestCycleFailedGroupRemovesNobody(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	// alpha's executors group now fails and bob left beta's group: alpha is
	// untouched, beta still syncs, the index map keeps alpha's last members.
	dir.Failing["runai-alpha-executors"] = true
	dir.Members["runai-beta-executors"] = []string{"carol", "erin"}
	cl.Writes = nil
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil {
		t.Error("a failed group must fail the cycle")
	}
	if got := cl.Users(model.ExecutorRef("runai-alpha")); !reflect.DeepEqual(got, []string{"alice", "bob", "dave"}) {
		t.Errorf("alpha lost someone: %v", got)
	}
	if got := cl.Users(model.ExecutorRef("runai-beta")); !reflect.DeepEqual(got, []string{"carol", "erin"}) {
		t.Errorf("beta did not sync: %v", got)
	}
	if got := cl.Users(model.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "bob", "carol", "dave", "erin"}) {
		t.Errorf("index map = %v", got)
	}
}

func TestCycleDirectoryDownWritesNothing(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	s.Cycle(context.Background(), CycleOptions{})
	dir.ConnErr = errors.New("no directory server could be used")
	cl.Writes = nil
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || len(cl.Writes) != 0 {
		t.Errorf("err=%v writes=%v", rep.Err, cl.Writes)
	}
}

func TestCycleWriteErrorDoesNotStopOthers(t *testing.T) {
	dir, cl := newFixture()
	cl.FailOn[model.ExecutorRef("runai-alpha")] = true
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || rep.Applied != 3 || len(rep.WriteErrors) != 1 {
		t.Errorf("err=%v applied=%d writeErrors=%v", rep.Err, rep.Applied, rep.WriteErrors)
	}
}

func TestCycleCancelledStartsNoWrite(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := s.Cycle(ctx, CycleOptions{})
	if rep.Err == nil || len(cl.Writes) != 0 {
		t.Errorf("err=%v writes=%v", rep.Err, cl.Writes)
	}
}

// Leftovers are reported per binding and adopted users recorded by a
// metadata-only write; an unreadable ownership record is that binding's
// error only: the cycle succeeds and the metric names the reason.
func TestCycleOwnershipReporting(t *testing.T) {
	dir, cl := newFixture()
	betaRef := model.ExecutorRef("runai-beta")
	cl.Objects[alphaRef] = &model.Binding{Ref: alphaRef, Exists: true, ResourceVersion: "1", RoleRef: model.ExpectedRoleRef(model.ExecutorBinding),
		Subjects: []model.Subject{model.UserSubject("alice"), model.UserSubject("bob"), model.UserSubject("dave"), model.UserSubject("zed")}, Annotations: map[string]string{}}
	cl.Objects[betaRef] = &model.Binding{Ref: betaRef, Exists: true, ResourceVersion: "1", RoleRef: model.ExpectedRoleRef(model.ExecutorBinding),
		Subjects: []model.Subject{model.UserSubject("carol")}, ManagedErr: errors.New("bad record"),
		Annotations: map[string]string{model.ManagedAnnotation: "[\"carol"}}
	m := metrics.NewMetrics("test")
	s := New(testConfig(), dir, cl, zap.NewNop(), m)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil {
		t.Fatalf("an unreadable record failed the cycle: %v", rep.Err)
	}
	if got := testCounter(t, m, "runai_ldap_sync_binding_leftover_subjects", `namespace="runai-alpha"`); got != 1 {
		t.Errorf("leftover gauge = %v, want 1 (zed)", got)
	}
	if got := testCounter(t, m, "runai_ldap_sync_binding_sync_errors", `reason="ownership_record"`); got != 1 {
		t.Errorf("ownership_record error gauge = %v", got)
	}
	if got := cl.Objects[alphaRef].Managed; !reflect.DeepEqual(got, []string{"alice", "bob", "dave"}) {
		t.Errorf("alpha record = %v: granted users adopted, zed not", got)
	}
	if got := cl.Users(betaRef); !reflect.DeepEqual(got, []string{"carol"}) {
		t.Errorf("beta, with an unreadable record, was written: %v", got)
	}
}
