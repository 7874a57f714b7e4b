package controller

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics/metricstest"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func incFixture(t *testing.T) (*Pipeline, *controllertest.Dir, *controllertest.Cluster, *controllertest.Changes) {
	t.Helper()
	dir, cl := newFixture()
	ch := &controllertest.Changes{Server: "dc1", USN: 100}
	s := New(testConfig(), dir, cl, zap.NewNop(), metrics.NewMetrics("test")).WithChanges(ch)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	cl.Writes, dir.Asked, cl.Reads = nil, nil, 0
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
	if len(dir.Asked) != 0 || cl.Reads != 0 || len(cl.Writes) != 0 {
		t.Errorf("idle polls: resolves %v, cluster reads %d, writes %v; want none", dir.Asked, cl.Reads, cl.Writes)
	}
	if len(ch.Polled) != 3 || ch.Polled[0] != (ldapsrc.Cursor{Server: "dc1", USN: 100}) {
		t.Errorf("polled with %v, want the cycle's mark", ch.Polled)
	}
	if v := counter(t, s.obs.m.Polls.WithLabelValues(PollIdle)); v != 3 {
		t.Errorf("polls{idle} = %v", v)
	}
}

func TestPollResyncsExactlyTheAffectedBindings(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	dir.Members["runai-alpha-executors"] = []string{"alice", "dave", "zed"} // bob left, zed joined
	ch.Change("runai-alpha-executors")
	res, rep := s.Poll(context.Background(), CycleOptions{})
	if res != PollChanges || rep == nil || rep.Err != nil {
		t.Fatalf("poll = %s, %+v", res, rep)
	}
	if !reflect.DeepEqual(dir.Asked, [][]string{{"runai-alpha-executors"}}) {
		t.Errorf("resolved %v, want only the changed group", dir.Asked)
	}
	want := []model.Ref{model.ExecutorRef("runai-alpha"), model.IndexMapRef("runai")}
	if !reflect.DeepEqual(cl.Writes, want) {
		t.Errorf("wrote %v, want %v", cl.Writes, want)
	}
	if got := cl.Users(model.ExecutorRef("runai-alpha")); !reflect.DeepEqual(got, []string{"alice", "dave", "zed"}) {
		t.Errorf("alpha = %v", got)
	}
	if got := cl.Users(model.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "carol", "dave", "erin", "frank", "zed"}) {
		t.Errorf("index map = %v", got)
	}
	// The cursor moved: the next poll asks from the change set's cursor.
	s.Poll(context.Background(), CycleOptions{})
	if last := ch.Polled[len(ch.Polled)-1]; last.USN != 110 {
		t.Errorf("next poll from %v, want USN 110", last)
	}
	// A full cycle afterwards agrees: nothing left to write.
	cl.Writes = nil
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil || len(cl.Writes) != 0 {
		t.Errorf("cycle after the incremental sync: err=%v writes=%v", rep.Err, cl.Writes)
	}
}

func TestPollFollowsMembersAndNestedEntries(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	// carol (in beta) is disabled: only the change to her entry is seen.
	dir.Members["runai-beta-executors"] = []string{"erin", "frank"}
	ch.Change("carol")
	if res, rep := s.Poll(context.Background(), CycleOptions{}); res != PollChanges || rep.Err != nil {
		t.Fatalf("poll = %s, %v", res, rep.Err)
	}
	if !reflect.DeepEqual(dir.Asked, [][]string{{"runai-beta-executors"}}) {
		t.Errorf("resolved %v, want the group carol is reached through", dir.Asked)
	}
	if got := cl.Users(model.ExecutorRef("runai-beta")); !reflect.DeepEqual(got, []string{"erin", "frank"}) {
		t.Errorf("beta = %v", got)
	}
	// An entry no managed group reaches costs no directory read.
	dir.Asked = nil
	ch.Change("someone-else")
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollChanges || len(dir.Asked) != 0 {
		t.Errorf("unrelated change: %s, resolved %v", res, dir.Asked)
	}
	if v := counter(t, s.obs.m.DirChanges.WithLabelValues("user", "false")); v != 1 {
		t.Errorf("directory_changes_total{user,false} = %v", v)
	}
}

