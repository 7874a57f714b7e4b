// The sample directory, cluster and configuration most tests start from.

package integration

import (
	"context"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// groupsYAML maps the sample's groups to bindings.
const groupsYAML = `groups:
  executors: ["runai-{project}-executors"]
  viewers: ["runai-{project}-viewers"]
  globalViewers: ["runai-viewers"]
`

// sampleProjects finds alpha by its namespace label; beta is static.
const sampleProjects = `projects:
  namespaceLabel: runai/queue
  static:
  - name: beta
    namespace: ml-beta
`

// The sample's bindings.
var (
	alphaExec = model.ExecutorRef("runai-alpha")
	betaExec  = model.ExecutorRef("ml-beta")
	viewer    = model.ViewerRef()
	indexMap  = model.IndexMapRef("runai")
)

var sampleRefs = []model.Ref{alphaExec, betaExec, viewer, indexMap}

// seedSample builds the directory and cluster most tests start from:
//
//	alpha (labelled namespace runai-alpha): executors alice, bob, dave
//	  (disabled) and the nested group runai-alpha-core (carol, and erin via a
//	  second level); viewers vera. The executor binding exists, as Run:AI's
//	  template leaves it, with a hand-added user.
//	beta (static, namespace ml-beta): executors bob, frank; no viewer group.
//	global viewers: gina.
func seedSample(e *env) {
	for _, u := range []string{"alice", "bob", "carol", "erin", "frank", "vera", "gina"} {
		e.user(u, true)
	}
	e.user("dave", false)
	e.group("runai-alpha-inner", "erin")
	e.group("runai-alpha-core", "carol", "runai-alpha-inner")
	e.group("runai-alpha-executors", "alice", "bob", "dave", "runai-alpha-core")
	e.group("runai-alpha-viewers", "vera")
	e.group("runai-beta-executors", "bob", "frank")
	e.group("runai-viewers", "gina")

	e.namespace("runai-alpha", map[string]string{"runai/queue": "alpha"})
	e.namespace("ml-beta", nil)
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: model.ExecutorBinding, Namespace: "runai-alpha"},
		RoleRef:    kube.ExpectedRoleRef(model.ExecutorBinding),
		Subjects:   []rbacv1.Subject{kube.UserSubject("hand-added")},
	}
	if _, err := e.cs.RbacV1().RoleBindings("runai-alpha").Create(context.Background(), rb, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// expectSampleSynced checks the state seedSample's directory should give.
func expectSampleSynced(e *env, within time.Duration) {
	e.t.Helper()
	e.waitUsers(alphaExec, within, "alice", "bob", "carol", "erin", "hand-added")
	e.waitUsers(betaExec, within, "bob", "frank")
	e.waitUsers(viewer, within, "gina", "vera")
	e.waitUsers(indexMap, within, "alice", "bob", "carol", "erin", "frank")
}

// daemonYAML: a daemon that retries, repairs and hands over leadership
// within seconds, and runs full cycles only when told.
const daemonYAML = `schedule: "@every 1h"
retry: {minBackoff: 1s, maxBackoff: 4s}
repair: {minInterval: 1s}
leaderElection: {leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 1s}
`

// incrementalYAML: polls every second, no full cycle during a test and no
// leader election.
const incrementalYAML = `schedule: "@every 1h"
retry: {minBackoff: 1s, maxBackoff: 4s}
repair: {minInterval: 1s}
leaderElection: {enabled: false}
incremental: {enabled: true, pollInterval: 1s}
`

// longSchedule is the shipped configuration's only change: no full cycle
// runs during the test, so whatever reaches a binding came through a poll.
const longSchedule = "schedule: \"@every 1h\"\n"
