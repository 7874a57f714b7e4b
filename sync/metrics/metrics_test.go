package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// ResetBindings drops the series of every metric labelled per binding
// (kind, namespace, name), so a standby replica reports no drift.
func TestResetBindings(t *testing.T) {
	m := NewMetrics("test")
	ch := make(chan *prometheus.Desc, 100)
	m.Registry.Describe(ch)
	close(ch)
	perBinding := 0
	for d := range ch {
		if strings.Contains(d.String(), "variableLabels: {kind,namespace,name") {
			perBinding++
		}
	}
	if perBinding == 0 || perBinding != len(m.perBinding) {
		t.Fatalf("%d metrics are labelled per binding, ResetBindings drops %d", perBinding, len(m.perBinding))
	}
	for _, v := range m.perBinding {
		labels := prometheus.Labels{"kind": "RoleBinding", "namespace": "runai-p1", "name": "runai-job-executor-manual"}
		if _, err := v.GetMetricWith(labels); err != nil {
			labels["reason"] = "x"
		}
		v.With(labels).Set(1)
	}
	m.ResetBindings()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "namespace" && l.GetValue() == "runai-p1" {
					t.Errorf("%s kept a series after ResetBindings", mf.GetName())
				}
			}
		}
	}
}
