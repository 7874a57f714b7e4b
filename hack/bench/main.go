// Command bench measures runai-ldap-sync at scale against real servers: an
// OpenLDAP loaded offline with slapadd, and a kube-apiserver + etcd built
// from source. It prints a table and writes docs/performance.md. Run it with
// `make bench`; flags shrink the scale for a quick look.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "cycle" {
		os.Exit(cycleMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "polls" {
		os.Exit(pollsMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "insider-ldap" {
		os.Exit(insiderMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "insider-ldap-child" {
		os.Exit(insiderChild(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "insider-kube" {
		os.Exit(insiderKubeMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		os.Exit(floorMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "floor-kube" {
		os.Exit(kubeFloorMain(os.Args[2:]))
	}
	if err := benchMain(); err != nil {
		fmt.Fprintf(os.Stderr, "bench failed: %v\n", err)
		os.Exit(1)
	}
}

// cycleStats is what one measured cycle reports (printed as JSON by the
// child process, so its peak RSS is the daemon's alone).
type cycleStats struct {
	Seconds      float64          `json:"seconds"`
	Searches     int64            `json:"searches"`
	Entries      int64            `json:"entries"`
	KubeRequests map[string]int64 `json:"kubeRequests"`
	Written      int              `json:"written"`
	Changes      int              `json:"changes"`
	// Shards are the bindings spread over shards: binding -> how many
	// bindings (it and its shards) hold its users.
	Shards map[string]int `json:"shards,omitempty"`
	Error  string         `json:"error,omitempty"`
	// MaxRSSKiB is VmHWM read by the process itself: rusage's maxrss of a
	// child on Linux includes the parent's RSS at fork, which is wrong here.
	MaxRSSKiB int64 `json:"maxRSSKiB"`
	// CPUSeconds is the process's CPU time (user + system, every thread:
	// the collector's too) over the cycle: less sensitive than wall time
	// to what else runs on the machine.
	CPUSeconds float64 `json:"cpuSeconds"`
}

// cpuTime is this process's CPU time so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cycleMain runs one cycle exactly as `runai-ldap-sync once` does (same
// packages, same wiring) and prints its figures.
func cycleMain(args []string) int {
	fs := flag.NewFlagSet("cycle", flag.ExitOnError)
	cfgPath := fs.String("config", "", "")
	kubeconfig := fs.String("kubeconfig", "", "")
	dryRun := fs.Bool("dry-run", false, "")
	events := fs.Bool("events", false, "record Events as `once` does, and count their flush in the wall time")
	_ = fs.Parse(args)
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cc, err := kube.RestConfig(*kubeconfig, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kc, err := kube.NewClient(cc.Config, cfg.Kubernetes.QPS, cfg.Kubernetes.Burst)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kc.SetScope(plan.Scope(cfg))
	src := ldapsrc.New(cfg.LDAP, zap.NewNop())
	// The guard's store as the daemon wires it: each scenario is a new
	// process, and without it every one would start a new guard window.
	s := controller.New(cfg, src, kc, zap.NewNop(), nil).WithState(kc.StateStore(cfg.Kubernetes.RunaiNamespace))
	var rec *kube.EventRecorder
	if *events {
		rec = kube.NewEventRecorder(kc, "bench", cfg.Kubernetes.RunaiNamespace)
		s.WithEvents(rec)
	}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	start, cpu0 := time.Now(), cpuTime()
	rep := s.Cycle(context.Background(), controller.CycleOptions{DryRun: *dryRun})
	seconds := rep.Duration.Seconds()
	if rec != nil {
		// The Events share the client's rate limit with the writes: a
		// first cycle is done when they are written too.
		rec.Shutdown(context.Background(), 30*time.Minute)
		seconds = time.Since(start).Seconds()
	}
	if path := os.Getenv("BENCH_MEMPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	st := cycleStats{Seconds: seconds, Searches: src.Stats.Searches.Load(), Entries: src.Stats.Entries.Load(),
		KubeRequests: kc.Stats.Count(), Written: rep.Applied, Changes: len(rep.Changes()), MaxRSSKiB: vmHWM(),
		CPUSeconds: (cpuTime() - cpu0).Seconds()}
	for _, p := range rep.Plans {
		if p.Shards > 1 {
			if st.Shards == nil {
				st.Shards = map[string]int{}
			}
			st.Shards[p.Ref.String()] = p.Shards
		}
	}
	if rep.Err != nil {
		st.Error = firstLine(rep.Err.Error())
	}
	_ = json.NewEncoder(os.Stdout).Encode(st)
	return 0
}

// vmHWM is this process's peak resident set size in KiB.
func vmHWM() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return 0
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

type scale struct {
	users, projects, groupSize, bigGroup int
	nestedShare                          float64
}

func benchMain() error {
	var sc scale
	flag.IntVar(&sc.users, "users", 100000, "directory users (1% disabled)")
	flag.IntVar(&sc.projects, "projects", 5000, "projects, each with an executors and a viewers group and a namespace")
	flag.IntVar(&sc.groupSize, "group-size", 20, "members per group")
	flag.IntVar(&sc.bigGroup, "big-group", 20000, "members of the one big executors group")
	flag.Float64Var(&sc.nestedShare, "nested", 0.10, "share of projects whose executors nest three levels deep")
	qps := flag.Float64("qps", 500, "client QPS towards the API server")
	burst := flag.Int("burst", 1000, "client burst")
	out := flag.String("out", "docs/performance.md", "results file (empty: do not write)")
	adUsers := flag.Int("ad-users", 5000, "users of the Active Directory (Samba) case; 0 skips it")
	adProjects := flag.Int("ad-projects", 250, "projects of the Active Directory case")
	adInChain := flag.Int("ad-inchain-projects", 25, "projects (two groups each) the Active Directory case resolves with memberResolution inChain: one server-side search per group, so a sample")
	flag.StringVar(&profileDir, "profile-dir", "", "write CPU and allocation profiles of the steady-state cycle (steady-state.cpu.pprof, steady-state.allocs.pprof) "+
		"and of the daemon's full cycle (daemon-cycle.cpu.pprof, daemon-cycle.allocs.pprof, daemon-after-cycle.heap.pprof) here")
	migQPS := flag.Float64("migration-qps", 200, "client QPS of the migration-rate first cycle (the rate docs/operations.md recommends)")
	migBurst := flag.Int("migration-burst", 400, "client burst of the migration-rate first cycle")
	insiderGroups := flag.Int("insider-groups", 100, "large groups outside the projects in the directory-insider case; 0 skips it")
	insiderMembers := flag.Int("insider-members", 50000, "members of each of those groups (and users in that directory)")
	insiderBig := flag.Int("insider-big", 300, "label-matching 1 MiB bindings of the insider case (issue 24); negative skips it")
	openLDAP := flag.Bool("openldap", true, "run the OpenLDAP case; false runs only the Active Directory case and prints it without writing -out")
	abBin := flag.String("ab", "", "compare: after the scenarios, run steady-state cycles alternately with this bench and with `BIN` "+
		"(another build of hack/bench, e.g. from an earlier commit) against the same servers, -ab-runs each, print both and stop (no report written)")
	abRuns := flag.Int("ab-runs", 5, "steady-state cycles of each build in an -ab comparison")
	flag.StringVar(&daemonMemLimit, "daemon-gomemlimit", "deploy", "GOMEMLIMIT of the daemon (polls) child: \"deploy\" reads deploy/deployment.yaml's, \"\" leaves it unset")
	flag.Parse()
	if daemonMemLimit == "deploy" {
		v, err := deployGoMemLimit("deploy/deployment.yaml")
		if err != nil {
			return fmt.Errorf("-daemon-gomemlimit deploy: %w (run from the repository's root, or pass a value)", err)
		}
		daemonMemLimit = v
	}

	ctx := context.Background()
	dir, self, err := scratch("runai-ldap-sync-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if !*openLDAP {
		etcd, err := harness.StartEtcd(ctx, filepath.Join(dir, "etcd"))
		if err != nil {
			return err
		}
		defer etcd.Stop()
		adReport, err := benchAD(ctx, self, etcd, dir, *adUsers, *adProjects, *adInChain, *qps, *burst)
		if err != nil {
			return err
		}
		fmt.Print("\n" + adReport)
		return nil
	}

	fmt.Printf("generating the directory: %d users, %d projects, groups of %d, one group of %d\n", sc.users, sc.projects, sc.groupSize, sc.bigGroup)
	t0 := time.Now()
	ldif, groupDNs, userDNs, newViewer := buildLDIF(sc)
	genTime := time.Since(t0)
	fmt.Printf("  LDIF: %.1f MiB in %s\n", float64(len(ldif))/(1<<20), genTime.Round(time.Millisecond))

	slapd, err := harness.StartSlapd(ctx, filepath.Join(dir, "slapd"), harness.SlapdOptions{Suffix: suffix, LDIF: ldif, SizeLimit: -1, SyncProv: true})
	if err != nil {
		return err
	}
	defer slapd.Stop()
	fmt.Printf("  slapadd: %s\n", slapd.LoadDuration.Round(time.Millisecond))

	etcd, err := harness.StartEtcd(ctx, filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer etcd.Stop()
	t0 = time.Now()
	api, kubeconfig, err := startCluster(ctx, etcd, filepath.Join(dir, "apiserver"), sc.projects)
	if err != nil {
		return err
	}
	defer api.Stop()
	fmt.Printf("  API server started, %d labelled namespaces created in %s\n", sc.projects, time.Since(t0).Round(time.Millisecond))

	writeConfig := func(path string, qps float64, burst int) error { return writeOpenLDAPConfig(path, slapd, qps, burst) }
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := writeConfig(cfgPath, *qps, *burst); err != nil {
		return err
	}

	// The floor runs in a fresh process too, so the generator's heap does
	// not slow it down.
	floorCmd := exec.CommandContext(ctx, self, "floor", "openldap", slapd.URL, "", slapd.ReaderDN, slapd.ReaderPassword, suffix)
	floorCmd.Stderr = os.Stderr
	floorOut, err := floorCmd.Output()
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	var fl struct {
		Seconds    float64 `json:"seconds"`
		CPUSeconds float64 `json:"cpuSeconds"`
		Entries    int     `json:"entries"`
	}
	if err := json.Unmarshal(floorOut, &fl); err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	floor, floorEntries := time.Duration(fl.Seconds*float64(time.Second)), fl.Entries
	floorCPU = fl.CPUSeconds
	fmt.Printf("  floor (plain paged read of all groups and users): %s (CPU %.2fs), %d entries\n", floor.Round(time.Millisecond), floorCPU, floorEntries)

	run := func(name string, dry bool) (row, error) {
		return runCycle(ctx, self, name, cfgPath, kubeconfig, dry, floor)
	}
	fmt.Println("scenarios:")
	rows, err := scenarios(run, func() error {
		// One user leaves one project's executors group.
		c, err := slapd.Conn(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		req := ldap.NewModifyRequest(groupDNs[1], nil)
		req.Delete("member", []string{userDNs[1]})
		return c.Modify(req)
	}, func() error {
		// A user in no viewers group joins one: the viewer union, spread
		// over shards, gains one user.
		c, err := slapd.Conn(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		req := ldap.NewModifyRequest(newViewer[1], nil)
		req.Add("member", []string{newViewer[0]})
		return c.Modify(req)
	})
	if err != nil {
		return err
	}
	if *abBin != "" {
		return compareBuilds(ctx, self, *abBin, *abRuns, cfgPath, kubeconfig, floor)
	}
	// The floor's other half, as issue 26 defines it: the raw namespace
	// and binding LISTs, read now that the bindings exist (steady state).
	kf, err := runKubeFloor(ctx, self, kubeconfig, *qps, *burst)
	if err != nil {
		return err
	}
	ldapFloor, ldapFloorCPU := floor, floorCPU
	floor += time.Duration(kf.Seconds * float64(time.Second))
	floorCPU += kf.CPUSeconds
	kubeFloor = kf
	fmt.Printf("  floor, Kubernetes half (raw LISTs): %.2fs (CPU %.2fs), %d objects in %d requests; floor %s in all\n", kf.Seconds, kf.CPUSeconds, kf.Objects, kf.Requests, floor.Round(time.Millisecond))
	ldapFloorOnly, ldapFloorOnlyCPU = ldapFloor, ldapFloorCPU
	// The one-change scenario removed userDNs[1] from groupDNs[1]: the
	// polls put it back.
	polls, err := runPollsChild(ctx, self, cfgPath, kubeconfig, slapd.AdminDN, slapd.AdminPassword, groupDNs[1], userDNs[1], daemonMemLimit)
	if err != nil {
		return err
	}
	// The first cycle of a migration at the shipped client rate and at the
	// rate docs/operations.md recommends, Events included as `once`
	// records them, each against a fresh API server (same etcd, own
	// prefix) seeded with the same namespaces.
	def := config.Default().Kubernetes
	var rateRows []row
	for i, rate := range []struct {
		name  string
		qps   float64
		burst int
	}{
		{fmt.Sprintf("first cycle, shipped rate (QPS %v, burst %d)", def.QPS, def.Burst), float64(def.QPS), def.Burst},
		{fmt.Sprintf("first cycle, migration rate (QPS %v, burst %d)", *migQPS, *migBurst), *migQPS, *migBurst},
	} {
		r, err := firstCycleAt(ctx, self, etcd, filepath.Join(dir, fmt.Sprintf("rate%d", i)), sc.projects, rate.name, rate.qps, rate.burst, floor, writeConfig)
		if err != nil {
			return err
		}
		rateRows = append(rateRows, r)
	}
	slapd.Stop()
	var insider string
	if *insiderGroups > 0 {
		if insider, err = runInsider(*insiderGroups, *insiderMembers, 20); err != nil {
			return err
		}
	}
	report := renderReport(sc, rows, floor, floorEntries, genTime, slapd.LoadDuration, *qps, *burst)
	writePollTableTo(&report, polls)
	report += "\n### First cycle by client rate\n\nA migration's first cycle, Events recorded and flushed as `once` does (wall time includes the flush). " +
		"Creations are one summary log line per cycle; Events remain for what needs a human (holds, errors, removals, a binding deleted and created again).\n\n"
	var rb strings.Builder
	writeTable(&rb, rateRows, floor)
	report += rb.String()
	if insider != "" {
		report += "\n### Directory insider: large groups outside the projects\n\n" + insider
	}
	report += "\n" + verdict(sc, rows, floor, polls) + "\n"
	if *adUsers > 0 {
		adReport, err := benchAD(ctx, self, etcd, dir, *adUsers, *adProjects, *adInChain, *qps, *burst)
		if err != nil {
			return err
		}
		report += "\n" + adReport
	}
	if *insiderBig >= 0 {
		table, err := insiderKube(50, *insiderBig, 1<<20, 16)
		if err != nil {
			return err
		}
		report += table
	}
	fmt.Println()
	fmt.Print(report)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		if err := writeReport(*out, report); err != nil {
			return err
		}
		fmt.Printf("\nwritten to %s\n", *out)
	}
	return nil
}

// profileDir is -profile-dir.
var profileDir string

// floorCPU is the CPU time of the floor's best read, in seconds: the
// directory's, then with the Kubernetes half added.
var floorCPU float64

// ldapFloorOnly is the directory half of the floor (the floor as measured
// before issue 26 defined it), and kubeFloor its Kubernetes half.
var (
	ldapFloorOnly    time.Duration
	ldapFloorOnlyCPU float64
	kubeFloor        kubeFloorStats
)

// daemonMemLimit is -daemon-gomemlimit, resolved.
var daemonMemLimit string

// deployGoMemLimit is the GOMEMLIMIT the Deployment in path gives the
// daemon's container ("" when it sets none).
func deployGoMemLimit(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				return e.Value, nil
			}
		}
	}
	return "", nil
}

func runCycle(ctx context.Context, self, name, cfgPath, kubeconfig string, dry bool, floor time.Duration, extra ...string) (row, error) {
	args := append([]string{"cycle", "--config", cfgPath, "--kubeconfig", kubeconfig}, extra...)
	if dry {
		args = append(args, "--dry-run")
	}
	cmd := exec.CommandContext(ctx, self, args...)
	if profileDir != "" && name == "steady state" {
		cmd.Env = append(os.Environ(), "BENCH_CPUPROFILE="+filepath.Join(profileDir, "steady-state.cpu.pprof"),
			"BENCH_MEMPROFILE="+filepath.Join(profileDir, "steady-state.allocs.pprof"))
	}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return row{}, fmt.Errorf("%s: %w", name, err)
	}
	var st cycleStats
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		return row{}, fmt.Errorf("%s: %w: %s", name, err, stdout.String())
	}
	r := row{name: name, stats: st, wall: time.Since(start)}
	fmt.Printf("  %-22s %s\n", name, r.summary(floor))
	return r, nil
}

// firstCycleAt runs a first cycle with Events at the client rate qps/burst
// against a fresh API server in dir.
func firstCycleAt(ctx context.Context, self string, etcd *harness.Etcd, dir string, projects int, name string, qps float64, burst int, floor time.Duration,
	writeConfig func(string, float64, int) error) (row, error) {
	api, kubeconfig, err := startCluster(ctx, etcd, dir, projects)
	if err != nil {
		return row{}, err
	}
	defer api.Stop()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := writeConfig(cfgPath, qps, burst); err != nil {
		return row{}, err
	}
	return runCycle(ctx, self, name, cfgPath, kubeconfig, false, floor, "--events")
}

// verdict is one line against issue 26's targets at 100,000 users: the
// steady state (`once`) and the daemon's full cycle (informer cache)
// within 1.3× the floor with no write, and the daemon (polls on, the
// Deployment's GOMEMLIMIT) under 256 MiB.
func verdict(sc scale, rows []row, floor time.Duration, polls pollStats) string {
	var steady *row
	for i := range rows {
		if rows[i].name == "steady state" {
			steady = &rows[i]
		}
	}
	if steady == nil {
		return "Verdict: no steady-state row."
	}
	ratio := steady.stats.Seconds / floor.Seconds()
	daemon := polls.CycleSeconds / floor.Seconds()
	rss := float64(polls.MaxRSSKiB) / 1024
	ok := func(b bool) string {
		if b {
			return "met"
		}
		return "MISSED"
	}
	scale, rssVerdict := "", ok(rss < 256)
	if sc.users != 100000 {
		scale = fmt.Sprintf(" (measured at %d users; the targets are set at 100,000)", sc.users)
		if sc.users < 100000 && rss < 256 {
			rssVerdict = "not judged below 100,000 users"
		}
	}
	cpu := ""
	if floorCPU > 0 {
		cpu = fmt.Sprintf(" CPU time against the floor's (%.2f s): steady state %.2f×, daemon's full cycle %.2f×.",
			floorCPU, steady.stats.CPUSeconds/floorCPU, polls.CycleCPUSeconds/floorCPU)
	}
	ldapOnly := ""
	if ldapFloorOnly > 0 {
		ldapOnly = fmt.Sprintf(" Against the directory read alone (%.2f s, the floor of earlier runs): steady state %.2f×, daemon's full cycle %.2f×.",
			ldapFloorOnly.Seconds(), steady.stats.Seconds/ldapFloorOnly.Seconds(), polls.CycleSeconds/ldapFloorOnly.Seconds())
	}
	return fmt.Sprintf("**Verdict%s:** steady state (`once`) %.2f× the floor (target ≤ 1.3×: %s, %d writes), "+
		"daemon's full cycle from its informer cache %.2f× (target ≤ 1.3×: %s), daemon peak RSS with polls %.0f MiB at GOMEMLIMIT %s (target < 256 MiB: %s).%s%s",
		scale, ratio, ok(ratio <= 1.3 && steady.writes() == 0), steady.writes(), daemon, ok(daemon <= 1.3), rss, orUnset(polls.GoMemLimit), rssVerdict, cpu, ldapOnly)
}

// scenarios runs first, steady-state, one-change and diff cycles.
func scenarios(run func(string, bool) (row, error), change, viewerChange func() error) ([]row, error) {
	var rows []row
	for _, s := range []struct {
		name string
		dry  bool
		pre  func() error
	}{
		{"first cycle", false, nil},
		{"steady state", false, nil},
		{"one change", false, change},
		{"one viewer added", false, viewerChange},
		{"diff (steady state)", true, nil},
	} {
		if s.name == "one viewer added" && viewerChange == nil {
			continue // the AD case: no viewer change wired
		}
		if s.pre != nil {
			if err := s.pre(); err != nil {
				return nil, err
			}
		}
		r, err := run(s.name, s.dry)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

const suffix = "dc=bench,dc=example"

// buildLDIF generates the directory. groupDNs[i] is the executors group of
// project i; userDNs[1] is a member of groupDNs[1]; newViewer is an enabled
// user in no viewers group and the DN of a viewers group.
func buildLDIF(sc scale) (ldif []byte, groupDNs, userDNs []string, newViewer [2]string) {
	b := harness.NewLDIFBuilder(suffix)
	people := b.AddOU(suffix, "people")
	groups := b.AddOU(suffix, "groups")
	userDNs = make([]string, sc.users)
	for i := range userDNs {
		userDNs[i] = b.AddUser(people, fmt.Sprintf("u%06d", i), harness.UserOpts{Disabled: i%100 == 99})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = userDNs[rng.IntN(len(userDNs))]
		}
		return out
	}
	groupDNs = make([]string, sc.projects)
	viewing := map[string]bool{}
	nestedEvery := 0
	if sc.nestedShare > 0 {
		nestedEvery = int(1 / sc.nestedShare)
	}
	for p := 0; p < sc.projects; p++ {
		name := fmt.Sprintf("p%04d", p)
		members := pick(sc.groupSize)
		switch {
		case p == 0 && sc.bigGroup > 0:
			members = userDNs[:min(sc.bigGroup, len(userDNs))]
		case p == 1:
			members[0] = userDNs[1]
		case nestedEvery > 0 && p%nestedEvery == 2:
			l3 := b.AddGroup(groups, name+"-l3", pick(5)...)
			l2 := b.AddGroup(groups, name+"-l2", append(pick(5), l3)...)
			l1 := b.AddGroup(groups, name+"-l1", append(pick(5), l2)...)
			members = append(members[:sc.groupSize-5], l1)
		}
		groupDNs[p] = b.AddGroup(groups, "p-"+name+"-executors", members...)
		viewers := pick(sc.groupSize)
		for _, v := range viewers {
			viewing[v] = true
		}
		v := b.AddGroup(groups, "p-"+name+"-viewers", viewers...)
		if p == 0 {
			newViewer[1] = v
		}
	}
	for i := len(userDNs) - 1; i >= 0; i-- {
		if !viewing[userDNs[i]] && i%100 != 99 {
			newViewer[0] = userDNs[i]
			break
		}
	}
	return b.Bytes(), groupDNs, userDNs, newViewer
}

// scratch makes a run's scratch directory (the caller removes it) and
// finds this binary, which runs each measured cycle as a child process.
func scratch(prefix string) (dir, self string, err error) {
	if self, err = os.Executable(); err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", prefix)
	return dir, self, err
}

// startCluster starts a kube-apiserver on etcd with its data in dir, writes
// its admin kubeconfig there and seeds the projects' labelled namespaces.
// The caller stops the API server.
func startCluster(ctx context.Context, etcd *harness.Etcd, dir string, projects int) (*harness.APIServer, string, error) {
	api, err := harness.StartAPIServer(ctx, etcd, dir)
	if err != nil {
		return nil, "", err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err = api.WriteKubeconfig(kubeconfig, api.AdminToken); err == nil {
		err = seedCluster(ctx, api, projects)
	}
	if err != nil {
		api.Stop()
		return nil, "", err
	}
	return api, kubeconfig, nil
}

// guardOff turns the guard's addition limit off in every bench
// configuration: the bench fills bindings with whole groups (one of
// 20,000 users), which the shipped limit (20 users a group a binding a
// window) would hold for approval, so no cycle would measure the writes.
const guardOff = "guard:\n  maxAddCount: 0\n"

// benchRest is every bench configuration after its ldap section: the guard
// off, the bench's group names and label, and the client rate.
func benchRest(qps float64, burst int) string {
	return guardOff + fmt.Sprintf(`groups:
  executors: ["p-{project}-executors"]
  viewers: ["p-{project}-viewers"]
projects:
  namespaceLabel: runai/queue
kubernetes:
  qps: %v
  burst: %d
`, qps, burst)
}

// writeOpenLDAPConfig writes to path a cycle's configuration against the
// bench's slapd at client rate qps/burst (the reader's password beside it).
func writeOpenLDAPConfig(path string, slapd *harness.Slapd, qps float64, burst int) error {
	pw := path + ".pw"
	if err := os.WriteFile(pw, []byte(slapd.ReaderPassword), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`ldap:
  urls: [%q]
  allowInsecure: true
  bindDN: %q
  bindPasswordFile: %s
  baseDN: %q
  schema: groupOfNames
  userIDAttribute: uid
  pageSize: 1000
  timeout: 5m
`, slapd.URL, slapd.ReaderDN, pw, suffix) + benchRest(qps, burst)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func seedCluster(ctx context.Context, api *harness.APIServer, projects int) error {
	rc := api.RestConfig()
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	for _, role := range []string{model.ViewerRole, model.ExecutorRole, model.IndexMapRole} {
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "runai"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	work := make(chan int)
	errs := make(chan error, 8)
	var wg gosync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				name := fmt.Sprintf("p%04d", p)
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "runai-" + name, Labels: map[string]string{"runai/queue": name}}}
				if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for p := 0; p < projects; p++ {
		select {
		case work <- p:
		case err := <-errs:
			close(work)
			return err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func floorMain(args []string) int {
	d, cpu, n, err := measureFloor(args[0], args[1], args[2], args[3], args[4], args[5])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"seconds": d.Seconds(), "cpuSeconds": cpu.Seconds(), "entries": n})
	return 0
}

// floorQueries are the plain reads of the same group and user entries the
// sync reads, per directory kind.
var floorQueries = map[string][]struct {
	filter string
	attrs  []string
}{
	"openldap": {
		{"(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))", []string{"cn", "member", "uniqueMember"}},
		{"(uid=*)", []string{"uid", "userAccountControl", "nsAccountLock", "pwdAccountLockedTime"}},
	},
	"ad": {
		{"(objectClass=group)", []string{"cn", "member"}},
		{"(objectClass=user)", []string{"sAMAccountName", "userAccountControl", "objectClass"}},
	},
}

// measureFloor times the least any client must do: a plain paged read of
// the same group and user entries the sync reads, entries counted and
// dropped page by page (best of three, with that read's CPU time). caFile
// empty: plain LDAP.
func measureFloor(kind, url, caFile, bindDN, password, base string) (time.Duration, time.Duration, int, error) {
	queries, ok := floorQueries[kind]
	if !ok {
		return 0, 0, 0, fmt.Errorf("unknown directory kind %q", kind)
	}
	var opts []ldap.DialOpt
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return 0, 0, 0, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		opts = append(opts, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}))
	}
	best, bestCPU := time.Duration(0), time.Duration(0)
	n := 0
	for i := 0; i < 3; i++ {
		c, err := ldap.DialURL(url, opts...)
		if err != nil {
			return 0, 0, 0, err
		}
		if err := c.Bind(bindDN, password); err != nil {
			c.Close()
			return 0, 0, 0, err
		}
		start, cpu0 := time.Now(), cpuTime()
		n = 0
		for _, q := range queries {
			req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, q.filter, q.attrs, nil)
			paging := ldap.NewControlPaging(1000)
			req.Controls = []ldap.Control{paging}
			for {
				res, err := c.Search(req)
				if err != nil {
					c.Close()
					return 0, 0, 0, err
				}
				n += len(res.Entries)
				pc, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
				if pc == nil || len(pc.Cookie) == 0 {
					break
				}
				paging.SetCookie(pc.Cookie)
			}
		}
		d, cpu := time.Since(start), cpuTime()-cpu0
		c.Close()
		if best == 0 || d < best {
			best, bestCPU = d, cpu
		}
	}
	return best, bestCPU, n, nil
}

type row struct {
	name  string
	stats cycleStats
	wall  time.Duration
}

func (r row) reads() int64 {
	return r.stats.KubeRequests["GET"] + r.stats.KubeRequests["WATCH"]
}

func (r row) writes() int64 {
	var n int64
	for v, c := range r.stats.KubeRequests {
		if v != "GET" && v != "WATCH" {
			n += c
		}
	}
	return n
}

func (r row) summary(floor time.Duration) string {
	s := fmt.Sprintf("%.2fs (%.1f× floor; CPU %.2fs), %d searches, %d entries, kube %s, %d bindings written, peak RSS %d MiB",
		r.stats.Seconds, r.stats.Seconds/floor.Seconds(), r.stats.CPUSeconds, r.stats.Searches, r.stats.Entries, verbs(r.stats.KubeRequests), r.stats.Written, r.stats.MaxRSSKiB/1024)
	if r.stats.Error != "" {
		s += "\n      error: " + r.stats.Error
	}
	return s
}

func verbs(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func renderReport(sc scale, rows []row, floor time.Duration, floorEntries int, gen, load time.Duration, qps float64, burst int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Latest `make bench` results (%s).\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s, %s.\n\n", cpuModel(), runtime.NumCPU(), memTotal(), runtime.Version())
	fmt.Fprintf(&b, "Scale: %d directory users (1%% disabled), %d projects each with an executors and a viewers group of %d members, "+
		"%.0f%% of projects with nested groups three levels deep, one group of %d members, %d labelled namespaces. "+
		"OpenLDAP 2.5 (slapd, schema groupOfNames, loaded offline with slapadd in %s; LDIF generated in %s), "+
		"kube-apiserver v1.37.2 + etcd built from source. Client rate limit: QPS %v, burst %d. "+
		"The guard's addition limit is off (`guard.maxAddCount: 0`): whole groups fill the bindings, which the shipped limit would hold for approval.\n\n",
		sc.users, sc.projects, sc.groupSize, sc.nestedShare*100, sc.bigGroup, sc.projects, load.Round(time.Millisecond), gen.Round(time.Millisecond), qps, burst)
	fmt.Fprintf(&b, "Floor, as issue 26 defines it: a plain paged go-ldap read of the same group and user entries (%d entries) and the raw namespace and binding LISTs "+
		"(one plain LIST each of the namespaces, every RoleBinding and every ClusterRoleBinding: %d objects), each the best of three in a fresh process: "+
		"**%.2f s** (%.2f s + %.2f s; CPU time %.2f s + %.2f s).\n\n",
		floorEntries, kubeFloor.Objects, floor.Seconds(), ldapFloorOnly.Seconds(), kubeFloor.Seconds, ldapFloorOnlyCPU, kubeFloor.CPUSeconds)
	writeTable(&b, rows, floor)
	b.WriteString("\nWall time is the cycle alone (inside the measured process); peak RSS is that process's maximum resident set. " +
		"Kubernetes reads are LIST/GET requests: the namespaces (listed twice, 500 a page), the executor bindings (listed twice, once as metadata, 50 a page), " +
		"the shard RoleBindings and ClusterRoleBindings (metadata), then GETs of the shards in scope, the viewer and index-map bindings and the guard's store; " +
		"their number grows with the projects only through paging. Kubernetes writes " +
		"count every object written: a binding spread over shards is one binding written, and as many writes as shards it changes.\n")
	b.WriteString("\nCPU time of each cycle (user + system, every thread):")
	for _, r := range rows {
		fmt.Fprintf(&b, " %s %.2f s;", r.name, r.stats.CPUSeconds)
	}
	b.WriteString(" less sensitive than wall time to what else runs on the machine.\n")
	if len(rows) > 0 && len(rows[0].stats.Shards) > 0 {
		var parts []string
		for _, ref := range model.SortedKeys(rows[0].stats.Shards) {
			parts = append(parts, fmt.Sprintf("`%s` %d bindings (it and %d shards)", ref, rows[0].stats.Shards[ref], rows[0].stats.Shards[ref]-1))
		}
		b.WriteString("\nSpread over shards (safe size 1 MiB a binding by the stored-size estimate): " + strings.Join(parts, ", ") + ".\n")
	}
	return b.String()
}

func writeTable(b *strings.Builder, rows []row, floor time.Duration) {
	b.WriteString("| scenario | wall | × floor | LDAP searches | LDAP entries | kube reads | kube writes | requests by verb | bindings written | peak RSS |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %.2f s | %.1f | %d | %d | %d | %d | %s | %d | %d MiB |\n", r.name, r.stats.Seconds, r.stats.Seconds/floor.Seconds(),
			r.stats.Searches, r.stats.Entries, r.reads(), r.writes(), verbs(r.stats.KubeRequests), r.stats.Written, r.stats.MaxRSSKiB/1024)
	}
	var errs []string
	for _, r := range rows {
		if r.stats.Error != "" {
			errs = append(errs, fmt.Sprintf("* %s: `%s`", r.name, r.stats.Error))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\nErrors reported by the cycles:\n\n" + strings.Join(errs, "\n") + "\n")
	}
}

// Markers around the generated part of the results file; the text around
// them (the analysis) is kept.
const (
	beginMarker = "<!-- bench:begin (generated by make bench) -->"
	endMarker   = "<!-- bench:end -->"
)

func writeReport(path, report string) error {
	block := beginMarker + "\n" + report + endMarker + "\n"
	old, err := os.ReadFile(path)
	if err == nil {
		s := string(old)
		i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
		if i >= 0 && j > i {
			return os.WriteFile(path, []byte(s[:i]+block+s[j+len(endMarker)+1:]), 0o644)
		}
	}
	return os.WriteFile(path, []byte("# Performance\n\n"+block), 0o644)
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown memory"
	}
	var kb int64
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(line, "MemTotal:"), "%d", &kb)
		}
	}
	return fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
}

// benchAD runs the same scenarios against a real Samba AD DC (schema
// activeDirectory, in-chain rule), as large as Samba loads in a few
// minutes over LDAP, on a fresh API server.
func benchAD(ctx context.Context, self string, etcd *harness.Etcd, dir string, users, projects, inChainProjects int, qps float64, burst int) (string, error) {
	fmt.Printf("\nActive Directory case: %d users, %d projects (Samba over LDAPS)\n", users, projects)
	samba, err := harness.StartSamba(ctx, filepath.Join(dir, "samba"))
	if err != nil {
		return "", err
	}
	defer samba.Stop()
	start := time.Now()
	ou, err := samba.AddOU("Bench")
	if err != nil {
		return "", err
	}
	sams := make([]string, users)
	for i := range sams {
		sams[i] = fmt.Sprintf("ad%06d", i)
	}
	dns, err := samba.AddUsers(ou, sams, true)
	if err != nil {
		return "", err
	}
	for i := 99; i < users; i += 100 {
		if err := samba.SetEnabled(dns[i], false); err != nil {
			return "", err
		}
	}
	svc, err := samba.AddUser(ou, "svc-bench", true)
	if err != nil {
		return "", err
	}
	if err := samba.SetPassword(svc, "Bench-Pa55word"); err != nil {
		return "", err
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = dns[rng.IntN(len(dns))]
		}
		return out
	}
	groupDNs := make([]string, projects)
	for p := 0; p < projects; p++ {
		name := fmt.Sprintf("p%04d", p)
		members := pick(20)
		if p == 1 {
			members[0] = dns[1]
		}
		if p%10 == 2 {
			l3, err := samba.AddGroup(ou, name+"-l3")
			if err == nil {
				err = samba.AddMembers(l3, pick(5)...)
			}
			l2, err2 := samba.AddGroup(ou, name+"-l2")
			if err == nil && err2 == nil {
				err = samba.AddMembers(l2, append(pick(5), l3)...)
			}
			if err != nil || err2 != nil {
				return "", fmt.Errorf("nested groups: %v %v", err, err2)
			}
			members = append(members[:15], l2)
		}
		for _, kind := range []string{"executors", "viewers"} {
			g, err := samba.AddGroup(ou, "p-"+name+"-"+kind)
			if err != nil {
				return "", err
			}
			if kind == "viewers" {
				members = pick(20)
			} else {
				groupDNs[p] = g
			}
			if err := samba.AddMembers(g, members...); err != nil {
				return "", err
			}
		}
	}
	seed := time.Since(start)
	fmt.Printf("  seeded in %s\n", seed.Round(time.Millisecond))

	api, kubeconfig, err := startCluster(ctx, etcd, filepath.Join(dir, "apiserver-ad"), projects)
	if err != nil {
		return "", err
	}
	defer api.Stop()
	pw := filepath.Join(dir, "pw-ad")
	if err := os.WriteFile(pw, []byte("Bench-Pa55word"), 0o600); err != nil {
		return "", err
	}
	cfgPath := filepath.Join(dir, "config-ad.yaml")
	cfg := fmt.Sprintf(`ldap:
  urls: [%q]
  caFile: %s
  bindDN: svc-bench@example.test
  bindPasswordFile: %s
  baseDN: %q
  pageSize: 1000
  timeout: 5m
  memberResolution: expand
`, samba.LDAPSURL, samba.CAFile, pw, ou) + benchRest(qps, burst)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", err
	}
	// In-chain costs one slow search per group on Samba: measure it on the
	// first inChainProjects projects only (a sample), as static projects.
	inChainCfg := strings.Replace(cfg, "memberResolution: expand", "memberResolution: inChain", 1)
	var static strings.Builder
	static.WriteString("projects:\n  namespaceLabel: \"\"\n  static:\n")
	inChainProjects = min(inChainProjects, projects)
	for p := 0; p < inChainProjects; p++ {
		fmt.Fprintf(&static, "  - name: p%04d\n", p)
	}
	inChainCfg = strings.Replace(inChainCfg, "projects:\n  namespaceLabel: runai/queue\n", static.String(), 1)
	inChainPath := filepath.Join(dir, "config-ad-inchain.yaml")
	if err := os.WriteFile(inChainPath, []byte(inChainCfg), 0o600); err != nil {
		return "", err
	}
	floorCmd := exec.CommandContext(ctx, self, "floor", "ad", samba.LDAPSURL, samba.CAFile, "svc-bench@example.test", "Bench-Pa55word", ou)
	floorCmd.Stderr = os.Stderr
	floorOut, err := floorCmd.Output()
	if err != nil {
		return "", fmt.Errorf("AD floor: %w", err)
	}
	var fl struct {
		Seconds float64 `json:"seconds"`
		Entries int     `json:"entries"`
	}
	if err := json.Unmarshal(floorOut, &fl); err != nil {
		return "", err
	}
	floor := time.Duration(fl.Seconds * float64(time.Second))
	fmt.Printf("  floor: %s, %d entries\n", floor.Round(time.Millisecond), fl.Entries)
	rows, err := scenarios(func(name string, dry bool) (row, error) {
		return runCycle(ctx, self, name, cfgPath, kubeconfig, dry, floor)
	}, func() error { return samba.RemoveMembers(groupDNs[1], dns[1]) }, nil)
	if err != nil {
		return "", err
	}
	inChain, err := runCycle(ctx, self, fmt.Sprintf("diff, inChain, %d projects (%d groups)", inChainProjects, 2*inChainProjects), inChainPath, kubeconfig, true, floor)
	if err != nil {
		return "", err
	}
	rows = append(rows, inChain)
	perGroup := inChain.stats.Seconds / float64(2*inChainProjects)
	inChainNote := fmt.Sprintf("inChain: %.2f s a group over the sample of %d groups; all %d groups of the %d projects extrapolate to about %.0f s.",
		perGroup, 2*inChainProjects, 2*projects, projects, perGroup*float64(2*projects))
	if inChain.stats.Error != "" {
		// Cut short (ldap.cycleTimeout): the per-group figure would be wrong.
		inChainNote = fmt.Sprintf("inChain did not finish the sample of %d groups: %d searches in %.0f s (%s).",
			2*inChainProjects, inChain.stats.Searches, inChain.stats.Seconds, firstLine(inChain.stats.Error))
	}
	fmt.Println("  " + inChainNote)
	polls, err := runPollsChild(ctx, self, cfgPath, kubeconfig, samba.AdminDN, samba.AdminPassword, groupDNs[1], dns[1], daemonMemLimit)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Active Directory (Samba 4 AD DC, schema activeDirectory, memberResolution expand; last row: inChain on a sample of %d of the projects)\n\n", inChainProjects)
	fmt.Fprintf(&b, "%d users (1%% disabled), %d projects with an executors and a viewers group of 20, 10%% nested two levels below the executors group, "+
		"%d labelled namespaces; seeded over LDAPS in %s. Floor: a plain paged read of the OU's groups and users (%d entries): **%.2f s**.\n\n",
		users, projects, projects, seed.Round(time.Second), fl.Entries, floor.Seconds())
	writeTable(&b, rows, floor)
	b.WriteString("\n" + inChainNote + "\n")
	writePollTable(&b, polls)
	return b.String(), nil
}

// kubeFloorStats is the Kubernetes half of the floor.
type kubeFloorStats struct {
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpuSeconds"`
	Requests   int     `json:"requests"`
	Objects    int     `json:"objects"`
}

func runKubeFloor(ctx context.Context, self, kubeconfig string, qps float64, burst int) (kubeFloorStats, error) {
	cmd := exec.CommandContext(ctx, self, "floor-kube", kubeconfig, fmt.Sprint(qps), fmt.Sprint(burst))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return kubeFloorStats{}, fmt.Errorf("Kubernetes floor: %w", err)
	}
	var st kubeFloorStats
	if err := json.Unmarshal(out, &st); err != nil {
		return kubeFloorStats{}, fmt.Errorf("Kubernetes floor: %w", err)
	}
	return st, nil
}

// kubeFloorMain times the least any client must read of the cluster, in a
// fresh process: one plain LIST each of the namespaces, every RoleBinding
// and every ClusterRoleBinding (no paging, no field selector, no decoding
// beyond client-go's), with the cycle's client rate (best of three).
func kubeFloorMain(args []string) int {
	qps, _ := strconv.ParseFloat(args[1], 32)
	burst, _ := strconv.Atoi(args[2])
	cc, err := kube.RestConfig(args[0], "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := *cc.Config
	cfg.QPS, cfg.Burst = float32(qps), burst
	cs, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	var best kubeFloorStats
	for i := 0; i < 3; i++ {
		start, cpu0 := time.Now(), cpuTime()
		st := kubeFloorStats{Requests: 3}
		nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		rbs, err := cs.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		crbs, err := cs.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		st.Objects = len(nss.Items) + len(rbs.Items) + len(crbs.Items)
		st.Seconds, st.CPUSeconds = time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
		if best.Seconds == 0 || st.Seconds < best.Seconds {
			best = st
		}
	}
	_ = json.NewEncoder(os.Stdout).Encode(best)
	return 0
}

// compareBuilds runs steady-state `once` cycles, then daemon full cycles,
// alternately with this build and with other (another build of
// hack/bench) against the same servers, and prints each build's medians:
// changes measured side by side on the same directory and cluster, in the
// same minutes.
func compareBuilds(ctx context.Context, self, other string, runs int, cfgPath, kubeconfig string, floor time.Duration) error {
	builds := []struct{ name, bin string }{{"this build", self}, {other, other}}
	wall, cpu := make([][]float64, 2), make([][]float64, 2)
	fmt.Printf("A/B: %d steady-state cycles each, alternating\n", runs)
	for i := 0; i < runs; i++ {
		for b, build := range builds {
			r, err := runCycle(ctx, build.bin, build.name, cfgPath, kubeconfig, false, floor)
			if err != nil {
				return err
			}
			wall[b], cpu[b] = append(wall[b], r.stats.Seconds), append(cpu[b], r.stats.CPUSeconds)
		}
	}
	for b, build := range builds {
		fmt.Printf("  %s: median wall %.2f s, median CPU %.2f s\n", build.name, median(wall[b]), median(cpu[b]))
	}
	// The daemon's full cycle (informer cache, the Deployment's GOMEMLIMIT).
	fmt.Printf("A/B: %d daemon full cycles each (GOMEMLIMIT %s), alternating\n", runs, orUnset(daemonMemLimit))
	wall, cpu = make([][]float64, 2), make([][]float64, 2)
	live := make([][]float64, 2)
	for i := 0; i < runs; i++ {
		for b, build := range builds {
			cmd := exec.CommandContext(ctx, build.bin, "polls", "--config", cfgPath, "--kubeconfig", kubeconfig)
			cmd.Stderr = os.Stderr
			cmd.Env = os.Environ()
			if daemonMemLimit != "" {
				cmd.Env = append(cmd.Env, "GOMEMLIMIT="+daemonMemLimit)
			}
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("%s: daemon cycle: %w", build.name, err)
			}
			var st pollStats
			if err := json.Unmarshal(out, &st); err != nil {
				return fmt.Errorf("%s: daemon cycle: %w: %s", build.name, err, out)
			}
			fmt.Printf("  %-22s full cycle %.2fs (CPU %.2fs), live heap %d MiB at most, peak RSS %d MiB\n", build.name, st.CycleSeconds, st.CycleCPUSeconds, st.PeakLiveHeapKiB/1024, st.MaxRSSKiB/1024)
			wall[b], cpu[b], live[b] = append(wall[b], st.CycleSeconds), append(cpu[b], st.CycleCPUSeconds), append(live[b], float64(st.PeakLiveHeapKiB)/1024)
		}
	}
	for b, build := range builds {
		fmt.Printf("  %s: median wall %.2f s, median CPU %.2f s, median peak live heap %.0f MiB\n", build.name, median(wall[b]), median(cpu[b]), median(live[b]))
	}
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
