package template

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

// Load reads the file projects.template names; its errors name the field,
// the file and the document, as the configuration's do.
func TestLoad(t *testing.T) {
	if tm, err := Load(config.Projects{}); tm != nil || err != nil {
		t.Errorf("no template set: got %v, %v", tm, err)
	}
	if _, err := Load(config.Projects{Template: "/nonexistent/template.yaml"}); err == nil ||
		!strings.Contains(err.Error(), "projects.template: ") || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing file: %v", err)
	}
	tmpl := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(tmpl, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: runai-scheduler-rw, namespace: <NAMESPACE>}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: runai-scheduler-rw}
subjects: [{kind: ServiceAccount, name: runai-scheduler, namespace: runai}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tm, err := Load(config.Projects{Template: tmpl})
	if err != nil || tm == nil || len(tm.Objects) != 1 {
		t.Fatalf("template not parsed: %+v, %v", tm, err)
	}

	// A bad template stops the load, naming the field, the file and the document.
	if err := os.WriteFile(tmpl, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(config.Projects{Template: tmpl})
	if err == nil {
		t.Fatal("a template with a Deployment was accepted")
	}
	for _, want := range []string{"projects.template: ", tmpl, "document 2 (line 5)", "Deployment is not supported"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
