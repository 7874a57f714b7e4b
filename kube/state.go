package kube

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// stateKey holds the gzipped JSON model.State in binaryData.
const stateKey = "state.json.gz"

// StateStore reads and writes the store ConfigMap.
type StateStore struct {
	cs kubernetes.Interface
	ns string

	mu sync.Mutex
	// last is the ConfigMap as last read or written: Save updates it in
	// one request (its resourceVersion the precondition) and reads the
	// store again only when someone wrote it meanwhile (a conflict).
	last *corev1.ConfigMap
}

// NewStateStore returns the store in namespace ns.
func NewStateStore(cs kubernetes.Interface, ns string) *StateStore {
	return &StateStore{cs: cs, ns: ns}
}

// StateStore returns the client's store in namespace ns.
func (c *Client) StateStore(ns string) *StateStore { return NewStateStore(c.cs, ns) }

func (s *StateStore) what() string { return "ConfigMap " + s.ns + "/" + model.StateConfigMap }

// Load reads the store. A missing store is an empty state; any other
// failure is an error, never an empty state (which would forget windows,
// pins and last known members).
func (s *StateStore) Load(ctx context.Context) (*model.StateSnapshot, error) {
	cm, err := s.cs.CoreV1().ConfigMaps(s.ns).Get(ctx, model.StateConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.remember(nil)
		return &model.StateSnapshot{Approvals: map[string]string{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the guard state (%s): %w; nothing is written until it can be read", s.what(), err)
	}
	s.remember(cm)
	st, err := model.DecodeState(cm.BinaryData[stateKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w; nothing is written until it is fixed (deleting it forgets every guard window, pin and last known member)", s.what(), err)
	}
	return &model.StateSnapshot{State: st, Approvals: approvals(cm), Exists: true}, nil
}

// Approvals reads only the store's approvals (its annotations): a poll
// asks for them while something is held, and need not decode the state.
func (s *StateStore) Approvals(ctx context.Context) (map[string]string, error) {
	cm, err := s.cs.CoreV1().ConfigMaps(s.ns).Get(ctx, model.StateConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the approvals (%s): %w", s.what(), err)
	}
	return approvals(cm), nil
}

func approvals(cm *corev1.ConfigMap) map[string]string {
	out := map[string]string{}
	for k, v := range cm.Annotations {
		if key, ok := strings.CutPrefix(k, model.ApprovalPrefix); ok && key != "" {
			out[model.ApprovalScheme+key] = v
		}
	}
	return out
}

// Save writes the state and removes the approvals consumed (by key);
// other approvals are kept. It returns the member lists dropped to stay
// within model.MaxStateBytes (model.EncodeState).
func (s *StateStore) Save(ctx context.Context, st *model.State, consumed []string) ([]string, error) {
	data, dropped, err := model.EncodeState(st)
	if err != nil {
		return dropped, fmt.Errorf("%s: %w", s.what(), err)
	}
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	cm := s.lastCopy()
	for attempt := 0; ; attempt++ {
		var err error
		if cm == nil {
			cm, err = cms.Get(ctx, model.StateConfigMap, metav1.GetOptions{})
		}
		var written *corev1.ConfigMap
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: model.StateConfigMap, Namespace: s.ns,
				Labels: map[string]string{model.ManagedByLabel: model.ManagedByValue}}, BinaryData: map[string][]byte{stateKey: data}}
			written, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: model.FieldManager})
		} else if err == nil {
			cm.BinaryData = map[string][]byte{stateKey: data}
			for _, k := range consumed {
				delete(cm.Annotations, model.ApprovalPrefix+strings.TrimPrefix(k, model.ApprovalScheme))
			}
			written, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: model.FieldManager})
		}
		if err == nil {
			s.remember(written)
			return dropped, nil
		}
		cm = nil // read it again
		if !(apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) || attempt >= maxConflictRetries {
			return dropped, fmt.Errorf("write the guard state (%s): %w; nothing else is written until it can be", s.what(), err)
		}
		select {
		case <-ctx.Done():
			return dropped, fmt.Errorf("write the guard state (%s): %w", s.what(), ctx.Err())
		case <-time.After(conflictBackoff(attempt)):
		}
	}
}

// remember keeps cm (nil: none) as the store last read or written.
func (s *StateStore) remember(cm *corev1.ConfigMap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = cm
}

// lastCopy is a copy of the store last read or written, nil if none.
func (s *StateStore) lastCopy() *corev1.ConfigMap {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return nil
	}
	return s.last.DeepCopy()
}
