package controller

import "github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"

// MemberMemory keeps each group's member list from its last good lookup,
// so that a binding fed by a group whose lookup fails loses no one. The
// default lives in memory for one leadership term; a persistent store can
// stand in (WithMemberMemory).
type MemberMemory interface {
	// Known returns the remembered member lists by group name. The caller
	// only reads it.
	Known() map[string][]string
	// Remember records the members of the groups read without error.
	Remember(groups map[string]*ldapsrc.Group)
}

// termMemory is the default MemberMemory: one term's, in memory.
type termMemory map[string][]string

func (m termMemory) Known() map[string][]string { return m }

func (m termMemory) Remember(groups map[string]*ldapsrc.Group) {
	for name, g := range groups {
		if g.Err == nil {
			m[name] = g.Members
		}
	}
}

// WithMemberMemory replaces the term's in-memory record of last known
// members. Call it before the first cycle.
func (s *Syncer) WithMemberMemory(m MemberMemory) *Syncer {
	s.members = m
	return s
}

// noteGroups records in rep which groups of a directory read failed and
// which do not exist: the same for a cycle's read and a poll's.
func noteGroups(rep *Report, groups map[string]*ldapsrc.Group) {
	for _, name := range sortedGroupNames(groups) {
		g := groups[name]
		switch {
		case g.Err != nil:
			rep.FailedGroups[name] = g.Err
		case !g.Found:
			rep.MissingGroups = append(rep.MissingGroups, name)
		}
	}
}

// learnGroups keeps what a read taught, once its groups were planned with
// (so a failure in it falls back to what was known before): the members
// of every group read without error, and, for the polls, what each group
// reached and which failed (a failed group keeps what it reached before).
func (s *Syncer) learnGroups(groups map[string]*ldapsrc.Group) {
	s.members.Remember(groups)
	s.polls.learn(groups)
}

// learn records, for the polls, what each group of a read reached and
// which failed (a failed group keeps what it reached before).
func (p *poller) learn(groups map[string]*ldapsrc.Group) {
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
