package leader

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func TestWatchStall(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	limit := StallLeaseDurations * 15 * time.Second
	rec := func(holder string, renew time.Time, seconds int) resourcelock.LeaderElectionRecord {
		return resourcelock.LeaderElectionRecord{HolderIdentity: holder, RenewTime: metav1.NewTime(renew), LeaseDurationSeconds: seconds}
	}
	var w Watch
	if _, _, stalled := w.State(t0, limit); stalled {
		t.Fatal("stalled before any observation")
	}
	// A live leader renews every 2s: never stalled.
	for i := 0; i < 60; i++ {
		now := t0.Add(time.Duration(i) * 2 * time.Second)
		w.Observe(rec("pod-a_0123abcd", now, 15), now)
		if _, _, stalled := w.State(now.Add(time.Second), limit); stalled {
			t.Fatalf("stalled with a renewing leader at %s", now)
		}
	}
	// The holder stops renewing, with a huge lease duration: the same
	// record, read again and again, is a stall past the limit only.
	grab := t0.Add(10 * time.Minute)
	w.Observe(rec("x", grab, 2147483647), grab)
	for s := 0; s <= 60; s += 2 {
		now := grab.Add(time.Duration(s) * time.Second)
		w.Observe(rec("x", grab, 2147483647), now)
		holder, age, stalled := w.State(now, limit)
		if want := time.Duration(s) * time.Second; age != want || holder != "x" {
			t.Fatalf("at +%ds: holder %q age %s, want x %s", s, holder, age, want)
		}
		if stalled != (time.Duration(s)*time.Second > limit) {
			t.Fatalf("at +%ds: stalled=%v with limit %s", s, stalled, limit)
		}
	}
	// Released (holder ""), however long ago: not a stall.
	rel := grab.Add(2 * time.Minute)
	w.Observe(rec("", rel, 1), rel)
	if _, _, stalled := w.State(rel.Add(time.Hour), limit); stalled {
		t.Error("a released lease counted as stalled")
	}
	// A new holder renewing clears it.
	w.Observe(rec("pod-b_89abcdef", rel.Add(time.Hour), 15), rel.Add(time.Hour))
	if _, age, stalled := w.State(rel.Add(time.Hour+time.Second), limit); stalled || age != time.Second {
		t.Errorf("after a takeover: stalled=%v age=%s", stalled, age)
	}
}
