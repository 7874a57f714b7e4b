package plan

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// benchState builds the large scale in memory: 5,000 projects with
// an executors and a viewers group of 20 members drawn from 100,000 users,
// and current bindings equal to the desired state (a steady-state cycle).
func benchState(b *testing.B) ([]Project, map[string]*model.Group, map[model.Ref]*model.Binding) {
	b.Helper()
	const projects, users, size = 5000, 100000, 20
	rng := rand.New(rand.NewPCG(1, 2))
	groups := map[string]*model.Group{}
	var ps []Project
	for p := 0; p < projects; p++ {
		name := fmt.Sprintf("p%04d", p)
		ps = append(ps, Project{Name: name, Namespace: "runai-" + name})
		for _, kind := range []string{"executors", "viewers"} {
			set := map[string]struct{}{}
			for len(set) < size {
				set[fmt.Sprintf("u%06d", rng.IntN(users))] = struct{}{}
			}
			gn := "runai-" + name + "-" + kind
			groups[gn] = &model.Group{Name: gn, Found: true, Members: model.SortedKeys(set)}
		}
	}
	groups["runai-viewers"] = &model.Group{Name: "runai-viewers", Found: true}
	current := map[model.Ref]*model.Binding{}
	for _, d := range DesiredState(ps, testGroups, "runai", groups, nil) {
		b := &model.Binding{Ref: d.Ref, Exists: true, RoleRef: model.ExpectedRoleRef(d.Ref.Name), Managed: d.Users}
		b.Subjects = model.NewSubjects(nil, d.Users, nil)
		current[d.Ref] = b
	}
	return ps, groups, current
}

func BenchmarkDesiredState5000Projects(b *testing.B) {
	ps, groups, _ := benchState(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		DesiredState(ps, testGroups, "runai", groups, nil)
	}
}

func BenchmarkPlanSteadyState5000Projects(b *testing.B) {
	ps, groups, current := benchState(b)
	desired := DesiredState(ps, testGroups, "runai", groups, nil)
	opts := PlanOptions{Policy: config.PolicySync, Guard: config.Guard{MaxRemovePercent: 50, MaxRemoveCount: 20}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plans := Plan(desired, current, opts)
		for _, p := range plans {
			if p.HasChanges() {
				b.Fatalf("steady state plans a change to %s", p.Ref)
			}
		}
	}
}
