package model

import (
	"os/exec"
	"strings"
	"testing"
)

// The vocabulary, the pure plan and the configuration must build without
// the adapters' client libraries; ldapsrc may use go-ldap and zap but not
// the Kubernetes client; metrics reads results, not the adapters. A new
// import that drags one in fails here.
func TestPurePackagesImportNoClientLibrary(t *testing.T) {
	heavy := []string{"k8s.io/client-go/", "k8s.io/api/", "github.com/go-ldap/", "go.uber.org/zap"}
	kubeOnly := heavy[:2]
	const mod = "github.com/runai-ldap-sync/runai-ldap-sync/"
	adapters := append([]string{mod + "kube/", mod + "ldapsrc/"}, heavy...)
	for pkg, banned := range map[string][]string{
		mod + "sync/model":   heavy,
		mod + "sync/plan":    heavy,
		mod + "config":       heavy,
		mod + "ldapsrc":      kubeOnly,
		mod + "sync/metrics": adapters,
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 5 {
			t.Fatalf("go list -deps %s listed only %v", pkg, deps)
		}
		for _, d := range deps {
			for _, b := range banned {
				if strings.HasPrefix(d+"/", b) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
