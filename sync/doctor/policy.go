package doctor

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

// CheckPolicy is the name of the admission policy check.
const CheckPolicy = "admission-policy"

const policyFix = "install deploy/admission-policy.yaml and deploy/admission-policy-params.yaml (the chart does by default); " +
	"if the daemon runs under another ServiceAccount, put its name in the policy's matchConditions"

// Fence is the admission policy that applies to the daemon's requests and
// its binding, as FindFence found them.
type Fence struct {
	Policy  *admissionv1.ValidatingAdmissionPolicy
	Binding *admissionv1.ValidatingAdmissionPolicyBinding
	// User is the daemon's user name it was found for.
	User string
}

// FindFence finds the ValidatingAdmissionPolicy whose matchConditions
// name user (the daemon's user name) and a binding of it that denies. A
// Check is returned when there is none (or it cannot act); otherwise the
// caller reads the binding's parameters and calls FenceParamsCheck.
func FindFence(user string, policies []admissionv1.ValidatingAdmissionPolicy, bindings []admissionv1.ValidatingAdmissionPolicyBinding) (*Fence, *Check) {
	var pol *admissionv1.ValidatingAdmissionPolicy
	for i := range policies {
		if mentions(&policies[i], user) {
			pol = &policies[i]
			break
		}
	}
	if pol == nil {
		return nil, &Check{Name: CheckPolicy, Status: Fail,
			Message: fmt.Sprintf("no ValidatingAdmissionPolicy applies to %s: its token may create any binding of Run:AI's roles (e.g. for system:authenticated) that RBAC cannot narrow", user),
			Fix:     policyFix}
	}
	b, bad := denyingBinding(CheckPolicy, pol, bindings)
	if bad != nil {
		return nil, bad
	}
	return &Fence{Policy: pol, Binding: b, User: user}, nil
}

// denyingBinding returns a binding of pol that denies, or the failed check
// (named name) when pol is not bound or only warns or audits.
func denyingBinding(name string, pol *admissionv1.ValidatingAdmissionPolicy, bindings []admissionv1.ValidatingAdmissionPolicyBinding) (*admissionv1.ValidatingAdmissionPolicyBinding, *Check) {
	var found []admissionv1.ValidatingAdmissionPolicyBinding
	for _, b := range bindings {
		if b.Spec.PolicyName == pol.Name {
			found = append(found, b)
		}
	}
	if len(found) == 0 {
		return nil, &Check{Name: name, Status: Fail,
			Message: fmt.Sprintf("ValidatingAdmissionPolicy %s has no ValidatingAdmissionPolicyBinding: it is not enforced", pol.Name),
			Fix:     "apply the ValidatingAdmissionPolicyBinding of deploy/admission-policy.yaml (policyName " + pol.Name + ", validationActions [Deny])"}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	for i := range found {
		if slices.Contains(found[i].Spec.ValidationActions, admissionv1.Deny) {
			return &found[i], nil
		}
	}
	return nil, &Check{Name: name, Status: Fail,
		Message: fmt.Sprintf("ValidatingAdmissionPolicyBinding %s of %s does not deny (validationActions %v): violations are only reported", found[0].Name, pol.Name, found[0].Spec.ValidationActions),
		Fix:     "set validationActions: [Deny] in ValidatingAdmissionPolicyBinding " + found[0].Name}
}

// CheckStorePolicy is the name of the check of the guard store's policy.
const CheckStorePolicy = "admission-policy.store"

// StorePolicyCheck checks that a denying ValidatingAdmissionPolicy guards
// writes to the guard's store (ConfigMap model.StateConfigMap): without
// it, the daemon's token (a stolen one) may write approvals there and so
// approve what the guard holds.
func StorePolicyCheck(policies []admissionv1.ValidatingAdmissionPolicy, bindings []admissionv1.ValidatingAdmissionPolicyBinding) Check {
	for i := range policies {
		if !guardsStore(&policies[i]) {
			continue
		}
		b, bad := denyingBinding(CheckStorePolicy, &policies[i], bindings)
		if bad != nil {
			return *bad
		}
		return Check{Name: CheckStorePolicy, Status: OK,
			Message: fmt.Sprintf("ValidatingAdmissionPolicy %s, bound by %s, guards ConfigMap %s", policies[i].Name, b.Name, model.StateConfigMap)}
	}
	return Check{Name: CheckStorePolicy, Status: Fail,
		Message: fmt.Sprintf("no ValidatingAdmissionPolicy guards ConfigMap %s (the guard's store): the daemon's token may write approvals there and so approve the removals and additions the guard holds", model.StateConfigMap),
		Fix:     "install the policy runai-ldap-sync-state and its binding from deploy/admission-policy.yaml (the chart does by default)"}
}

// guardsStore reports whether p's matchConstraints take writes to the
// store (configmaps, with no resourceNames or the store's among them) and
// one of its validations is about the approval annotations: the fence
// also matches ConfigMap writes, but only to keep them in the Run:AI
// namespace, so matching alone says nothing about approvals.
func guardsStore(p *admissionv1.ValidatingAdmissionPolicy) bool {
	if p.Spec.MatchConstraints == nil || !slices.ContainsFunc(p.Spec.Validations, func(v admissionv1.Validation) bool {
		return strings.Contains(v.Expression, model.ApprovalPrefix)
	}) {
		return false
	}
	for _, r := range p.Spec.MatchConstraints.ResourceRules {
		if (slices.Contains(r.APIGroups, "") || slices.Contains(r.APIGroups, "*")) &&
			(slices.Contains(r.Resources, "configmaps") || slices.Contains(r.Resources, "*")) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, model.StateConfigMap)) &&
			(slices.Contains(r.Operations, admissionv1.Update) || slices.Contains(r.Operations, admissionv1.OperationAll)) {
			return true
		}
	}
	return false
}

