package plan

import (
	"errors"
	"reflect"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

var execRef = model.ExecutorRef("runai-alpha")

func users(names ...string) []model.Subject {
	out := make([]model.Subject, 0, len(names))
	for _, n := range names {
		out = append(out, model.UserSubject(n))
	}
	return out
}

func binding(subjects []model.Subject, managed ...string) *model.Binding {
	return &model.Binding{Ref: execRef, Exists: true, RoleRef: model.ExpectedRoleRef(model.ExecutorBinding),
		Subjects: subjects, Managed: managed, Annotations: map[string]string{}}
}

var defaultGuard = config.Guard{MaxRemovePercent: 50, MaxRemoveCount: 20}

func TestPlan(t *testing.T) {
	group := model.Subject{APIGroup: model.RBACGroup, Kind: model.KindGroup, Name: "admins"}
	sa := model.Subject{Kind: model.KindServiceAccount, Name: "runner", Namespace: "runai-alpha"}
	withApproval := binding(users("a", "b", "c"), "a", "b", "c")
	approval := &model.StateSnapshot{Approvals: map[string]string{ApprovalKey(execRef, []string{"b", "c"}, nil): "test"}}
	wrongRole := binding(users("a"))
	wrongRole.RoleRef.Name = "cluster-admin"
	badRecord := binding(users("a", "b"))
	badRecord.ManagedErr = errors.New("annotation: not a JSON list")

	tests := []struct {
		name        string
		desired     Desired
		current     *model.Binding
		policy      string
		approveAll  bool
		state       *model.StateSnapshot
		wantCreate  bool
		wantAdd     []string
		wantRemove  []string
		wantHeld    []string
		wantReason  string
		wantErr     bool
		wantMissing int
		wantUnexp   int
	}{
		{name: "unreadable ownership record: left untouched", desired: Desired{Ref: execRef},
			current: badRecord, wantErr: true},
		{name: "missing binding is created", desired: Desired{Ref: execRef, Users: []string{"a", "b"}},
			wantCreate: true, wantAdd: []string{"a", "b"}, wantMissing: 2},
		{name: "missing binding is created even when empty", desired: Desired{Ref: execRef},
			wantCreate: true},
		{name: "equal sets: no write, whatever the order and duplicates",
			desired: Desired{Ref: execRef, Users: []string{"a", "b", "c"}},
			current: binding(users("c", "a", "b", "a"), "a", "b", "c")},
		{name: "adds what is missing", desired: Desired{Ref: execRef, Users: []string{"a", "b", "c"}},
			current: binding(users("a"), "a"), wantAdd: []string{"b", "c"}, wantMissing: 2},
		{name: "removes only what it added (sync)", desired: Desired{Ref: execRef, Users: []string{"a", "b"}},
			current: binding(users("a", "b", "c", "hand"), "a", "b", "c"), wantRemove: []string{"c"}, wantUnexp: 1},
		{name: "hand-added user, groups and service accounts are kept",
			desired: Desired{Ref: execRef, Users: []string{"a", "b", "c"}},
			current: binding(append(users("a", "b", "c", "hand"), group, sa), "a", "b", "c")},
		{name: "upsert-only never removes", policy: config.PolicyUpsertOnly,
			desired: Desired{Ref: execRef, Users: []string{"a", "b"}},
			current: binding(users("a", "b", "c"), "a", "b", "c")},
		{name: "authoritative removes unowned users but not groups", policy: config.PolicyAuthoritative,
			desired:    Desired{Ref: execRef, Users: []string{"a", "b", "c"}},
			current:    binding(append(users("a", "b", "c", "hand"), group), "a", "b", "c"),
			wantRemove: []string{"hand"}, wantUnexp: 1},
		{name: "removing every managed user is held", desired: Desired{Ref: execRef},
			current: binding(users("a", "b", "hand"), "a", "b"), wantHeld: []string{"a", "b"}, wantReason: HoldRemovesAll, wantUnexp: 2},
		{name: "removing over half is held, additions still made", desired: Desired{Ref: execRef, Users: []string{"a", "z"}},
			current: binding(users("a", "b", "c"), "a", "b", "c"), wantAdd: []string{"z"}, wantHeld: []string{"b", "c"},
			wantReason: HoldTooLarge, wantMissing: 1, wantUnexp: 2},
		{name: "approval in the store releases held removals", desired: Desired{Ref: execRef, Users: []string{"a"}},
			current: withApproval, state: approval, wantRemove: []string{"b", "c"}, wantReason: HoldTooLarge, wantUnexp: 2},
		{name: "approve flag releases held removals", desired: Desired{Ref: execRef}, approveAll: true,
			current: binding(users("a"), "a"), wantRemove: []string{"a"}, wantReason: HoldRemovesAll, wantUnexp: 1},
		{name: "incomplete desired state adds but never removes",
			desired: Desired{Ref: execRef, Users: []string{"a", "new"}, Incomplete: true},
			current: binding(users("a", "b", "c"), "a", "b", "c"), wantAdd: []string{"new"}, wantMissing: 1},
		{name: "lookup error leaves the binding untouched",
			desired: Desired{Ref: execRef, Err: errors.New("group failed")},
			current: binding(users("a"), "a"), wantErr: true},
		{name: "wrong roleRef is reported and left alone", desired: Desired{Ref: execRef, Users: []string{"b"}},
			current: wrongRole, wantErr: true},
		{name: "user removed by hand is added back", desired: Desired{Ref: execRef, Users: []string{"a", "b"}},
			current: binding(users("a"), "a", "b"), wantAdd: []string{"b"}, wantMissing: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			current := map[model.Ref]*model.Binding{}
			if tc.current != nil {
				current[execRef] = tc.current
			}
			policy := tc.policy
			if policy == "" {
				policy = config.PolicySync
			}
			opts := PlanOptions{Policy: policy, Guard: defaultGuard, State: tc.state}
			if tc.approveAll {
				opts.Approve = execRef
			}
			plans := Plan([]Desired{tc.desired}, current, opts)
			if len(plans) != 1 {
				t.Fatalf("got %d plans", len(plans))
			}
			p := plans[0]
			if (p.Err != nil) != tc.wantErr {
				t.Fatalf("Err = %v, want error %v", p.Err, tc.wantErr)
			}
			if tc.wantErr {
				if p.HasChanges() {
					t.Errorf("a binding with an error must not change: %+v", p)
				}
				return
			}
			if p.Create != tc.wantCreate || !eq(p.Add, tc.wantAdd) || !eq(p.Remove, tc.wantRemove) || !eq(p.Held, tc.wantHeld) {
				t.Errorf("plan create=%v add=%v remove=%v held=%v; want create=%v add=%v remove=%v held=%v",
					p.Create, p.Add, p.Remove, p.Held, tc.wantCreate, tc.wantAdd, tc.wantRemove, tc.wantHeld)
			}
			if p.HoldReason != tc.wantReason {
				t.Errorf("reason %q, want %q", p.HoldReason, tc.wantReason)
			}
			if p.Missing != tc.wantMissing || p.Unexpected != tc.wantUnexp {
				t.Errorf("drift missing=%d unexpected=%d, want %d %d", p.Missing, p.Unexpected, tc.wantMissing, tc.wantUnexp)
			}
			wantChange := tc.wantCreate || len(tc.wantAdd)+len(tc.wantRemove) > 0
			if p.HasChanges() != wantChange {
				t.Errorf("HasChanges = %v, want %v", p.HasChanges(), wantChange)
			}
		})
	}
}

