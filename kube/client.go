package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// listPageSize bounds each LIST response, so thousands of namespaces never
// arrive as one huge answer. bindingPageSize is smaller: a binding may
// hold up to 1.5 MiB (a namespace admin can make one that large under a
// managed name, in their own namespace), and a page is held whole while it
// is read.
const (
	listPageSize    = 500
	bindingPageSize = 50
)

// Client reads and writes the managed bindings (and, with provisioning
// on, namespaces and template objects).
type Client struct {
	cs  kubernetes.Interface
	dyn dynamic.Interface
	// md lists metadata only (no subjects): how shards are found.
	md    metadata.Interface
	Stats *RequestStats
	scope model.Scope
}

// RequestStats counts API requests by HTTP verb, for metrics and the
// benchmark.
type RequestStats struct {
	mu     sync.Mutex
	byVerb map[string]*atomic.Int64
	// conflicts counts writes refused because another writer changed the
	// binding first (each is read again and re-applied).
	conflicts atomic.Int64
}

// Conflicts returns how many writes met a concurrent change.
func (s *RequestStats) Conflicts() int64 { return s.conflicts.Load() }

// Count returns a copy of the counts by verb.
func (s *RequestStats) Count() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.byVerb))
	for k, v := range s.byVerb {
		out[k] = v.Load()
	}
	return out
}

func (s *RequestStats) inc(verb string) {
	s.mu.Lock()
	c, ok := s.byVerb[verb]
	if !ok {
		c = new(atomic.Int64)
		s.byVerb[verb] = c
	}
	s.mu.Unlock()
	c.Add(1)
}

type countingTransport struct {
	next  http.RoundTripper
	stats *RequestStats
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := req.Method
	if req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	t.stats.inc(verb)
	return t.next.RoundTrip(req)
}

// NewClient builds a client with the given rate limits.
func NewClient(cfg *rest.Config, qps float32, burst int) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = "runai-ldap-sync"
	stats := &RequestStats{byVerb: map[string]*atomic.Int64{}}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, stats: stats} })
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build Kubernetes client: %w", err)
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build Kubernetes client: %w", err)
	}
	return &Client{cs: cs, dyn: dyn, md: md, Stats: stats}, nil
}

// Clientset exposes the underlying clientset (for informers and tests).
func (c *Client) Clientset() kubernetes.Interface { return c.cs }

// eachPage runs a LIST page by page (listPageSize each, unless opts has a
// Limit): page reads one page with opts and returns its continue token.
func eachPage(opts metav1.ListOptions, page func(opts metav1.ListOptions) (string, error)) error {
	if opts.Limit == 0 {
		opts.Limit = listPageSize
	}
	for {
		next, err := page(opts)
		if err != nil || next == "" {
			return err
		}
		opts.Continue = next
	}
}

// Namespaces lists every namespace, page by page, and which of them hold
// an executor RoleBinding (one more paged LIST, of metadata only: whole
// bindings would decode every subject only to learn their namespace).
func (c *Client) Namespaces(ctx context.Context) ([]model.Namespace, error) {
	out, err := c.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	holds := map[string]bool{}
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", model.ExecutorBinding).String(), Limit: bindingPageSize}
	err = eachPage(opts, func(opts metav1.ListOptions) (string, error) {
		list, err := c.md.Resource(rbacv1.SchemeGroupVersion.WithResource("rolebindings")).Namespace("").List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("list %s RoleBindings: %w", model.ExecutorBinding, err)
		}
		for i := range list.Items {
			if list.Items[i].Name == model.ExecutorBinding { // a fake client ignores the field selector
				holds[list.Items[i].Namespace] = true
			}
		}
		return list.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].HoldsExecutor = holds[out[i].Name]
	}
	return out, nil
}

