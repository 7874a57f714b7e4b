package kube

import (
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"testing"
)

func TestCacheForgetsWritesOnceSeen(t *testing.T) {
	w := newOwnWrites()
	ref := model.ExecutorRef("x")
	w.record(ref, &model.Binding{ResourceVersion: "100"}, true)
	w.caughtUp(ref, "99")
	if _, ok := w.written[ref]; !ok {
		t.Fatal("forgot a write on an older event")
	}
	w.caughtUp(ref, "100")
	if _, ok := w.written[ref]; ok {
		t.Fatal("kept a write the informer has seen")
	}
}

// Our last write stays known once the informer has seen it: its echo,
// handled later by the controller loop, and any older state are ours, a
// later state is someone else's.
func TestWroteKnowsOurLastWriteAfterItWasSeen(t *testing.T) {
	w := newOwnWrites()
	ref := model.ExecutorRef("x")
	if w.wrote(ref, "100") {
		t.Fatal("a binding never written is ours")
	}
	w.record(ref, &model.Binding{ResourceVersion: "100"}, true)
	w.caughtUp(ref, "100")
	for rv, want := range map[string]bool{"99": true, "100": true, "101": false, "": false} {
		if got := w.wrote(ref, rv); got != want {
			t.Errorf("wrote(%q) = %v, want %v", rv, got, want)
		}
	}
}