func TestPollAppliesTheGuardAndPolicy(t *testing.T) {
	dir, cl := newFixture()
	cfg := testConfig()
	cfg.Guard.MaxRemoveCount = 1
	ch := &controllertest.Changes{Server: "dc1", USN: 1}
	s := New(cfg, dir, cl, zap.NewNop(), metrics.NewMetrics("test")).WithChanges(ch)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	dir.Members["runai-beta-executors"] = []string{"carol"} // erin and frank leave
	ch.Change("runai-beta-executors")
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
	if got := cl.Users(model.ExecutorRef("runai-beta")); !reflect.DeepEqual(got, []string{"carol", "erin", "frank"}) {
		t.Errorf("beta = %v: the guard must hold removals in incremental syncs too", got)
	}
}

func TestPollGroupFailureRemovesNobodyAndRetries(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	dir.Failing["runai-alpha-executors"] = true
	ch.Change("runai-alpha-executors")
	_, rep := s.Poll(context.Background(), CycleOptions{})
	if rep == nil || rep.Err == nil {
		t.Fatal("a failed group must fail the incremental sync")
	}
	if len(cl.Writes) != 0 {
		t.Errorf("wrote %v after a failed lookup", cl.Writes)
	}
	// The cursor did not move: the next poll asks for the same changes.
	ch.Change() // what the directory answers next is irrelevant here
	s.Poll(context.Background(), CycleOptions{})
	if a, b := ch.Polled[0], ch.Polled[1]; a != b {
		t.Errorf("cursor moved after a failure: %v then %v", a, b)
	}
	// Directory unreachable: nothing written either.
	dir.Failing = map[string]bool{}
	dir.ConnErr = errors.New("no directory server could be used")
	ch.Change("runai-alpha-executors")
	if _, rep := s.Poll(context.Background(), CycleOptions{}); rep == nil || rep.Err == nil || len(cl.Writes) != 0 {
		t.Errorf("directory down: rep=%v writes=%v", rep, cl.Writes)
	}
}

func TestServerSwitchDropsTheCursor(t *testing.T) {
	s, _, _, ch := incFixture(t)
	ch.Lock()
	ch.Next = append(ch.Next, &ldapsrc.ChangeSet{Next: ldapsrc.Cursor{Server: "dc2", USN: 5}, ServerChanged: true})
	ch.Unlock()
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollServerChanged {
		t.Fatalf("poll = %s, want server_changed", res)
	}
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollCursorLost {
		t.Errorf("after a switch, poll = %s, want cursor_lost until a full cycle", res)
	}
	ch.Server = "dc2"
	s.Cycle(context.Background(), CycleOptions{})
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollIdle {
		t.Errorf("after the full cycle, poll = %s, want idle", res)
	}
}

func TestLoopRunsAFullCycleOnServerSwitch(t *testing.T) {
	dir, cl := newFixture()
	ch := &controllertest.Changes{Server: "dc1", USN: 1}
	m := metrics.NewMetrics("test")
	r := &Loop{Pipeline: New(testConfig(), dir, cl, zap.NewNop(), m).WithChanges(ch), Schedule: "@every 1h",
		Metrics: m, Log: zap.NewNop(), PollInterval: 20 * time.Millisecond, RetryMin: time.Hour, RetryMax: time.Hour}
	startLoop(t, r)
	waitFor(t, 10*time.Second, func() bool { return counter(t, m.Polls.WithLabelValues(PollIdle)) >= 1 })
	ch.Lock()
	ch.Next = append(ch.Next, &ldapsrc.ChangeSet{Next: ldapsrc.Cursor{Server: "dc2"}, ServerChanged: true})
	ch.Server = "dc2"
	ch.Unlock()
	waitFor(t, 10*time.Second, func() bool {
		return counter(t, m.ForcedCycles.WithLabelValues(PollServerChanged)) >= 1 && counter(t, m.Cycles.WithLabelValues("success")) >= 2
	})
}

