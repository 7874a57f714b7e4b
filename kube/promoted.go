package kube

import (
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"sync"
)

// promotions holds bindings the informers keep reduced, read whole from
// the API because their namespace has joined the scope since, each with
// the reduced state's resourceVersion (see Cache.promote). Its methods
// are safe for concurrent use.
type promotions struct {
	mu sync.Mutex
	m  map[model.Ref]promotedBinding
}

type promotedBinding struct {
	reducedRV string
	b         *model.Binding
}

// get returns the binding read whole for ref's reduced state reducedRV.
func (p *promotions) get(ref model.Ref, reducedRV string) (*model.Binding, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[ref]
	if !ok || e.reducedRV != reducedRV {
		return nil, false
	}
	return e.b, true
}

// keep remembers b as ref read whole for the reduced state reducedRV, if
// current (called under the lock, so no forget runs between) holds.
func (p *promotions) keep(ref model.Ref, reducedRV string, b *model.Binding, current func() bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !current() {
		return
	}
	if p.m == nil {
		p.m = map[model.Ref]promotedBinding{}
	}
	p.m[ref] = promotedBinding{reducedRV: reducedRV, b: b}
}

// forget drops ref's promoted state.
func (p *promotions) forget(ref model.Ref) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, ref)
}

// forgetNamespace drops the promoted bindings of namespace ns.
func (p *promotions) forgetNamespace(ns string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ref := range p.m {
		if ref.Namespace == ns {
			delete(p.m, ref)
		}
	}
}

func (p *promotions) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
