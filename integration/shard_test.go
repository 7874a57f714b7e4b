package integration

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// shardBytes lowers the safe size of one binding so that a few hundred
// users span several shards: 56 users of 12 characters a binding. The
// default size is proven by the plan's unit tests and `make bench`.
const shardBytes = 4096

// shardsOf reads a binding and its shards: which users each holds.
func (e *env) shardsOf(ref model.Ref) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for i := 0; i <= model.MaxShards; i++ {
		if b := e.binding(model.ShardRef(ref, i)); b != nil {
			u := b.Users()
			sort.Strings(u)
			out[b.Name] = u
		}
	}
	return out
}

// union is every user the binding and its shards hold, with the shard.
func union(shards map[string][]string) map[string]string {
	out := map[string]string{}
	for name, users := range shards {
		for _, u := range users {
			out[u] = name
		}
	}
	return out
}

// waitUnion waits until the binding and its shards hold exactly want.
func (e *env) waitUnion(ref model.Ref, within time.Duration, want []string) map[string][]string {
	e.t.Helper()
	var shards map[string][]string
	waitFor(e.t, within, ref.String()+" and its shards hold exactly the users wanted", func() error {
		shards = e.shardsOf(ref)
		u := union(shards)
		same := len(u) == len(want)
		for _, w := range want {
			if _, ok := u[w]; !ok {
				same = false
			}
		}
		if !same {
			return fmt.Errorf("they hold %d users, want %d", len(u), len(want))
		}
		return nil
	})
	return shards
}

// mayListPods asks the API server's authorizer (SubjectAccessReview)
// whether user may list pods in every namespace: what the viewer role
// grants through any of the viewer binding's shards.
func (e *env) mayListPods(user string) bool {
	e.t.Helper()
	sar, err := e.cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &authzv1.ResourceAttributes{Verb: "list", Resource: "pods"}}},
		metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("SubjectAccessReview for %s: %v", user, err)
	}
	return sar.Status.Allowed
}