func TestMarkFailureForcesAFullCycleOnce(t *testing.T) {
	dir, cl := newFixture()
	ch := &controllertest.Changes{Server: "dc1", USN: 1, MarkErr: errors.New("rootDSE: busy")}
	m := metrics.NewMetrics("test")
	r := &Loop{Pipeline: New(testConfig(), dir, cl, zap.NewNop(), m).WithChanges(ch), Schedule: "@every 1h",
		Metrics: m, Log: zap.NewNop(), PollInterval: 10 * time.Millisecond, RetryMin: 200 * time.Millisecond, RetryMax: time.Hour}
	startLoop(t, r)
	// The first cycle could not mark the history: a forced cycle follows,
	// which can, and polls go idle.
	waitFor(t, 10*time.Second, func() bool { return counter(t, m.ForcedCycles.WithLabelValues(PollCursorLost)) >= 1 })
	ch.Lock()
	ch.MarkErr = nil
	ch.Unlock()
	waitFor(t, 10*time.Second, func() bool { return counter(t, m.Polls.WithLabelValues(PollIdle)) >= 3 })
	// Forced cycles are spaced by RetryMin, never one per poll.
	if n := counter(t, m.ForcedCycles.WithLabelValues(PollCursorLost)); n > 3 {
		t.Errorf("%v forced cycles in well under a second; want them spaced by RetryMin", n)
	}
}

func TestDirectoryWithoutChangeMarkersStopsPolls(t *testing.T) {
	dir, cl := newFixture()
	ch := &controllertest.Changes{MarkErr: fmt.Errorf("no entryCSN: %w", ldapsrc.ErrNoChangeTracking)}
	s := New(testConfig(), dir, cl, zap.NewNop(), nil).WithChanges(ch)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollOff {
		t.Errorf("poll = %s, want off", res)
	}
	if len(ch.Polled) != 0 {
		t.Error("polled a directory without change markers")
	}
}

func TestPollCursorMovesPastABindingThatAlwaysFails(t *testing.T) {
	s, dir, cl, ch := incFixture(t)
	// alpha's binding points at another role: the plan leaves it alone,
	// every time; retrying the poll cannot fix that.
	cl.Edit(model.ExecutorRef("runai-alpha"), func(b *model.Binding) { b.RoleRef.Name = "cluster-admin" })
	dir.Members["runai-alpha-executors"] = []string{"alice"}
	ch.Change("runai-alpha-executors")
	_, rep := s.Poll(context.Background(), CycleOptions{})
	if rep == nil || rep.Err == nil {
		t.Fatal("the roleRef mismatch must be reported")
	}
	s.Poll(context.Background(), CycleOptions{})
	if last := ch.Polled[len(ch.Polled)-1]; last.USN != 110 {
		t.Errorf("next poll from %+v: the cursor must move past a binding that always fails", last)
	}
	if got := cl.Users(model.IndexMapRef("runai")); !reflect.DeepEqual(got, []string{"alice", "carol", "erin", "frank"}) {
		t.Errorf("index map = %v: the other bindings still sync", got)
	}
}

// A renamed, moved or deleted entry comes back with another DN (or in
// CN=Deleted Objects) but its identity: that is what matches.
func TestAffectedGroupsMatchByIdentity(t *testing.T) {
	reached := map[string][]string{
		"alpha": {"guid:g-alpha", "guid:alice", "cn=dangling,ou=people,dc=x"},
		"beta":  {"guid:g-beta", "guid:bob"},
		"gamma": {"uuid:carol"},
	}
	all := []string{"alpha", "beta", "gamma"}
	for _, c := range []struct {
		what  string
		entry ldapsrc.Changed
		want  []string
	}{
		{"renamed", ldapsrc.Changed{DN: "CN=alicia,OU=People,DC=x", Key: "cn=alicia,ou=people,dc=x", ID: "guid:alice"}, []string{"alpha"}},
		{"moved out", ldapsrc.Changed{DN: "CN=bob,OU=Gone,DC=x", Key: "cn=bob,ou=gone,dc=x", ID: "guid:bob", Outside: true}, []string{"beta"}},
		{"deleted group", ldapsrc.Changed{DN: `CN=b\0ADEL:1,CN=Deleted Objects,DC=x`, Key: "x", ID: "guid:g-beta", Deleted: true, Group: true}, []string{"beta"}},
		{"entryUUID", ldapsrc.Changed{DN: "uid=c2,ou=p,dc=x", Key: "uid=c2,ou=p,dc=x", ID: "uuid:carol"}, []string{"gamma"}},
		{"new entry at a dangling DN", ldapsrc.Changed{DN: "CN=dangling,OU=People,DC=x", Key: "cn=dangling,ou=people,dc=x", ID: "guid:new"}, []string{"alpha"}},
		// A new entry reusing a reached entry's old DN but not its identity
		// matches nothing by identity (and gets nothing by it: access is
		// read from the groups).
		{"unrelated", ldapsrc.Changed{DN: "CN=alice,OU=People,DC=x", Key: "cn=alice,ou=people,dc=x", ID: "guid:other"}, nil},
	} {
		cs := &ldapsrc.ChangeSet{Entries: []ldapsrc.Changed{c.entry}}
		if got := affectedGroups(cs, all, reached, nil); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: affected %v, want %v", c.what, got, c.want)
		}
	}
}

