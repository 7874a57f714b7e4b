package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics/metricstest"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// proxy is a TCP proxy on loopback for fault injection between the daemon
// and a real server: it can pass traffic, delay every chunk, or blackhole
// new connections (accept them and never answer), and cut every open one.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mode       atomic.Int32 // proxyPass, proxyBlackhole
	delayUp    atomic.Int64 // client -> server, per chunk, nanoseconds
	delayDown  atomic.Int64 // server -> client, per chunk, nanoseconds
	downChunks atomic.Int64 // chunks forwarded server -> client
	upChunks   atomic.Int64 // chunks forwarded client -> server

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

const (
	proxyPass int32 = iota
	proxyBlackhole
	// proxyRefuse closes every new connection at once: a server gone.
	proxyRefuse
)

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) port() string {
	_, port, _ := net.SplitHostPort(p.addr())
	return port
}

func (p *proxy) setDelay(up, down time.Duration) {
	p.delayUp.Store(int64(up))
	p.delayDown.Store(int64(down))
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

// cut closes every open connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.mode.Load() == proxyRefuse {
			_ = c.Close()
			continue
		}
		p.track(c)
		if p.mode.Load() == proxyBlackhole {
			// Hold the connection open and never answer: a server that hangs.
			go func() { _, _ = io.Copy(io.Discard, c) }()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.track(up)
		go p.pipe(c, up, &p.delayUp, &p.upChunks)
		go p.pipe(up, c, &p.delayDown, &p.downChunks)
	}
}

func (p *proxy) pipe(from, to net.Conn, delay, count *atomic.Int64) {
	p.pipeThrough(from, to, delay, count, nil)
}

