package controller

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"go.uber.org/zap"

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
