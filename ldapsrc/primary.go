package ldapsrc

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Primary groups (Active Directory). A user's primaryGroupID names one
// group of its own domain by RID (the last sub-authority of the group's
// objectSid); AD lists that membership neither in the group's member
// values nor in the user's memberOf, nor does the in-chain rule follow it,
// yet ADUC shows it under "Member Of" and Windows grants access through it.
// AD admins expect such a user to be a member, so both resolutions add the
// users whose primary group is the resolved group or a group nested in it.
//
// Domain Users (RID 513) is every user's primary group: a project bound to
// it, or to a group that nests it, resolves to the whole domain. That is
// what AD means, and it goes through the same guard as any other addition
// (guard.maxAddCount holds a burst of additions to an existing binding);
// README says so.

// primaryState holds, per resolved group name, the SIDs of the groups whose
// primary members it takes in (itself and its nested groups), for the
// in-chain resolution, which learns them while searching.
type primaryState struct {
	sids map[string][]groupSID // resolved group name -> itself and nested groups
}

type groupSID struct{ sid, dn string }

func (r *resolver) primaryGroups() *primaryState {
	if r.primary == nil {
		r.primary = &primaryState{sids: map[string][]groupSID{}}
	}
	return r.primary
}

// decodeSID renders a binary objectSid as S-1-5-21-…; "" when malformed.
func decodeSID(b []byte) string {
	if len(b) < 8 || len(b) != 8+4*int(b[1]) {
		return ""
	}
	var auth uint64
	for _, v := range b[2:8] {
		auth = auth<<8 | uint64(v)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "S-%d-%d", b[0], auth)
	for i := 8; i < len(b); i += 4 {
		fmt.Fprintf(&s, "-%d", binary.LittleEndian.Uint32(b[i:]))
	}
	return s.String()
}

// primaryGroupSID is the SID of a user's primary group: the user's domain
// (its SID without the RID) and primaryGroupID; "" when either is missing.
func primaryGroupSID(userSID []byte, primaryGroupID string) string {
	sid := decodeSID(userSID)
	i := strings.LastIndexByte(sid, '-')
	if i < 0 || primaryGroupID == "" {
		return ""
	}
	if _, err := strconv.ParseUint(primaryGroupID, 10, 32); err != nil {
		return ""
	}
	return sid[:i+1] + primaryGroupID
}

// domainUsersRID is the well-known RID of Domain Users, every account's
// primary group unless changed.
const domainUsersRID = "513"

// warnDomainWide says, once per resolution, that a resolved group takes in
// the whole domain through Domain Users: what AD means, but rarely what a
// project's owner meant.
func (r *resolver) warnDomainWide(name, groupDN string, members int) {
	if r.warned == nil {
		r.warned = map[string]bool{}
	}
	if r.warned[name] {
		return
	}
	r.warned[name] = true
	r.src.log.Warn("a project group reaches Domain Users, every account's primary group: it resolves to the whole domain (guard.maxAddCount holds such a burst of additions to an existing binding)",
		zap.String("group", name), zap.String("via", groupDN), zap.Int("primaryMembers", members))
}

// sidRID is the last sub-authority of a SID string.
func sidRID(sid string) string {
	return sid[strings.LastIndexByte(sid, '-')+1:]
}

// readPrimaryMembers reads, into users, the accounts under the user base
// whose primary group is one of the given group SIDs (batched by RID; the
// domain part is compared when the members are taken).
func (r *dirReader) readPrimaryMembers(ctx context.Context, sids []string, users *userIndex) error {
	rids := map[string]struct{}{}
	for _, s := range sids {
		if s != "" {
			rids[sidRID(s)] = struct{}{}
		}
	}
	if len(rids) == 0 {
		return nil
	}
	list := make([]string, 0, len(rids))
	for rid := range rids {
		list = append(list, rid)
	}
	sort.Strings(list)
	return r.inBatches(list, func(batch []string) error {
		if err := r.readUsersInto(ctx, orFilter("primaryGroupID", batch), users); err != nil {
			return fmt.Errorf("read the users whose primary group is a resolved group: %w", err)
		}
		return nil
	})
}

// addPrimaryMembers completes the in-chain resolution: one batched search
// for the users whose primary group is a resolved group or one nested in
// it, taken into each group's members like direct members.
func (r *resolver) addPrimaryMembers(ctx context.Context, names []string) {
	if r.src.cfg.Schema != config.SchemaActiveDirectory || r.primary == nil {
		return
	}
	var all []string
	for _, n := range names {
		if g := r.res.Groups[n]; g.Found && g.Err == nil {
			for _, gs := range r.primary.sids[n] {
				all = append(all, gs.sid)
			}
		}
	}
	users := newUserIndex()
	if err := r.readPrimaryMembers(ctx, all, users); err != nil {
		// Without them the members are incomplete: the group's error, so
		// nothing is removed on a partial answer.
		for _, n := range names {
			if g := r.res.Groups[n]; g.Found && g.Err == nil && len(r.primary.sids[n]) > 0 {
				g.Err = err
			}
		}
		return
	}
	for _, n := range names {
		g := r.res.Groups[n]
		if !g.Found || g.Err != nil {
			continue
		}
		set := map[string]struct{}{}
		for _, id := range g.Members {
			set[id] = struct{}{}
		}
		for _, gs := range r.primary.sids[n] {
			if sidRID(gs.sid) == domainUsersRID && len(users.byPrimary[gs.sid]) > 0 {
				r.warnDomainWide(n, gs.dn, len(users.byPrimary[gs.sid]))
			}
			for _, u := range users.byPrimary[gs.sid] {
				r.skips.take(u, set)
				if r.src.Reach {
					g.Reached = append(g.Reached, reachKey(u.dn, u.identity))
				}
				if r.src.Trace {
					path := []string{n}
					if !dnEqual(gs.dn, g.DN) {
						path = append(path, rdnValue(gs.dn))
					}
					g.Memberships = append(g.Memberships, model.Membership{RawID: u.raw, ID: u.id, DN: u.dn, Path: path, Skip: u.skip, Identity: IdentityLabel(u.identity)})
				}
			}
		}
		g.Members = model.SortedKeys(set)
	}
}