// mentions reports whether one of p's matchConditions names user, quoted
// as a CEL string, or matches it with username.matches('<RE2>') (the
// shipped policy matches the ServiceAccount name in any namespace; CEL's
// matches is RE2, as Go's regexp).
func mentions(p *admissionv1.ValidatingAdmissionPolicy, user string) bool {
	for _, mc := range p.Spec.MatchConditions {
		if strings.Contains(mc.Expression, "'"+user+"'") || strings.Contains(mc.Expression, `"`+user+`"`) {
			return true
		}
		for _, m := range usernameMatches.FindAllStringSubmatch(mc.Expression, -1) {
			if re, err := regexp.Compile(m[1] + m[2]); err == nil && re.MatchString(user) {
				return true
			}
		}
	}
	return false
}

// usernameMatches finds request.userInfo.username.matches('...') (or "...").
var usernameMatches = regexp.MustCompile(`request\.userInfo\.username\.matches\(\s*(?:'([^']*)'|"([^"]*)")\s*\)`)

// FenceParamsCheck checks the fence's parameters against the daemon's
// configuration. params is the ConfigMap's data, nil when it does not
// exist; readErr is set when it could not be read.
func FenceParamsCheck(f *Fence, params map[string]string, readErr error, cfg *config.Config) Check {
	c := Check{Name: CheckPolicy}
	ref := f.Binding.Spec.ParamRef
	what := fmt.Sprintf("ValidatingAdmissionPolicy %s, bound by %s", f.Policy.Name, f.Binding.Name)
	if ref == nil || ref.Name == "" {
		c.Status, c.Message = OK, what+", applies to the daemon's requests"
		return c
	}
	where := ref.Namespace + "/" + ref.Name
	// The shipped fence allows writes only from the ServiceAccount of the
	// parameters' namespace (variables.home): another namespace's is
	// matched, then refused every write.
	saNS, isSA := serviceAccountNamespace(f.User)
	switch {
	case isSA && ref.Namespace != "" && saNS != ref.Namespace:
		c.Status = Fail
		c.Message = fmt.Sprintf("%s: its parameters are in namespace %s, so it allows writes only from ServiceAccounts of %s; %s is refused every write", what, ref.Namespace, ref.Namespace, f.User)
		c.Fix = fmt.Sprintf("point the paramRef of ValidatingAdmissionPolicyBinding %s to namespace %s and put ConfigMap %s there (deploy/admission-policy-params.yaml), or run the daemon in %s", f.Binding.Name, saNS, ref.Name, ref.Namespace)
		return c
	case readErr != nil:
		c.Status = Warn
		c.Message = fmt.Sprintf("%s, applies to the daemon's requests; its parameters (ConfigMap %s) could not be read: %v", what, where, readErr)
		c.Fix = "run doctor with credentials that may read ConfigMaps in " + ref.Namespace
		return c
	case params == nil:
		c.Status = Fail
		c.Message = fmt.Sprintf("%s: its parameters, ConfigMap %s, do not exist, so every write of the daemon is refused", what, where)
		c.Fix = "apply deploy/admission-policy-params.yaml (in namespace " + ref.Namespace + ")"
		return c
	}
	var wrong []string
	want := map[string]string{"namespaceLabel": cfg.Projects.NamespaceLabel, "runaiNamespace": cfg.Kubernetes.RunaiNamespace}
	for _, k := range []string{"namespaceLabel", "runaiNamespace"} {
		if v, ok := params[k]; ok && v != want[k] {
			wrong = append(wrong, fmt.Sprintf("%s is %q, the config says %q", k, v, want[k]))
		}
	}
	if v, ok := params["maxBindingShards"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n < cfg.Kubernetes.MaxBindingShards {
			wrong = append(wrong, fmt.Sprintf("maxBindingShards is %d, below kubernetes.maxBindingShards %d", n, cfg.Kubernetes.MaxBindingShards))
		}
	}
	if len(wrong) > 0 {
		c.Status = Fail
		c.Message = fmt.Sprintf("%s: parameters in ConfigMap %s disagree with the daemon's configuration: %s (its writes there are refused)", what, where, strings.Join(wrong, "; "))
		c.Fix = "make ConfigMap " + where + " match the configuration (the chart derives both from the same values)"
		return c
	}
	c.Status, c.Message = OK, fmt.Sprintf("%s, applies to the daemon's requests (parameters %s)", what, where)
	return c
}

// serviceAccountNamespace returns the namespace of a ServiceAccount's
// user name (system:serviceaccount:NAMESPACE:NAME).
func serviceAccountNamespace(user string) (string, bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", false
	}
	ns, _, ok := strings.Cut(rest, ":")
	return ns, ok
}
