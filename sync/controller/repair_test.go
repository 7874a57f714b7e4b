package controller

import (
	"context"
	"fmt"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics/metricstest"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

var alphaRef = model.ExecutorRef("runai-alpha")

// syncedFixture runs a first cycle, so repairs have a desired state.
func syncedFixture(t *testing.T) (*Pipeline, *controllertest.Dir, *controllertest.Cluster, *controllertest.Recorder) {
	t.Helper()
	dir, cl := newFixture()
	rec := &controllertest.Recorder{}
	s := New(testConfig(), dir, cl, zap.NewNop(), metrics.NewMetrics("test")).WithEvents(rec)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	return s, dir, cl, rec
}

// queues hold, per Pipeline under test, what its handlers asked the loop
// to do, as the loop's term does in the daemon.
var queues = struct {
	sync.Mutex
	m map[*Pipeline]*workQueue
}{m: map[*Pipeline]*workQueue{}}

func work(s *Pipeline) *workQueue {
	queues.Lock()
	defer queues.Unlock()
	q := queues.m[s]
	if q == nil {
		nq := newWorkQueue()
		q = &nq
		queues.m[s] = q
	}
	return q
}

// queueBinding runs the binding handler and queues its repair.
func queueBinding(s *Pipeline, ref model.Ref, b *model.Binding, rv string) {
	if r, ok := s.BindingChanged(ref, b, rv); ok {
		work(s).add(r)
	}
}

// queueNamespace runs the namespace handler and queues its cycle.
func queueNamespace(s *Pipeline, old, cur *model.Namespace) {
	if s.NamespaceChanged(old, cur) {
		work(s).requestCycle()
	}
}

func pending(s *Pipeline) []model.Ref {
	var out []model.Ref
	for r := range work(s).refs {
		out = append(out, r)
	}
	return out
}

func dropUser(name string) func(*model.Binding) {
	return func(b *model.Binding) {
		var keep []model.Subject
		for _, s := range b.Subjects {
			if s.Name != name {
				keep = append(keep, s)
			}
		}
		b.Subjects = keep
	}
}

func TestBindingChangedQueuesOnlyDriftBySomeoneElse(t *testing.T) {
	s, _, cl, _ := syncedFixture(t)
	work(s).take()

	// The informer's echo of our own write: same resourceVersion.
	own, _ := cl.Get(context.Background(), alphaRef)
	queueBinding(s, alphaRef, own, own.ResourceVersion)
	if p := pending(s); len(p) != 0 {
		t.Fatalf("own write queued a repair: %v", p)
	}
	// A hand-added user and a Group: not drift under policy sync.
	b := cl.Edit(alphaRef, func(b *model.Binding) {
		b.Subjects = append(b.Subjects, model.UserSubject("contractor"), model.Subject{APIGroup: model.RBACGroup, Kind: model.KindGroup, Name: "admins"})
	})
	queueBinding(s, alphaRef, b, b.ResourceVersion)
	if p := pending(s); len(p) != 0 {
		t.Fatalf("a harmless hand edit queued a repair: %v", p)
	}
	// An unmanaged binding: ignored.
	other := model.ExecutorRef("elsewhere")
	queueBinding(s, other, &model.Binding{Ref: other, Exists: true}, "999")
	if p := pending(s); len(p) != 0 {
		t.Fatalf("unmanaged binding queued: %v", p)
	}
	// A managed user removed by hand: drift.
	b = cl.Edit(alphaRef, dropUser("alice"))
	queueBinding(s, alphaRef, b, b.ResourceVersion)
	if p := pending(s); !reflect.DeepEqual(p, []model.Ref{alphaRef}) {
		t.Fatalf("pending = %v, want alpha", p)
	}
	// A deletion: drift.
	work(s).take()
	rv := cl.Remove(model.ViewerRef())
	queueBinding(s, model.ViewerRef(), nil, rv)
	if p := pending(s); !reflect.DeepEqual(p, []model.Ref{model.ViewerRef()}) {
		t.Fatalf("pending = %v, want viewer", p)
	}
}

func TestRepairReappliesLastDesiredStateWithoutTheDirectory(t *testing.T) {
	s, dir, cl, rec := syncedFixture(t)
	rec.Take()
	dir.ConnErr = fmt.Errorf("directory down") // a repair must not need it
	resolves := dir.Resolves

	b := cl.Edit(alphaRef, dropUser("alice"))
	queueBinding(s, alphaRef, b, b.ResourceVersion)
	cl.Remove(model.ViewerRef())
	queueBinding(s, model.ViewerRef(), nil, "")
	refs, _ := work(s).take()

	cl.Writes = nil
	rep := s.Repair(context.Background(), refs, CycleOptions{})
	if rep.Err != nil {
		t.Fatalf("repair: %v", rep.Err)
	}
	if dir.Resolves != resolves {
		t.Errorf("repair read the directory")
	}
	if got := cl.Users(alphaRef); !reflect.DeepEqual(got, []string{"alice", "bob", "dave"}) {
		t.Errorf("alpha after repair = %v", got)
	}
	if got := cl.Users(model.ViewerRef()); !reflect.DeepEqual(got, []string{"gina", "vera"}) {
		t.Errorf("viewer after repair = %v", got)
	}
	if len(cl.Writes) != 2 || rep.Applied != 2 || rep.Trigger != TriggerRepair {
		t.Errorf("writes=%v applied=%d trigger=%s", cl.Writes, rep.Applied, rep.Trigger)
	}
	evs := rec.Take()
	if len(evs) != 2 {
		t.Fatalf("events = %+v", evs)
	}
	for _, e := range evs {
		if e.Kind != "Normal" || !strings.HasPrefix(e.Message, "drift repair after a change by someone else: ") {
			t.Errorf("event %+v", e)
		}
	}
	// The repair's own writes are not drift.
	for _, ref := range refs {
		b, _ := cl.Get(context.Background(), ref)
		queueBinding(s, ref, b, b.ResourceVersion)
	}
	if p := pending(s); len(p) != 0 {
		t.Errorf("own repair write queued: %v", p)
	}
}

func TestRepairBeforeAnyCycleDoesNothing(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	queueBinding(s, alphaRef, nil, "5")
	if p := pending(s); len(p) != 0 {
		t.Fatalf("queued before the first cycle: %v", p)
	}
	rep := s.Repair(context.Background(), []model.Ref{alphaRef}, CycleOptions{})
	if rep.Err != nil || len(cl.Writes) != 0 || dir.Resolves != 0 {
		t.Errorf("err=%v writes=%v resolves=%d", rep.Err, cl.Writes, dir.Resolves)
	}
}

func TestRepairAppliesTheGuardAndApprovals(t *testing.T) {
	dir, cl := newFixture()
	many := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"}
	dir.Members["runai-alpha-executors"] = many
	rec := &controllertest.Recorder{}
	m := metrics.NewMetrics("test")
	s := New(testConfig(), dir, cl, zap.NewNop(), m).WithEvents(rec)
	s.Cycle(context.Background(), CycleOptions{})
	// Eight of ten leave the group: the cycle holds the removals.
	dir.Members["runai-alpha-executors"] = []string{"u0", "u1"}
	rep := s.Cycle(context.Background(), CycleOptions{})
	if len(cl.Users(alphaRef)) != 10 {
		t.Fatalf("guard did not hold: %v", cl.Users(alphaRef))
	}
	held := false
	for _, e := range rec.Take() {
		if e.Ref == alphaRef && e.Reason == ReasonRemovalsHeld && e.Kind == "Warning" &&
			strings.Contains(e.Message, "removal held by guard (8 removals, more than guard.maxRemovePercent=50%") &&
			strings.Contains(e.Message, "u2, u3, u4, u5, u6, u7, u8, u9") && strings.Contains(e.Message, "annotate configmap runai-ldap-sync-state "+model.ApprovalPrefix) {
			held = true
		}
	}
	if !held || rep.Err != nil {
		t.Fatalf("no RemovalsHeld event (err=%v)", rep.Err)
	}

	// Someone removes u0 by hand: the repair puts u0 back and still holds.
	b := cl.Edit(alphaRef, dropUser("u0"))
	queueBinding(s, alphaRef, b, b.ResourceVersion)
	refs, _ := work(s).take()
	if rep := s.Repair(context.Background(), refs, CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if got := cl.Users(alphaRef); len(got) != 10 {
		t.Fatalf("repair removed held users or did not re-add u0: %v", got)
	}
	if got := testCounter(t, m, "runai_ldap_sync_binding_held_removals", `namespace="runai-alpha"`); got != 8 {
		t.Errorf("held removals gauge = %v", got)
	}

	// An approval annotation on the binding (which a project admin may
	// write) approves nothing: the repair drops it.
	key := plan.ApprovalKey(alphaRef, []string{"u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"}, nil)
	b = cl.Edit(alphaRef, func(b *model.Binding) { b.Annotations[plan.ApproveAnnotation] = key })
	queueBinding(s, alphaRef, b, b.ResourceVersion)
	refs, _ = work(s).take()
	if rep := s.Repair(context.Background(), refs, CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if got := cl.Users(alphaRef); len(got) != 10 {
		t.Fatalf("an approval on the binding approved: %v", got)
	}
	after, _ := cl.Get(context.Background(), alphaRef)
	if _, ok := after.Annotations[plan.ApproveAnnotation]; ok {
		t.Error("approval annotation on the binding not removed")
	}
	// The key recorded in the store: the next poll finds it and queues the
	// repair, which applies the removals and consumes the approval.
	s.guard.store.(*memStore).snap.Approvals = map[string]string{key: "ok"}
	refs, _ = s.Approvals(context.Background())
	if len(refs) != 1 {
		t.Fatalf("approval did not queue a repair")
	}
	rec.Take()
	if rep := s.Repair(context.Background(), refs, CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if got := cl.Users(alphaRef); !reflect.DeepEqual(got, []string{"u0", "u1"}) {
		t.Errorf("after approval = %v", got)
	}
	if _, ok := s.guard.store.(*memStore).snap.Approvals[key]; ok {
		t.Error("approval not consumed")
	}
	evs := rec.Take()
	if len(evs) != 1 || !strings.Contains(evs[0].Message, "the guard's hold was approved") || !strings.Contains(evs[0].Message, "u2, u3") {
		t.Errorf("approval events = %+v", evs)
	}
	if got := testCounter(t, m, "runai_ldap_sync_binding_held_removals", `namespace="runai-alpha"`); got != 0 {
		t.Errorf("held removals gauge after approval = %v", got)
	}
}

func TestRepairSkipsGoneNamespacesAndFailedGroups(t *testing.T) {
	s, dir, cl, _ := syncedFixture(t)
	// alpha's group fails at the next cycle: its binding is left alone, and
	// a repair must leave it alone too, even when it is deleted.
	dir.Failing["runai-alpha-executors"] = true
	s.Cycle(context.Background(), CycleOptions{})
	cl.Remove(alphaRef)
	queueBinding(s, alphaRef, nil, "")
	if p := pending(s); len(p) != 0 {
		t.Errorf("binding of a failed group queued: %v", p)
	}
	// beta's namespace is terminating: its binding is not recreated.
	betaRef := model.ExecutorRef("runai-beta")
	cl.NSs[1].Terminating = true
	cl.Remove(betaRef)
	cl.Writes = nil
	if rep := s.Repair(context.Background(), []model.Ref{alphaRef, betaRef}, CycleOptions{}); rep.Err != nil || len(cl.Writes) != 0 {
		t.Errorf("err=%v writes=%v", rep.Err, cl.Writes)
	}
}

func TestNamespaceChangedQueuesACycle(t *testing.T) {
	s, _, _, _ := syncedFixture(t)
	s.cfg.Projects.Static = []config.StaticProject{{Name: "gamma"}}
	ns := func(name string, labels map[string]string) *model.Namespace {
		return &model.Namespace{Name: name, Labels: labels}
	}
	q := map[string]string{"runai/queue": "delta"}
	tests := []struct {
		name     string
		old, cur *model.Namespace
		want     bool
	}{
		{"unrelated namespace created", nil, ns("kube-x", nil), false},
		{"unrelated label changed", ns("a", map[string]string{"x": "1"}), ns("a", map[string]string{"x": "2"}), false},
		{"labelled namespace created", nil, ns("d", q), true},
		{"label added", ns("d", nil), ns("d", q), true},
		{"label value changed", ns("d", map[string]string{"runai/queue": "old"}), ns("d", q), true},
		{"labelled namespace deleted", ns("d", q), nil, true},
		{"labelled namespace terminating", ns("d", q), &model.Namespace{Name: "d", Labels: q, Terminating: true}, true},
		{"labelled namespace other change", ns("d", q), ns("d", map[string]string{"runai/queue": "delta", "y": "1"}), false},
		{"static project namespace created", nil, ns("runai-gamma", nil), true},
	}
	for _, tc := range tests {
		work(s).take()
		queueNamespace(s, tc.old, tc.cur)
		if _, cycle := work(s).take(); cycle != tc.want {
			t.Errorf("%s: cycle=%v, want %v", tc.name, cycle, tc.want)
		}
	}
	// The echo of a namespace this process provisioned queues nothing,
	// once; a later change to it does.
	s.provisioning.provisioned["runai-omega"] = "omega"
	omega := ns("runai-omega", map[string]string{"runai/queue": "omega"})
	queueNamespace(s, nil, omega)
	if _, cycle := work(s).take(); cycle {
		t.Error("our own namespace creation queued a cycle")
	}
	queueNamespace(s, omega, nil)
	if _, cycle := work(s).take(); !cycle {
		t.Error("a provisioned namespace deleted afterwards must queue a cycle")
	}
}

func TestCycleEvents(t *testing.T) {
	dir, cl := newFixture()
	rec := &controllertest.Recorder{}
	core, logs := observer.New(zapcore.InfoLevel)
	s := New(testConfig(), dir, cl, zap.New(core), metrics.NewMetrics("test")).WithEvents(rec)
	// The first cycle's creations: one summary, no Event per binding.
	rep := s.Cycle(context.Background(), CycleOptions{})
	if evs := rec.Take(); len(evs) != 0 {
		t.Errorf("first cycle recorded %d Events, want none: %+v", len(evs), evs)
	}
	if rep.Err != nil || rep.Created == 0 || rep.Created != rep.Applied {
		t.Errorf("first cycle: %v, created %d of %d written", rep.Err, rep.Created, rep.Applied)
	}
	if sum := logs.FilterMessage("bindings created").All(); len(sum) != 1 || sum[0].ContextMap()["count"] != int64(rep.Created) ||
		!strings.Contains(fmt.Sprint(sum[0].ContextMap()["bindings"]), alphaRef.String()) {
		t.Errorf("want one summary line naming %s, got %+v", alphaRef, sum)
	}
	// A binding deleted by hand and created again is drift: its Event.
	cl.Remove(alphaRef)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Created != 0 || rep.Applied != 1 {
		t.Errorf("re-creation counted in the summary: created %d, written %d", rep.Created, rep.Applied)
	}
	byRef := map[model.Ref]controllertest.Event{}
	for _, e := range rec.Take() {
		byRef[e.Ref] = e
	}
	if e := byRef[alphaRef]; len(byRef) != 1 || e.Reason != ReasonCreated || e.UID == "" ||
		e.Message != "created by group sync with Run:AI's roleRef and 3 users; added by group sync: alice, bob, dave" {
		t.Errorf("events after a re-creation %+v", byRef)
	}
	// A user leaves: one removal, explained.
	dir.Members["runai-beta-executors"] = []string{"carol", "erin"}
	dir.Failing["runai-alpha-executors"] = true
	s.Cycle(context.Background(), CycleOptions{})
	for _, e := range rec.Take() {
		switch e.Ref {
		case model.ExecutorRef("runai-beta"):
			if e.Reason != ReasonChanged || e.Message != "removed by group sync (no longer in the directory groups; they were added by group sync): frank" {
				t.Errorf("beta event %+v", e)
			}
		case alphaRef:
			if e.Reason != ReasonLeftUntouched || e.Kind != "Warning" || !strings.Contains(e.Message, "group runai-alpha-executors failed") {
				t.Errorf("alpha event %+v", e)
			}
		}
	}
	// roleRef mismatch.
	cl.Edit(alphaRef, func(b *model.Binding) { b.RoleRef.Name = "cluster-admin" })
	dir.Failing["runai-alpha-executors"] = false
	s.Cycle(context.Background(), CycleOptions{})
	found := false
	for _, e := range rec.Take() {
		if e.Ref == alphaRef && e.Reason == ReasonRoleRefMismatch && strings.Contains(e.Message, "roleRef mismatch: the binding refers to ClusterRole/cluster-admin, expected ClusterRole/runai-job-executor") {
			found = true
		}
	}
	if !found {
		t.Error("no RoleRefMismatch event")
	}
	// Dry run: no events.
	s.Cycle(context.Background(), CycleOptions{DryRun: true})
	if evs := rec.Take(); len(evs) != 0 {
		t.Errorf("dry run recorded events: %+v", evs)
	}
}

func TestEventMessagesAreBounded(t *testing.T) {
	var many []string
	for i := range 500 {
		many = append(many, fmt.Sprintf("user-%03d", i))
	}
	msg := changeMessage(&plan.BindingPlan{Add: many}, config.PolicySync, TriggerCycle)
	if !strings.HasSuffix(msg, "user-029 and 470 more") {
		t.Errorf("long list not cut: %q", msg)
	}
	if got := kube.Truncate(strings.Repeat("é", 600), 1000); len(got) > 1000 || !strings.HasSuffix(got, " …") {
		t.Errorf("Truncate: %d bytes", len(got))
	}
}

func TestLoopRepairsDriftQuicklyAndRateLimited(t *testing.T) {
	s, _, cl, _ := syncedFixture(t)
	m := metrics.NewMetrics("test")
	s.obs = metricsObserver{m: m}
	r := &Loop{Pipeline: s, Schedule: "@every 1h", Metrics: m, Log: zap.NewNop(), RepairInterval: time.Second}
	startLoop(t, r)
	waitFor(t, 5*time.Second, func() bool { return r.Ready() })

	edit := func(user string) time.Time {
		b := cl.Edit(alphaRef, dropUser(user))
		r.BindingChanged(alphaRef, b, b.ResourceVersion)
		return time.Now()
	}
	start := edit("alice")
	waitFor(t, 3*time.Second, func() bool { return len(cl.Users(alphaRef)) == 3 })
	first := time.Since(start)
	// A second edit right away waits for the interval.
	start = edit("bob")
	waitFor(t, 3*time.Second, func() bool { return len(cl.Users(alphaRef)) == 3 })
	second := time.Since(start)
	if first > time.Second || second < 700*time.Millisecond {
		t.Errorf("first repair after %v (want quick), second after %v (want rate-limited to ~1s)", first, second)
	}
	if got := testCounter(t, m, "runai_ldap_sync_repairs_total", `result="success"`); got != 2 {
		t.Errorf("repairs_total = %v", got)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testCounter sums the series of a metric family whose labels, written as
// name="value", contain match.
func testCounter(t *testing.T, m *metrics.Metrics, name, match string) float64 {
	return metricstest.Sum(t, m.Registry, name, match)
}

func TestLoopRunsACycleWhenProjectsChange(t *testing.T) {
	dir, cl := newFixture()
	s := New(testConfig(), dir, cl, zap.NewNop(), nil)
	r := &Loop{Pipeline: s, Schedule: "@every 1h", Log: zap.NewNop(), RepairInterval: time.Second}
	startLoop(t, r)
	waitFor(t, 5*time.Second, func() bool { return r.Ready() })
	// gamma appears: a full cycle (which reads the directory) creates its binding.
	dir.Members["runai-gamma-executors"] = []string{"zed"}
	gamma := model.Namespace{Name: "runai-gamma", Labels: map[string]string{"runai/queue": "gamma"}}
	cl.Lock()
	cl.NSs = append(cl.NSs, gamma)
	cl.Unlock()
	r.NamespaceChanged(nil, &gamma)
	waitFor(t, 5*time.Second, func() bool { return len(cl.Users(model.ExecutorRef("runai-gamma"))) == 1 })
}

func TestDeletionFoundByRelistIsNotTakenForOurWrite(t *testing.T) {
	s, _, cl, _ := syncedFixture(t)
	work(s).take()
	// The informer saw our write, then missed the deletion while its watch
	// was down; the re-list reports it with our write's version.
	own, _ := cl.Get(context.Background(), model.ViewerRef())
	cl.Remove(model.ViewerRef())
	queueBinding(s, model.ViewerRef(), nil, own.ResourceVersion)
	if p := pending(s); len(p) != 1 {
		t.Fatalf("deletion ignored: pending = %v", p)
	}
}

// startLoop runs r until the test ends, then stops it and waits.
func startLoop(t *testing.T, r *Loop) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("loop: %v", err)
		}
	})
}
