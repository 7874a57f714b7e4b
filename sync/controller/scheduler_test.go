package controller

import (
	"testing"
	"time"
)

// The scheduling decision is a pure function of the loop's state and the
// time: every case below is decided without a clock or a sleep.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	in := func(d time.Duration) time.Time { return now.Add(d) }
	for _, tc := range []struct {
		name     string
		s        schedule
		want     action
		wantWake time.Time // for actNone
	}{
		{"idle: look again in an hour", schedule{}, actNone, in(time.Hour)},
		{"cycle due", schedule{cycle: true, cycleAt: ago(time.Second)}, actCycle, time.Time{}},
		{"cycle due later", schedule{cycle: true, cycleAt: in(time.Minute)}, actNone, in(time.Minute)},
		{"cycle due but the directory backs off", schedule{cycle: true, backoffUntil: in(30 * time.Second)}, actNone, in(30 * time.Second)},
		{"refused password: no cycle, the file is checked first",
			schedule{cred: true, credNextCheck: in(10 * time.Second), cycle: true, polls: true}, actNone, in(10 * time.Second)},
		{"refused password: check due", schedule{cred: true, credNextCheck: ago(0), cycle: true}, actCheckPassword, time.Time{}},
		{"repair waits for the burst to settle",
			schedule{repairs: true, repairWork: true, workSince: ago(50 * time.Millisecond)}, actNone, now.Add(coalesceDelay - 50*time.Millisecond)},
		{"repair due", schedule{repairs: true, repairWork: true, workSince: ago(time.Second)}, actRepair, time.Time{}},
		{"repair rate-limited by the interval",
			schedule{repairs: true, repairWork: true, workSince: ago(time.Second), repairInterval: 10 * time.Second, lastRepair: ago(4 * time.Second)},
			actNone, in(6 * time.Second)},
		{"watched namespaces queue a cycle, rate-limited like repairs", schedule{watchCycle: true, workSince: ago(time.Second)}, actQueueCycle, time.Time{}},
		{"a cycle due goes before repairs",
			schedule{cycle: true, repairs: true, repairWork: true, workSince: ago(time.Second)}, actCycle, time.Time{}},
		{"a repair goes even while the directory backs off",
			schedule{cycle: true, backoffUntil: in(time.Minute), repairs: true, repairWork: true, workSince: ago(time.Second)}, actRepair, time.Time{}},
		{"failed repairs queued again at their time", schedule{retries: true, retryAt: ago(0)}, actRetryRepairs, time.Time{}},
		{"failed repairs wait", schedule{retries: true, retryAt: in(5 * time.Second)}, actNone, in(5 * time.Second)},
		{"poll due", schedule{polls: true, nextPoll: ago(0)}, actPoll, time.Time{}},
		{"poll waits for the backoff", schedule{polls: true, nextPoll: ago(0), backoffUntil: in(time.Minute)}, actNone, in(time.Minute)},
		{"no poll when a cycle is due now", schedule{polls: true, cycle: true, cycleAt: ago(0), backoffUntil: in(time.Minute)}, actNone, in(time.Minute)},
		{"polls go on while a retry cycle waits", schedule{polls: true, cycle: true, cycleAt: in(time.Minute)}, actPoll, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, wake := decide(tc.s, now)
			if got != tc.want {
				t.Fatalf("decide = %v, want %v", got, tc.want)
			}
			if got == actNone && !wake.Equal(tc.wantWake) {
				t.Errorf("wake at %v, want %v", wake.Sub(now), tc.wantWake.Sub(now))
			}
		})
	}
}
