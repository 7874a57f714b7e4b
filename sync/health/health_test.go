package health

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
)

func TestReadyzSemantics(t *testing.T) {
	st := &Status{LeaderElection: true, Identity: "me_5678"}
	h := NewHandler(nil, st)
	get := func() (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code, w.Body.String()
	}
	if code, _ := get(); code != 503 {
		t.Errorf("no leader known yet: %d, want 503", code)
	}
	st.SetLeader("me_5678")
	if code, _ := get(); code != 503 {
		t.Errorf("just acquired, not leading yet: %d, want 503", code)
	}
	st.SetLeader("other_1234")
	if code, body := get(); code != 200 || !strings.Contains(body, "standby") {
		t.Errorf("standby: %d %q", code, body)
	}
	st.SetLeading(true)
	if code, _ := get(); code != 503 {
		t.Errorf("leader before a cycle: %d", code)
	}
	st.SetReady(true)
	if code, _ := get(); code != 200 {
		t.Errorf("leader after a cycle: %d", code)
	}
	noLE := NewHandler(nil, &Status{})
	w := httptest.NewRecorder()
	noLE.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if w.Code != 503 {
		t.Errorf("without leader election, before a cycle: %d", w.Code)
	}
}

func TestReadyzStalledLease(t *testing.T) {
	st := &Status{LeaderElection: true, Identity: "me_5678"}
	st.SetLeader("x")
	h := NewHandler(nil, st)
	get := func() (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code, w.Body.String()
	}
	st.SetStalled(true, "x")
	if code, body := get(); code != 503 || !strings.Contains(body, `"x"`) || !strings.Contains(body, "not renewed") {
		t.Errorf("standby behind a stalled lease: %d %q, want 503 naming the holder", code, body)
	}
	st.SetStalled(false, "")
	if code, _ := get(); code != 200 {
		t.Errorf("standby after the lease moved again: %d", code)
	}
}

// blocking is a collector whose Collect waits for release: a slow scrape.
type blocking struct {
	started chan struct{}
	release chan struct{}
}

var blockingDesc = prometheus.NewDesc("test_blocking", "blocks", nil, nil)

func (b blocking) Describe(ch chan<- *prometheus.Desc) { ch <- blockingDesc }
func (b blocking) Collect(ch chan<- prometheus.Metric) {
	b.started <- struct{}{}
	<-b.release
	ch <- prometheus.MustNewConstMetric(blockingDesc, prometheus.GaugeValue, 1)
}

// TestScrapesAreBounded: on a real listener, MaxConcurrentScrapes slow
// scrapes in flight make the next one 503 at once, while /healthz and
// /readyz still answer; once they finish, scrapes work again.
func TestScrapesAreBounded(t *testing.T) {
	m := metrics.NewMetrics("test")
	b := blocking{started: make(chan struct{}), release: make(chan struct{})}
	m.Registry.MustRegister(b)
	st := &Status{}
	st.SetReady(true)
	srv := httptest.NewUnstartedServer(NewHandler(m, st))
	srv.Config = NewServer(srv.Config.Handler)
	srv.Start()
	defer srv.Close()

	done := make(chan int, MaxConcurrentScrapes)
	for range MaxConcurrentScrapes {
		go func() {
			resp, err := http.Get(srv.URL + "/metrics")
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		<-b.started // in flight
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("scrape past the limit: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s while scrapes are full: %d, want 200", path, resp.StatusCode)
		}
	}
	close(b.release)
	for range MaxConcurrentScrapes {
		if code := <-done; code != 200 {
			t.Errorf("a scrape in flight ended with %d", code)
		}
	}
	go func() {
		for range b.started {
		}
	}()
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "runai_ldap_sync_leader_stalled") {
		t.Errorf("scrape after the slow ones: %d", resp.StatusCode)
	}
	close(b.started)
}

// TestServerTimeouts: the server closes a connection that never finishes
// its request headers (ReadHeaderTimeout), and every timeout is set.
func TestServerTimeouts(t *testing.T) {
	s := NewServer(http.NotFoundHandler())
	if s.ReadHeaderTimeout == 0 || s.ReadTimeout == 0 || s.WriteTimeout == 0 || s.IdleTimeout == 0 || s.MaxHeaderBytes == 0 {
		t.Fatalf("a limit is unset: %+v", s)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config = NewServer(srv.Config.Handler)
	srv.Start()
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil { // never ends
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(ReadHeaderTimeout + 10*time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open %s after a partial request", time.Since(start))
			}
			break // closed by the server
		}
	}
	if d := time.Since(start); d < ReadHeaderTimeout-time.Second {
		t.Errorf("closed after %s, before ReadHeaderTimeout", d)
	}
}
