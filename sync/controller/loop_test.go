package controller

import (
	"context"
	"errors"
	"fmt"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// blockingDir holds every Resolve until released, to keep a cycle running.
type blockingDir struct {
	controllertest.Dir
	started chan struct{}
	release chan struct{}
}

func (b *blockingDir) ResolveTargeted(ctx context.Context, names []string) (*ldapsrc.Result, error) {
	return b.Resolve(ctx, names)
}

func (b *blockingDir) Resolve(ctx context.Context, names []string) (*ldapsrc.Result, error) {
	b.started <- struct{}{}
	<-b.release
	return b.Dir.Resolve(ctx, names)
}

func TestTickSkipsWhileACycleRuns(t *testing.T) {
	dir, cl := newFixture()
	bd := &blockingDir{Dir: *dir, started: make(chan struct{}, 1), release: make(chan struct{})}
	m := metrics.NewMetrics("test")
	r := &Loop{Pipeline: New(testConfig(), bd, cl, zap.NewNop(), m), Schedule: "@every 1h", Metrics: m, Log: zap.NewNop(),
		RetryMin: time.Hour, RetryMax: time.Hour}
	startLoop(t, r)
	<-bd.started // the start cycle runs
	r.init()
	r.inbox.post(evTick{at: time.Now()})
	close(bd.release)
	waitFor(t, 5*time.Second, func() bool { return testCounter(t, m, "runai_ldap_sync_cycles_skipped_total", "") == 1 })
	if !r.Ready() {
		t.Error("not ready after the start cycle")
	}
	// A tick after the cycle ended runs one.
	r.inbox.post(evTick{at: time.Now()})
	waitFor(t, 5*time.Second, func() bool {
		return testCounter(t, m, "runai_ldap_sync_cycles_total", `result="success"`) == 2
	})
	<-bd.started
}

// flakyDir is a directory (and change source) that fails every contact
// with the error the test sets, and records when it was contacted. It
// stands for connection and bind failures, which the real servers produce
// in the integration tests (TestWrongPasswordNeverLocksTheAccount).
type flakyDir struct {
	controllertest.Dir
	mu       sync.Mutex
	err      error
	fp       string
	contacts []time.Time
}

func (f *flakyDir) contact() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contacts = append(f.contacts, time.Now())
	return f.err
}

func (f *flakyDir) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.contacts)
}

func (f *flakyDir) set(err error, fp string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.fp = err, fp
}

func (f *flakyDir) ResolveTargeted(ctx context.Context, names []string) (*ldapsrc.Result, error) {
	return f.Resolve(ctx, names)
}

func (f *flakyDir) Resolve(ctx context.Context, names []string) (*ldapsrc.Result, error) {
	if err := f.contact(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Dir.Resolve(ctx, names)
}

func (f *flakyDir) Mark(context.Context) (ldapsrc.Cursor, error) {
	return ldapsrc.Cursor{Server: "dc1", USN: 1}, f.contact()
}

func (f *flakyDir) Changes(_ context.Context, since ldapsrc.Cursor) (*ldapsrc.ChangeSet, error) {
	if err := f.contact(); err != nil {
		return nil, err
	}
	return &ldapsrc.ChangeSet{Next: since}, nil
}

func (f *flakyDir) PasswordFingerprint() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fp, nil
}

// newFlakyLoop runs the default configuration's loop (polls and repairs
// on) against a flakyDir, with scaled timings.
func newFlakyLoop(t *testing.T, err error) (*Loop, *flakyDir, *metrics.Metrics) {
	t.Helper()
	dir, cl := newFixture()
	fd := &flakyDir{Dir: *dir, err: err, fp: "old"}
	m := metrics.NewMetrics("test")
	s := New(testConfig(), fd, cl, zap.NewNop(), m).WithChanges(fd)
	r := &Loop{Pipeline: s, Schedule: "@every 1h", Metrics: m, Log: zap.NewNop(),
		PollInterval: 10 * time.Millisecond, RepairInterval: 10 * time.Millisecond,
		RetryMin: 100 * time.Millisecond, RetryMax: 400 * time.Millisecond, CredentialCheck: 50 * time.Millisecond}
	return r, fd, m
}

func TestOneBackoffForAllDirectoryContact(t *testing.T) {
	r, fd, _ := newFlakyLoop(t, &ldapsrc.ConnectError{Errs: []error{errors.New("dc1: connection refused")}})
	startLoop(t, r)
	time.Sleep(1500 * time.Millisecond)
	fd.mu.Lock()
	contacts := append([]time.Time(nil), fd.contacts...)
	fd.mu.Unlock()
	// Backoff 100, 200, 400, 400 ms: contacts at about 0, 0.1, 0.3, 0.7,
	// 1.1 and 1.5 s. Without it, the 10ms polls alone would make ~150.
	if len(contacts) < 4 || len(contacts) > 7 {
		t.Fatalf("%d directory contacts in 1.5s, want 4 to 7 (one doubling backoff)", len(contacts))
	}
	for i := 1; i < len(contacts); i++ {
		if gap := contacts[i].Sub(contacts[i-1]); gap < 90*time.Millisecond {
			t.Errorf("contacts %d and %d only %v apart: parallel retry chains", i-1, i, gap)
		}
	}
	if gap := contacts[3].Sub(contacts[2]); gap < 350*time.Millisecond {
		t.Errorf("third backoff %v, want it doubled to ~400ms", gap)
	}
	if r.Ready() {
		t.Error("ready without a cycle that read the directory")
	}
	// 1.5s of backoff and 10ms polls held back: a few dozen loop turns.
	if w := r.wakes.Load(); w > 100 {
		t.Errorf("%d loop turns in 1.5s of backoff: the loop spins", w)
	}
	// Recovery: the next contact succeeds, and the backoff ends.
	fd.set(nil, "old")
	waitFor(t, 2*time.Second, func() bool { return r.Ready() })
}

