package doctor

import (
	"errors"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
)

const sa = "system:serviceaccount:runai:runai-ldap-sync"

func policy(name, user string) admissionv1.ValidatingAdmissionPolicy {
	return admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{MatchConditions: []admissionv1.MatchCondition{
			{Name: "only", Expression: "request.userInfo.username == '" + user + "'"}}}}
}

func binding(name, pol string, actions ...admissionv1.ValidationAction) admissionv1.ValidatingAdmissionPolicyBinding {
	return admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: pol, ValidationActions: actions,
			ParamRef: &admissionv1.ParamRef{Name: "fence-params", Namespace: "runai"}}}
}

func TestFindFence(t *testing.T) {
	other := policy("other", "system:serviceaccount:x:y")
	fence := policy("fence", sa)
	for _, tc := range []struct {
		name  string
		pols  []admissionv1.ValidatingAdmissionPolicy
		binds []admissionv1.ValidatingAdmissionPolicyBinding
		want  string // "" found
	}{
		{name: "none", want: "no ValidatingAdmissionPolicy applies"},
		{name: "by regex (the shipped policy)", pols: []admissionv1.ValidatingAdmissionPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "fence"},
			Spec: admissionv1.ValidatingAdmissionPolicySpec{MatchConditions: []admissionv1.MatchCondition{{Name: "only",
				Expression: `request.userInfo.username.matches('^system:serviceaccount:[^:]+:runai-ldap-sync$')`}}}}},
			binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("b", "fence", admissionv1.Deny)}},
		{name: "regex of another name", pols: []admissionv1.ValidatingAdmissionPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "fence"},
			Spec: admissionv1.ValidatingAdmissionPolicySpec{MatchConditions: []admissionv1.MatchCondition{{Name: "only",
				Expression: `request.userInfo.username.matches('^system:serviceaccount:[^:]+:other$')`}}}}},
			binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("b", "fence", admissionv1.Deny)}, want: "no ValidatingAdmissionPolicy applies"},
		{name: "another identity's", pols: []admissionv1.ValidatingAdmissionPolicy{other}, binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("b", "other", admissionv1.Deny)}, want: "no ValidatingAdmissionPolicy applies"},
		{name: "unbound", pols: []admissionv1.ValidatingAdmissionPolicy{other, fence}, binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("b", "other", admissionv1.Deny)}, want: "has no ValidatingAdmissionPolicyBinding"},
		{name: "warn only", pols: []admissionv1.ValidatingAdmissionPolicy{fence}, binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("b", "fence", admissionv1.Warn, admissionv1.Audit)}, want: "does not deny"},
		{name: "found", pols: []admissionv1.ValidatingAdmissionPolicy{other, fence}, binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("a", "fence", admissionv1.Audit), binding("b", "fence", admissionv1.Deny)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := FindFence(sa, tc.pols, tc.binds)
			switch {
			case tc.want == "" && (c != nil || f == nil || f.Binding.Name != "b"):
				t.Errorf("not found: %+v", c)
			case tc.want != "" && (c == nil || c.Status != Fail || !strings.Contains(c.Message, tc.want) || c.Fix == ""):
				t.Errorf("got %+v, want a failure saying %q", c, tc.want)
			}
		})
	}
}

