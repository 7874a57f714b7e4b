package controller

import (
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// A flood of informer events costs one entry per object: the inbox holds
// the latest state of each binding, the first and last state of each
// namespace, one template flag and a bounded number of ticks.
func TestInboxIsBoundedByObjectsNotEvents(t *testing.T) {
	q := inbox{kick: make(chan struct{}, 1)}
	refs := []model.Ref{model.ExecutorRef("runai-a"), model.ExecutorRef("runai-b"), model.ViewerRef()}
	latest := map[model.Ref]string{}
	for i := 0; i < 100000; i++ {
		r := refs[i%len(refs)]
		rv := string(rune('a' + i%26))
		latest[r] = rv
		q.post(evBinding{ref: r, b: &model.Binding{Ref: r, ResourceVersion: rv}, rv: rv})
		q.post(evTemplate{})
	}
	for i := 0; i < 1000; i++ {
		q.post(evTick{at: time.Unix(int64(i), 0)})
	}
	before := &model.Namespace{Name: "runai-c"}
	q.post(evNamespace{old: before, cur: &model.Namespace{Name: "runai-c", Labels: map[string]string{"runai/queue": "x"}}})
	last := &model.Namespace{Name: "runai-c", Labels: map[string]string{"runai/queue": "c"}}
	q.post(evNamespace{old: &model.Namespace{Name: "runai-c"}, cur: last})
	if n := q.size(); n != len(refs)+1+maxTicks+1 {
		t.Fatalf("inbox holds %d entries after 201,002 events on %d objects", n, len(refs)+1)
	}
	evs := q.take()
	var ticks, bindings, nss, tmpl int
	for _, ev := range evs {
		switch e := ev.(type) {
		case evTick:
			ticks++
			if e.at.Unix() < 1000-maxTicks {
				t.Errorf("an old tick was kept over a newer one: %v", e.at)
			}
		case evBinding:
			bindings++
			if want := latest[e.ref]; e.rv != want {
				t.Errorf("%s: kept rv %q, not the latest %q", e.ref, e.rv, want)
			}
		case evNamespace:
			nss++
			if e.old != before || e.cur != last {
				t.Errorf("namespace events coalesce from the first old state to the last state: %+v", e)
			}
		case evTemplate:
			tmpl++
		}
	}
	if ticks != maxTicks || bindings != len(refs) || nss != 1 || tmpl != 1 {
		t.Errorf("took %d ticks, %d bindings, %d namespaces, %d template flags", ticks, bindings, nss, tmpl)
	}
	if q.size() != 0 || len(q.take()) != 0 {
		t.Error("take leaves the inbox empty")
	}
}