func (c *Client) namespaces(ctx context.Context) ([]model.Namespace, error) {
	var out []model.Namespace
	err := eachPage(metav1.ListOptions{}, func(opts metav1.ListOptions) (string, error) {
		list, err := c.cs.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("list namespaces: %w", err)
		}
		for i := range list.Items {
			out = append(out, fromNamespace(reduceNamespace(c.scope, &list.Items[i])))
		}
		return list.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BindingsInMemory is false: Bindings lists them from the API server.
func (c *Client) BindingsInMemory() bool { return false }

// Bindings reads the current state of every managed binding in the scope:
// one paged LIST for all executor RoleBindings (however many projects
// there are), one GET each for the viewer and index-map bindings. A
// binding outside the scope is dropped as its page is read.
func (c *Client) Bindings(ctx context.Context, runaiNS string) (map[model.Ref]*model.Binding, error) {
	in, err := c.scopedNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	out := map[model.Ref]*model.Binding{}
	err = c.eachExecutor(ctx, func(rb *rbacv1.RoleBinding) {
		if in(rb.Namespace) {
			b := fromRoleBinding(rb)
			out[b.Ref] = b
		}
	})
	if err != nil {
		return nil, err
	}
	if err := c.shards(ctx, in, out); err != nil {
		return nil, err
	}
	viewer, err := c.cs.RbacV1().ClusterRoleBindings().Get(ctx, model.ViewerBinding, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("get ClusterRoleBinding %s: %w", model.ViewerBinding, err)
	default:
		b := fromClusterRoleBinding(viewer)
		out[b.Ref] = b
	}
	im, err := c.cs.RbacV1().RoleBindings(runaiNS).Get(ctx, model.IndexMapBinding, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("get RoleBinding %s/%s: %w", runaiNS, model.IndexMapBinding, err)
	default:
		b := fromRoleBinding(im)
		out[b.Ref] = b
	}
	return out, nil
}

// eachExecutor runs f on every executor RoleBinding, in every namespace,
// one paged LIST (bindingPageSize a page).
func (c *Client) eachExecutor(ctx context.Context, f func(*rbacv1.RoleBinding)) error {
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", model.ExecutorBinding).String(), Limit: bindingPageSize}
	return eachPage(opts, func(opts metav1.ListOptions) (string, error) {
		list, err := c.cs.RbacV1().RoleBindings("").List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("list %s RoleBindings: %w", model.ExecutorBinding, err)
		}
		for i := range list.Items {
			// The field selector says so; a fake client ignores it.
			if list.Items[i].Name == model.ExecutorBinding {
				f(&list.Items[i])
			}
		}
		return list.Continue, nil
	})
}

// shards adds every shard (label ShardOfLabel, a shard's name) in the
// scope to out. Anyone may put the label on any binding of theirs, of any
// size: the LISTs (one of RoleBindings, one of ClusterRoleBindings, paged,
// whatever the number of projects) read metadata only, and only the shards
// in the scope are then read whole, one GET each.
func (c *Client) shards(ctx context.Context, in func(string) bool, out map[model.Ref]*model.Binding) error {
	var refs []model.Ref
	for _, kind := range []string{model.KindRoleBinding, model.KindClusterRoleBinding} {
		res := rbacv1.SchemeGroupVersion.WithResource("rolebindings")
		if kind == model.KindClusterRoleBinding {
			res = rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings")
		}
		// A page of metadata may still carry 256 KiB of annotations an item.
		err := eachPage(metav1.ListOptions{LabelSelector: model.ShardOfLabel, Limit: bindingPageSize}, func(opts metav1.ListOptions) (string, error) {
			list, err := c.md.Resource(res).Namespace("").List(ctx, opts)
			if err != nil {
				return "", fmt.Errorf("list shard %ss (label %s): %w", kind, model.ShardOfLabel, err)
			}
			for i := range list.Items {
				ref := model.Ref{Kind: kind, Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}
				if model.IsShard(ref) && (kind == model.KindClusterRoleBinding || in(ref.Namespace)) {
					refs = append(refs, ref)
				}
			}
			return list.Continue, nil
		})
		if err != nil {
			return err
		}
	}
	for _, ref := range refs {
		b, err := c.Get(ctx, ref)
		if err != nil {
			return err
		}
		if b.Exists {
			out[ref] = b
		}
	}
	return nil
}

// scopedNamespaces returns whether bindings in a namespace are in the
// scope: one namespace LIST when the scope names namespaces.
func (c *Client) scopedNamespaces(ctx context.Context) (func(string) bool, error) {
	if c.scope.Namespace == nil {
		return func(string) bool { return true }, nil
	}
	nss, err := c.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	in := map[string]bool{}
	for _, ns := range nss {
		in[ns.Name] = c.scope.Namespace(ns.Name, ns.Labels)
	}
	return func(ns string) bool { return in[ns] }, nil
}

// Get reads one binding; a missing one is returned with Exists false.
func (c *Client) Get(ctx context.Context, ref model.Ref) (*model.Binding, error) {
	var b *model.Binding
	var err error
	if ref.Kind == model.KindClusterRoleBinding {
		var crb *rbacv1.ClusterRoleBinding
		crb, err = c.cs.RbacV1().ClusterRoleBindings().Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			b = fromClusterRoleBinding(crb)
		}
	} else {
		var rb *rbacv1.RoleBinding
		rb, err = c.cs.RbacV1().RoleBindings(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			b = fromRoleBinding(rb)
		}
	}
	if apierrors.IsNotFound(err) {
		return &model.Binding{Ref: ref}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", ref, err)
	}
	return b, nil
}