func TestRefusedPasswordWaitsForANewPassword(t *testing.T) {
	refused := &ldapsrc.CredentialsError{Fingerprint: "old"}
	r, fd, m := newFlakyLoop(t, fmt.Errorf("no directory server could be used: %w", refused))
	startLoop(t, r)
	waitFor(t, 2*time.Second, func() bool { return fd.count() >= 1 })
	// Many credential checks, retry backoffs and polls go by.
	time.Sleep(700 * time.Millisecond)
	if n := fd.count(); n != 1 {
		t.Fatalf("the refused password was tried %d times; want once until the file changes", n)
	}
	// Waiting is waiting: a handful of loop turns (a check every 50ms),
	// not a spin.
	if w := r.wakes.Load(); w > 60 {
		t.Errorf("%d loop turns in 0.7s while waiting for a new password", w)
	}
	if v := testCounter(t, m, "runai_ldap_sync_ldap_errors_total", `operation="credentials"`); v != 1 {
		t.Errorf("ldap_errors_total{operation=credentials} = %v", v)
	}
	// The file changes to a password that works: tried once, within one check.
	changed := time.Now()
	fd.set(nil, "new")
	waitFor(t, 2*time.Second, func() bool { return r.Ready() })
	if took := time.Since(changed); took > 300*time.Millisecond {
		t.Errorf("recovered %v after the file changed; want within one check (50ms)", took)
	}
}

func TestRefusedNewPasswordIsTriedOnce(t *testing.T) {
	r, fd, _ := newFlakyLoop(t, &ldapsrc.CredentialsError{Fingerprint: "old"})
	startLoop(t, r)
	waitFor(t, 2*time.Second, func() bool { return fd.count() >= 1 })
	// Another wrong password: tried once, then waited on again.
	fd.set(&ldapsrc.CredentialsError{Fingerprint: "new"}, "new")
	waitFor(t, 2*time.Second, func() bool { return fd.count() >= 2 })
	time.Sleep(500 * time.Millisecond)
	if n := fd.count(); n != 2 {
		t.Errorf("%d binds with two wrong passwords; want one each", n)
	}
}

func TestPartialCycleIsReadyAndCounted(t *testing.T) {
	dir, cl := newFixture()
	dir.Failing = map[string]bool{"runai-alpha-executors": true}
	m := metrics.NewMetrics("test")
	r := &Loop{Pipeline: New(testConfig(), dir, cl, zap.NewNop(), m), Schedule: "@every 1h", Metrics: m, Log: zap.NewNop(),
		RetryMin: 300 * time.Millisecond, RetryMax: time.Hour}
	start := time.Now()
	startLoop(t, r)
	waitFor(t, 5*time.Second, func() bool { return r.Ready() })
	if v := testCounter(t, m, "runai_ldap_sync_cycles_total", `result="partial"`); v != 1 {
		t.Errorf("cycles_total{partial} = %v", v)
	}
	if v := testCounter(t, m, "runai_ldap_sync_cycles_total", `result="failure"`); v != 0 {
		t.Errorf("cycles_total{failure} = %v; one failed group is a partial cycle", v)
	}
	if v := testCounter(t, m, "runai_ldap_sync_last_success_timestamp_seconds", ""); v == 0 {
		t.Error("a partial cycle is not recorded as the last cycle without failure")
	}
	// The failed group is read again by one retry, after RetryMin, not at once.
	waitFor(t, 5*time.Second, func() bool { return testCounter(t, m, "runai_ldap_sync_cycles_total", "") >= 2 })
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("partial cycle retried after %v, want RetryMin (300ms)", took)
	}
}

func TestNewTermStartsFromNothing(t *testing.T) {
	dir, cl := newFixture()
	var built []*Pipeline
	r := &Loop{Schedule: "@every 1h", Log: zap.NewNop(), Elected: true, RetryMin: time.Hour, RetryMax: time.Hour,
		NewPipeline: func() *Pipeline {
			s := New(testConfig(), dir, cl, zap.NewNop(), nil)
			built = append(built, s)
			return s
		}}
	startLoop(t, r)
	term := func(between func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Lead(ctx); close(done) }()
		waitFor(t, 5*time.Second, func() bool { return r.Ready() })
		cancel()
		<-done
		if between != nil {
			between()
		}
	}
	// Term 1 grants vera through runai-alpha-viewers.
	term(func() {
		// Meanwhile (another replica led): vera left the group and lost the
		// binding; now the group's lookup fails.
		dir.Members["runai-alpha-viewers"] = nil
		dir.Failing["runai-alpha-viewers"] = true
		cl.Lock()
		dropUser("vera")(cl.Objects[model.ViewerRef()])
		cl.Unlock()
	})
	// Term 2 must not fall back on term 1's members for the failed group:
	// that would give vera her access back.
	term(nil)
	if len(built) != 2 || built[0] == built[1] {
		t.Fatalf("%d Pipelines for two terms; each term needs its own", len(built))
	}
	for _, u := range cl.Users(model.ViewerRef()) {
		if u == "vera" {
			t.Fatal("a new term re-added a user from an earlier term's members")
		}
	}
}
