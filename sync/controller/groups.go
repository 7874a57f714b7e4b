package controller

import "github.com/runai-ldap-sync/runai-ldap-sync/sync/model"

// termMemory keeps each group's member list from its last good lookup, so
// that a binding fed by a group whose lookup fails loses no one. It lives
// for one leadership term; the term's first read of the guard's store
// seeds it (guardState.loadState) and every store write keeps it
// (plan.RememberGroups).
type termMemory map[string][]string

// Known returns the remembered member lists by group name. The caller
// only reads it.
func (m termMemory) Known() map[string][]string { return m }

// Remember records the members of the groups read without error.
func (m termMemory) Remember(groups map[string]*model.Group) {
	for name, g := range groups {
		if g.Err == nil {
			m[name] = g.Members
		}
	}
}

// learnGroups keeps what a read taught, once its groups were planned with
// (so a failure in it falls back to what was known before): the members
// of every group read without error, and, for the polls, what each group
// reached and which failed (a failed group keeps what it reached before).
func (s *Pipeline) learnGroups(groups map[string]*model.Group) {
	s.members.Remember(groups)
	s.polls.learn(groups)
}

// learn records, for the polls, what each group of a read reached and
// which failed (a failed group keeps what it reached before).
func (p *poller) learn(groups map[string]*model.Group) {
	if !p.on() {
		return
	}
	for name, g := range groups {
		if g.Err != nil {
			p.inc.failed[name] = g.Err
			continue
		}
		delete(p.inc.failed, name)
		p.inc.reached[name] = g.Reached
	}
}
