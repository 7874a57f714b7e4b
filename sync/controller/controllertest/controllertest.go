// Package controllertest holds the fakes the controller's unit tests plan
// and apply against: a directory, a cluster, a change source, an Event
// recorder, a provisioner and a project discoverer. Each keeps its state
// in memory and records what it was asked; the real servers are exercised
// by the integration tests.
package controllertest

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube/template"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// Dir is a directory for unit tests of the pipeline's logic.
type Dir struct {
	Members map[string][]string // group -> members; absent means not found
	Failing map[string]bool
	// IDs are the groups' stable identities (objectGUID), if any.
	IDs      map[string]string
	ConnErr  error
	Resolves int
	// Asked records the names of every Resolve.
	Asked [][]string
}

// DNOf is the fake directory's normalised DN of a group or user.
func DNOf(name string) string { return "cn=" + name }

// ResolveTargeted is Resolve: the fake has no whole directory to spare.
func (f *Dir) ResolveTargeted(ctx context.Context, names []string) (*ldapsrc.Result, error) {
	return f.Resolve(ctx, names)
}

// PasswordFingerprint fails: the fake has no password file.
func (f *Dir) PasswordFingerprint() (string, error) {
	return "", errors.New("the fake directory has no password file")
}

// Close closes nothing.
func (f *Dir) Close() {}

// Resolve answers from Members, failing the groups in Failing and every
// group when ConnErr is set.
func (f *Dir) Resolve(_ context.Context, names []string) (*ldapsrc.Result, error) {
	f.Resolves++
	f.Asked = append(f.Asked, append([]string(nil), names...))
	if f.ConnErr != nil {
		return nil, f.ConnErr
	}
	res := &ldapsrc.Result{Groups: map[string]*model.Group{}, Skipped: map[string]int{}}
	for _, n := range names {
		g := &model.Group{Name: n}
		if f.Failing[n] {
			g.Err = errors.New("timeout")
		} else if m, ok := f.Members[n]; ok {
			g.Found, g.Members = true, m
			if id := f.IDs[n]; id != "" {
				g.Identity, g.DN = id, DNOf(n)
			}
			g.Reached = []string{DNOf(n)}
			for _, u := range m {
				g.Reached = append(g.Reached, DNOf(u))
			}
		}
		res.Groups[n] = g
	}
	return res, nil
}

// Cluster keeps bindings in memory, applying changes like kube.Client,
// with a resourceVersion that grows with every write.
type Cluster struct {
	sync.Mutex
	NSs     []model.Namespace
	Objects map[model.Ref]*model.Binding
	Writes  []model.Ref
	FailOn  map[model.Ref]bool
	RV      int
	Reads   int
	// InMemory is what BindingsInMemory answers: true as the daemon's
	// synced informer cache, false (a cycle reads the bindings beside the
	// directory) as the API server.
	InMemory bool
	// last is the resourceVersion of each binding's last write (Wrote).
	last map[model.Ref]int
}

// Wrote reports whether rv is the state of the last write of ref, or older.
func (f *Cluster) Wrote(ref model.Ref, rv string) bool {
	f.Lock()
	defer f.Unlock()
	n, err := strconv.Atoi(rv)
	last, ok := f.last[ref]
	return ok && err == nil && n <= last
}

// Namespaces returns NSs.
func (f *Cluster) Namespaces(context.Context) ([]model.Namespace, error) {
	f.Lock()
	defer f.Unlock()
	f.Reads++
	return append([]model.Namespace(nil), f.NSs...), nil
}

// Bindings returns a copy of every binding.
func (f *Cluster) Bindings(context.Context, string) (map[model.Ref]*model.Binding, error) {
	f.Lock()
	defer f.Unlock()
	f.Reads++
	out := map[model.Ref]*model.Binding{}
	for k, v := range f.Objects {
		out[k] = v.Copy()
	}
	return out, nil
}

// BindingsInMemory answers InMemory.
func (f *Cluster) BindingsInMemory() bool { return f.InMemory }

// Get returns a copy of one binding; a missing one does not exist.
func (f *Cluster) Get(_ context.Context, ref model.Ref) (*model.Binding, error) {
	f.Lock()
	defer f.Unlock()
	f.Reads++
	if b, ok := f.Objects[ref]; ok {
		return b.Copy(), nil
	}
	return &model.Binding{Ref: ref}, nil
}

