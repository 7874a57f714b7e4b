package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

type explainJSON struct {
	User     string `json:"user"`
	Projects []struct {
		Project  string      `json:"project"`
		Executor bindingJSON `json:"executor"`
	} `json:"projects"`
	Viewer   *bindingJSON `json:"viewer"`
	IndexMap *bindingJSON `json:"indexMap"`
}

type bindingJSON struct {
	Granted   bool     `json:"granted"`
	Via       []string `json:"via"`
	Why       []string `json:"why"`
	Holds     bool     `json:"holds"`
	HandAdded bool     `json:"handAdded"`
	Pending   string   `json:"pending"`
}

func TestExplain(t *testing.T) {
	e := newEnv(t)
	seedSample(e)
	cfg := e.config(groupsYAML + sampleProjects)
	e.mustRun("once", "--config", cfg)
	// After the sync, bob leaves alpha: explain shows the pending removal.
	e.removeMembers("runai-alpha-executors", "bob")

	explain := func(args ...string) explainJSON {
		t.Helper()
		r := e.mustRun(append([]string{"explain", "--config", cfg, "-o", "json"}, args...)...)
		var ex explainJSON
		if err := json.Unmarshal([]byte(r.stdout), &ex); err != nil {
			t.Fatalf("explain output is not JSON: %v\n%s", err, r.stdout)
		}
		return ex
	}

	// A member two levels down: the whole path.
	ex := explain("--user", "erin", "--project", "alpha")
	if len(ex.Projects) != 1 || ex.Projects[0].Project != "alpha" {
		t.Fatalf("projects: %+v", ex.Projects)
	}
	ee := ex.Projects[0].Executor
	if !ee.Granted || !ee.Holds || ee.HandAdded || len(ee.Via) != 1 ||
		ee.Via[0] != "erin ← runai-alpha-inner ← runai-alpha-core ← runai-alpha-executors" {
		t.Errorf("erin in alpha: %+v", ee)
	}
	if !ex.IndexMap.Granted || !ex.IndexMap.Holds {
		t.Errorf("erin in the index map: %+v", ex.IndexMap)
	}
	if ex.Viewer.Granted || !strings.Contains(strings.Join(ex.Viewer.Why, ";"), "not a member of runai-alpha-viewers") {
		t.Errorf("erin as viewer: %+v", ex.Viewer)
	}

	// A disabled member.
	ee = explain("--user", "dave", "--project", "alpha").Projects[0].Executor
	if ee.Granted || ee.Holds || !strings.Contains(strings.Join(ee.Why, ";"), "disabled") {
		t.Errorf("dave: %+v", ee)
	}

	// A subject added by hand.
	ee = explain("--user", "hand-added", "--project", "alpha").Projects[0].Executor
	if ee.Granted || !ee.Holds || !ee.HandAdded {
		t.Errorf("hand-added: %+v", ee)
	}

	// A user removed from the group since the last cycle.
	ee = explain("--user", "bob", "--project", "alpha").Projects[0].Executor
	if ee.Granted || !ee.Holds || ee.Pending != "remove" {
		t.Errorf("bob: %+v", ee)
	}

	// A global viewer, across every project.
	ex = explain("--user", "gina")
	if len(ex.Projects) != 2 || !ex.Viewer.Granted || ex.Viewer.Via[0] != "gina ← runai-viewers" {
		t.Errorf("gina: %+v", ex)
	}

	// Text output, and a project that does not exist.
	out := e.mustRun("explain", "--config", cfg, "--user", "erin", "--project", "alpha").stdout
	for _, want := range []string{"project alpha (namespace runai-alpha)", "granted", "via erin ← runai-alpha-inner"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if r := e.run("explain", "--config", cfg, "--user", "erin", "--project", "nope"); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("unknown project: code %d, %s", r.code, r.stderr)
	}
}
