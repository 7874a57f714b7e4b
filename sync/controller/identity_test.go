package controller

import (
	"context"
	"errors"
	"reflect"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
)

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

// deletionCursor marks like fakeChanges, with a given deletion visibility.
type deletionCursor struct {
	fakeChanges
	deletions bool
}

func (d *deletionCursor) Mark(ctx context.Context) (ldapsrc.Cursor, error) {
	c, err := d.fakeChanges.Mark(ctx)
	c.Deletions = d.deletions
	return c, err
}

func TestBlindDeletionsSaidOnceAndCounted(t *testing.T) {
	dir, cl := newFixture()
	core, logs := observer.New(zapcore.InfoLevel)
	ch := &deletionCursor{fakeChanges: fakeChanges{server: "dc1", usn: 100}}
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
	ch := &deletionCursor{fakeChanges: fakeChanges{server: "dc1", usn: 100}, deletions: true}
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
	ch.Lock()
	ch.usn += 10
	ch.next = append(ch.next, &ldapsrc.ChangeSet{Next: ldapsrc.Cursor{Server: "dc1", USN: ch.usn}, LogErr: errors.New("no such object")})
	ch.Unlock()
	if res, _ := s.Poll(context.Background(), CycleOptions{}); res != PollIdle {
		t.Errorf("poll result %q, want %q: the poll itself succeeded", res, PollIdle)
	}
	if v := gauge(); v != 1 {
		t.Errorf("gauge %v after the log failed, want 1", v)
	}
	if logs.FilterMessageSnippet("could not read the directory's access log").Len() != 1 || logs.FilterMessageSnippet("polls cannot see deleted").Len() != 1 {
		t.Errorf("logs: %v", logs.All())
	}
	if s.polls.inc.cursor == nil || s.polls.inc.cursor.USN != ch.usn {
		t.Errorf("cursor %+v, want advanced to the poll's", s.polls.inc.cursor)
	}
}