func fromRoleBinding(rb *rbacv1.RoleBinding) *model.Binding {
	return newBinding(model.Ref{Kind: model.KindRoleBinding, Namespace: rb.Namespace, Name: rb.Name}, &rb.ObjectMeta, rb.RoleRef, rb.Subjects)
}

func fromClusterRoleBinding(crb *rbacv1.ClusterRoleBinding) *model.Binding {
	return newBinding(model.Ref{Kind: model.KindClusterRoleBinding, Name: crb.Name}, &crb.ObjectMeta, crb.RoleRef, crb.Subjects)
}

// newBinding never fails and never reads the ownership record: Owned
// does, when the binding is planned or written, so a record that cannot
// be read is an error of that binding only, and nothing at all for a
// binding of a managed name that is not planned (one in a namespace that
// is no project).
func newBinding(ref model.Ref, meta *metav1.ObjectMeta, roleRef rbacv1.RoleRef, subjects []rbacv1.Subject) *model.Binding {
	return &model.Binding{
		Ref: ref, Exists: true, UID: string(meta.UID), ResourceVersion: meta.ResourceVersion, RoleRef: modelRoleRef(roleRef),
		Subjects: modelSubjects(subjects), Annotations: meta.Annotations, Record: meta.Annotations[model.ManagedAnnotation],
	}
}

// maxConflictRetries bounds retries when another writer changes the
// binding between our read and our write.
const maxConflictRetries = 10

// conflictBackoff is the pause before the n-th retry after a conflict:
// growing and jittered, so two writers that collided do not collide again.
func conflictBackoff(n int) time.Duration {
	d := min(10*time.Millisecond<<n, 500*time.Millisecond)
	return d/2 + rand.N(d)
}

// Wrote is always false: a Client keeps no record of its writes, as it
// has no informers whose echoes of them could be taken for drift (Cache
// has).
func (c *Client) Wrote(model.Ref, string) bool { return false }

// Apply makes one change. An existing binding is patched, never deleted and
// recreated, with its resourceVersion as precondition; on a conflict it is
// read again and the same additions and removals are applied to what is
// there now, so a concurrent writer's subjects are kept. It returns the
// binding as written.
func (c *Client) Apply(ctx context.Context, ch model.Change, current *model.Binding) (*model.Binding, error) {
	if ch.Create && (current == nil || !current.Exists) {
		b, err := c.create(ctx, ch)
		if err == nil || !apierrors.IsAlreadyExists(err) {
			return b, err
		}
		// Someone created it meanwhile: fall through to a patch.
		current = nil
	}
	for attempt := 0; ; attempt++ {
		if current == nil || !current.Exists {
			fresh, err := c.Get(ctx, ch.Ref)
			if err != nil {
				return nil, err
			}
			if !fresh.Exists {
				return nil, fmt.Errorf("patch %s: binding disappeared; it will be created next cycle", ch.Ref)
			}
			current = fresh
		}
		if current.RoleRef != model.ExpectedRoleRef(ch.Ref.Name) {
			return nil, fmt.Errorf("%s: %w", ch.Ref, model.ErrRoleRefChanged)
		}
		owned, err := current.Owned()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", model.ErrManagedUnreadable, err)
		}
		b, err := c.patch(ctx, ch, current, owned)
		if err == nil {
			return b, nil
		}
		if !apierrors.IsConflict(err) || attempt >= maxConflictRetries {
			return nil, fmt.Errorf("patch %s: %w", ch.Ref, err)
		}
		c.Stats.conflicts.Add(1)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("patch %s: %w (gave up after a conflict)", ch.Ref, ctx.Err())
		case <-time.After(conflictBackoff(attempt)):
		}
		current = nil // read again and re-apply to the fresh state
	}
}

