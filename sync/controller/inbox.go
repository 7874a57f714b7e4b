package controller

import (
	"sort"
	"sync"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Events into the loop.
type (
	evTick    struct{ at time.Time }
	evBinding struct {
		ref model.Ref
		b   *model.Binding
		rv  string
	}
	evNamespace struct{ old, cur *model.Namespace }
	evTemplate  struct{}
)

// name is the namespace an event is about.
func (e evNamespace) name() string {
	if e.cur != nil {
		return e.cur.Name
	}
	if e.old != nil {
		return e.old.Name
	}
	return ""
}

// inbox is the loop's event queue: posting never blocks (informer handlers
// and the cron goroutine must not wait for a cycle), the loop drains it.
// It is bounded by what it describes, not by how many events arrive: the
// events of one binding or one namespace coalesce into one (a flood of
// informer events, a re-list of thousands of objects, costs one entry per
// object), template events into a flag, and at most maxTicks ticks wait.
type inbox struct {
	mu       sync.Mutex
	ticks    []evTick
	bindings map[model.Ref]evBinding
	refs     []model.Ref // bindings' keys in arrival order
	nss      map[string]evNamespace
	names    []string // nss' keys in arrival order
	template bool
	kick     chan struct{}
}

// maxTicks bounds the waiting schedule ticks; older ones are dropped (a
// tick that waited that long would only be counted as skipped).
const maxTicks = 64

func (q *inbox) post(ev any) {
	q.mu.Lock()
	switch e := ev.(type) {
	case evTick:
		if len(q.ticks) == maxTicks {
			q.ticks = q.ticks[1:]
		}
		q.ticks = append(q.ticks, e)
	case evBinding:
		if q.bindings == nil {
			q.bindings = map[model.Ref]evBinding{}
		}
		if _, ok := q.bindings[e.ref]; !ok {
			q.refs = append(q.refs, e.ref)
		}
		// The latest state is what the handler compares with.
		q.bindings[e.ref] = e
	case evNamespace:
		if q.nss == nil {
			q.nss = map[string]evNamespace{}
		}
		key := e.name()
		if prev, ok := q.nss[key]; ok {
			// From the state before the first event to the last one.
			e.old = prev.old
		} else {
			q.names = append(q.names, key)
		}
		q.nss[key] = e
	case evTemplate:
		q.template = true
	}
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// take returns the waiting events, each object's once: ticks, then
// namespaces, bindings and the template, each in arrival order.
func (q *inbox) take() []any {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs := make([]any, 0, len(q.ticks)+len(q.names)+len(q.refs)+1)
	for _, t := range q.ticks {
		evs = append(evs, t)
	}
	for _, n := range q.names {
		evs = append(evs, q.nss[n])
	}
	for _, r := range q.refs {
		evs = append(evs, q.bindings[r])
	}
	if q.template {
		evs = append(evs, evTemplate{})
	}
	q.ticks, q.refs, q.names, q.template = nil, nil, nil, false
	clear(q.bindings)
	clear(q.nss)
	return evs
}

// size is how many entries wait (for tests).
func (q *inbox) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.ticks) + len(q.refs) + len(q.names)
	if q.template {
		n++
	}
	return n
}

// workQueue collects what the informers saw between two runs of the
// controller loop's repairs: bindings to repair, whether the set of
// projects changed (which needs a full cycle), and whether a template
// object changed. Repeated events coalesce. Owned by the loop.
type workQueue struct {
	refs  map[model.Ref]struct{}
	cycle bool
	// template: a template object was changed or deleted.
	template bool
}

func newWorkQueue() workQueue { return workQueue{refs: map[model.Ref]struct{}{}} }

func (q *workQueue) add(refs ...model.Ref) {
	for _, r := range refs {
		q.refs[r] = struct{}{}
	}
}

func (q *workQueue) requestCycle()    { q.cycle = true }
func (q *workQueue) requestTemplate() { q.template = true }

// pending reports whether anything is queued.
func (q *workQueue) pending() bool { return len(q.refs) > 0 || q.cycle || q.template }

// take empties the queue of bindings and the cycle request.
func (q *workQueue) take() (refs []model.Ref, cycle bool) {
	for r := range q.refs {
		refs = append(refs, r)
	}
	clear(q.refs)
	cycle, q.cycle = q.cycle, false
	sort.Slice(refs, func(i, j int) bool { return refs[i].String() < refs[j].String() })
	return refs, cycle
}

// takeAll empties the whole queue (what a cycle or a repair covers) and
// returns the bindings and whether a template check was asked for.
func (q *workQueue) takeAll() (refs []model.Ref, template bool) {
	refs, _ = q.take()
	template, q.template = q.template, false
	return refs, template
}
