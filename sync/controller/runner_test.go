package controller

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
)

// blockingDir holds every Resolve until released, to keep a cycle running.
type blockingDir struct {
	fakeDir
	started chan struct{}
	release chan struct{}
}

func (b *blockingDir) Resolve(ctx context.Context, names []string) (*ldapsrc.Result, error) {
	b.started <- struct{}{}
	<-b.release
	return b.fakeDir.Resolve(ctx, names)
}

func TestTickSkipsWhileACycleRuns(t *testing.T) {
	dir, cl := newFixture()
	bd := &blockingDir{fakeDir: *dir, started: make(chan struct{}, 1), release: make(chan struct{})}
	m := metrics.NewMetrics("test")
	r := &Runner{Syncer: New(testConfig(), bd, cl, zap.NewNop(), m), Metrics: m, Log: zap.NewNop(),
		RetryMin: time.Hour, RetryMax: time.Hour}
	ctx := context.Background()
	done := make(chan bool, 1)
	go func() { done <- r.tick(ctx, "schedule") }()
	<-bd.started
	if ran := r.tick(ctx, "schedule"); ran {
		t.Fatal("a tick while a cycle runs must be skipped")
	}
	var got dto.Metric
	if err := m.CyclesSkipped.Write(&got); err != nil {
		t.Fatal(err)
	}
	if got.GetCounter().GetValue() != 1 {
		t.Errorf("cycles_skipped_total = %v, want 1", got.GetCounter().GetValue())
	}
	close(bd.release)
	if ran := <-done; !ran || !r.Ready() {
		t.Errorf("first cycle: ran=%v ready=%v", ran, r.Ready())
	}
	// The next tick runs normally.
	bd.release = make(chan struct{})
	close(bd.release)
	if ran := r.tick(ctx, "schedule"); !ran {
		t.Error("a tick after the cycle ended must run")
	}
	<-bd.started
}
