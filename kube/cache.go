package kube

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	corev1informers "k8s.io/client-go/informers/core/v1"
	rbacv1informers "k8s.io/client-go/informers/rbac/v1"
	"k8s.io/client-go/tools/cache"
)

// Handlers receive changes seen by the Cache's informers after their
// initial list (the initial list itself is not reported: the first cycle
// reads it). They run on the informers' goroutines and must not block.
type Handlers struct {
	// Binding is called when a managed binding is created, changed or
	// deleted by anyone, including this process. b is nil for a deletion;
	// rv is then the resourceVersion of the deleted object, if known.
	Binding func(ref model.Ref, b *model.Binding, rv string)
	// Namespace is called when a namespace appears, disappears, or changes
	// its labels or phase.
	Namespace func(old, cur *model.Namespace)
	// WatchError is called when a watch fails (the informer retries).
	WatchError func(what string, err error)
	// TemplateSelector, when set, also watches the RoleBindings matching
	// it in every namespace (the project template's), and Template is
	// called when one is changed or deleted.
	TemplateSelector string
	Template         func()
}

// Cache keeps the managed bindings and the namespaces in informers, so a
// cycle reads current state from memory instead of listing it, and a hand
// edit is seen within a second. It watches only what is managed: the
// executor RoleBindings (one field selector on the name, in every
// namespace), the index-map RoleBinding in the Run:AI namespace, and the
// viewer ClusterRoleBinding.
//
// Until the informers have synced, and for everything they do not hold,
// it falls back to the Client, so it can stand in for the Client anywhere.
//
// The informers keep whole only what is in the Client's Scope: a binding
// of a managed name, or carrying the shard label, in a namespace that is
// no project's is kept as its identity (reduceBinding), and a namespace as
// its name, the labels the daemon reads and its phase. Such a binding
// is read from the API if its namespace becomes a project's: once, until
// the informer sees it change (then its transform keeps it whole).
type Cache struct {
	client  *Client
	runaiNS string
	h       Handlers

	exec, indexMap, viewer, ns cache.SharedIndexInformer
	// rbShards and crbShards watch the shards (label ShardOfLabel).
	rbShards, crbShards cache.SharedIndexInformer
	// bindingInfs are the informers of managed bindings: exec, indexMap,
	// viewer and the shards'.
	bindingInfs []cache.SharedIndexInformer
	// tmpl watches the template's RoleBindings; nil without a template.
	tmpl cache.SharedIndexInformer

	synced atomic.Bool

	// writes: our own writes until the informers have seen them.
	writes *ownWrites
	// promoted: reduced bindings read whole since their namespace joined
	// the scope.
	promoted promotions
}

// sweepInterval is how often written states are checked against the
// informers (see sweep).
const sweepInterval = 2 * time.Second

// NewCache returns a Cache for the bindings of runaiNS; Start runs it.
func NewCache(c *Client, runaiNS string, h Handlers) *Cache {
	byName := func(name string) func(*metav1.ListOptions) {
		return func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}
	}
	ca := &Cache{client: c, runaiNS: runaiNS, h: h, writes: newOwnWrites()}
	noIndex := cache.Indexers{}
	ca.exec = rbacv1informers.NewFilteredRoleBindingInformer(c.cs, metav1.NamespaceAll, 0, noIndex, byName(model.ExecutorBinding))
	ca.indexMap = rbacv1informers.NewFilteredRoleBindingInformer(c.cs, runaiNS, 0, noIndex, byName(model.IndexMapBinding))
	ca.viewer = rbacv1informers.NewFilteredClusterRoleBindingInformer(c.cs, 0, noIndex, byName(model.ViewerBinding))
	ca.ns = corev1informers.NewNamespaceInformer(c.cs, 0, noIndex)
	shards := func(o *metav1.ListOptions) { o.LabelSelector = model.ShardOfLabel }
	ca.rbShards = rbacv1informers.NewFilteredRoleBindingInformer(c.cs, metav1.NamespaceAll, 0, noIndex, shards)
	ca.crbShards = rbacv1informers.NewFilteredClusterRoleBindingInformer(c.cs, 0, noIndex, shards)
	ca.bindingInfs = []cache.SharedIndexInformer{ca.exec, ca.indexMap, ca.viewer, ca.rbShards, ca.crbShards}
	if h.TemplateSelector != "" {
		ca.tmpl = rbacv1informers.NewFilteredRoleBindingInformer(c.cs, metav1.NamespaceAll, 0, noIndex, func(o *metav1.ListOptions) {
			o.LabelSelector = h.TemplateSelector
		})
	}
	return ca
}

