package controller

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics/metricstest"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// fakeChanges is a ChangeSource whose answers the test queues; the real
// USN and entryCSN polls run against Samba and slapd in the integration
// tests.
type fakeChanges struct {
	sync.Mutex
	usn     int64
	server  string
	next    []*ldapsrc.ChangeSet // answered in order; then idle
	err     error
	polled  []ldapsrc.Cursor
	markErr error
}

func (f *fakeChanges) Mark(context.Context) (ldapsrc.Cursor, error) {
	f.Lock()
	defer f.Unlock()
	return ldapsrc.Cursor{Server: f.server, USN: f.usn}, f.markErr
}

func (f *fakeChanges) Changes(_ context.Context, since ldapsrc.Cursor) (*ldapsrc.ChangeSet, error) {
	f.Lock()
	defer f.Unlock()
	f.polled = append(f.polled, since)
	if f.err != nil {
		return nil, f.err
	}
	if len(f.next) == 0 {
		return &ldapsrc.ChangeSet{Next: since}, nil
	}
	cs := f.next[0]
	f.next = f.next[1:]
	return cs, nil
}

// change queues a change set touching the named entries (groups or users).
func (f *fakeChanges) change(entries ...string) {
	f.Lock()
	defer f.Unlock()
	f.usn += 10
	cs := &ldapsrc.ChangeSet{Next: ldapsrc.Cursor{Server: f.server, USN: f.usn}}
	for _, e := range entries {
		cs.Entries = append(cs.Entries, ldapsrc.Changed{DN: dnOf(e), Key: dnOf(e)})
	}
	f.next = append(f.next, cs)
}

func incFixture(t *testing.T) (*Pipeline, *fakeDir, *fakeCluster, *fakeChanges) {
	t.Helper()
	dir, cl := newFixture()
	ch := &fakeChanges{server: "dc1", usn: 100}
	s := New(testConfig(), dir, cl, zap.NewNop(), metrics.NewMetrics("test")).WithChanges(ch)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	cl.writes, dir.asked, cl.reads = nil, nil, 0
	return s, dir, cl, ch
}

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	return metricstest.Counter(t, c)
}

func TestIdlePollReadsNothingElse(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	for range 3 {
		if res, rep := s.Poll(context.Background(), CycleOptions{}); res != PollIdle || rep != nil {
			t.Fatalf("poll = %s, %v; want idle", res, rep)
		}
	}
	if len(dir.asked) != 0 || cl.reads != 0 || len(cl.writes) != 0 {
		t.Errorf("idle polls: resolves %v, cluster reads %d, writes %v; want none", dir.asked, cl.reads, cl.writes)
	}
	if len(ch.polled) != 3 || ch.polled[0] != (ldapsrc.Cursor{Server: "dc1", USN: 100}) {
		t.Errorf("polled with %v, want the cycle's mark", ch.polled)
	}
	if v := counter(t, s.obs.m.Polls.WithLabelValues(PollIdle)); v != 3 {
		t.Errorf("polls{idle} = %v", v)
	}
}

func TestPollResyncsExactlyTheAffectedBindings(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	dir.members["runai-alpha-executors"] = []string{"alice", "dave", "zed"} // bob left, zed joined
	ch.change("runai-alpha-executors")
	res, rep := s.Poll(context.Background(), CycleOptions{})
	if res != PollChanges || rep == nil || rep.Err != nil {
		t.Fatalf("poll = %s, %+v", res, rep)
	}
	if !reflect.DeepEqual(dir.asked, [][]string{{"runai-alpha-executors"}}) {
		t.Errorf("resolved %v, want only the changed group", dir.asked)
	}
	want := []model.Ref{model.ExecutorRef("runai-alpha"), model.IndexMapRef("runai")}
	if !reflect.DeepEqual(cl.writes, want) {
		t.Errorf("wrote %v, want %v", cl.writes, want)
	}
	if got := cl.users(model.ExecutorRef("runai-alpha")); !reflect.DeepEqual(got, []string{"alice", "dave", "zed"}) {
		t.Errorf("alpha = %v", got)
	}
	if got := cl.users(model.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "carol", "dave", "erin", "frank", "zed"}) {
		t.Errorf("index map = %v", got)
	}
	// The cursor moved: the next poll asks from the change set's cursor.
	s.Poll(context.Background(), CycleOptions{})
	if last := ch.polled[len(ch.polled)-1]; last.USN != 110 {
		t.Errorf("next poll from %v, want USN 110", last)
	}
	// A full cycle afterwards agrees: nothing left to write.
	cl.writes = nil
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil || len(cl.writes) != 0 {
		t.Errorf("cycle after the incremental sync: err=%v writes=%v", rep.Err, cl.writes)
	}
}

