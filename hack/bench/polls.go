package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// pollStats is what the polls child measures: idle polls and one directory
// change carried to its binding by a poll, with the daemon's own wiring
// (informer cache, change tracking on).
type pollStats struct {
	CycleSeconds    float64 `json:"cycleSeconds"`
	CycleCPUSeconds float64 `json:"cycleCPUSeconds"`
	Idle            struct {
		Polls          int              `json:"polls"`
		SecondsPerPoll float64          `json:"secondsPerPoll"`
		Searches       int64            `json:"searches"`
		Entries        int64            `json:"entries"`
		Binds          int64            `json:"binds"`
		KubeRequests   map[string]int64 `json:"kubeRequests"`
	} `json:"idle"`
	Change struct {
		Seconds      float64          `json:"seconds"`
		Polls        int              `json:"polls"`
		Searches     int64            `json:"searches"`
		Entries      int64            `json:"entries"`
		KubeRequests map[string]int64 `json:"kubeRequests"`
		Written      int              `json:"written"`
		Error        string           `json:"error,omitempty"`
	} `json:"change"`
	MaxRSSKiB int64 `json:"maxRSSKiB"`
	// LiveHeapKiB is the heap still in use after the full cycle (after a
	// collection): what the daemon keeps between cycles.
	LiveHeapKiB int64 `json:"liveHeapKiB"`
	// PeakLiveHeapKiB is the largest live heap (as of a collection's end)
	// seen during the full cycle, sampled every 10 ms: GOMEMLIMIT needs
	// room above it.
	PeakLiveHeapKiB int64 `json:"peakLiveHeapKiB"`
	// GoMemLimit is the GOMEMLIMIT the child ran with (the Deployment's).
	GoMemLimit string `json:"goMemLimit,omitempty"`
}