// Apply writes a change, or refuses it for a binding in FailOn.
func (f *Cluster) Apply(_ context.Context, ch model.Change, _ *model.Binding) (*model.Binding, error) {
	f.Lock()
	defer f.Unlock()
	if f.FailOn[ch.Ref] {
		return nil, errors.New("forbidden")
	}
	f.Writes = append(f.Writes, ch.Ref)
	cur := f.Objects[ch.Ref]
	if cur == nil {
		cur = &model.Binding{Ref: ch.Ref, Exists: true, UID: "uid-" + ch.Ref.String(), RoleRef: model.ExpectedRoleRef(ch.Ref.Name), Annotations: map[string]string{}}
	}
	managed := model.NewManaged(cur, ch)
	cur.Subjects = model.NewSubjects(cur.Subjects, ch.Add, ch.Remove)
	cur.Managed = managed
	for _, a := range ch.DropAnnotations {
		delete(cur.Annotations, a)
	}
	f.RV++
	cur.ResourceVersion = strconv.Itoa(f.RV)
	f.Objects[ch.Ref] = cur
	if f.last == nil {
		f.last = map[model.Ref]int{}
	}
	f.last[ch.Ref] = f.RV
	return cur.Copy(), nil
}

// Edit changes a binding the way a human would, bumping its version, and
// returns the new state as an informer would deliver it.
func (f *Cluster) Edit(ref model.Ref, fn func(b *model.Binding)) *model.Binding {
	f.Lock()
	defer f.Unlock()
	b := f.Objects[ref]
	fn(b)
	f.RV++
	b.ResourceVersion = strconv.Itoa(f.RV)
	return b.Copy()
}

// Remove deletes a binding and returns the version of the deletion.
func (f *Cluster) Remove(ref model.Ref) string {
	f.Lock()
	defer f.Unlock()
	delete(f.Objects, ref)
	f.RV++
	return strconv.Itoa(f.RV)
}

// Users are the users one binding holds, sorted.
func (f *Cluster) Users(ref model.Ref) []string {
	f.Lock()
	defer f.Unlock()
	b := f.Objects[ref]
	if b == nil {
		return nil
	}
	u := b.Users()
	sort.Strings(u)
	return u
}

