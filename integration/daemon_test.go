// The daemon as the tests run it: a `runai-ldap-sync run` process, its logs,
// metrics and health endpoints, and replicas that elect a leader.

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics/metricstest"
)

// daemon is a `runai-ldap-sync run` process under test.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	logs   *syncBuffer
	addr   string // metrics and health
	done   chan struct{}
	exit   int
	exited atomic.Bool
}

func (d *daemon) alive() bool { return !d.exited.Load() }

// stop sends sig and returns the exit status (negative: killed by a signal).
func (d *daemon) stop(sig syscall.Signal, within time.Duration) int {
	d.t.Helper()
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return d.exit
	case <-time.After(within):
		d.t.Fatalf("daemon did not exit within %v of %v", within, sig)
		return 0
	}
}

func (d *daemon) get(path string) (string, int) { return get("http://" + d.addr + path) }

// logLines returns the JSON log lines whose msg is msg.
func (d *daemon) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(d.logs.String(), "\n") {
		if !strings.Contains(line, `"msg":"`+msg) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && strings.HasPrefix(fmt.Sprint(m["msg"]), msg) {
			out = append(out, m)
		}
	}
	return out
}

func (d *daemon) count(msg string) int { return len(d.logLines(msg)) }

// waitLog waits until at least n lines with msg were logged.
func (d *daemon) waitLog(msg string, n int, within time.Duration) []map[string]any {
	d.t.Helper()
	var lines []map[string]any
	d.waitFor(within, fmt.Sprintf("%d× %q", n, msg), func() error {
		if lines = d.logLines(msg); len(lines) < n {
			return fmt.Errorf("have %d", len(lines))
		}
		return nil
	})
	return lines
}

// metric returns the sum of the series of name whose labels contain match.
func (d *daemon) metric(name, match string) float64 {
	body, code := d.get("/metrics")
	if code != 200 {
		return -1
	}
	return metricValue(body, name, match)
}

// waitMetric waits until metric(name, match) is at least atLeast.
func (d *daemon) waitMetric(name, match string, atLeast float64, within time.Duration) float64 {
	d.t.Helper()
	var v float64
	d.waitFor(within, fmt.Sprintf("%s{%s} >= %v", name, match, atLeast), func() error {
		if v = d.metric(name, match); v < atLeast {
			return fmt.Errorf("%v", v)
		}
		return nil
	})
	return v
}

func (d *daemon) waitReady(within time.Duration) {
	d.t.Helper()
	d.waitFor(within, "ready", func() error {
		if !ready("http://" + d.addr) {
			return errors.New("/readyz is not ok")
		}
		return nil
	})
}

// waitFor is waitFor for a condition on d: it fails at once if d exits.
func (d *daemon) waitFor(within time.Duration, what string, cond func() error) {
	d.t.Helper()
	waitFor(d.t, within, what, func() error {
		err := cond()
		if err != nil && !d.alive() {
			d.t.Fatalf("daemon exited (%d) while waiting for %s: %v", d.exit, what, err)
		}
		return err
	})
}

// ready reports whether the health server at base (http://host:port)
// answers ready.
func ready(base string) bool {
	body, code := get(base + "/readyz")
	return code == 200 && strings.HasPrefix(body, "ok")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDaemon runs `run` with cfg against kubeconfig; it is killed at the
// end of the test if still running.
func startDaemon(t *testing.T, cfg, kubeconfig, addr string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"run", "--config", cfg, "--kubeconfig", kubeconfig}, extra...)
	cmd := exec.Command(binary, args...)
	d := &daemon{t: t, cmd: cmd, logs: &syncBuffer{}, addr: addr, done: make(chan struct{})}
	cmd.Stderr = d.logs
	cmd.Stdout = d.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.exit = exitStatus(cmd.Wait())
		d.exited.Store(true)
		close(d.done)
	}()
	t.Cleanup(func() {
		if !d.exited.Load() {
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon %s logs:\n%s", addr, tail(d.logs.String(), 150))
		}
	})
	return d
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func get(url string) (string, int) {
	resp, err := http.Get(url) //nolint:gosec // test URL on loopback
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func metricValue(body, name, match string) float64 { return metricstest.Scraped(body, name, match) }

// syncBuffer is a buffer a child process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// replica is a `run` process with the ServiceAccount's kubeconfig.
type replica struct {
	cmd     *exec.Cmd
	logs    *syncBuffer
	metrics string // http://127.0.0.1:port
}

// stop sends SIGTERM and waits for a clean exit.
func (r *replica) stop() error {
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("did not stop within 30s of SIGTERM")
	}
}

func (e *env) startReplica(kubeconfig string) *replica {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := e.config(groupsYAML + sampleProjects + fmt.Sprintf(`schedule: "@every 1h"
server:
  address: %q
leaderElection:
  enabled: true
  leaseName: %s
`, addr, saName))
	r := &replica{logs: &syncBuffer{}, metrics: "http://" + addr}
	r.cmd = exec.Command(binary, "run", "--config", cfg, "--kubeconfig", kubeconfig)
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	return r
}

// waitForLeader waits until both replicas are ready and exactly one leads.
func waitForLeader(t *testing.T, rs []*replica) *replica {
	t.Helper()
	var leader *replica
	waitFor(t, 90*time.Second, "all replicas ready and one leader", func() error {
		var leaders []*replica
		up := 0
		for _, r := range rs {
			if ready(r.metrics) {
				up++
			}
			if m, _ := get(r.metrics + "/metrics"); strings.Contains(m, "\nrunai_ldap_sync_leader 1\n") {
				leaders = append(leaders, r)
			}
		}
		if up == len(rs) && len(leaders) == 1 {
			leader = leaders[0]
			return nil
		}
		var logs strings.Builder
		for i, r := range rs {
			fmt.Fprintf(&logs, "replica %d:\n%s\n", i, r.logs.String())
		}
		return fmt.Errorf("%d of %d replicas ready, %d leaders\n%s", up, len(rs), len(leaders), logs.String())
	})
	return leader
}
