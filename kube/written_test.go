package kube

import (
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"testing"
)

func TestCacheForgetsWritesOnceSeen(t *testing.T) {
	w := newOwnWrites()
	ref := model.ExecutorRef("x")
	w.record(ref, &model.Binding{ResourceVersion: "100"})
	w.caughtUp(ref, "99")
	if _, ok := w.written[ref]; !ok {
		t.Fatal("forgot a write on an older event")
	}
	w.caughtUp(ref, "100")
	if _, ok := w.written[ref]; ok {
		t.Fatal("kept a write the informer has seen")
	}
}