// transform returns what inf keeps of obj (see Cache).
func (c *Cache) transform(inf cache.SharedIndexInformer) cache.TransformFunc {
	return func(obj any) (any, error) {
		switch inf {
		case c.ns:
			if ns, ok := obj.(*corev1.Namespace); ok {
				return reduceNamespace(c.client.scope, ns), nil
			}
			return obj, nil
		case c.tmpl:
			// Only changes are reported; the objects are read from the API.
			return reduceBinding(obj, false), nil
		case c.viewer, c.indexMap:
			return reduceBinding(obj, true), nil
		}
		ref, ok := refOf(obj)
		keep := ok && c.informerFor(ref) == inf && c.inScope(ref.Namespace)
		return reduceBinding(obj, keep), nil
	}
}

// inScope reports whether bindings in ns are kept whole, by the namespace
// informer's labels; an unknown namespace is.
func (c *Cache) inScope(ns string) bool {
	if ns == "" || ns == c.runaiNS {
		return true
	}
	o, known, _ := c.ns.GetStore().GetByKey(ns)
	var labels map[string]string
	if n, ok := o.(*corev1.Namespace); ok {
		labels = n.Labels
	}
	return inNamespace(c.client.scope, ns, labels, known)
}

func refOf(obj any) (model.Ref, bool) {
	switch o := obj.(type) {
	case *rbacv1.RoleBinding:
		return model.Ref{Kind: model.KindRoleBinding, Namespace: o.Namespace, Name: o.Name}, true
	case *rbacv1.ClusterRoleBinding:
		return model.Ref{Kind: model.KindClusterRoleBinding, Name: o.Name}, true
	}
	return model.Ref{}, false
}

func (c *Cache) informers() map[string]cache.SharedIndexInformer {
	m := map[string]cache.SharedIndexInformer{
		"RoleBindings " + model.ExecutorBinding:                  c.exec,
		"RoleBinding " + c.runaiNS + "/" + model.IndexMapBinding: c.indexMap,
		"ClusterRoleBinding " + model.ViewerBinding:              c.viewer,
		"namespaces":                c.ns,
		"shard RoleBindings":        c.rbShards,
		"shard ClusterRoleBindings": c.crbShards,
	}
	if c.tmpl != nil {
		m["template RoleBindings"] = c.tmpl
	}
	return m
}