func (c *Client) create(ctx context.Context, ch model.Change) (*model.Binding, error) {
	subjects := make([]rbacv1.Subject, 0, len(ch.Add))
	for _, u := range model.SortedUnique(ch.Add) {
		subjects = append(subjects, UserSubject(u))
	}
	annotations := map[string]string{model.ManagedAnnotation: model.EncodeManaged(ch.Add)}
	labels := map[string]string{model.ManagedByLabel: model.ManagedByValue}
	if base, i, ok := model.ShardBase(ch.Ref); ok && i > 0 {
		labels[model.ShardOfLabel] = base.Name
	}
	meta := metav1.ObjectMeta{
		Name: ch.Ref.Name, Namespace: ch.Ref.Namespace,
		Labels:      labels,
		Annotations: annotations,
	}
	opts := metav1.CreateOptions{FieldManager: model.FieldManager}
	roleRef := ExpectedRoleRef(ch.Ref.Name)
	if ch.Ref.Kind == model.KindClusterRoleBinding {
		crb, err := c.cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, RoleRef: roleRef, Subjects: subjects}, opts)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", ch.Ref, err)
		}
		return fromClusterRoleBinding(crb), nil
	}
	rb, err := c.cs.RbacV1().RoleBindings(ch.Ref.Namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: roleRef, Subjects: subjects}, opts)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", ch.Ref, err)
	}
	return fromRoleBinding(rb), nil
}

func (c *Client) patch(ctx context.Context, ch model.Change, current *model.Binding, owned []string) (*model.Binding, error) {
	annotations := map[string]any{}
	for _, a := range ch.DropAnnotations {
		annotations[a] = nil
	}
	record := model.NewManagedFrom(current, owned, ch)
	if len(record) > 0 || current.Annotations[model.ManagedAnnotation] != "" {
		annotations[model.ManagedAnnotation] = model.EncodeManaged(record)
	}
	// A merge patch that carries the resourceVersion is refused with a
	// Conflict if the object changed since we read it.
	meta := map[string]any{
		"resourceVersion": current.ResourceVersion,
		"annotations":     annotations,
	}
	if base, i, ok := model.ShardBase(ch.Ref); ok && i > 0 {
		// A shard is found by its label: put it back if it was removed.
		meta["labels"] = map[string]any{model.ShardOfLabel: base.Name}
	}
	patch := map[string]any{"metadata": meta}
	if len(ch.Add) > 0 || len(ch.Remove) > 0 {
		patch["subjects"] = apiSubjects(model.NewSubjects(current.Subjects, ch.Add, ch.Remove))
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	opts := metav1.PatchOptions{FieldManager: model.FieldManager}
	if ch.Ref.Kind == model.KindClusterRoleBinding {
		crb, err := c.cs.RbacV1().ClusterRoleBindings().Patch(ctx, ch.Ref.Name, types.MergePatchType, body, opts)
		if err != nil {
			return nil, err
		}
		return fromClusterRoleBinding(crb), nil
	}
	rb, err := c.cs.RbacV1().RoleBindings(ch.Ref.Namespace).Patch(ctx, ch.Ref.Name, types.MergePatchType, body, opts)
	if err != nil {
		return nil, err
	}
	return fromRoleBinding(rb), nil
}
