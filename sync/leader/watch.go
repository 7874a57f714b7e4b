package leader

import (
	"context"
	"sync"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// StallLeaseDurations is how many lease durations a held Lease may go
// unrenewed before a replica calls the election stalled. A live leader
// renews every RetryPeriod; a holder that stops and had written a lease
// duration no longer than ours is taken over after one.
const StallLeaseDurations = 3

// Watch keeps, as this replica sees it, when the Lease's record last
// changed (a renewal changes renewTime) and who holds it: a Lease held but
// not renewed for StallLeaseDurations lease durations (a dead holder that
// wrote a long leaseDurationSeconds, or a Lease taken by a token) means
// nobody syncs, while every replica stands by and looks healthy. Pure: the
// caller passes the time.
type Watch struct {
	mu       sync.Mutex
	holder   string
	renew    time.Time // the record's renewTime
	duration int       // the record's leaseDurationSeconds
	changed  time.Time // local time of the last change seen
}

// Observe records the Lease's record as seen at now.
func (w *Watch) Observe(rec resourcelock.LeaderElectionRecord, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	renew := rec.RenewTime.Time
	if w.changed.IsZero() || rec.HolderIdentity != w.holder || !renew.Equal(w.renew) || rec.LeaseDurationSeconds != w.duration {
		w.holder, w.renew, w.duration, w.changed = rec.HolderIdentity, renew, rec.LeaseDurationSeconds, now
	}
}

// State returns the holder, how long ago the record last changed (0 before
// the first observation) and whether the election is stalled: held, and
// unchanged for longer than limit.
func (w *Watch) State(now time.Time, limit time.Duration) (holder string, age time.Duration, stalled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed.IsZero() {
		return "", 0, false
	}
	age = now.Sub(w.changed)
	return w.holder, age, w.holder != "" && age > limit
}

// watchedLock is the Lease lock, telling w about every record it reads or
// writes.
type watchedLock struct {
	*resourcelock.LeaseLock
	w   *Watch
	now func() time.Time
}

func (l *watchedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.LeaseLock.Get(ctx)
	if err == nil && rec != nil {
		l.w.Observe(*rec, l.now())
	}
	return rec, raw, err
}

func (l *watchedLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.LeaseLock.Create(ctx, rec)
	if err == nil {
		l.w.Observe(rec, l.now())
	}
	return err
}

func (l *watchedLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.LeaseLock.Update(ctx, rec)
	if err == nil {
		l.w.Observe(rec, l.now())
	}
	return err
}