func TestFenceParamsCheck(t *testing.T) {
	pol, b := policy("fence", sa), binding("b", "fence", admissionv1.Deny)
	f := &Fence{Policy: &pol, Binding: &b, User: sa}
	cfg := config.Default()
	cfg.Projects.NamespaceLabel = "runai/queue"
	cfg.Kubernetes.MaxBindingShards = 4
	good := map[string]string{"namespaceLabel": "runai/queue", "runaiNamespace": "runai", "maxBindingShards": "16"}
	for _, tc := range []struct {
		name   string
		user   string
		params map[string]string
		err    error
		status Status
		want   string
	}{
		{name: "good", params: good, status: OK},
		{name: "missing", status: Fail, want: "do not exist"},
		{name: "unreadable", err: errors.New("forbidden"), status: Warn, want: "could not be read"},
		{name: "other label", params: map[string]string{"namespaceLabel": "kai.scheduler/queue"}, status: Fail, want: "namespaceLabel is \"kai.scheduler/queue\""},
		{name: "fewer shards", params: map[string]string{"maxBindingShards": "2"}, status: Fail, want: "maxBindingShards is 2"},
		// The daemon's ServiceAccount in another namespace than the
		// parameters: matched by the policy, then refused every write.
		{name: "daemon elsewhere", user: "system:serviceaccount:sync:runai-ldap-sync", params: good, status: Fail, want: "refused every write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := *f
			if tc.user != "" {
				f.User = tc.user
			}
			c := FenceParamsCheck(&f, tc.params, tc.err, &cfg)
			if c.Status != tc.status || !strings.Contains(c.Message, tc.want) {
				t.Errorf("got %s %q, want %s saying %q", c.Status, c.Message, tc.status, tc.want)
			}
		})
	}
}

func TestStorePolicyCheck(t *testing.T) {
	configMaps := func(name, validation string, names ...string) admissionv1.ValidatingAdmissionPolicy {
		return admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: admissionv1.ValidatingAdmissionPolicySpec{MatchConstraints: &admissionv1.MatchResources{
				ResourceRules: []admissionv1.NamedRuleWithOperations{{ResourceNames: names, RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"*"}, Resources: []string{"configmaps"}}}}}},
				Validations: []admissionv1.Validation{{Expression: validation}}}}
	}
	store := func(name string, names ...string) admissionv1.ValidatingAdmissionPolicy {
		return configMaps(name, "variables.ann.all(k, !k.startsWith('approve.runai-ldap-sync.github.io/'))", names...)
	}
	fence := policy("fence", sa)
	// The shipped fence matches every ConfigMap write too, only to keep
	// the daemon's in the Run:AI namespace.
	fenceOnConfigMaps := configMaps("fence", "!variables.isConfigMap || request.namespace == variables.runaiNS")
	for _, tc := range []struct {
		name   string
		pols   []admissionv1.ValidatingAdmissionPolicy
		binds  []admissionv1.ValidatingAdmissionPolicyBinding
		status Status
		want   string
	}{
		{name: "the shipped one", pols: []admissionv1.ValidatingAdmissionPolicy{fence, store("state", "runai-ldap-sync-state")},
			binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("b", "fence", admissionv1.Deny), binding("s", "state", admissionv1.Deny)}, status: OK, want: "state, bound by s"},
		{name: "only the fence", pols: []admissionv1.ValidatingAdmissionPolicy{fence},
			binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("b", "fence", admissionv1.Deny)}, status: Fail, want: "may write approvals"},
		{name: "only the fence, which matches ConfigMap writes too", pols: []admissionv1.ValidatingAdmissionPolicy{fenceOnConfigMaps},
			binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("b", "fence", admissionv1.Deny)}, status: Fail, want: "may write approvals"},
		{name: "another ConfigMap's", pols: []admissionv1.ValidatingAdmissionPolicy{store("state", "other")},
			binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("s", "state", admissionv1.Deny)}, status: Fail, want: "may write approvals"},
		{name: "unbound", pols: []admissionv1.ValidatingAdmissionPolicy{store("state", "runai-ldap-sync-state")}, status: Fail, want: "has no ValidatingAdmissionPolicyBinding"},
		{name: "audit only", pols: []admissionv1.ValidatingAdmissionPolicy{store("state")},
			binds: []admissionv1.ValidatingAdmissionPolicyBinding{binding("s", "state", admissionv1.Audit)}, status: Fail, want: "does not deny"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := StorePolicyCheck(tc.pols, tc.binds)
			if c.Name != CheckStorePolicy || c.Status != tc.status || !strings.Contains(c.Message, tc.want) || (c.Status != OK && c.Fix == "") {
				t.Errorf("got %+v, want %s saying %q", c, tc.status, tc.want)
			}
		})
	}
}
