// Package metricstest reads metrics in tests: from a registry, from one
// collector, or from the text a /metrics endpoint serves. It is the one
// place the tests' metric readers live.
package metricstest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Sum adds up the counters and gauges of the family name in g whose
// labels, written as name="value" and joined by commas, contain match.
func Sum(t testing.TB, g prometheus.Gatherer, name, match string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, metric := range mf.GetMetric() {
			var labels []string
			for _, l := range metric.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if match != "" && !strings.Contains(strings.Join(labels, ","), match) {
				continue
			}
			switch {
			case metric.Gauge != nil:
				sum += metric.GetGauge().GetValue()
			case metric.Counter != nil:
				sum += metric.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// Counter is the value of one counter.
func Counter(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

// Scraped adds up the samples of name in a text exposition (what
// /metrics serves) whose label set contains match.
func Scraped(body, name, match string) float64 {
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || m[1] != name || !strings.Contains(m[2], match) {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