// Start registers the handlers and runs the informers until ctx ends. It
// returns at once; WaitForSync waits for the initial lists.
func (c *Cache) Start(ctx context.Context) error {
	for what, inf := range c.informers() {
		if err := inf.SetTransform(c.transform(inf)); err != nil {
			return fmt.Errorf("informer for %s: %w", what, err)
		}
		if c.h.WatchError != nil {
			what := what
			if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
				c.h.WatchError(what, err)
			}); err != nil {
				return fmt.Errorf("informer for %s: %w", what, err)
			}
		}
	}
	for _, inf := range c.bindingInfs {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, initial bool) {
				if !initial {
					c.bindingEvent(inf, obj, false)
				}
			},
			UpdateFunc: func(_, obj any) { c.bindingEvent(inf, obj, false) },
			DeleteFunc: func(obj any) { c.bindingEvent(inf, obj, true) },
		}); err != nil {
			return fmt.Errorf("register binding handler: %w", err)
		}
	}
	if _, err := c.ns.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if !initial {
				c.namespaceEvent(nil, obj)
			}
		},
		UpdateFunc: func(old, obj any) { c.namespaceEvent(old, obj) },
		DeleteFunc: func(obj any) { c.namespaceEvent(obj, nil) },
	}); err != nil {
		return fmt.Errorf("register namespace handler: %w", err)
	}
	if c.tmpl != nil && c.h.Template != nil {
		// Our own applies come back as updates too; the handler coalesces
		// them, and a check that finds nothing to apply writes nothing.
		if _, err := c.tmpl.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(_, _ any) { c.h.Template() },
			DeleteFunc: func(_ any) { c.h.Template() },
		}); err != nil {
			return fmt.Errorf("register template handler: %w", err)
		}
	}
	// The bindings' transform looks namespaces up: start it first, and the
	// others once it has its initial list.
	go c.ns.RunWithContext(ctx)
	go func() {
		if !cache.WaitForCacheSync(ctx.Done(), c.ns.HasSynced) {
			return
		}
		for _, inf := range c.informers() {
			if inf != c.ns {
				go inf.RunWithContext(ctx)
			}
		}
	}()
	go c.sweepLoop(ctx)
	return nil
}

