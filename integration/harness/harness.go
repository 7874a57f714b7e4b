// Package harness starts real servers — a Samba Active Directory domain controller, etcd and
// kube-apiserver — for integration tests, benchmarks and the demo program.
//
// Nothing here is a fake: every server is the real program, started as a child process with its
// output in a log file under the caller's directory. A missing binary or package is reported as an
// error that names the make target installing it; callers must fail, never skip, on such errors.
//
// Samba listens on the fixed LDAP ports 389 and 636, so it needs root and only one instance can
// run per host: tests starting Samba must not run in parallel processes (keep them in one package
// or run `go test -p 1`). etcd and kube-apiserver use free loopback ports and may run many times.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const modulePath = "github.com/runai-ldap-sync/runai-ldap-sync"

// BinDirEnv overrides where BinDir looks for etcd and kube-apiserver.
const BinDirEnv = "RUNAI_LDAP_SYNC_BIN_DIR"

// RepoRoot walks up from the working directory to the directory holding this module's go.mod.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("harness: get working directory: %w", err)
	}
	for dir := wd; ; {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && goModModule(data) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("harness: no go.mod for module %s above %s: run from inside the repository", modulePath, wd)
		}
		dir = parent
	}
}

func goModModule(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// BinDir is $RUNAI_LDAP_SYNC_BIN_DIR if set, else <repo>/.cache/bin: where `make tools` puts the
// etcd and kube-apiserver binaries built from hack/tools.
func BinDir() (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("harness: locate bin dir (or set %s): %w", BinDirEnv, err)
	}
	return filepath.Join(root, ".cache", "bin"), nil
}

// toolBinary returns the path of a binary built by `make tools`, or a loud error saying so.
func toolBinary(name string) (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("harness: %s binary missing at %s: run `make tools` (builds etcd and kube-apiserver from hack/tools) or set %s: %w", name, path, BinDirEnv, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("harness: %s at %s is not an executable file: rerun `make tools`", name, path)
	}
	return path, nil
}

// process is a server child process whose output goes to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	stdin   io.WriteCloser // non-nil when the child was given a stdin pipe
	done    chan struct{}  // closed once the child has exited and been reaped
	waitErr error          // valid after done is closed
}

type processSpec struct {
	name       string // for messages
	path       string
	args       []string
	env        []string // added to the inherited environment
	dir        string
	logPath    string
	stdinPipe  bool // keep a pipe on stdin; closing it is how Samba is told to exit
	stopSignal os.Signal
}

// start runs the child. The context only bounds the start itself: the child outlives it, and is
// killed by the kernel if this process dies (see sysProcAttr).
func (spec processSpec) start() (*process, error) {
	logFile, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("harness: open %s log: %w", spec.name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	fmt.Fprintf(logFile, "=== harness: starting %s at %s: %s %s\n", spec.name, time.Now().Format(time.RFC3339Nano), spec.path, strings.Join(spec.args, " "))

	cmd := exec.Command(spec.path, spec.args...)
	cmd.Dir = spec.dir
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	p := &process{name: spec.name, logPath: spec.logPath, cmd: cmd, done: make(chan struct{})}
	if spec.stdinPipe {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("harness: %s stdin pipe: %w", spec.name, err)
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("harness: start %s (%s): %w", spec.name, spec.path, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the child to exit (closing its stdin pipe, or sending sig), waits up to grace, then
// kills it. It is safe to call more than once.
func (p *process) stop(sig os.Signal, grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	if sig != nil {
		_ = p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// errorf wraps an error with the tail of the process log, which usually says what went wrong.
func (p *process) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, p.logPath, logTail(p.logPath, 30))
}

// waitReady polls probe until it succeeds, the child exits, or ctx ends.
func (p *process) waitReady(ctx context.Context, probe func(context.Context) error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(probeCtx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.errorf("harness: %s exited before becoming ready (%v); last probe error: %w", p.name, p.waitErr, last)
		case <-ctx.Done():
			return p.errorf("harness: %s not ready: %w; last probe error: %w", p.name, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// logTail returns the last n lines of a log file, for error messages.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	const maxBytes = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		_, _ = f.Seek(-maxBytes, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// withDefaultTimeout bounds a start-up when the caller's context has no deadline, so a wedged
// server fails the test with its log instead of hanging until the test binary's timeout.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1. They are released before returning,
// so another process could take one in between; on loopback in tests that is rare enough.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("harness: reserve a free loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portOpen reports whether something accepts TCP connections on addr.
func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// onceErr memoizes a fallible computation, retrying after failures.
type onceErr[T any] struct {
	mu   sync.Mutex
	done bool
	val  T
}

func (o *onceErr[T]) get(f func() (T, error)) (T, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return o.val, nil
	}
	v, err := f()
	if err != nil {
		var zero T
		return zero, err
	}
	o.val, o.done = v, true
	return v, nil
}

var errNotRoot = errors.New("harness: Samba must run as root: it listens on the fixed LDAP ports 389 and 636")
