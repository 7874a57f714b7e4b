package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReaders(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"result"})
	reg.MustRegister(c)
	c.WithLabelValues("success").Add(2)
	c.WithLabelValues("failure").Inc()
	if got := Sum(t, reg, "x_total", `result="success"`); got != 2 {
		t.Errorf("Sum success = %v", got)
	}
	if got := Sum(t, reg, "x_total", ""); got != 3 {
		t.Errorf("Sum all = %v", got)
	}
	if got := Counter(t, c.WithLabelValues("failure")); got != 1 {
		t.Errorf("Counter = %v", got)
	}
	body := "# HELP x_total x\nx_total{result=\"failure\"} 1\nx_total{result=\"success\"} 2\ny 5\n"
	if got := Scraped(body, "x_total", `success`); got != 2 {
		t.Errorf("Scraped = %v", got)
	}
}
