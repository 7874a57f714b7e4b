// Reading and editing the cluster's bindings, namespaces and Events, as an admin
// would, and waiting for a binding's users.

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// binding reads a managed binding; nil if it does not exist.
func (e *env) binding(ref model.Ref) *model.Binding {
	e.t.Helper()
	kc, err := kube.NewClient(e.api.RestConfig(), 100, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := kc.Get(context.Background(), ref)
	if err != nil {
		e.t.Fatalf("get %s: %v", ref, err)
	}
	if !b.Exists {
		return nil
	}
	return b
}

func (e *env) usersOf(ref model.Ref) []string {
	e.t.Helper()
	b := e.binding(ref)
	if b == nil {
		e.t.Fatalf("%s does not exist", ref)
	}
	u := b.Users()
	sort.Strings(u)
	return u
}

func (e *env) expectUsers(ref model.Ref, want ...string) {
	e.t.Helper()
	sort.Strings(want)
	got := e.usersOf(ref)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		e.t.Errorf("%s users = %v, want %v", ref, got, want)
	}
}

// waitUsers waits until ref holds exactly want.
func (e *env) waitUsers(ref model.Ref, within time.Duration, want ...string) {
	e.t.Helper()
	sort.Strings(want)
	waitFor(e.t, within, ref.String()+" users", func() error {
		var got []string
		if b := e.binding(ref); b != nil {
			got = b.Users()
			sort.Strings(got)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("%v, want %v", got, want)
		}
		return nil
	})
}

// snapshot is every managed binding's users.
type snapshot map[model.Ref][]string

func (e *env) snapshot(refs ...model.Ref) snapshot {
	e.t.Helper()
	s := snapshot{}
	for _, ref := range refs {
		if b := e.binding(ref); b != nil {
			u := b.Users()
			sort.Strings(u)
			s[ref] = u
		}
	}
	return s
}

// expectNoneLost fails if a user of before is missing now.
func (e *env) expectNoneLost(before snapshot, what string) {
	e.t.Helper()
	for ref, users := range before {
		now := map[string]bool{}
		if b := e.binding(ref); b != nil {
			for _, u := range b.Users() {
				now[u] = true
			}
		}
		for _, u := range users {
			if !now[u] {
				e.t.Errorf("%s: %s lost user %q", what, ref, u)
			}
		}
	}
}

// expectNoDuplicates fails if a binding lists a subject twice.
func (e *env) expectNoDuplicates(refs ...model.Ref) {
	e.t.Helper()
	for _, ref := range refs {
		b := e.binding(ref)
		if b == nil {
			continue
		}
		seen := map[string]bool{}
		for _, s := range b.Subjects {
			key := s.Kind + "/" + s.Namespace + "/" + s.Name
			if seen[key] {
				e.t.Errorf("%s lists %s twice", ref, key)
			}
			seen[key] = true
		}
	}
}

// events lists the Events recorded on a binding (the viewer
// ClusterRoleBinding's are in the Run:AI namespace, "runai" here).
func (e *env) events(ref model.Ref) []corev1.Event {
	e.t.Helper()
	ns := ref.Namespace
	if ns == "" {
		ns = "runai"
	}
	list, err := e.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatalf("list events: %v", err)
	}
	var out []corev1.Event
	for _, ev := range list.Items {
		if ev.InvolvedObject.Kind == ref.Kind && ev.InvolvedObject.Name == ref.Name {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits for an Event on ref with reason whose message contains
// every one of parts.
func (e *env) waitEvent(ref model.Ref, reason string, within time.Duration, parts ...string) corev1.Event {
	e.t.Helper()
	var found corev1.Event
	waitFor(e.t, within, fmt.Sprintf("a %s event on %s containing %q", reason, ref, parts), func() error {
		var seen []string
		for _, ev := range e.events(ref) {
			ok := ev.Reason == reason
			for _, p := range parts {
				ok = ok && strings.Contains(ev.Message, p)
			}
			if ok {
				found = ev
				return nil
			}
			seen = append(seen, ev.Reason+": "+ev.Message)
		}
		return fmt.Errorf("events: %v", seen)
	})
	return found
}

func (e *env) patchExec(ns, patch string) {
	e.t.Helper()
	if _, err := e.cs.RbacV1().RoleBindings(ns).Patch(context.Background(), model.ExecutorBinding, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) setSubjects(ns string, users ...string) {
	e.t.Helper()
	subjects := []rbacv1.Subject{}
	for _, u := range users {
		subjects = append(subjects, kube.UserSubject(u))
	}
	raw, err := json.Marshal(map[string]any{"subjects": subjects})
	if err != nil {
		e.t.Fatal(err)
	}
	e.patchExec(ns, string(raw))
}

func (e *env) nsLabels(name string) (map[string]string, string, bool) {
	e.t.Helper()
	ns, err := e.cs.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, "", false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return ns.Labels, ns.ResourceVersion, true
}

// bumpProjects changes the project label of a namespace of its own, which
// makes a running daemon run a full cycle at once (the "trigger" project
// has no groups and so an empty executor binding).
func (e *env) bumpProjects(n int) {
	e.t.Helper()
	ctx := context.Background()
	value := fmt.Sprintf("trigger-%d", n)
	patch := fmt.Sprintf(`{"metadata":{"labels":{"runai/queue":%q}}}`, value)
	_, err := e.cs.CoreV1().Namespaces().Patch(ctx, "trigger", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		e.namespace("trigger", map[string]string{"runai/queue": value})
	}
}