// pipeThrough copies from to to, passing each chunk through transform
// (nil: as it is).
func (p *proxy) pipeThrough(from, to net.Conn, delay, count *atomic.Int64, transform func([]byte) []byte) {
	defer from.Close()
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if d := time.Duration(delay.Load()); d > 0 {
				time.Sleep(d)
			}
			chunk := buf[:n]
			if transform != nil {
				chunk = transform(chunk)
			}
			if _, werr := to.Write(chunk); werr != nil {
				return
			}
			count.Add(1)
		}
		if err != nil {
			return
		}
	}
}

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
		err := cmd.Wait()
		d.exit = 0
		if ee, ok := err.(*exec.ExitError); ok {
			d.exit = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				d.exit = -int(ws.Signal())
			}
		} else if err != nil {
			d.exit = -1
		}
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
	deadline := time.Now().Add(within)
	for {
		if lines := d.logLines(msg); len(lines) >= n {
			return lines
		}
		if !d.alive() {
			d.t.Fatalf("daemon exited (%d) while waiting for %d× %q", d.exit, n, msg)
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no %d× %q within %v (have %d)", n, msg, within, d.count(msg))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric returns the sum of the series of name whose labels contain match.
func (d *daemon) metric(name, match string) float64 {
	body, code := d.get("/metrics")
	if code != 200 {
		return -1
	}
	return metricValue(body, name, match)
}

func metricValue(body, name, match string) float64 { return metricstest.Scraped(body, name, match) }

func (d *daemon) waitMetric(name, match string, atLeast float64, within time.Duration) float64 {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := d.metric(name, match)
		if v >= atLeast {
			return v
		}
		if !d.alive() {
			d.t.Fatalf("daemon exited (%d) while waiting for %s{%s} >= %v", d.exit, name, match, atLeast)
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s{%s} = %v, want >= %v within %v", name, match, v, atLeast, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *daemon) waitReady(within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if body, code := d.get("/readyz"); code == 200 && strings.HasPrefix(body, "ok") {
			return
		}
		if !d.alive() {
			d.t.Fatalf("daemon exited (%d) before ready", d.exit)
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("not ready within %v", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// snapshot is every managed binding's users.
type snapshot map[model.Ref][]string

func (e *env) snapshot(refs ...model.Ref) snapshot {
	e.t.Helper()
	s := snapshot{}
	for _, ref := range refs {
		if b := e.binding(ref); b != nil {
			u := b.Users()
			sort.Strings(u)
			s[ref] = u
		}
	}
	return s
}

// expectNoneLost fails if a user of before is missing now.
func (e *env) expectNoneLost(before snapshot, what string) {
	e.t.Helper()
	for ref, users := range before {
		now := map[string]bool{}
		if b := e.binding(ref); b != nil {
			for _, u := range b.Users() {
				now[u] = true
			}
		}
		for _, u := range users {
			if !now[u] {
				e.t.Errorf("%s: %s lost user %q", what, ref, u)
			}
		}
	}
}

// waitUsers waits until ref holds exactly want.
func (e *env) waitUsers(ref model.Ref, within time.Duration, want ...string) {
	e.t.Helper()
	sort.Strings(want)
	deadline := time.Now().Add(within)
	for {
		var got []string
		if b := e.binding(ref); b != nil {
			got = b.Users()
			sort.Strings(got)
		}
		if strings.Join(got, ",") == strings.Join(want, ",") {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s users = %v, want %v within %v", ref, got, want, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// events lists the Events recorded on a binding (the viewer
// ClusterRoleBinding's are in the Run:AI namespace, "runai" here).
func (e *env) events(ref model.Ref) []corev1.Event {
	e.t.Helper()
	ns := ref.Namespace
	if ns == "" {
		ns = "runai"
	}
	list, err := e.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatalf("list events: %v", err)
	}
	var out []corev1.Event
	for _, ev := range list.Items {
		if ev.InvolvedObject.Kind == ref.Kind && ev.InvolvedObject.Name == ref.Name {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits for an Event on ref with reason whose message contains
// every one of parts.
func (e *env) waitEvent(ref model.Ref, reason string, within time.Duration, parts ...string) corev1.Event {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, ev := range e.events(ref) {
			ok := ev.Reason == reason
			for _, p := range parts {
				ok = ok && strings.Contains(ev.Message, p)
			}
			if ok {
				return ev
			}
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, ev := range e.events(ref) {
				seen = append(seen, ev.Reason+": "+ev.Message)
			}
			e.t.Fatalf("no %s event on %s containing %q within %v; events: %v", reason, ref, parts, within, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bumpProjects changes the project label of a namespace of its own, which
// makes a running daemon run a full cycle at once (the "trigger" project
// has no groups and so an empty executor binding).
func (e *env) bumpProjects(n int) {
	e.t.Helper()
	ctx := context.Background()
	value := fmt.Sprintf("trigger-%d", n)
	patch := fmt.Sprintf(`{"metadata":{"labels":{"runai/queue":%q}}}`, value)
	_, err := e.cs.CoreV1().Namespaces().Patch(ctx, "trigger", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		e.namespace("trigger", map[string]string{"runai/queue": value})
	}
}

// writeFile replaces a file's content atomically (as a Secret update does).
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// kubeconfigVia writes a kubeconfig whose server is addr (a proxy in front
// of this env's API server; its certificate is valid for 127.0.0.1).
func (e *env) kubeconfigVia(addr string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, "kubeconfig-"+strings.ReplaceAll(addr, ":", "-"))
	if err := e.api.WriteKubeconfig(path, e.api.AdminToken); err != nil {
		e.t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), e.api.URL, "https://"+addr, 1))
	writeFile(e.t, path, data)
	return path
}

// apiAddr is host:port of this env's API server.
func (e *env) apiAddr() string { return strings.TrimPrefix(e.api.URL, "https://") }

// configVia writes a configuration whose directory is ldapURL (e.g. a
// proxy), trusting the CA in caFile, with the given request timeout.
func (e *env) configVia(ldapURL, caFile, timeout, body string) string {
	e.t.Helper()
	base := fmt.Sprintf(`ldap:
  urls: [%q]
  caFile: %s
  bindDN: %q
  bindPasswordFile: %s
  baseDN: %q
  timeout: %s
`, ldapURL, caFile, e.bindUPN, e.pwFile, e.ou, timeout)
	path := filepath.Join(e.dir, fmt.Sprintf("config-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(base+body), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// caCopy copies Samba's CA certificate to a file the test may overwrite.
func (e *env) caCopy() string {
	e.t.Helper()
	data, err := os.ReadFile(e.samba.CAFile)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, "ldap-ca.crt")
	writeFile(e.t, path, data)
	return path
}

// inDir copies a file into the env's directory, where the daemon's
// configuration files are written: the daemon reads only files in the
// directory of its configuration file.
func (e *env) inDir(path string) string {
	e.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	dst := filepath.Join(e.dir, fmt.Sprintf("copy-%d-%s", time.Now().UnixNano(), filepath.Base(path)))
	writeFile(e.t, dst, data)
	return dst
}

// expectNoDuplicates fails if a binding lists a subject twice.
func (e *env) expectNoDuplicates(refs ...model.Ref) {
	e.t.Helper()
	for _, ref := range refs {
		b := e.binding(ref)
		if b == nil {
			continue
		}
		seen := map[string]bool{}
		for _, s := range b.Subjects {
			key := s.Kind + "/" + s.Namespace + "/" + s.Name
			if seen[key] {
				e.t.Errorf("%s lists %s twice", ref, key)
			}
			seen[key] = true
		}
	}
}

// daemonUserAgent is the User-Agent of the daemon's API client (its
// leader election's is another).
const daemonUserAgent = "runai-ldap-sync"

// auditLog is a kube-apiserver audit log (metadata of every request), for
// counting exactly which requests a client made.
type auditLog string

// auditEvent is what tests read of an audit.k8s.io/v1 Event.
type auditEvent struct {
	Verb       string `json:"verb"`
	UserAgent  string `json:"userAgent"`
	RequestURI string `json:"requestURI"`
	ObjectRef  struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
}

// withAuditLog returns kube-apiserver options that log each request once,
// when it completes, to the returned log.
func withAuditLog(t *testing.T) (harness.APIServerOptions, auditLog) {
	t.Helper()
	dir := t.TempDir()
	policy := filepath.Join(dir, "audit-policy.yaml")
	writeFile(t, policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived, ResponseStarted]\nrules:\n- level: Metadata\n"))
	path := filepath.Join(dir, "audit.log")
	return harness.APIServerOptions{ExtraArgs: []string{"--audit-policy-file=" + policy, "--audit-log-path=" + path, "--audit-log-mode=blocking"}}, auditLog(path)
}

// requests returns the requests logged so far (whole lines) whose
// User-Agent is ua.
func (a auditLog) requests(t *testing.T, ua string) []auditEvent {
	t.Helper()
	data, err := os.ReadFile(string(a))
	if err != nil {
		t.Fatal(err)
	}
	var out []auditEvent
	for _, line := range strings.Split(string(data[:bytes.LastIndexByte(data, '\n')+1]), "\n") {
		var ev auditEvent
		if line == "" || json.Unmarshal([]byte(line), &ev) != nil || ev.UserAgent != ua {
			continue
		}
		out = append(out, ev)
	}
	return out
}
