package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Where a client configuration came from (ClientConfig.Source).
const (
	FromFlag      = "--kubeconfig"
	FromEnv       = "$KUBECONFIG"
	FromHome      = "~/.kube/config"
	FromInCluster = "in-cluster"
)

// ClientConfig is a resolved client configuration and where it came from.
type ClientConfig struct {
	*rest.Config
	Source string
	// Path is the kubeconfig file (several, from $KUBECONFIG, joined by the
	// list separator); empty in-cluster.
	Path string
	// Context is the kubeconfig context used; empty in-cluster.
	Context string
}

// RestConfig resolves the client configuration in kubectl's order: the
// kubeconfig file given, else $KUBECONFIG, else ~/.kube/config, else the
// pod's in-cluster credentials (a pod has none of the others, so the
// daemon uses its ServiceAccount). kubeContext picks a context of the
// kubeconfig ("" the current one).
func RestConfig(kubeconfig, kubeContext string) (*ClientConfig, error) {
	return resolveConfig(kubeconfig, kubeContext, os.Getenv(clientcmd.RecommendedConfigPathEnvVar), clientcmd.RecommendedHomeFile, rest.InClusterConfig)
}

// resolveConfig is RestConfig with its environment passed in, for tests.
func resolveConfig(explicit, kubeContext, env, home string, inCluster func() (*rest.Config, error)) (*ClientConfig, error) {
	rules := &clientcmd.ClientConfigLoadingRules{}
	out := &ClientConfig{}
	switch {
	case explicit != "":
		// A file named on the command line must exist: no silent fallback.
		rules.ExplicitPath, out.Source, out.Path = explicit, FromFlag, explicit
	case env != "":
		paths := filepath.SplitList(env)
		rules.Precedence, out.Source, out.Path = paths, FromEnv, env
		if !anyExists(paths) {
			return nil, fmt.Errorf("$KUBECONFIG names no existing file (%s): fix or unset it, or pass --kubeconfig", env)
		}
	case fileExists(home):
		rules.Precedence, out.Source, out.Path = []string{home}, FromHome, home
	default:
		if kubeContext != "" {
			return nil, fmt.Errorf("--context %s needs a kubeconfig, but there is none (no --kubeconfig, $KUBECONFIG or %s)", kubeContext, home)
		}
		cfg, err := inCluster()
		if err != nil {
			return nil, fmt.Errorf("no Kubernetes configuration: no --kubeconfig, $KUBECONFIG or %s, and not in a pod (%w); pass --kubeconfig FILE", home, err)
		}
		out.Config, out.Source = cfg, FromInCluster
		return out, nil
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s (%s): %w", out.Path, out.Source, err)
	}
	out.Context = raw.CurrentContext
	if kubeContext != "" {
		if _, ok := raw.Contexts[kubeContext]; !ok {
			return nil, fmt.Errorf("context %q is not in kubeconfig %s (%s): see `kubectl config get-contexts`", kubeContext, out.Path, out.Source)
		}
		out.Context = kubeContext
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("kubeconfig %s (%s) has no usable context: set current-context or pass --context", out.Path, out.Source)
		}
		return nil, fmt.Errorf("load kubeconfig %s (%s): %w", out.Path, out.Source, err)
	}
	out.Config = cfg
	return out, nil
}

func fileExists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}

func anyExists(paths []string) bool {
	for _, p := range paths {
		if fileExists(p) {
			return true
		}
	}
	return false
}

// Contexts lists the context names of the kubeconfig RestConfig would
// read (for shell completion); nil when there is none.
func Contexts(kubeconfig string) []string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	raw, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).RawConfig()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(raw.Contexts))
	for name := range raw.Contexts {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
