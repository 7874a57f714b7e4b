package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// Etcd is a single-member etcd on free loopback ports, meant to be shared by many API servers
// (each keeps its data under its own --etcd-prefix).
type Etcd struct {
	ClientURL string // http://127.0.0.1:<port>
	DataDir   string

	proc *process
}

// StartEtcd starts etcd with its data and log (etcd.log) under dir and waits until it is healthy.
func StartEtcd(ctx context.Context, dir string) (*Etcd, error) {
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	bin, err := toolBinary("etcd")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("harness: create etcd dir: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	e := &Etcd{ClientURL: clientURL, DataDir: filepath.Join(dir, "etcd-data")}
	spec := processSpec{
		name: "etcd",
		path: bin,
		args: []string{
			"--name=harness",
			"--data-dir=" + e.DataDir,
			"--listen-client-urls=" + clientURL,
			"--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=harness=" + peerURL,
			"--initial-cluster-state=new",
			"--unsafe-no-fsync=true", // throw-away data: fsync only slows tests down
			"--log-level=warn",
		},
		dir:     dir,
		logPath: filepath.Join(dir, "etcd.log"),
	}
	if e.proc, err = spec.start(); err != nil {
		return nil, err
	}
	client := &http.Client{}
	err = e.proc.waitReady(ctx, func(ctx context.Context) error {
		body, err := httpGet(ctx, client, clientURL+"/health", "")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `"health":"true"`) {
			return fmt.Errorf("etcd /health: %s", body)
		}
		return nil
	})
	if err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// Stop stops etcd and waits for it to exit. Stop the API servers using it first.
func (e *Etcd) Stop() {
	if e != nil {
		e.proc.stop(syscall.SIGTERM, 10*time.Second)
	}
}

// Token is a static bearer token accepted by an APIServer (a line of its --token-auth-file).
type Token struct {
	Token  string
	User   string
	UID    string
	Groups []string
}

// APIServerOptions adjusts StartAPIServer. Extra tokens must be known before the start because
// kube-apiserver reads --token-auth-file once.
type APIServerOptions struct {
	ExtraTokens []Token
	ExtraArgs   []string // more kube-apiserver flags, e.g. "--feature-gates=…"
}

// APIServer is a kube-apiserver on a free port of 127.0.0.1, keeping its state in a shared etcd
// under a prefix of its own: every APIServer is an isolated, empty cluster.
type APIServer struct {
	URL        string // https://127.0.0.1:<port>
	CAFile     string // CA of the serving certificate
	CA         *CA
	AdminToken string // bearer token of user "harness-admin" in group system:masters
	Kubeconfig string // kubeconfig with URL, CA and AdminToken, for kubectl and client-go
	EtcdPrefix string
	Dir        string

	spec processSpec
	mu   sync.Mutex
	proc *process
}

// StartAPIServer starts a new kube-apiserver backed by etcd, with files and log (apiserver.log)
// in dir, and waits for /readyz. At most one APIServerOptions is expected; several are merged.
//
// There is no controller manager: namespaces are never finalized away, service accounts get no
// tokens, and the aggregated ClusterRoles (admin, edit, view) have no rules. RBAC is enforced.
func StartAPIServer(ctx context.Context, etcd *Etcd, dir string, opts ...APIServerOptions) (*APIServer, error) {
	ctx, cancel := withDefaultTimeout(ctx, 2*time.Minute)
	defer cancel()
	var opt APIServerOptions
	for _, o := range opts {
		opt.ExtraTokens = append(opt.ExtraTokens, o.ExtraTokens...)
		opt.ExtraArgs = append(opt.ExtraArgs, o.ExtraArgs...)
	}
	if etcd == nil {
		return nil, fmt.Errorf("harness: StartAPIServer needs a running etcd: call StartEtcd first")
	}
	bin, err := toolBinary("kube-apiserver")
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("harness: apiserver dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("harness: create apiserver dir: %w", err)
	}

	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	caFile, err := ca.WriteFiles(dir)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := ca.writeServerCert(dir, "apiserver", []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}, loopbackIPs)
	if err != nil {
		return nil, err
	}
	saPub, saKey, err := writeServiceAccountKeys(dir)
	if err != nil {
		return nil, err
	}
	adminToken := randomHex(16)
	tokens := append([]Token{{Token: adminToken, User: "harness-admin", UID: "harness-admin", Groups: []string{"system:masters"}}}, opt.ExtraTokens...)
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := writeTokenFile(tokenFile, tokens); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	a := &APIServer{
		URL:        fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		CAFile:     caFile,
		CA:         ca,
		AdminToken: adminToken,
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		EtcdPrefix: "/harness-" + randomHex(8),
		Dir:        dir,
	}
	if err := a.WriteKubeconfig(a.Kubeconfig, adminToken); err != nil {
		return nil, err
	}
	args := []string{
		"--etcd-servers=" + etcd.ClientURL,
		"--etcd-prefix=" + a.EtcdPrefix,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[0]),
		// Loopback hosts may have no default route; without these the apiserver cannot pick an
		// address and would fight other apiservers over the kubernetes Service endpoints.
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + certFile,
		"--tls-private-key-file=" + keyFile,
		"--client-ca-file=" + caFile,
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--authorization-mode=RBAC",
		"--token-auth-file=" + tokenFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--profiling=false",
	}
	a.spec = processSpec{
		name:    "kube-apiserver",
		path:    bin,
		args:    append(args, opt.ExtraArgs...),
		dir:     dir,
		logPath: filepath.Join(dir, "apiserver.log"),
	}
	if err := a.start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *APIServer) start(ctx context.Context) error {
	p, err := a.spec.start()
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: a.CA.TLSConfig("127.0.0.1")}}
	defer client.CloseIdleConnections()
	err = p.waitReady(ctx, func(ctx context.Context) error {
		body, err := httpGet(ctx, client, a.URL+"/readyz", a.AdminToken)
		if err != nil {
			return err
		}
		if strings.TrimSpace(body) != "ok" {
			return fmt.Errorf("/readyz: %s", body)
		}
		return nil
	})
	if err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return err
	}
	a.mu.Lock()
	a.proc = p
	a.mu.Unlock()
	return nil
}