// TestShardedUnionOnTheRealServer: a viewer union past the (lowered) safe
// size of one binding is spread over shards on a real kube-apiserver + etcd
// and fully granted (the authorizer says so for a user of each shard);
// a hand-deleted shard is repaired, a hand edit in a shard is kept under
// policy sync, one new user writes exactly one shard, and the union
// shrinks back, leaving the emptied shards in place.
func TestShardedUnionOnTheRealServer(t *testing.T) {
	e := newKubeEnv(t)
	s := startSlapd(t, harness.SlapdOptions{})
	people, err := s.AddOU("people")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 241 {
		names = append(names, fmt.Sprintf("sharduser%03d", i))
	}
	dns, err := s.AddUsers(people, names, harness.UserOpts{})
	if err != nil {
		t.Fatal(err)
	}
	users, late := names[:240], names[240]
	// Two projects' viewers overlap: the union is 240 users, five bindings.
	alphaViewers, err := s.AddGroupOfNames(s.Suffix, "runai-alpha-viewers", dns[:160]...)
	if err != nil {
		t.Fatal(err)
	}
	betaViewers, err := s.AddGroupOfNames(s.Suffix, "runai-beta-viewers", dns[80:240]...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"alpha", "beta"} {
		if _, err := s.AddGroupOfNames(s.Suffix, "runai-"+p+"-executors", dns[0]); err != nil {
			t.Fatal(err)
		}
		e.namespace("runai-"+p, map[string]string{"runai/queue": p})
	}
	addr := freeAddr(t)
	cfg := e.slapdDaemonConfig(s, "", `  viewers: ["runai-{project}-viewers"]
schedule: "@every 1h"
repair: {minInterval: 1s}
leaderElection: {enabled: false}
guard: {maxRemoveCount: 1000, maxRemovePercent: 90, maxAddCount: 0}
kubernetes: {bindingShardBytes: `+fmt.Sprint(shardBytes)+`}
`+fmt.Sprintf("server: {address: %q}\n", addr))
	viewer := model.ViewerRef()
	d := startDaemon(t, cfg, e.kubeconfig(), addr)
	d.waitReady(60 * time.Second)

	shards := e.waitUnion(viewer, 10*time.Second, users)
	if len(shards) != 5 {
		t.Fatalf("240 users, 56 a binding: want the binding and 4 shards, got %v", slices.Sorted(maps.Keys(shards)))
	}
	for i := 0; i < 5; i++ {
		ref := model.ShardRef(viewer, i)
		b := e.binding(ref)
		if b == nil {
			t.Fatalf("%s missing", ref)
		}
		if b.RoleRef != model.ExpectedRoleRef(model.ViewerBinding) || len(b.Users()) > 56 {
			t.Errorf("%s: roleRef %v, %d users", ref, b.RoleRef, len(b.Users()))
		}
		if owned, err := b.Owned(); err != nil || len(owned) != len(b.Users()) {
			t.Errorf("%s: ownership record holds %d users (%v), the binding %d", ref, len(owned), err, len(b.Users()))
		}
		crb, err := e.cs.RbacV1().ClusterRoleBindings().Get(context.Background(), ref.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if crb.Labels[model.ManagedByLabel] != model.ManagedByValue || (i > 0) != (crb.Labels[model.ShardOfLabel] == model.ViewerBinding) {
			t.Errorf("%s labels %v", ref, crb.Labels)
		}
		// The authorizer grants the role to a user of every shard.
		if u := b.Users()[len(b.Users())/2]; !e.mayListPods(u) {
			t.Errorf("%s (in %s) may not list pods", u, ref.Name)
		}
	}
	if e.mayListPods(late) {
		t.Errorf("%s, in no group, may list pods", late)
	}
	if v := d.metric("runai_ldap_sync_binding_shards", `name="runai-job-viewer-manual"`); v != 5 {
		t.Errorf("runai_ldap_sync_binding_shards = %v, want 5", v)
	}
	if v := d.metric("runai_ldap_sync_binding_desired_subjects", `name="runai-job-viewer-manual"`); v != 240 {
		t.Errorf("desired subjects of the logical binding = %v, want 240", v)
	}

	// A hand-deleted shard is repaired.
	s2 := model.ShardRef(viewer, 2)
	inS2 := shards[s2.Name][0]
	if err := e.cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), s2.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitUnion(viewer, 10*time.Second, users)
	if !e.mayListPods(inS2) {
		t.Errorf("%s lost access after the repair of the deleted shard", inS2)
	}

	// A hand edit in shard 1: a managed user removed comes back, a user
	// added by hand stays (policy sync).
	s1 := model.ShardRef(viewer, 1)
	crb, err := e.cs.RbacV1().ClusterRoleBindings().Get(context.Background(), s1.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gone := crb.Subjects[0].Name
	crb.Subjects = append(crb.Subjects[1:], kube.UserSubject("hand-added"))
	if _, err := e.cs.RbacV1().ClusterRoleBindings().Update(context.Background(), crb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	shards = e.waitUnion(viewer, 10*time.Second, append(append([]string(nil), users...), "hand-added"))
	if union(shards)["hand-added"] != s1.Name || union(shards)[gone] == "" {
		t.Errorf("after the repair: hand-added in %q, %s in %q", union(shards)["hand-added"], gone, union(shards)[gone])
	}
	if code := d.stop(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("daemon exited %d", code)
	}

	// One new user writes exactly one shard.
	before := map[string]string{}
	for i := 0; i <= model.MaxShards; i++ {
		if b := e.binding(model.ShardRef(viewer, i)); b != nil {
			before[b.Name] = b.ResourceVersion
		}
	}
	if err := s.AddMembers(alphaViewers, "member", dns[240]); err != nil {
		t.Fatal(err)
	}
	e.mustRun("once", "--config", cfg)
	written := 0
	for i := 0; i <= model.MaxShards; i++ {
		if b := e.binding(model.ShardRef(viewer, i)); b != nil && b.ResourceVersion != before[b.Name] {
			written++
		}
	}
	if written != 1 || !e.mayListPods(late) {
		t.Errorf("one new user: %d bindings written, want 1; may list pods: %v", written, e.mayListPods(late))
	}

	// The union shrinks back to 40 users (all in the first binding): the
	// emptied shards stay in place, and the users gone lose the role.
	if err := s.RemoveMembers(alphaViewers, "member", append(append([]string(nil), dns[40:160]...), dns[240])...); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMembers(betaViewers, "member", dns[80:240]...); err != nil {
		t.Fatal(err)
	}
	e.mustRun("once", "--config", cfg)
	shards = e.waitUnion(viewer, time.Second, append(append([]string(nil), users[:40]...), "hand-added"))
	if len(shards) != 5 {
		t.Errorf("emptied shards are left in place: %v", slices.Sorted(maps.Keys(shards)))
	}
	for _, u := range []string{users[100], users[239], late} {
		if e.mayListPods(u) {
			t.Errorf("%s may still list pods after leaving the groups", u)
		}
	}
	if !e.mayListPods(users[0]) || !e.mayListPods("hand-added") {
		t.Error("the users left lost access")
	}
}