// Granted is every user a binding and its shards hold, sorted.
func (f *Cluster) Granted(ref model.Ref) []string {
	seen := map[string]bool{}
	for i := 0; i <= model.MaxShards; i++ {
		for _, u := range f.Users(model.ShardRef(ref, i)) {
			seen[u] = true
		}
	}
	var out []string
	for u := range seen {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// Changes is a change source whose answers the test queues.
type Changes struct {
	sync.Mutex
	USN     int64
	Server  string
	Next    []*ldapsrc.ChangeSet // answered in order; then idle
	Err     error
	Polled  []ldapsrc.Cursor
	MarkErr error
}

// Mark returns the current cursor, or MarkErr.
func (f *Changes) Mark(context.Context) (ldapsrc.Cursor, error) {
	f.Lock()
	defer f.Unlock()
	return ldapsrc.Cursor{Server: f.Server, USN: f.USN}, f.MarkErr
}

// Changes answers the next queued change set, or Err.
func (f *Changes) Changes(_ context.Context, since ldapsrc.Cursor) (*ldapsrc.ChangeSet, error) {
	f.Lock()
	defer f.Unlock()
	f.Polled = append(f.Polled, since)
	if f.Err != nil {
		return nil, f.Err
	}
	if len(f.Next) == 0 {
		return &ldapsrc.ChangeSet{Next: since}, nil
	}
	cs := f.Next[0]
	f.Next = f.Next[1:]
	return cs, nil
}

// Change queues a change set touching the named entries (groups or users).
func (f *Changes) Change(entries ...string) {
	f.Lock()
	defer f.Unlock()
	f.USN += 10
	cs := &ldapsrc.ChangeSet{Next: ldapsrc.Cursor{Server: f.Server, USN: f.USN}}
	for _, e := range entries {
		cs.Entries = append(cs.Entries, ldapsrc.Changed{DN: DNOf(e), Key: DNOf(e)})
	}
	f.Next = append(f.Next, cs)
}

// Event is one Event recorded.
type Event struct {
	Ref                   model.Ref
	UID                   string
	Kind, Reason, Message string
}

// Recorder records Events in memory.
type Recorder struct {
	sync.Mutex
	events []Event
}

// Event records one Event.
func (f *Recorder) Event(ref model.Ref, uid string, eventType, reason, message string) {
	f.Lock()
	defer f.Unlock()
	f.events = append(f.events, Event{ref, uid, eventType, reason, message})
}

// Take returns the Events recorded since the last Take.
func (f *Recorder) Take() []Event {
	f.Lock()
	defer f.Unlock()
	out := f.events
	f.events = nil
	return out
}

// Prov writes namespaces into a Cluster and keeps template objects in
// memory.
type Prov struct {
	Cl      *Cluster
	Objects map[template.Key]*unstructured.Unstructured
	Calls   []string // every write, e.g. "create-ns runai-x", "apply RoleBinding/ns/name"
	FailNS  map[string]bool
}

// NewProv returns a Prov writing namespaces into cl.
func NewProv(cl *Cluster) *Prov {
	return &Prov{Cl: cl, Objects: map[template.Key]*unstructured.Unstructured{}, FailNS: map[string]bool{}}
}

// CreateNamespace adds a namespace, or refuses one in FailNS.
func (f *Prov) CreateNamespace(_ context.Context, name string, l map[string]string) error {
	if f.FailNS[name] {
		return errors.New("forbidden")
	}
	f.Calls = append(f.Calls, "create-ns "+name)
	f.Cl.Lock()
	defer f.Cl.Unlock()
	f.Cl.NSs = append(f.Cl.NSs, model.Namespace{Name: name, Labels: l})
	return nil
}

// LabelNamespace adds labels, refusing a stale resourceVersion.
func (f *Prov) LabelNamespace(_ context.Context, name, rv string, l map[string]string) error {
	f.Calls = append(f.Calls, "label-ns "+name)
	f.Cl.Lock()
	defer f.Cl.Unlock()
	for i, ns := range f.Cl.NSs {
		if ns.Name == name {
			if ns.ResourceVersion != rv {
				return apierrors.NewConflict(schema.GroupResource{Resource: "namespaces"}, name, errors.New("changed"))
			}
			f.Cl.NSs[i].Labels = Merge(ns.Labels, l)
		}
	}
	return nil
}

// ListObjects lists the template objects of a kind matching selector.
func (f *Prov) ListObjects(_ context.Context, gvr schema.GroupVersionResource, selector string) ([]unstructured.Unstructured, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, err
	}
	var out []unstructured.Unstructured
	for _, o := range f.Objects {
		if k, _ := template.KindOf(o); k.GVR() == gvr && sel.Matches(labels.Set(o.GetLabels())) {
			out = append(out, *o.DeepCopy())
		}
	}
	return out, nil
}

// GetObject returns one template object, nil if absent.
func (f *Prov) GetObject(_ context.Context, _ schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	for k, o := range f.Objects {
		if k.Namespace == ns && k.Name == name {
			return o.DeepCopy(), nil
		}
	}
	return nil, nil
}

// ApplyObject keeps obj as the server would.
func (f *Prov) ApplyObject(_ context.Context, _ schema.GroupVersionResource, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	key := template.KeyOf(obj)
	f.Calls = append(f.Calls, "apply "+key.String())
	u := obj.DeepCopy()
	u.SetResourceVersion("1") // a field the server adds
	f.Objects[key] = u
	return u.DeepCopy(), nil
}

// HasObject reports whether a template object is kept.
func (f *Prov) HasObject(ns, name string) bool {
	for k := range f.Objects {
		if k.Namespace == ns && k.Name == name {
			return true
		}
	}
	return false
}

// Discoverer answers project discovery with D or Err.
type Discoverer struct {
	D   *ldapsrc.Discovery
	Err error
}

// DiscoverProjects returns D, Err.
func (f Discoverer) DiscoverProjects(context.Context, config.FromGroups) (*ldapsrc.Discovery, error) {
	return f.D, f.Err
}

// Merge returns the union of maps, later ones winning.
func Merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