func TestRemovalHold(t *testing.T) {
	g := config.Guard{MaxRemovePercent: 50, MaxRemoveCount: 20}
	tests := []struct {
		n, base, window int
		want            string
	}{
		{1, 10, 0, ""}, {5, 10, 0, ""}, {6, 10, 0, HoldTooLarge}, {10, 10, 0, HoldRemovesAll},
		{1, 1, 0, HoldRemovesAll}, {1, 2, 0, ""}, {21, 100, 0, HoldTooMany}, {20, 100, 0, ""},
		// The window's earlier removals count: the 6th of 10 removed one
		// at a time is over half, the 21st of 100 over the count.
		{1, 6, 4, ""}, {1, 5, 5, HoldTooLarge}, {1, 80, 20, HoldTooMany}, {1, 81, 19, ""},
	}
	for _, tc := range tests {
		if got := removalHold(tc.n, tc.base, tc.window, g); got != tc.want {
			t.Errorf("removalHold(%d, %d, %d) = %q, want %q", tc.n, tc.base, tc.window, got, tc.want)
		}
	}
	if got := removalHold(9, 10, 0, config.Guard{MaxRemovePercent: 100, MaxRemoveCount: 1000}); got != "" {
		t.Errorf("percent 100 disables the share rule, got %q", got)
	}
	small := config.Guard{MaxRemovePercent: 50, MaxRemoveCount: 20, AllowEmptyBelow: 3}
	if got := removalHold(2, 2, 0, small); got != "" {
		t.Errorf("allowEmptyBelow 3 lets a binding of 2 be emptied, got %q", got)
	}
	if got := removalHold(1, 1, 2, small); got != HoldRemovesAll {
		t.Errorf("allowEmptyBelow counts the window's removals too (3 managed when it began), got %q", got)
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	d := []Desired{{Ref: execRef, Users: []string{"a", "b", "c", "d"}}}
	cur := map[model.Ref]*model.Binding{execRef: binding(users("x", "a", "y"), "x", "y", "a")}
	opts := PlanOptions{Policy: config.PolicySync, Guard: config.Guard{MaxRemovePercent: 100, MaxRemoveCount: 100}}
	first := Plan(d, cur, opts)
	for i := 0; i < 20; i++ {
		if got := Plan(d, cur, opts); !reflect.DeepEqual(got, first) {
			t.Fatalf("plan differs between runs:\n%+v\n%+v", got, first)
		}
	}
	if !eq(first[0].Remove, []string{"x", "y"}) {
		t.Errorf("remove = %v", first[0].Remove)
	}
}

func eq(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}
