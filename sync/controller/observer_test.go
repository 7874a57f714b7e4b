package controller

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// The log observer says what a finished run found, once: a cycle's first
// creations in one "bindings created" line (none in a dry run), its
// missing and failed groups, and drift the informers reported.
func TestLogObserverSaysWhatTheRunFoundOnce(t *testing.T) {
	dir, cl := newFixture()
	delete(dir.Members, "runai-viewers")
	core, logs := observer.New(zapcore.InfoLevel)
	// diff: a pipeline of its own, as in cmd.
	if rep := New(testConfig(), dir, cl, zap.New(core), nil).Cycle(context.Background(), CycleOptions{DryRun: true}); rep.Err != nil {
		t.Fatalf("dry run: %v", rep.Err)
	}
	if n := logs.FilterMessage("bindings created").Len(); n != 0 {
		t.Errorf("a dry run logged %d creations", n)
	}
	s := New(testConfig(), dir, cl, zap.New(core), nil)
	if rep := s.Cycle(context.Background(), CycleOptions{}); rep.Err != nil || rep.Created != 4 {
		t.Fatalf("cycle: %v, created %d", rep.Err, rep.Created)
	}
	created := logs.FilterMessage("bindings created").All()
	if len(created) != 1 || created[0].ContextMap()["count"] != int64(4) {
		t.Errorf("bindings created: %+v, want one line counting 4", created)
	}
	if n := logs.FilterMessage("binding updated").Len(); n != 4 {
		t.Errorf("%d binding updated lines, want one per write (4)", n)
	}
	missing := logs.FilterMessageSnippet("groups not found in the directory").All()
	if len(missing) != 2 { // the dry run's and the cycle's
		t.Errorf("groups not found: %d lines, want 2", len(missing))
	}

	dir.Failing["runai-beta-executors"] = true
	s.Cycle(context.Background(), CycleOptions{})
	if n := logs.FilterMessageSnippet("group lookup failed").Len(); n != 1 {
		t.Errorf("group lookup failed: %d lines, want 1", n)
	}
	if n := logs.FilterMessage("binding left untouched").Len(); n != 1 {
		t.Errorf("binding left untouched: %d lines, want 1 (beta's executor binding)", n)
	}

	b := cl.Edit(alphaRef, dropUser("alice"))
	queueBinding(s, alphaRef, b, b.ResourceVersion)
	drift := logs.FilterMessageSnippet("drift detected").All()
	if len(drift) != 1 || drift[0].ContextMap()["binding"] != alphaRef.String() {
		t.Errorf("drift detected: %+v", drift)
	}
}

// Drift of a binding with shards is logged as a shard's change, naming
// the logical binding and the shard.
func TestLogObserverSaysWhichShardDrifted(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	o := logObserver{log: zap.New(core)}
	viewer := model.ViewerRef()
	o.drift(drift{ref: viewer, shard: model.ShardRef(viewer, 2).Name, change: "deleted"})
	got := logs.FilterMessageSnippet("a shard of a managed binding").All()
	if len(got) != 1 || got[0].ContextMap()["shard"] != model.ShardRef(viewer, 2).Name || got[0].ContextMap()["binding"] != viewer.String() {
		t.Errorf("shard drift: %+v", got)
	}
	o.pollDone(&Report{Err: errors.New("read changed groups: down")})
	if n := logs.FilterMessageSnippet("incremental sync failed").Len(); n != 1 {
		t.Errorf("incremental sync failed: %d lines, want 1", n)
	}
}