func TestPollFollowsMembersAndNestedEntries(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	// carol (in beta) is disabled: only the change to her entry is seen.
	dir.members["runai-beta-executors"] = []string{"erin", "frank"}
	ch.change("carol")
	if res, rep := s.Poll(context.Background(), CycleOptions{}); res != PollChanges || rep.Err != nil {
		t.Fatalf("poll = %s, %v", res, rep.Err)
	}
	if !reflect.DeepEqual(dir.asked, [][]string{{"runai-beta-executors"}}) {
		t.Errorf("resolved %v, want the group carol is reached through", dir.asked)
	}
	if got := cl.users(model.ExecutorRef("runai-beta")); !reflect.DeepEqual(got, []string{"erin", "frank"}) {
		t.Errorf("beta = %v", got)
	}
	// An entry no managed group reaches costs no directory read.
	dir.asked = nil
	ch.change("someone-else")
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollChanges || len(dir.asked) != 0 {
		t.Errorf("unrelated change: %s, resolved %v", res, dir.asked)
	}
	if v := counter(t, s.obs.m.DirChanges.WithLabelValues("user", "false")); v != 1 {
		t.Errorf("directory_changes_total{user,false} = %v", v)
	}
}

func TestPollAppliesTheGuardAndPolicy(t *testing.T) {
	dir, cl := newFixture()
	cfg := testConfig()
	cfg.Guard.MaxRemoveCount = 1
	ch := &fakeChanges{server: "dc1", usn: 1}
	s := New(cfg, dir, cl, zap.NewNop(), metrics.NewMetrics("test")).WithChanges(ch)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	dir.members["runai-beta-executors"] = []string{"carol"} // erin and frank leave
	ch.change("runai-beta-executors")
	_, rep := s.Poll(context.Background(), CycleOptions{})
	if rep == nil || len(rep.Plans) == 0 {
		t.Fatal("no plan")
	}
	var held []string
	for _, p := range rep.Plans {
		if p.Ref == model.ExecutorRef("runai-beta") {
			held = p.Held
		}
	}
	if !reflect.DeepEqual(held, []string{"erin", "frank"}) {
		t.Errorf("held = %v, want the guard to hold both removals", held)
	}
	if got := cl.users(model.ExecutorRef("runai-beta")); !reflect.DeepEqual(got, []string{"carol", "erin", "frank"}) {
		t.Errorf("beta = %v: the guard must hold removals in incremental syncs too", got)
	}
}

func TestPollGroupFailureRemovesNobodyAndRetries(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	dir.failing["runai-alpha-executors"] = true
	ch.change("runai-alpha-executors")
	_, rep := s.Poll(context.Background(), CycleOptions{})
	if rep == nil || rep.Err == nil {
		t.Fatal("a failed group must fail the incremental sync")
	}
	if len(cl.writes) != 0 {
		t.Errorf("wrote %v after a failed lookup", cl.writes)
	}
	// The cursor did not move: the next poll asks for the same changes.
	ch.change() // what the directory answers next is irrelevant here
	s.Poll(context.Background(), CycleOptions{})
	if a, b := ch.polled[0], ch.polled[1]; a != b {
		t.Errorf("cursor moved after a failure: %v then %v", a, b)
	}
	// Directory unreachable: nothing written either.
	dir.failing = map[string]bool{}
	dir.connErr = errors.New("no directory server could be used")
	ch.change("runai-alpha-executors")
	if _, rep := s.Poll(context.Background(), CycleOptions{}); rep == nil || rep.Err == nil || len(cl.writes) != 0 {
		t.Errorf("directory down: rep=%v writes=%v", rep, cl.writes)
	}
}

func TestServerSwitchDropsTheCursor(t *testing.T) {
	s, _, _, ch := incFixture(t)
	ch.Lock()
	ch.next = append(ch.next, &ldapsrc.ChangeSet{Next: ldapsrc.Cursor{Server: "dc2", USN: 5}, ServerChanged: true})
	ch.Unlock()
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollServerChanged {
		t.Fatalf("poll = %s, want server_changed", res)
	}
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollCursorLost {
		t.Errorf("after a switch, poll = %s, want cursor_lost until a full cycle", res)
	}
	ch.server = "dc2"
	s.Cycle(context.Background(), CycleOptions{})
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollIdle {
		t.Errorf("after the full cycle, poll = %s, want idle", res)
	}
}