func (c *Cache) sweepLoop(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// sweep reports as deleted the bindings we wrote that the informers, past
// our write, no longer hold (see ownWrites.sweep).
func (c *Cache) sweep() {
	for _, ref := range c.writes.sweep(c.informerFor) {
		if c.h.Binding != nil {
			c.h.Binding(ref, nil, "")
		}
	}
}

// past reports whether the informer has synced to rv or later.
func past(inf cache.SharedIndexInformer, rv string) bool {
	cmp, err := resourceversion.CompareResourceVersion(inf.LastSyncResourceVersion(), rv)
	return err == nil && cmp >= 0
}

func storeKey(ref model.Ref) string {
	if ref.Namespace != "" {
		return ref.Namespace + "/" + ref.Name
	}
	return ref.Name
}

// WaitForSync waits until every informer has its initial list, or ctx
// ends. Reads fall back to the API until then.
func (c *Cache) WaitForSync(ctx context.Context) error {
	var synced []cache.InformerSynced
	for _, inf := range c.informers() {
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("informers did not sync: %w", context.Cause(ctx))
	}
	c.Synced()
	return nil
}

// Synced reports whether reads come from the informers: once every
// informer has its initial list.
func (c *Cache) Synced() bool {
	if c.synced.Load() {
		return true
	}
	for _, inf := range c.informers() {
		if !inf.HasSynced() {
			return false
		}
	}
	c.synced.Store(true)
	return true
}

// bindingEvent reports a change seen by inf, if inf is the informer of
// that binding (a shard informer sees anything carrying the shard label).
func (c *Cache) bindingEvent(inf cache.SharedIndexInformer, obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	if !deleted && isReduced(obj) {
		return // out of the scope: not ours
	}
	ref, ok := refOf(obj)
	if !ok || c.informerFor(ref) != inf {
		return
	}
	rv := resourceVersion(obj)
	c.caughtUp(ref, rv)
	if c.h.Binding == nil {
		return
	}
	var b *model.Binding
	if !deleted {
		b = toBinding(obj)
	}
	c.h.Binding(ref, b, rv)
}

// caughtUp forgets our own write once the informer has seen it or a later
// state of the object, and any promoted state of it (the informer, or our
// write, has a newer one).
func (c *Cache) caughtUp(ref model.Ref, rv string) {
	c.promoted.forget(ref)
	c.writes.caughtUp(ref, rv)
}

func (c *Cache) namespaceEvent(oldObj, obj any) {
	toNS := func(o any) *model.Namespace {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		if ns, ok := o.(*corev1.Namespace); ok {
			n := fromNamespace(ns)
			return &n
		}
		return nil
	}
	old, cur := toNS(oldObj), toNS(obj)
	if old != nil && (cur == nil || !inNamespace(c.client.scope, cur.Name, cur.Labels, true)) {
		// Out of the scope, nothing of it is kept whole.
		c.promoted.forgetNamespace(old.Name)
	}
	if c.h.Namespace != nil {
		c.h.Namespace(old, cur)
	}
}

func fromNamespace(ns *corev1.Namespace) model.Namespace {
	return model.Namespace{Name: ns.Name, Labels: ns.Labels, ResourceVersion: ns.ResourceVersion, Created: ns.CreationTimestamp.Time,
		Terminating: ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil}
}

// Namespaces returns every namespace, from the informer once synced.
func (c *Cache) Namespaces(ctx context.Context) ([]model.Namespace, error) {
	if !c.Synced() {
		return c.client.Namespaces(ctx)
	}
	items := c.ns.GetStore().List()
	out := make([]model.Namespace, 0, len(items))
	for _, o := range items {
		if ns, ok := o.(*corev1.Namespace); ok {
			n := fromNamespace(ns)
			n.HoldsExecutor = c.holdsExecutor(n.Name)
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// holdsExecutor reports whether ns holds an executor RoleBinding, by the
// informer (which keeps at least the identity of every one) or our write.
func (c *Cache) holdsExecutor(ns string) bool {
	ref := model.ExecutorRef(ns)
	if _, ok, _ := c.exec.GetStore().GetByKey(storeKey(ref)); ok {
		return true
	}
	return c.writes.exists(ref)
}

// BindingsInMemory reports whether Bindings answers from the informers
// (once synced), without an API request.
func (c *Cache) BindingsInMemory() bool { return c.Synced() }

// Bindings returns every managed binding, from the informers once synced
// (no API request), else from the API.
func (c *Cache) Bindings(ctx context.Context, runaiNS string) (map[model.Ref]*model.Binding, error) {
	if !c.Synced() || runaiNS != c.runaiNS {
		return c.client.Bindings(ctx, runaiNS)
	}
	out := map[model.Ref]*model.Binding{}
	for _, inf := range c.bindingInfs {
		for _, o := range inf.GetStore().List() {
			b := toBinding(o)
			if b == nil || c.informerFor(b.Ref) != inf {
				continue
			}
			if isReduced(o) {
				if !c.inScope(b.Namespace) {
					continue
				}
				var err error
				if b, err = c.promote(ctx, inf, b.Ref, o); err != nil {
					return nil, err
				}
				if !b.Exists {
					continue
				}
			}
			out[b.Ref] = b
		}
	}
	c.writes.overlayAll(out, c.informerFor)
	return out, nil
}

// Get returns one binding, from the informers once synced; a binding the
// informers do not watch is read from the API.
func (c *Cache) Get(ctx context.Context, ref model.Ref) (*model.Binding, error) {
	inf := c.informerFor(ref)
	if !c.Synced() || inf == nil {
		return c.client.Get(ctx, ref)
	}
	o, exists, err := inf.GetStore().GetByKey(storeKey(ref))
	if err != nil {
		return nil, fmt.Errorf("read %s from the informer cache: %w", ref, err)
	}
	b := &model.Binding{Ref: ref}
	switch {
	case exists && isReduced(o) && !c.inScope(ref.Namespace):
		return c.client.Get(ctx, ref)
	case exists && isReduced(o):
		if b, err = c.promote(ctx, inf, ref, o); err != nil {
			return nil, err
		}
	case exists:
		if b = toBinding(o); b == nil {
			return nil, fmt.Errorf("read %s from the informer cache: unexpected object %T", ref, o)
		}
	}
	if w, ok := c.writes.overlay(ref, inf); ok {
		return newer(b, w), nil
	}
	return b, nil
}

// promote reads whole a binding that inf keeps reduced, o, though its
// namespace has become a project's since the informer saw it: from the
// API the first time, then from what that read returned, for as long as
// the informer holds the same reduced state (a binding that never changes
// would otherwise be read at every cycle, poll and repair).
func (c *Cache) promote(ctx context.Context, inf cache.SharedIndexInformer, ref model.Ref, o any) (*model.Binding, error) {
	rv := resourceVersion(o)
	if b, ok := c.promoted.get(ref, rv); ok {
		return b, nil
	}
	b, err := c.client.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	// Unless an event came meanwhile: the informer's store changes before
	// its handlers (caughtUp) run, so this check cannot miss one.
	c.promoted.keep(ref, rv, b, func() bool {
		cur, ok, _ := inf.GetStore().GetByKey(storeKey(ref))
		return ok && isReduced(cur) && resourceVersion(cur) == rv
	})
	return b, nil
}

func resourceVersion(o any) string {
	if m, ok := o.(metav1.Object); ok {
		return m.GetResourceVersion()
	}
	return ""
}

func (c *Cache) informerFor(ref model.Ref) cache.SharedIndexInformer {
	switch {
	case model.IsShard(ref) && ref.Kind == model.KindClusterRoleBinding:
		return c.crbShards
	case model.IsShard(ref):
		return c.rbShards
	case ref.Kind == model.KindClusterRoleBinding && ref.Name == model.ViewerBinding:
		return c.viewer
	case ref.Kind == model.KindRoleBinding && ref.Name == model.ExecutorBinding:
		return c.exec
	case ref.Kind == model.KindRoleBinding && ref.Name == model.IndexMapBinding && ref.Namespace == c.runaiNS:
		return c.indexMap
	}
	return nil
}

// Apply writes through the Client and remembers the result (see
// ownWrites): for reads until the informer has seen it, and its version
// for Wrote.
func (c *Cache) Apply(ctx context.Context, ch model.Change, current *model.Binding) (*model.Binding, error) {
	b, err := c.client.Apply(ctx, ch, current)
	if err != nil || b == nil {
		return b, err
	}
	inf := c.informerFor(ch.Ref)
	overlay := inf != nil && c.Synced()
	c.writes.record(ch.Ref, b, overlay)
	if overlay {
		// The informer may have delivered it already.
		if o, ok, _ := inf.GetStore().GetByKey(storeKey(ch.Ref)); ok {
			c.caughtUp(ch.Ref, resourceVersion(o))
		}
	}
	return b, nil
}

// Wrote reports whether rv is the state of our own last write of ref, or
// a state from before it: the informer's echo of our write, not drift.
func (c *Cache) Wrote(ref model.Ref, rv string) bool { return c.writes.wrote(ref, rv) }

// newer returns whichever of the cached and the written state is more
// recent; an unknown order keeps the informer's state.
func newer(cached, written *model.Binding) *model.Binding {
	if cached == nil || !cached.Exists {
		// Not seen yet (created by us), or deleted after our write: in the
		// latter case caughtUp has already dropped the written state.
		return written
	}
	cmp, err := resourceversion.CompareResourceVersion(written.ResourceVersion, cached.ResourceVersion)
	if err == nil && cmp > 0 {
		return written
	}
	return cached
}

// toBinding converts an informer's object; nil for anything else.
func toBinding(o any) *model.Binding {
	switch b := o.(type) {
	case *rbacv1.RoleBinding:
		return fromRoleBinding(b)
	case *rbacv1.ClusterRoleBinding:
		return fromClusterRoleBinding(b)
	}
	return nil
}

// SyncTimeout bounds the wait for the informers' initial lists before the
// first cycle; after it, reads fall back to the API until they sync.
const SyncTimeout = 2 * time.Minute
