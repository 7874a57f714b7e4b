package harness

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
)

// ChartPath is the Helm chart, relative to the repository root.
const ChartPath = "deploy/chart/runai-ldap-sync"

// ChartFiles are the chart's copies of files of the kustomize base (a chart
// cannot read files outside its directory): path in the chart -> path in the
// repository. `make chart-files` refreshes them; a test keeps them equal.
var ChartFiles = map[string]string{
	"files/prometheusrule.yaml":   "deploy/prometheusrule.yaml",
	"files/dashboard.json":        "deploy/dashboards/runai-ldap-sync.json",
	"files/project-template.yaml": "deploy/components/provisioning/project-template.yaml",
	"files/admission-policy.yaml": "deploy/admission-policy.yaml",
}

// HelmEnv keeps Helm's cache, configuration and data under dir, so tests
// neither read nor write the user's.
func HelmEnv(dir string) []string {
	return []string{
		"HELM_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "data"),
	}
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// SplitManifests splits a multi-document YAML stream (helm template's output)
// into its non-empty documents (comments alone are empty).
func SplitManifests(out []byte) ([][]byte, error) {
	var docs [][]byte
	for _, doc := range docSep.Split(string(out), -1) {
		empty := true
		for _, l := range bytes.Split([]byte(doc), []byte("\n")) {
			l = bytes.TrimSpace(l)
			if len(l) > 0 && l[0] != '#' {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(doc))
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("harness: no YAML documents in %d bytes", len(out))
	}
	return docs, nil
}