func TestLoopRunsAFullCycleOnServerSwitch(t *testing.T) {
	dir, cl := newFixture()
	ch := &fakeChanges{server: "dc1", usn: 1}
	m := metrics.NewMetrics("test")
	r := &Loop{Pipeline: New(testConfig(), dir, cl, zap.NewNop(), m).WithChanges(ch), Schedule: "@every 1h",
		Metrics: m, Log: zap.NewNop(), PollInterval: 20 * time.Millisecond, RetryMin: time.Hour, RetryMax: time.Hour}
	startLoop(t, r)
	waitFor(t, 10*time.Second, func() bool { return counter(t, m.Polls.WithLabelValues(PollIdle)) >= 1 })
	ch.Lock()
	ch.next = append(ch.next, &ldapsrc.ChangeSet{Next: ldapsrc.Cursor{Server: "dc2"}, ServerChanged: true})
	ch.server = "dc2"
	ch.Unlock()
	waitFor(t, 10*time.Second, func() bool {
		return counter(t, m.ForcedCycles.WithLabelValues(PollServerChanged)) >= 1 && counter(t, m.Cycles.WithLabelValues("success")) >= 2
	})
}

func TestMarkFailureForcesAFullCycleOnce(t *testing.T) {
	dir, cl := newFixture()
	ch := &fakeChanges{server: "dc1", usn: 1, markErr: errors.New("rootDSE: busy")}
	m := metrics.NewMetrics("test")
	r := &Loop{Pipeline: New(testConfig(), dir, cl, zap.NewNop(), m).WithChanges(ch), Schedule: "@every 1h",
		Metrics: m, Log: zap.NewNop(), PollInterval: 10 * time.Millisecond, RetryMin: 200 * time.Millisecond, RetryMax: time.Hour}
	startLoop(t, r)
	// The first cycle could not mark the history: a forced cycle follows,
	// which can, and polls go idle.
	waitFor(t, 10*time.Second, func() bool { return counter(t, m.ForcedCycles.WithLabelValues(PollCursorLost)) >= 1 })
	ch.Lock()
	ch.markErr = nil
	ch.Unlock()
	waitFor(t, 10*time.Second, func() bool { return counter(t, m.Polls.WithLabelValues(PollIdle)) >= 3 })
	// Forced cycles are spaced by RetryMin, never one per poll.
	if n := counter(t, m.ForcedCycles.WithLabelValues(PollCursorLost)); n > 3 {
		t.Errorf("%v forced cycles in well under a second; want them spaced by RetryMin", n)
	}
}

func TestDirectoryWithoutChangeMarkersStopsPolls(t *testing.T) {
	dir, cl := newFixture()
	ch := &fakeChanges{markErr: fmt.Errorf("no entryCSN: %w", ldapsrc.ErrNoChangeTracking)}
	s := New(testConfig(), dir, cl, zap.NewNop(), nil).WithChanges(ch)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollOff {
		t.Errorf("poll = %s, want off", res)
	}
	if len(ch.polled) != 0 {
		t.Error("polled a directory without change markers")
	}
}

func TestPollCursorMovesPastABindingThatAlwaysFails(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	// alpha's binding points at another role: the plan leaves it alone,
	// every time; retrying the poll cannot fix that.
	cl.edit(model.ExecutorRef("runai-alpha"), func(b *model.Binding) { b.RoleRef.Name = "cluster-admin" })
	dir.members["runai-alpha-executors"] = []string{"alice"}
	ch.change("runai-alpha-executors")
	_, rep := s.Poll(context.Background(), CycleOptions{})
	if rep == nil || rep.Err == nil {
		t.Fatal("the roleRef mismatch must be reported")
	}
	s.Poll(context.Background(), CycleOptions{})
	if last := ch.polled[len(ch.polled)-1]; last.USN != 110 {
		t.Errorf("next poll from %+v: the cursor must move past a binding that always fails", last)
	}
	if got := cl.users(model.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "carol", "erin", "frank"}) {
		t.Errorf("index map = %v: the other bindings still sync", got)
	}
}
