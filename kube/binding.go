// Package kube reads and writes the Kubernetes side: project namespaces and
// the three Run:AI bindings. It is the "provider" of current state and the
// only place that writes.
package kube

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Run:AI's binding and role names (BRIEF §2).
const (
	ViewerBinding   = "runai-job-viewer-manual"
	ExecutorBinding = "runai-job-executor-manual"
	IndexMapBinding = "runai-cli-index-map-editor"

	ViewerRole   = "runai-job-viewer"
	ExecutorRole = "runai-job-executor"
	IndexMapRole = "runai-cli-index-map-editor"
)

// Kinds of binding.
const (
	KindClusterRoleBinding = "ClusterRoleBinding"
	KindRoleBinding        = "RoleBinding"
)

// Ownership records. ManagedAnnotation lists the user subjects this tool
// added, so that it removes only those and never a subject added by hand.
const (
	ManagedAnnotation = "runai-ldap-sync.github.io/managed-users"
	ManagedByLabel    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "runai-ldap-sync"
	FieldManager      = "runai-ldap-sync"
)

// Ref names one binding.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// ViewerRef, IndexMapRef and ExecutorRef name the managed bindings.
func ViewerRef() Ref { return Ref{Kind: KindClusterRoleBinding, Name: ViewerBinding} }

// IndexMapRef is the index-map RoleBinding in the Run:AI namespace.
func IndexMapRef(runaiNS string) Ref {
	return Ref{Kind: KindRoleBinding, Namespace: runaiNS, Name: IndexMapBinding}
}

// ExecutorRef is a project's executor RoleBinding.
func ExecutorRef(ns string) Ref {
	return Ref{Kind: KindRoleBinding, Namespace: ns, Name: ExecutorBinding}
}

// ExpectedRoleRef is the roleRef Run:AI's templates give each binding; a
// shard has the roleRef of the binding it extends.
func ExpectedRoleRef(name string) rbacv1.RoleRef {
	if base, _, ok := ShardBase(Ref{Name: name}); ok {
		name = base.Name
	}
	role := map[string]string{ViewerBinding: ViewerRole, ExecutorBinding: ExecutorRole, IndexMapBinding: IndexMapRole}[name]
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}
}

// Binding is the current state of one managed binding.
type Binding struct {
	Ref
	Exists          bool
	UID             types.UID
	ResourceVersion string
	RoleRef         rbacv1.RoleRef
	Subjects        []rbacv1.Subject
	// Managed are the users this tool owns (from ManagedAnnotation).
	Managed []string
	// ManagedErr is set when ManagedAnnotation cannot be read: the binding
	// is then that binding's error (left untouched), never the cycle's.
	ManagedErr error
	// Annotations are kept for approval and other operator signals.
	Annotations map[string]string
}

// Users returns the names of the User subjects, unique.
func (b *Binding) Users() []string {
	seen := map[string]struct{}{}
	var out []string
	for _, s := range b.Subjects {
		if IsUser(s) {
			if _, ok := seen[s.Name]; !ok {
				seen[s.Name] = struct{}{}
				out = append(out, s.Name)
			}
		}
	}
	return out
}

// IsUser reports whether s is a User subject (the only kind we manage).
func IsUser(s rbacv1.Subject) bool {
	return s.Kind == rbacv1.UserKind && (s.APIGroup == rbacv1.GroupName || s.APIGroup == "")
}

// UserSubject is how Run:AI writes a user subject.
func UserSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}
}

// compressAbove is the size at which the managed list is stored gzipped, to
// stay far below the 256 KiB limit on a binding's annotations.
const compressAbove = 8 << 10

const gzipPrefix = "gzip+base64:"

// EncodeManaged stores a user list in the annotation value: a JSON array of
// strings, so any Kubernetes user name round-trips (commas, spaces,
// quotes, non-ASCII); gzipped when large.
func EncodeManaged(users []string) string {
	sorted := sortedUnique(users)
	raw, _ := json.Marshal(sorted) // a []string always encodes
	plain := string(raw)
	if len(plain) <= compressAbove {
		return plain
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	return gzipPrefix + base64.StdEncoding.EncodeToString(buf.Bytes())
}

// DecodeManaged reads the annotation value: a JSON array (what this
// version writes) or, from earlier versions, names joined with commas
// (those never start with '[', as no written name did). A value that
// cannot be read is an error: treating it as empty would forget what we
// own, and treating it as anything else would be a guess.
func DecodeManaged(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(v, gzipPrefix); ok {
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: bad base64: %w", ManagedAnnotation, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: bad gzip: %w", ManagedAnnotation, err)
		}
		plain, err := io.ReadAll(io.LimitReader(zr, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: bad gzip: %w", ManagedAnnotation, err)
		}
		v = strings.TrimSpace(string(plain))
	}
	if strings.HasPrefix(v, "[") {
		var out []string
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, fmt.Errorf("annotation %s: not a JSON list of user names: %w", ManagedAnnotation, err)
		}
		var kept []string
		for _, s := range out {
			if s != "" {
				kept = append(kept, s)
			}
		}
		return kept, nil
	}
	// The comma-joined record of earlier versions.
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func sortStrings(s []string) { sort.Strings(s) }

// Copy returns a deep copy of b.
func (b *Binding) Copy() *Binding {
	c := *b
	c.Subjects = append([]rbacv1.Subject(nil), b.Subjects...)
	c.Managed = append([]string(nil), b.Managed...)
	if b.Annotations != nil {
		c.Annotations = make(map[string]string, len(b.Annotations))
		for k, v := range b.Annotations {
			c.Annotations[k] = v
		}
	}
	return &c
}