// pollsMain: a full cycle, then idle polls, then one change (a member
// added to a group, made here with the admin account) until a poll has
// written it.
func pollsMain(args []string) int {
	fs := flag.NewFlagSet("polls", flag.ExitOnError)
	cfgPath := fs.String("config", "", "")
	kubeconfig := fs.String("kubeconfig", "", "")
	adminDN := fs.String("admin-dn", "", "")
	adminPW := fs.String("admin-password", "", "")
	groupDN := fs.String("group", "", "group to add the member to (none: stop after the full cycle)")
	memberDN := fs.String("member", "", "member DN to add")
	idle := fs.Int("idle", 50, "idle polls to time")
	_ = fs.Parse(args)
	if err := runPolls(*cfgPath, *kubeconfig, *adminDN, *adminPW, *groupDN, *memberDN, *idle); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func runPolls(cfgPath, kubeconfig, adminDN, adminPW, groupDN, memberDN string, idle int) error {
	ctx := context.Background()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	cc, err := kube.RestConfig(kubeconfig, "")
	if err != nil {
		return err
	}
	kc, err := kube.NewClient(cc.Config, cfg.Kubernetes.QPS, cfg.Kubernetes.Burst)
	if err != nil {
		return err
	}
	kc.SetScope(plan.Scope(cfg))
	cache := kube.NewCache(kc, cfg.Kubernetes.RunaiNamespace, kube.Handlers{})
	if err := cache.Start(ctx); err != nil {
		return err
	}
	// As the daemon: the first cycle reads from synced informers.
	sctx, cancel := context.WithTimeout(ctx, kube.SyncTimeout)
	err = cache.WaitForSync(sctx)
	cancel()
	if err != nil {
		return err
	}
	src := ldapsrc.New(cfg.LDAP, zap.NewNop())
	src.Reach = true
	// As `run` wires it: informer cache, change polls, the guard's store.
	s := controller.New(cfg, src, cache, zap.NewNop(), nil).WithChanges(src).WithState(kc.StateStore(cfg.Kubernetes.RunaiNamespace))
	defer src.ClosePolls()
	var st pollStats
	// At the large scale the cycle reports the union bindings too large
	// to store (see the table above); the polls work all the same.
	stopProfile := startCPUProfile(os.Getenv("BENCH_POLLS_CPUPROFILE"))
	cpu0 := cpuTime()
	stopSampling := samplePeakLive(&st.PeakLiveHeapKiB)
	rep := s.Cycle(ctx, controller.CycleOptions{})
	stopSampling()
	st.CycleCPUSeconds = (cpuTime() - cpu0).Seconds()
	stopProfile()
	st.CycleSeconds = rep.Duration.Seconds()
	if rep.Err != nil {
		st.Change.Error = "full cycle: " + firstLine(rep.Err.Error())
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.LiveHeapKiB = int64(ms.HeapAlloc / 1024)
	st.GoMemLimit = os.Getenv("GOMEMLIMIT")
	if path := os.Getenv("BENCH_POLLS_ALLOCSPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if path := os.Getenv("BENCH_POLLS_HEAPPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	if groupDN == "" {
		// Only the full cycle (an -ab comparison of daemon cycles).
		st.MaxRSSKiB = vmHWM()
		return json.NewEncoder(os.Stdout).Encode(st)
	}
	// The first polls may see the seeding again (an entryCSN cursor starts a
	// few minutes back when the server keeps no contextCSN).
	for range 10 {
		if res, _ := s.Poll(ctx, controller.CycleOptions{}); res == controller.PollIdle {
			break
		}
	}

	kube0, searches0, entries0, binds0 := kc.Stats.Count(), src.Stats.Searches.Load(), src.Stats.Entries.Load(), src.Stats.Binds.Load()
	start := time.Now()
	for range idle {
		if res, _ := s.Poll(ctx, controller.CycleOptions{}); res != controller.PollIdle {
			return fmt.Errorf("an idle poll answered %s", res)
		}
	}
	st.Idle.Polls = idle
	st.Idle.SecondsPerPoll = time.Since(start).Seconds() / float64(idle)
	st.Idle.Searches = src.Stats.Searches.Load() - searches0
	st.Idle.Entries = src.Stats.Entries.Load() - entries0
	st.Idle.Binds = src.Stats.Binds.Load() - binds0
	st.Idle.KubeRequests = nonWatch(diffCounts(kc.Stats.Count(), kube0))

	if err := addMember(cfg.LDAP, adminDN, adminPW, groupDN, memberDN); err != nil {
		return fmt.Errorf("directory change: %w", err)
	}
	kube0, searches0, entries0 = kc.Stats.Count(), src.Stats.Searches.Load(), src.Stats.Entries.Load()
	start = time.Now()
	for st.Change.Written == 0 && st.Change.Polls < 20 {
		st.Change.Polls++
		res, rep := s.Poll(ctx, controller.CycleOptions{})
		if rep != nil {
			st.Change.Written += rep.Applied
			if rep.Err != nil {
				st.Change.Error = firstLine(rep.Err.Error())
			}
		}
		if res == controller.PollIdle {
			time.Sleep(20 * time.Millisecond) // not visible yet
		}
	}
	st.Change.Seconds = time.Since(start).Seconds()
	st.Change.Searches = src.Stats.Searches.Load() - searches0
	st.Change.Entries = src.Stats.Entries.Load() - entries0
	st.Change.KubeRequests = nonWatch(diffCounts(kc.Stats.Count(), kube0))
	st.MaxRSSKiB = vmHWM()
	return json.NewEncoder(os.Stdout).Encode(st)
}

func diffCounts(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// nonWatch drops the informers' watch requests: a re-watch is the cache's
// business, not the poll's.
func nonWatch(m map[string]int64) map[string]int64 {
	delete(m, "WATCH")
	return m
}

// addMember adds memberDN to groupDN as the directory's administrator.
func addMember(c config.LDAP, adminDN, adminPW, groupDN, memberDN string) error {
	var opts []ldap.DialOpt
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		opts = append(opts, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	conn, err := ldap.DialURL(c.URLs[0], opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Bind(adminDN, adminPW); err != nil {
		return err
	}
	req := ldap.NewModifyRequest(groupDN, nil)
	req.Add("member", []string{memberDN})
	return conn.Modify(req)
}

// runPollsChild runs the polls child and returns its figures.
// The child runs with goMemLimit as GOMEMLIMIT ("" leaves it unset), as
// the Deployment runs the daemon.
func runPollsChild(ctx context.Context, self, cfgPath, kubeconfig, adminDN, adminPW, groupDN, memberDN, goMemLimit string) (pollStats, error) {
	cmd := exec.CommandContext(ctx, self, "polls", "--config", cfgPath, "--kubeconfig", kubeconfig,
		"--admin-dn", adminDN, "--admin-password", adminPW, "--group", groupDN, "--member", memberDN)
	cmd.Stderr = os.Stderr
	cmd.Env = os.Environ()
	if profileDir != "" {
		cmd.Env = append(cmd.Env, "BENCH_POLLS_CPUPROFILE="+filepath.Join(profileDir, "daemon-cycle.cpu.pprof"),
			"BENCH_POLLS_ALLOCSPROFILE="+filepath.Join(profileDir, "daemon-cycle.allocs.pprof"),
			"BENCH_POLLS_HEAPPROFILE="+filepath.Join(profileDir, "daemon-after-cycle.heap.pprof"))
	}
	if goMemLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+goMemLimit)
	}
	out, err := cmd.Output()
	if err != nil {
		return pollStats{}, fmt.Errorf("polls: %w", err)
	}
	var st pollStats
	if err := json.Unmarshal(out, &st); err != nil {
		return pollStats{}, fmt.Errorf("polls: %w: %s", err, out)
	}
	fmt.Printf("  incremental: idle poll %.2f ms (%d searches, %d entries, %d binds, kube %s over %d polls); "+
		"one change written %.0f ms after it was made (%d polls, %d searches, %d entries, kube %s, %d bindings written); "+
		"full cycle %.2fs (CPU %.2fs), peak RSS %d MiB, live heap %d MiB at most during the cycle and %d MiB after it, GOMEMLIMIT %s\n",
		st.Idle.SecondsPerPoll*1000, st.Idle.Searches, st.Idle.Entries, st.Idle.Binds, verbs(st.Idle.KubeRequests), st.Idle.Polls,
		st.Change.Seconds*1000, st.Change.Polls, st.Change.Searches, st.Change.Entries, verbs(st.Change.KubeRequests), st.Change.Written,
		st.CycleSeconds, st.CycleCPUSeconds, st.MaxRSSKiB/1024, st.PeakLiveHeapKiB/1024, st.LiveHeapKiB/1024, orUnset(st.GoMemLimit))
	if st.Change.Error != "" {
		fmt.Printf("      error: %s\n", st.Change.Error)
	}
	return st, nil
}

// writePollTable renders the incremental figures.
func writePollTable(b *strings.Builder, st pollStats) {
	b.WriteString("\nIncremental change detection (the daemon's wiring: informer cache, change polls on; `hack/bench/polls.go`):\n\n")
	b.WriteString("| scenario | wall | LDAP searches | LDAP entries | LDAP binds | Kubernetes requests | bindings written |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(b, "| idle poll (mean of %d) | %.2f ms | %.1f | %.1f | %d | %s | 0 |\n", st.Idle.Polls, st.Idle.SecondsPerPoll*1000,
		float64(st.Idle.Searches)/float64(st.Idle.Polls), float64(st.Idle.Entries)/float64(st.Idle.Polls), st.Idle.Binds, verbs(st.Idle.KubeRequests))
	fmt.Fprintf(b, "| one change (a member added), made → binding written | %.0f ms | %d | %d | — | %s | %d |\n", st.Change.Seconds*1000,
		st.Change.Searches, st.Change.Entries, verbs(st.Change.KubeRequests), st.Change.Written)
	fmt.Fprintf(b, "\nThe daemon's full cycle before the polls (from its informer cache, with the reach index the polls need) took %.2f s; "+
		"peak RSS of the process %d MiB with GOMEMLIMIT %s (the Deployment's); live heap %d MiB at most during the cycle, %d MiB after it. "+
		"In the daemon add up to `incremental.pollInterval` for a change to be seen.\n", st.CycleSeconds, st.MaxRSSKiB/1024, orUnset(st.GoMemLimit), st.PeakLiveHeapKiB/1024, st.LiveHeapKiB/1024)
	if st.Change.Error != "" {
		fmt.Fprintf(b, "\nError reported: `%s`\n", st.Change.Error)
	}
}

// samplePeakLive records into kib the largest live heap the runtime
// reports (/gc/heap/live:bytes) until the returned function is called.
func samplePeakLive(kib *int64) func() {
	done, stopped := make(chan struct{}), make(chan struct{})
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	go func() {
		defer close(stopped)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := int64(sample[0].Value.Uint64() / 1024); v > *kib {
				*kib = v
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// startCPUProfile profiles the process into path until the returned
// function is called (path "": nothing).
func startCPUProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

func writePollTableTo(report *string, st pollStats) {
	var b strings.Builder
	writePollTable(&b, st)
	*report += b.String()
}
