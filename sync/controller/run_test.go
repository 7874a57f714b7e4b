package controller

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller/controllertest"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// The scope alone decides what a run reads and plans: a cycle every group
// and binding, a poll the groups a change reached and the bindings whose
// desired state moved, a repair no group and the given bindings.
func TestScopeDecidesWhatIsReadAndPlanned(t *testing.T) {
	dir, cl := newFixture()
	ch := &controllertest.Changes{Server: "dc1", USN: 1}
	s := New(testConfig(), dir, cl, zap.NewNop(), nil).WithChanges(ch)
	ctx := context.Background()
	planned := func(rep *Report) []string {
		var out []string
		for _, p := range rep.Plans {
			out = append(out, p.Ref.String())
		}
		sort.Strings(out)
		return out
	}

	rep := s.Cycle(ctx, CycleOptions{})
	if rep.Err != nil || len(dir.Asked) != 1 || len(dir.Asked[0]) != 5 || len(rep.Plans) != 4 {
		t.Fatalf("cycle: err %v, read %v, planned %v; want every group and binding", rep.Err, dir.Asked, planned(rep))
	}

	dir.Members["runai-alpha-executors"] = append(dir.Members["runai-alpha-executors"], "zed")
	ch.Change("runai-alpha-executors")
	_, rep = s.Poll(ctx, CycleOptions{})
	want := []string{alphaRef.String(), model.IndexMapRef("runai").String()}
	sort.Strings(want)
	if rep == nil || rep.Err != nil || !reflect.DeepEqual(dir.Asked[1], []string{"runai-alpha-executors"}) || !reflect.DeepEqual(planned(rep), want) {
		t.Fatalf("poll: %+v, read %v, planned %v; want the changed group and %v", rep, dir.Asked[1:], planned(rep), want)
	}

	rep = s.Repair(ctx, []model.Ref{model.ViewerRef()}, CycleOptions{})
	if rep.Err != nil || len(dir.Asked) != 2 || !reflect.DeepEqual(planned(rep), []string{model.ViewerRef().String()}) {
		t.Fatalf("repair: err %v, read %v, planned %v; want no group and the viewer binding", rep.Err, dir.Asked[2:], planned(rep))
	}
}

// overlapDir's Resolve answers only once the cluster's Bindings has begun:
// a cycle that read the bindings after the directory would never finish.
type overlapDir struct {
	*controllertest.Dir
	listing <-chan struct{}
}

func (d overlapDir) Resolve(ctx context.Context, names []string) (*ldapsrc.Result, error) {
	select {
	case <-d.listing:
	case <-time.After(30 * time.Second):
		return nil, errors.New("the bindings were not being read during the directory read")
	}
	return d.Dir.Resolve(ctx, names)
}

// overlapCluster signals when Bindings begins and, with hold, blocks it
// until its context ends, recording that it ended.
type overlapCluster struct {
	*controllertest.Cluster
	listing chan struct{}
	hold    bool
	ended   chan error
}

func (c overlapCluster) Bindings(ctx context.Context, ns string) (map[model.Ref]*model.Binding, error) {
	close(c.listing)
	if c.hold {
		<-ctx.Done()
		c.ended <- ctx.Err()
		return nil, ctx.Err()
	}
	return c.Cluster.Bindings(ctx, ns)
}

// A cycle reads the current bindings beside the directory, not after it
// (once and diff list them from the API server: a second at 5,000
// projects), and plans and writes the same as before.
func TestCycleReadsBindingsBesideTheDirectory(t *testing.T) {
	dir, cl := newFixture()
	listing := make(chan struct{})
	s := New(testConfig(), overlapDir{dir, listing}, overlapCluster{Cluster: cl, listing: listing}, zap.NewNop(), nil)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil || len(rep.Plans) != 4 || len(cl.Writes) == 0 {
		t.Fatalf("cycle: err %v, %d plans, writes %v; want every binding planned and written", rep.Err, len(rep.Plans), cl.Writes)
	}
}

// When the directory cannot be read, the bindings read is stopped and has
// ended before the cycle returns: nothing of a cycle outlives it.
func TestFailedDirectoryStopsTheBindingsRead(t *testing.T) {
	dir, cl := newFixture()
	dir.ConnErr = errors.New("connection refused")
	listing := make(chan struct{})
	ended := make(chan error, 1)
	s := New(testConfig(), overlapDir{dir, listing}, overlapCluster{Cluster: cl, listing: listing, hold: true, ended: ended}, zap.NewNop(), nil)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err == nil || len(cl.Writes) != 0 {
		t.Fatalf("cycle: err %v, writes %v; want the directory's error and no write", rep.Err, cl.Writes)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the bindings read ended with %v, want its context cancelled", err)
		}
	default:
		t.Fatal("the bindings read was still running when the cycle returned")
	}
}

// probeDir records whether the cluster's Bindings begins while the
// directory is read.
type probeDir struct {
	*controllertest.Dir
	listing <-chan struct{}
	began   *bool
}

func (d probeDir) Resolve(ctx context.Context, names []string) (*ldapsrc.Result, error) {
	// A read beside this one would begin within the wait.
	select {
	case <-d.listing:
		*d.began = true
	case <-time.After(300 * time.Millisecond):
	}
	return d.Dir.Resolve(ctx, names)
}

// From memory (the daemon's synced informers) the bindings are read when
// the cycle plans, not beside the directory read, where their copies would
// only add to the live heap.
func TestInMemoryBindingsAreReadWhenPlanned(t *testing.T) {
	dir, cl := newFixture()
	cl.InMemory = true
	listing := make(chan struct{})
	began := false
	s := New(testConfig(), probeDir{dir, listing, &began}, overlapCluster{Cluster: cl, listing: listing}, zap.NewNop(), nil)
	rep := s.Cycle(context.Background(), CycleOptions{})
	if rep.Err != nil || len(rep.Plans) != 4 {
		t.Fatalf("cycle: err %v, %d plans; want every binding planned", rep.Err, len(rep.Plans))
	}
	if began {
		t.Error("the bindings were read during the directory read, from memory")
	}
	select {
	case <-listing:
	default:
		t.Error("the bindings were never read")
	}
}
