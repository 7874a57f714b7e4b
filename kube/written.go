package kube

import (
	"sync"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/tools/cache"
)

// ownWrites is the one record of our own writes: the states they returned
// until the informers have caught up with them, so a read right after a
// write never sees the state from before it; and, for good, the
// resourceVersion of our last write of each binding, so the informer's
// echo of it (or a state from before it) is not taken for drift (wrote).
// Its methods are safe for concurrent use (the informers' handlers, the
// readers and the controller loop).
type ownWrites struct {
	mu      sync.Mutex
	written map[model.Ref]*model.Binding
	// last is the resourceVersion of our last write per binding.
	last map[model.Ref]string
	// gone counts the sweeps that found a written binding missing from an
	// informer that is past it (see sweep).
	gone map[model.Ref]int
}

func newOwnWrites() *ownWrites {
	return &ownWrites{written: map[model.Ref]*model.Binding{}, last: map[model.Ref]string{}, gone: map[model.Ref]int{}}
}

// record remembers the state a write of ref returned; overlay says
// whether reads still need it (the informers need not have started).
func (w *ownWrites) record(ref model.Ref, b *model.Binding, overlay bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last[ref] = b.ResourceVersion
	if overlay {
		w.written[ref] = b
		delete(w.gone, ref)
	}
}

// wrote reports whether rv is the state of our last write of ref, or of a
// state before it. A resourceVersion that cannot be compared is not ours.
func (w *ownWrites) wrote(ref model.Ref, rv string) bool {
	w.mu.Lock()
	last := w.last[ref]
	w.mu.Unlock()
	if last == "" || rv == "" {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(rv, last)
	return err == nil && cmp <= 0
}

// caughtUp forgets our write of ref once the informer has seen it or a
// later state of the object (rv).
func (w *ownWrites) caughtUp(ref model.Ref, rv string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.written[ref]
	if !ok {
		return
	}
	if cmp, err := resourceversion.CompareResourceVersion(b.ResourceVersion, rv); err != nil || cmp <= 0 {
		delete(w.written, ref)
	}
}

// overlay returns our written state of ref if inf has not caught up with
// it yet.
func (w *ownWrites) overlay(ref model.Ref, inf cache.SharedIndexInformer) (*model.Binding, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overlayLocked(ref, inf)
}

func (w *ownWrites) overlayLocked(ref model.Ref, inf cache.SharedIndexInformer) (*model.Binding, bool) {
	b, ok := w.written[ref]
	if !ok {
		return nil, false
	}
	if inf != nil && past(inf, b.ResourceVersion) {
		// The store reflects a state at least as new as our write.
		return nil, false
	}
	return b, true
}

// overlayAll lays our written states that informerFor's informers have
// not caught up with over out.
func (w *ownWrites) overlayAll(out map[model.Ref]*model.Binding, informerFor func(model.Ref) cache.SharedIndexInformer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ref := range w.written {
		if b, ok := w.overlayLocked(ref, informerFor(ref)); ok {
			out[ref] = newer(out[ref], b)
		}
	}
}

// exists reports whether our last write of ref, not yet seen by the
// informer, left it existing.
func (w *ownWrites) exists(ref model.Ref) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.written[ref]
	return ok && b.Exists
}

// sweep drops the written states the informers are past, and returns as
// deleted the bindings we wrote that the informer, now past our write,
// does not hold: when its watch was down (an API server outage), the
// binding was deleted before the informer ever saw it, so no event will
// come. The condition must hold on two sweeps in a row, as the informer's
// store may lag its sync point by a moment.
func (w *ownWrites) sweep(informerFor func(model.Ref) cache.SharedIndexInformer) []model.Ref {
	var deleted []model.Ref
	w.mu.Lock()
	defer w.mu.Unlock()
	for ref, b := range w.written {
		inf := informerFor(ref)
		if inf == nil || !past(inf, b.ResourceVersion) {
			delete(w.gone, ref)
			continue
		}
		if _, exists, _ := inf.GetStore().GetByKey(storeKey(ref)); exists {
			delete(w.written, ref)
			delete(w.gone, ref)
			continue
		}
		w.gone[ref]++
		if w.gone[ref] >= 2 {
			delete(w.written, ref)
			delete(w.gone, ref)
			deleted = append(deleted, ref)
		}
	}
	return deleted
}