// Stop terminates the API server (SIGTERM, then SIGKILL after 20 s) and waits for it. It is
// safe to call more than once. Its data stays in etcd under EtcdPrefix.
func (a *APIServer) Stop() {
	a.mu.Lock()
	p := a.proc
	a.proc = nil
	a.mu.Unlock()
	p.stop(syscall.SIGTERM, 20*time.Second)
}

// Restart stops the API server if it runs and starts it again with the same port, etcd prefix,
// certificates and tokens, waiting for /readyz: clients keep working after their retries.
func (a *APIServer) Restart(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, 2*time.Minute)
	defer cancel()
	a.Stop()
	return a.start(ctx)
}

// RestConfig returns a client-go config for the admin token.
func (a *APIServer) RestConfig() *rest.Config { return a.RestConfigFor(a.AdminToken) }

// RestConfigFor returns a client-go config authenticating with a bearer token (e.g. one of
// APIServerOptions.ExtraTokens).
func (a *APIServer) RestConfigFor(token string) *rest.Config {
	return &rest.Config{
		Host:            a.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: a.CA.CertPEM},
		QPS:             -1, // no client-side throttling: tests and benchmarks measure the server
	}
}

// WriteKubeconfig writes a self-contained kubeconfig for this API server and token to path.
func (a *APIServer) WriteKubeconfig(path, token string) error {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: harness
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: harness
  user:
    token: %s
contexts:
- name: harness
  context:
    cluster: harness
    user: harness
current-context: harness
`, a.URL, base64.StdEncoding.EncodeToString(a.CA.CertPEM), token)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		return fmt.Errorf("harness: write kubeconfig %s: %w", path, err)
	}
	return nil
}

func writeServiceAccountKeys(dir string) (pubFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("harness: generate service-account key: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("harness: encode service-account key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("harness: encode service-account public key: %w", err)
	}
	keyFile, pubFile = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", fmt.Errorf("harness: write service-account key: %w", err)
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return "", "", fmt.Errorf("harness: write service-account public key: %w", err)
	}
	return pubFile, keyFile, nil
}

// writeTokenFile writes kube-apiserver's static token CSV: token,user,uid,"group1,group2".
func writeTokenFile(path string, tokens []Token) error {
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	for _, t := range tokens {
		if t.Token == "" || t.User == "" {
			return fmt.Errorf("harness: token for user %q: Token and User are required", t.User)
		}
		uid := t.UID
		if uid == "" {
			uid = t.User
		}
		rec := []string{t.Token, t.User, uid}
		if len(t.Groups) > 0 {
			rec = append(rec, strings.Join(t.Groups, ","))
		}
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("harness: encode token file: %w", err)
		}
	}
	w.Flush()
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		return fmt.Errorf("harness: write token file: %w", err)
	}
	return nil
}

func httpGet(ctx context.Context, client *http.Client, url, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
