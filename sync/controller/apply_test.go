package controller

import (
	"context"
	"errors"
	"fmt"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"reflect"
	"sort"
	"testing"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// shardedFixture: 150 global viewers, 66 users of 4 characters a binding
// (bindingShardBytes 4096): the viewer binding and two shards.
func shardedFixture(t *testing.T) (*Pipeline, *controllertest.Cluster, *controllertest.Recorder, *metrics.Metrics, []string) {
	t.Helper()
	dir, cl := newFixture()
	var viewers []string
	for i := range 150 {
		viewers = append(viewers, fmt.Sprintf("v%03d", i))
	}
	dir.Members["runai-viewers"] = append(append([]string(nil), viewers...), "gina")
	cfg := testConfig()
	cfg.Kubernetes.BindingShardBytes = 4096
	cfg.Guard.MaxAddCount = 0 // 150 viewers at once: sharding, not the guard, is tested here
	rec := &controllertest.Recorder{}
	m := metrics.NewMetrics("test")
	s := New(cfg, dir, cl, zap.NewNop(), m).WithEvents(rec)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	return s, cl, rec, m, append(viewers, "gina", "vera")
}

func TestShardedBindingIsOneBindingForEventsAndMetrics(t *testing.T) {
	s, cl, rec, m, all := shardedFixture(t)
	viewer := model.ViewerRef()
	sort.Strings(all)
	if got := cl.Granted(viewer); !reflect.DeepEqual(got, all) {
		t.Fatalf("granted %d users, want %d", len(got), len(all))
	}
	for i := 0; i < 3; i++ {
		if n := len(cl.Users(model.ShardRef(viewer, i))); n == 0 || n > 66 {
			t.Errorf("binding %d holds %d users", i, n)
		}
	}
	// The first cycle's creations are one summary log line, not Events.
	if evs := rec.Take(); len(evs) != 0 {
		t.Errorf("first cycle recorded %d Events, want none: %+v", len(evs), evs)
	}
	if v := testCounter(t, m, "runai_ldap_sync_binding_shards", `name="runai-job-viewer-manual"`); v != 3 {
		t.Errorf("binding_shards = %v, want 3", v)
	}
	if v := testCounter(t, m, "runai_ldap_sync_binding_desired_subjects", `name="runai-job-viewer-manual"`); v != 152 {
		t.Errorf("desired subjects = %v, want 152 over all shards", v)
	}

	// A hand-deleted shard queues a repair of the logical binding, which
	// writes that shard alone.
	s1 := model.ShardRef(viewer, 1)
	rv := cl.Remove(s1)
	queueBinding(s, s1, nil, rv)
	refs, _ := work(s).take()
	if !reflect.DeepEqual(refs, []model.Ref{viewer}) {
		t.Fatalf("queued %v, want the logical binding", refs)
	}
	cl.Writes = nil
	if rep := s.Repair(context.Background(), refs, CycleOptions{}); rep.Err != nil || rep.Applied != 1 {
		t.Fatalf("repair: %v, applied %d", rep.Err, rep.Applied)
	}
	if !reflect.DeepEqual(cl.Writes, []model.Ref{s1}) {
		t.Errorf("repair wrote %v, want %v", cl.Writes, s1)
	}
	if got := cl.Granted(viewer); !reflect.DeepEqual(got, all) {
		t.Errorf("after the repair %d users granted", len(got))
	}
	// Its own writes are no drift.
	b, _ := cl.Get(context.Background(), s1)
	queueBinding(s, s1, b, b.ResourceVersion)
	if p := pending(s); len(p) != 0 {
		t.Errorf("own shard write queued: %v", p)
	}

	// The whole logical binding deleted by hand: its re-creation is drift,
	// one Event on the logical binding, none on its shards.
	for i := 0; i <= model.MaxShards; i++ {
		cl.Remove(model.ShardRef(viewer, i))
	}
	rec.Take()
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil || rep.Created != 0 {
		t.Fatalf("cycle: %v, created %d in the summary, want 0", rep.Err, rep.Created)
	}
	var viewerEvents int
	for _, e := range rec.Take() {
		if e.Ref.Name != model.ViewerBinding && e.Ref.Kind == model.KindClusterRoleBinding {
			t.Errorf("event on a shard: %+v", e)
		}
		if e.Ref == viewer {
			viewerEvents++
			if e.Reason != ReasonCreated || e.UID != "uid-"+viewer.String() {
				t.Errorf("re-creation event %+v", e)
			}
		}
	}
	if viewerEvents != 1 {
		t.Errorf("%d events on the viewer binding, want one for the logical binding", viewerEvents)
	}
}

// Users moving off an over-full binding are removed from it only after the
// shards that take them were written: when those writes fail, nobody loses
// the role.
func TestShardMovesWaitForTheirWrites(t *testing.T) {
	s, cl, _, _, all := shardedFixture(t)
	viewer := model.ViewerRef()
	sort.Strings(all)
	before := cl.Users(viewer)
	s.cfg.Kubernetes.BindingShardBytes = 3000 // 42 users a binding: moves
	for i := 1; i <= model.MaxShards; i++ {
		cl.FailOn[model.ShardRef(viewer, i)] = true
	}
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || rep.WriteErrors[viewer] == nil {
		t.Fatalf("want a write error on the viewer binding, got %v", rep.Err)
	}
	if got := cl.Users(viewer); !reflect.DeepEqual(got, before) {
		t.Errorf("the first binding lost users before their new shard was written: %d of %d", len(got), len(before))
	}
	clear(cl.FailOn)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if got := cl.Granted(viewer); !reflect.DeepEqual(got, all) {
		t.Errorf("after the moves %d users granted, want %d", len(got), len(all))
	}
	for i := 0; i <= model.MaxShards; i++ {
		if n := len(cl.Users(model.ShardRef(viewer, i))); n > 42 {
			t.Errorf("binding %d holds %d users, more than the safe size", i, n)
		}
	}
}

// A shard that leaves its binding untouched in a cycle (here: its roleRef
// is not Run:AI's) does so in a repair too, also with sharding turned off
// (kubernetes.maxBindingShards: 0) after the shard was made: the repair
// reads the shards the cycle read, and writes nothing.
func TestRepairReadsTheShardsTheCycleRead(t *testing.T) {
	dir, cl := newFixture()
	cfg := testConfig()
	cfg.Kubernetes.MaxBindingShards = 0
	shard := model.ShardRef(alphaRef, 1)
	cl.Objects[shard] = &model.Binding{Ref: shard, Exists: true, ResourceVersion: "1", Annotations: map[string]string{},
		RoleRef: model.RoleRef{APIGroup: model.RBACGroup, Kind: "ClusterRole", Name: "cluster-admin"}}
	cl.Objects[alphaRef] = &model.Binding{Ref: alphaRef, Exists: true, ResourceVersion: "2", Annotations: map[string]string{},
		RoleRef: model.ExpectedRoleRef(alphaRef.Name), Subjects: []model.Subject{model.UserSubject("bob")}}
	s := New(cfg, dir, cl, zap.NewNop(), nil)
	rep := s.Cycle(context.Background(), CycleOptions{})
	for _, p := range rep.Plans {
		if p.Ref == alphaRef && !errors.Is(p.Err, plan.ErrRoleRefMismatch) {
			t.Fatalf("cycle plan of alpha: %+v, want the shard's roleRef mismatch", p)
		}
	}
	cl.Writes = nil
	b := cl.Edit(alphaRef, dropUser("bob"))
	queueBinding(s, alphaRef, b, b.ResourceVersion)
	refs, _ := work(s).take()
	rep = s.Repair(context.Background(), refs, CycleOptions{})
	if len(cl.Writes) != 0 {
		t.Errorf("repair wrote %v past the shard the cycle left the binding untouched for", cl.Writes)
	}
	for _, p := range rep.Plans {
		if p.Ref == alphaRef && !errors.Is(p.Err, plan.ErrRoleRefMismatch) {
			t.Errorf("repair plan of alpha: err %v, want the shard's roleRef mismatch", p.Err)
		}
	}
}
