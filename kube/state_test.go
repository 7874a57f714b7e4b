package kube

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// A store that cannot be read is an error, never an empty state; a
// missing one is empty. Save keeps approvals it did not consume.
func TestStateStoreLoadSave(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewSimpleClientset()
	s := NewStateStore(cs, "runai")
	snap, err := s.Load(ctx)
	if err != nil || snap.Exists || len(snap.State.Bindings) != 0 {
		t.Fatalf("missing store: %+v, %v", snap, err)
	}
	if _, err := s.Save(ctx, &model.State{Bindings: map[string]*model.BindingState{"x": {Known: true}}}, nil); err != nil {
		t.Fatal(err)
	}
	cm, _ := cs.CoreV1().ConfigMaps("runai").Get(ctx, model.StateConfigMap, metav1.GetOptions{})
	cm.Annotations = map[string]string{model.ApprovalPrefix + "aaaa": "one", model.ApprovalPrefix + "bbbb": "two", "other": "x"}
	if _, err := cs.CoreV1().ConfigMaps("runai").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, err = s.Load(ctx)
	if err != nil || !snap.Exists || !snap.State.Bindings["x"].Known || len(snap.Approvals) != 2 || snap.Approvals["sha256:aaaa"] != "one" {
		t.Fatalf("load: %+v, %v", snap, err)
	}
	if _, err := s.Save(ctx, &snap.State, []string{"sha256:aaaa"}); err != nil {
		t.Fatal(err)
	}
	cm, _ = cs.CoreV1().ConfigMaps("runai").Get(ctx, model.StateConfigMap, metav1.GetOptions{})
	if _, ok := cm.Annotations[model.ApprovalPrefix+"aaaa"]; ok || cm.Annotations[model.ApprovalPrefix+"bbbb"] != "two" || cm.Annotations["other"] != "x" {
		t.Errorf("annotations after consuming one approval: %v", cm.Annotations)
	}
	cm.BinaryData[stateKey] = []byte("garbage")
	_, _ = cs.CoreV1().ConfigMaps("runai").Update(ctx, cm, metav1.UpdateOptions{})
	if _, err := s.Load(ctx); err == nil || !strings.Contains(err.Error(), "nothing is written") {
		t.Errorf("corrupt store: %v", err)
	}
	// The approvals are read from the annotations alone.
	if got, err := s.Approvals(ctx); err != nil || len(got) != 1 || got["sha256:bbbb"] != "two" {
		t.Errorf("approvals: %v, %v", got, err)
	}
	cs.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	if snap, err := s.Load(ctx); err == nil || snap != nil {
		t.Errorf("unreadable store read as %+v", snap)
	}
	if got, err := s.Approvals(ctx); err == nil || got != nil {
		t.Errorf("unreadable store's approvals read as %v", got)
	}
}

// Save writes from the store as last read or written: one request, no
// GET; a conflict (someone wrote it meanwhile, e.g. an approval) reads it
// again and keeps what they wrote.
func TestStateStoreSaveReadsOnlyOnConflict(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewSimpleClientset()
	s := NewStateStore(cs, "runai")
	st := &model.State{Bindings: map[string]*model.BindingState{"x": {Known: true}}}
	if _, err := s.Save(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	verbs := func() []string {
		var out []string
		for _, a := range cs.Actions() {
			out = append(out, a.GetVerb())
		}
		cs.ClearActions()
		return out
	}
	verbs()
	if _, err := s.Save(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	if got := verbs(); !slices.Equal(got, []string{"update"}) {
		t.Errorf("save after a load: %v, want one update", got)
	}
	// An approval recorded since: the server refuses the stale write.
	cm, _ := cs.CoreV1().ConfigMaps("runai").Get(ctx, model.StateConfigMap, metav1.GetOptions{})
	cm.Annotations = map[string]string{model.ApprovalPrefix + "aaaa": "admin"}
	if _, err := cs.CoreV1().ConfigMaps("runai").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	verbs()
	conflicts := 1
	cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, model.StateConfigMap, errors.New("modified"))
	})
	if _, err := s.Save(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	if got := verbs(); !slices.Equal(got, []string{"update", "get", "update"}) {
		t.Errorf("save after a conflict: %v, want update, get, update", got)
	}
	if snap, err := s.Load(ctx); err != nil || snap.Approvals["sha256:aaaa"] != "admin" {
		t.Errorf("approval recorded meanwhile lost: %+v, %v", snap, err)
	}
}
