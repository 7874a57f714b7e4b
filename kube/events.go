package kube

import (
	"context"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// EventComponent is the source component of the Events this tool records.
const EventComponent = "runai-ldap-sync"

// maxEventMessage keeps a message within what the API accepts (1 KiB for
// events.k8s.io); longer lists are cut with "and N more".
const maxEventMessage = 1000

// EventRecorder records Kubernetes Events on the managed bindings, through
// client-go's record package (which aggregates repeats into a count).
// Events of the viewer ClusterRoleBinding name users, so they go to the
// Run:AI namespace, not to `default` where client-go puts those of
// cluster-scoped objects; Events about a namespace go to that namespace.
type EventRecorder struct {
	b        record.EventBroadcaster
	rec      record.EventRecorder
	runaiNS  string
	sent     atomic.Int64 // handed to the broadcaster
	finished atomic.Int64 // written, or given up, by the sink
}

// NewEventRecorder starts a recorder writing through c. host names this
// replica in the Events' source; runaiNS receives the Events of
// cluster-scoped objects.
func NewEventRecorder(c *Client, host, runaiNS string) *EventRecorder {
	r := &EventRecorder{b: record.NewBroadcaster(), runaiNS: runaiNS}
	r.b.StartRecordingToSink(&countingSink{next: &typedcorev1.EventSinkImpl{Interface: c.cs.CoreV1().Events("")}, done: &r.finished})
	r.rec = r.b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent, Host: host})
	return r
}

// Event records one Event on the binding ref (uid may be empty).
func (r *EventRecorder) Event(ref model.Ref, uid string, eventType, reason, message string) {
	r.sent.Add(1)
	r.rec.Event(objectReference(ref, uid, r.runaiNS), eventType, reason, Truncate(message, maxEventMessage))
}

// Shutdown waits up to timeout for the Events recorded so far to be
// written, then stops the recorder.
func (r *EventRecorder) Shutdown(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for r.finished.Load() < r.sent.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	r.b.Shutdown()
}

// KindNamespace is the Ref kind of a namespace (Events about it).
const KindNamespace = "Namespace"

// objectReference is what an Event is about. An Event lives in the
// namespace of its object (the API refuses any other for the Events
// client-go writes), so a cluster-scoped binding's is referred to in
// clusterNS, and a namespace's in itself.
func objectReference(ref model.Ref, uid string, clusterNS string) runtime.Object {
	o := &corev1.ObjectReference{
		APIVersion: rbacv1.SchemeGroupVersion.String(),
		Kind:       ref.Kind,
		Namespace:  ref.Namespace,
		Name:       ref.Name,
		UID:        types.UID(uid),
	}
	switch {
	case ref.Kind == KindNamespace:
		o.APIVersion, o.Namespace = corev1.SchemeGroupVersion.String(), ref.Name
	case o.Namespace == "":
		o.Namespace = clusterNS
	}
	return o
}

// countingSink counts the Events the sink is done with, so Shutdown can
// wait for them.
type countingSink struct {
	next record.EventSink
	done *atomic.Int64
}

func (s *countingSink) Create(e *corev1.Event) (*corev1.Event, error) {
	out, err := s.next.Create(e)
	s.finish(err)
	return out, err
}

func (s *countingSink) Update(e *corev1.Event) (*corev1.Event, error) {
	out, err := s.next.Update(e)
	s.finish(err)
	return out, err
}

func (s *countingSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	out, err := s.next.Patch(e, data)
	s.finish(err)
	return out, err
}

func (s *countingSink) finish(err error) {
	// A failed write is retried by the broadcaster; count it anyway so a
	// shutdown with the API server unreachable does not wait for nothing.
	s.done.Add(1)
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " …"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
