// Waiting for a condition: every wait polls a condition until a deadline, never
// sleeps then asserts.

package integration

import (
	"testing"
	"time"
)

// waitUntil retries fn until it returns nil, for a policy or its
// parameters to reach the API server's admission (they load asynchronously).
func waitUntil(t *testing.T, what string, fn func() error) {
	t.Helper()
	waitFor(t, 60*time.Second, what, fn)
}

// waitFor retries cond until it returns nil, or fails the test with
// cond's last error once timeout has passed. The tests wait through it (a
// fault injector that must strike within milliseconds polls on its own).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(waitInterval)
	}
}

// waitInterval is how often a wait checks its condition.
const waitInterval = 100 * time.Millisecond

// pollBound: a few of the default 5 s poll intervals, far below the hour.
const pollBound = 20 * time.Second

// propagationBound is the poll interval plus a few seconds.
const propagationBound = 6 * time.Second