// deletionCursor marks like controllertest.Changes, with a given deletion visibility.
type deletionCursor struct {
	src       *controllertest.Changes
	deletions bool
}

func (d *deletionCursor) Mark(ctx context.Context) (ldapsrc.Cursor, error) {
	c, err := d.src.Mark(ctx)
	c.Deletions = d.deletions
	return c, err
}

func (d *deletionCursor) Changes(ctx context.Context, since ldapsrc.Cursor) (*ldapsrc.ChangeSet, error) {
	return d.src.Changes(ctx, since)
}

func TestBlindDeletionsSaidOnceAndCounted(t *testing.T) {
	dir, cl := newFixture()
	core, logs := observer.New(zapcore.InfoLevel)
	ch := &deletionCursor{src: &controllertest.Changes{Server: "dc1", USN: 100}}
	s := New(testConfig(), dir, cl, zap.New(core), metrics.NewMetrics("test")).WithChanges(ch)
	gauge := func() float64 {
		var m dto.Metric
		if err := s.obs.m.PollBlind.WithLabelValues("deletion").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	for range 3 {
		if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
			t.Fatal(rep.Err)
		}
	}
	if n := logs.FilterMessageSnippet("polls cannot see deleted").Len(); n != 1 {
		t.Errorf("said %d times that polls cannot see deletions, want once", n)
	}
	if v := gauge(); v != 1 {
		t.Errorf("directory_poll_blind{deletion} = %v, want 1", v)
	}
	ch.deletions = true
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if v := gauge(); v != 0 || logs.FilterMessageSnippet("polls now see deleted").Len() != 1 {
		t.Errorf("after access was granted: gauge %v, logs %v", v, logs.All())
	}
}

// An access log that cannot be read (gone, access withdrawn) does not hold
// back the poll's other changes: it says why, and the gauge shows polls
// blind to deletions until a cycle's mark finds the log again.
func TestAccessLogErrorMakesPollsBlind(t *testing.T) {
	dir, cl := newFixture()
	core, logs := observer.New(zapcore.InfoLevel)
	ch := &deletionCursor{src: &controllertest.Changes{Server: "dc1", USN: 100}, deletions: true}
	s := New(testConfig(), dir, cl, zap.New(core), metrics.NewMetrics("test")).WithChanges(ch)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	var m dto.Metric
	gauge := func() float64 {
		if err := s.obs.m.PollBlind.WithLabelValues("deletion").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	if v := gauge(); v != 0 {
		t.Fatalf("gauge %v with the log readable", v)
	}
	ch.src.Lock()
	ch.src.USN += 10
	ch.src.Next = append(ch.src.Next, &ldapsrc.ChangeSet{Next: ldapsrc.Cursor{Server: "dc1", USN: ch.src.USN}, LogErr: errors.New("no such object")})
	ch.src.Unlock()
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollIdle {
		t.Errorf("poll result %q, want %q: the poll itself succeeded", res, PollIdle)
	}
	if v := gauge(); v != 1 {
		t.Errorf("gauge %v after the log failed, want 1", v)
	}
	if logs.FilterMessageSnippet("could not read the directory's access log").Len() != 1 || logs.FilterMessageSnippet("polls cannot see deleted").Len() != 1 {
		t.Errorf("logs: %v", logs.All())
	}
	if s.polls.inc.cursor == nil || s.polls.inc.cursor.USN != ch.src.USN {
		t.Errorf("cursor %+v, want advanced to the poll's", s.polls.inc.cursor)
	}
}
