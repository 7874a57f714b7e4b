package kube

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

// kubeconfigFile writes a kubeconfig with one context per server name
// (context <name> -> https://<name>.example:6443), the first current.
func kubeconfigFile(t *testing.T, dir, file string, names ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\ncurrent-context: " + names[0] + "\nclusters:\n")
	for _, n := range names {
		b.WriteString("- name: " + n + "\n  cluster: {server: https://" + n + ".example:6443}\n")
	}
	b.WriteString("users:\n- name: u\n  user: {token: t}\ncontexts:\n")
	for _, n := range names {
		b.WriteString("- name: " + n + "\n  context: {cluster: " + n + ", user: u}\n")
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRestConfigOrder(t *testing.T) {
	dir := t.TempDir()
	flagFile := kubeconfigFile(t, dir, "flag", "flag", "other")
	envFile := kubeconfigFile(t, dir, "env", "env")
	homeFile := kubeconfigFile(t, dir, "home", "home")
	missing := filepath.Join(dir, "missing")
	inCluster := func() (*rest.Config, error) { return &rest.Config{Host: "https://in-cluster.example"}, nil }
	notInPod := func() (*rest.Config, error) { return nil, errors.New("unable to load in-cluster configuration") }

	for _, tc := range []struct {
		name                 string
		flag, ctx, env, home string
		inCluster            func() (*rest.Config, error)
		wantHost, wantSource string
		wantErr              string
	}{
		{name: "flag first", flag: flagFile, env: envFile, home: homeFile, inCluster: inCluster, wantHost: "https://flag.example:6443", wantSource: FromFlag},
		{name: "$KUBECONFIG before home and in-cluster", env: envFile, home: homeFile, inCluster: inCluster, wantHost: "https://env.example:6443", wantSource: FromEnv},
		{name: "$KUBECONFIG list skips a missing file", env: missing + string(os.PathListSeparator) + envFile, home: homeFile, inCluster: inCluster, wantHost: "https://env.example:6443", wantSource: FromEnv},
		{name: "home before in-cluster", home: homeFile, inCluster: inCluster, wantHost: "https://home.example:6443", wantSource: FromHome},
		{name: "in-cluster last", home: missing, inCluster: inCluster, wantHost: "https://in-cluster.example", wantSource: FromInCluster},
		{name: "--context picks another context", flag: flagFile, ctx: "other", inCluster: inCluster, wantHost: "https://other.example:6443", wantSource: FromFlag},
		{name: "unknown --context", flag: flagFile, ctx: "nope", inCluster: inCluster, wantErr: `context "nope" is not in kubeconfig`},
		{name: "--context without a kubeconfig", ctx: "x", home: missing, inCluster: inCluster, wantErr: "--context x needs a kubeconfig"},
		{name: "missing --kubeconfig file does not fall back", flag: missing, home: homeFile, inCluster: inCluster, wantErr: "load kubeconfig " + missing},
		{name: "$KUBECONFIG of missing files", env: missing, home: homeFile, inCluster: inCluster, wantErr: "$KUBECONFIG names no existing file"},
		{name: "nothing at all", home: missing, inCluster: notInPod, wantErr: "no Kubernetes configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := resolveConfig(tc.flag, tc.ctx, tc.env, tc.home, tc.inCluster)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cc.Host != tc.wantHost || cc.Source != tc.wantSource {
				t.Errorf("host %s from %s, want %s from %s", cc.Host, cc.Source, tc.wantHost, tc.wantSource)
			}
		})
	}
}
