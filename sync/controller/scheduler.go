package controller

import "time"

// action is what the loop does next.
type action int

const (
	actNone action = iota
	// actCheckPassword: the refused password file is due for a re-read.
	actCheckPassword
	// actQueueCycle: the informers asked for a full cycle (project
	// namespaces changed) and the repair interval allows it.
	actQueueCycle
	// actCycle: the full cycle due runs.
	actCycle
	// actRepair: the bindings (or template objects) the informers saw
	// drift are repaired.
	actRepair
	// actRetryRepairs: the failed repairs are queued again.
	actRetryRepairs
	// actPoll: the directory is asked what changed.
	actPoll
)

// schedule is what the scheduling decision reads of the loop's state.
type schedule struct {
	// cred: the directory refused the password; nothing contacts it until
	// the file (checked at credNextCheck) differs.
	cred          bool
	credNextCheck time.Time
	// backoffUntil: no directory contact before it (after failures).
	backoffUntil time.Time
	// cycle: a full cycle is due at cycleAt.
	cycle   bool
	cycleAt time.Time
	// watchCycle: the informers asked for a full cycle; repairWork:
	// bindings or template objects wait for a repair, since workSince.
	watchCycle, repairWork bool
	workSince              time.Time
	// repairs: repairs are on, at most one per repairInterval.
	repairs        bool
	repairInterval time.Duration
	lastRepair     time.Time
	// retries: failed repairs wait to be queued again at retryAt.
	retries bool
	retryAt time.Time
	// polls: polls are on, the next due at nextPoll.
	polls    bool
	nextPoll time.Time
}

// decide is the loop's scheduling decision, a pure function of its state
// and the time: what to do now (actNone: nothing is due) and, if nothing,
// when something may become due without a new event. The order is the
// priority: the password check, a cycle, repairs, then polls, which go on
// while a retry waits for its time (not for a cycle due now).
func decide(s schedule, now time.Time) (action, time.Time) {
	open := !s.cred && !now.Before(s.backoffUntil)
	repairDue := !s.workSince.IsZero() && !now.Before(s.workSince.Add(coalesceDelay)) && !now.Before(s.lastRepair.Add(s.repairInterval))
	switch {
	case s.cred && !now.Before(s.credNextCheck):
		return actCheckPassword, now
	case s.watchCycle && repairDue:
		return actQueueCycle, now
	case s.cycle && open && !now.Before(s.cycleAt):
		return actCycle, now
	case s.repairs && s.repairWork && repairDue:
		return actRepair, now
	case s.retries && !now.Before(s.retryAt):
		return actRetryRepairs, now
	case s.polls && open && (!s.cycle || now.Before(s.cycleAt)) && !now.Before(s.nextPoll):
		return actPoll, now
	}
	return actNone, wake(s, now)
}

// wake is when something may become due without a new event (at most an
// hour ahead).
func wake(s schedule, now time.Time) time.Time {
	at := now.Add(time.Hour)
	earlier := func(t time.Time) {
		if t.Before(at) {
			at = t
		}
	}
	// When the directory may be contacted again.
	open := s.backoffUntil
	if s.cred {
		earlier(s.credNextCheck)
		open = at // not before the next password check
	}
	if s.cycle {
		earlier(later(s.cycleAt, open))
	}
	if s.polls {
		earlier(later(s.nextPoll, open))
	}
	if !s.workSince.IsZero() {
		earlier(later(s.workSince.Add(coalesceDelay), s.lastRepair.Add(s.repairInterval)))
	}
	if s.retries {
		earlier(s.retryAt)
	}
	return at
}
