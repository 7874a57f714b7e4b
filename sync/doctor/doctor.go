package doctor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/plan"
)

// More check names.
const (
	CheckBindLDAP  = "ldap.bind"
	CheckBases     = "ldap.bases"
	CheckGroups    = "ldap.groups"
	CheckDeletions = "ldap.deletions"
	CheckKube      = "kube.connect"
)

// Directory is what doctor reads from the directory (ldapsrc.Source).
// Every read shares one connection: one bind for the whole run.
type Directory interface {
	CheckBases(ctx context.Context, fg *config.FromGroups) ([]ldapsrc.BaseCheck, error)
	FindPeople(ctx context.Context, names []string) ([]ldapsrc.Person, error)
	Mark(ctx context.Context) (ldapsrc.Cursor, error)
}

// Projects is what a dry-run cycle found: the current projects and the
// groups it looked for.
type Projects struct {
	Projects []plan.Project
	// Missing are group names not found; Failed groups whose read failed.
	Missing []string
	Failed  map[string]error
	// Err is set when the projects could not be found at all.
	Err error
}

// Doctor runs the checks. Every read is read-only.
type Doctor struct {
	Config *config.Config
	Dir    Directory
	// Kube is the API server as the credentials doctor runs with; Where
	// says which (e.g. "https://… from $KUBECONFIG").
	Kube  kubernetes.Interface
	Where string
	// KubeErr is why there is no Kube (no configuration found).
	KubeErr error
	// User, when set, is the API server as a person who logs in with OIDC
	// (--user-kubeconfig), for the user-ID check; nil: the caller.
	User kubernetes.Interface
	// DirectoryUser names that person in the directory (any of
	// ldapsrc.PersonAttributes); "": derived from the API server's name.
	DirectoryUser string
	// DaemonUser is the daemon's Kubernetes user name, or its
	// ServiceAccount as namespace/name or name; "": the caller when
	// it is a ServiceAccount, else the ServiceAccount runai-ldap-sync in
	// kubernetes.runaiNamespace.
	DaemonUser string
	// Plan runs a dry-run cycle (after the directory and the API server
	// answered).
	Plan func(ctx context.Context) Projects
	// TemplateRoles are the ClusterRoles the project template binds
	// (projects.template), which the daemon must be allowed to bind.
	TemplateRoles []string
	// Sample is how many bound users per binding kind are reviewed (default 2).
	Sample int
}

// Run runs every check and returns the report.
func (d *Doctor) Run(ctx context.Context) *Report {
	r := &Report{}
	ldapOK := d.checkDirectory(ctx, r)
	caller, kubeOK := d.checkKube(ctx, r)
	var projects Projects
	if ldapOK && kubeOK {
		projects = d.Plan(ctx)
		d.checkGroups(r, projects)
	} else {
		r.add(Check{Name: CheckGroups, Status: Warn, Message: "not checked: the directory or the API server could not be used (see above)", Fix: "fix the failures above and run doctor again"})
	}
	if ldapOK {
		d.checkDeletions(ctx, r)
	}
	if kubeOK {
		daemon := d.daemonUser(caller)
		d.checkClusterRoles(ctx, r)
		rv := &reviewer{cs: d.Kube, self: daemon == caller, user: daemon}
		for _, a := range BindAccess() {
			ok, reason, err := rv.review(ctx, a)
			if err != nil {
				r.add(cannotReview(CheckBind, caller, err))
				break
			}
			r.add(BindCheck(daemon, a, ok, reason))
		}
		projectNS := ""
		if len(projects.Projects) > 0 {
			projectNS = projects.Projects[0].Namespace
		}
		d.checkDaemonRBAC(ctx, r, rv, caller, projectNS)
		d.checkPolicy(ctx, r, daemon)
		d.checkGrants(ctx, r, caller, projects.Projects)
	}
	if ldapOK {
		d.checkUserID(ctx, r, caller, kubeOK)
	}
	return r
}

func (d *Doctor) checkDirectory(ctx context.Context, r *Report) bool {
	cfg := d.Config.LDAP
	bases, err := d.Dir.CheckBases(ctx, d.Config.Projects.FromGroups)
	if err != nil {
		c := Check{Name: CheckBindLDAP, Status: Fail, Message: fmt.Sprintf("bind as %s failed: %v", cfg.BindDN, err)}
		var ce *ldapsrc.CredentialsError
		switch {
		case errors.As(err, &ce) && ce.Locked:
			c.Message = fmt.Sprintf("the directory refused the bind as %s: the account is locked out (tried once; not retried)", cfg.BindDN)
			c.Fix = "wait for the lockout to end or have an AD admin unlock the account, then look for whoever uses a wrong password for it"
		case errors.As(err, &ce):
			c.Message = fmt.Sprintf("the directory refused the password for %s (tried once and not again: every try counts toward the account's lockout)", cfg.BindDN)
			c.Fix = fmt.Sprintf("put the account's current password in %s (ldap.bindPasswordFile, the Secret mounted there), or fix ldap.bindDN", cfg.BindPasswordFile)
		default:
			c.Fix = "check ldap.urls, the TLS settings (caFile, serverName, startTLS) and that the server answers from here"
		}
		r.add(c)
		return false
	}
	r.add(Check{Name: CheckBindLDAP, Status: OK, Message: "bound to the directory as " + cfg.BindDN})
	for _, b := range bases {
		c := Check{Name: CheckBases, Status: OK, Message: fmt.Sprintf("%s %s is readable", b.Key, b.DN)}
		switch {
		case b.Err != nil:
			c.Status, c.Message = Fail, fmt.Sprintf("%s %s could not be read: %v", b.Key, b.DN, b.Err)
			c.Fix = "check " + b.Key + " and the bind account's read access to it"
		case !b.Found:
			c.Status, c.Message = Fail, fmt.Sprintf("%s %s does not exist, or the bind account may not read it", b.Key, b.DN)
			c.Fix = "fix " + b.Key + " (a DN such as OU=Groups,DC=example,DC=com), or grant the bind account read access"
		}
		r.add(c)
	}
	return true
}

func (d *Doctor) checkKube(ctx context.Context, r *Report) (string, bool) {
	if d.KubeErr != nil || d.Kube == nil {
		r.add(Check{Name: CheckKube, Status: Fail, Message: fmt.Sprintf("no API server to check: %v", d.KubeErr),
			Fix: "pass --kubeconfig FILE (and --context), or set $KUBECONFIG"})
		return "", false
	}
	name, err := whoAmI(ctx, d.Kube)
	if err != nil {
		r.add(Check{Name: CheckKube, Status: Fail, Message: fmt.Sprintf("the API server (%s) did not answer who we are: %v", d.Where, err),
			Fix: "check --kubeconfig/--context (or $KUBECONFIG), that the API server is reachable, and that the credentials are valid"})
		return "", false
	}
	r.add(Check{Name: CheckKube, Status: OK, Message: fmt.Sprintf("the API server (%s) knows us as %s", d.Where, name)})
	return name, true
}

// whoAmI asks the API server for the caller's user name (SelfSubjectReview,
// authentication.k8s.io/v1: `kubectl auth whoami`).
func whoAmI(ctx context.Context, cs kubernetes.Interface) (string, error) {
	res, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return res.Status.UserInfo.Username, nil
}

func (d *Doctor) daemonUser(caller string) string {
	switch {
	case strings.HasPrefix(d.DaemonUser, "system:"):
		return d.DaemonUser
	case d.DaemonUser != "":
		// namespace/name, or a name in kubernetes.runaiNamespace.
		ns, name, ok := strings.Cut(d.DaemonUser, "/")
		if !ok {
			ns, name = d.Config.Kubernetes.RunaiNamespace, d.DaemonUser
		}
		return "system:serviceaccount:" + ns + ":" + name
	case strings.HasPrefix(caller, "system:serviceaccount:"):
		return caller
	}
	return "system:serviceaccount:" + d.Config.Kubernetes.RunaiNamespace + ":runai-ldap-sync"
}

func (d *Doctor) checkGroups(r *Report, p Projects) {
	if p.Err != nil && len(p.Projects) == 0 {
		r.add(Check{Name: CheckGroups, Status: Fail, Message: "could not find the projects: " + p.Err.Error(),
			Fix: "see `runai-ldap-sync diff` for the whole error"})
		return
	}
	if len(p.Projects) == 0 {
		r.add(Check{Name: CheckGroups, Status: Warn, Message: "no projects found: no group is looked for",
			Fix: fmt.Sprintf("label each project's namespace %s=<project>, or list them in projects.static", d.Config.Projects.NamespaceLabel)})
		return
	}
	missing := map[string]bool{}
	for _, m := range p.Missing {
		missing[m] = true
	}
	wants := plan.WantedGroups(d.Config.Groups, p.Projects)
	bad := 0
	for _, w := range wants {
		of := w.Key + " " + w.Template
		if w.Project != "" {
			of += ", project " + w.Project
		}
		if err, ok := p.Failed[w.Name]; ok {
			bad++
			r.add(Check{Name: CheckGroups, Status: Fail, Message: fmt.Sprintf("group %s (%s) could not be read: %v", w.Name, of, err),
				Fix: "check the bind account's read access to the group and its members"})
		} else if missing[w.Name] {
			bad++
			r.add(Check{Name: CheckGroups, Status: Warn, Message: fmt.Sprintf("group %s (%s) was not found: it grants no one", w.Name, of),
				Fix: fmt.Sprintf("create the group under %s, or fix the template %s", d.Config.LDAP.GroupBase(), w.Key)})
		}
	}
	if bad == 0 {
		r.add(Check{Name: CheckGroups, Status: OK, Message: fmt.Sprintf("all %d groups of %d projects found", len(wants), len(p.Projects))})
	}
}

func (d *Doctor) checkDeletions(ctx context.Context, r *Report) {
	c := Check{Name: CheckDeletions}
	if !d.Config.Incremental.Enabled {
		c.Status, c.Message = OK, "incremental polls are off: deletions reach the bindings at each full cycle"
		r.add(c)
		return
	}
	cur, err := d.Dir.Mark(ctx)
	switch {
	case err != nil:
		c.Status, c.Message = Warn, "could not read the directory's change markers: "+err.Error()
		c.Fix = "polls will fail the same way; check the bind account's read access to the rootDSE and the naming context"
	case cur.Deletions:
		c.Status, c.Message = OK, "polls see deletions"
		if cur.LogBase != "" {
			c.Message += " (OpenLDAP access log " + cur.LogBase + ")"
		}
	case d.Config.LDAP.Schema == config.SchemaActiveDirectory:
		c.Status = Warn
		c.Message = "polls do not see deleted objects (no tombstone readable under CN=Deleted Objects): a deleted user or group leaves the bindings only at the next full cycle"
		c.Fix = "grant the bind account List Contents and Read Property on CN=Deleted Objects (dsacls \"CN=Deleted Objects,<domain>\" /takeownership, then /G <account>:LCRP); a domain with no deletion yet also reads as not visible"
	default:
		c.Status = Warn
		c.Message = "polls do not see deletions (no readable accesslog database): a deleted user or group leaves the bindings only at the next full cycle"
		c.Fix = "enable OpenLDAP's accesslog overlay (logops writes) and let the bind account read it: see docs/operations.md"
	}
	r.add(c)
}

func (d *Doctor) checkClusterRoles(ctx context.Context, r *Report) {
	for _, name := range RunaiRoles {
		c := Check{Name: CheckClusterRoles}
		_, err := d.Kube.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			c.Status, c.Message = OK, "ClusterRole "+name+" exists"
		case apierrors.IsNotFound(err):
			c.Status, c.Message = Fail, "ClusterRole "+name+" does not exist: the bindings to it grant nothing (and the daemon cannot create them)"
			c.Fix = "install Run:AI's cluster components (they create it), or check that this is the right cluster"
		case apierrors.IsForbidden(err):
			c.Status, c.Message = Warn, "could not check ClusterRole "+name+": "+err.Error()
			c.Fix = "run doctor as a cluster admin to check it (the daemon's token may only bind it)"
		default:
			c.Status, c.Message = Fail, "could not read ClusterRole "+name+": "+err.Error()
			c.Fix = "check the API server"
		}
		r.add(c)
	}
}

func (d *Doctor) checkDaemonRBAC(ctx context.Context, r *Report, rv *reviewer, caller, projectNS string) {
	accesses := DaemonAccess(d.Config, projectNS, d.TemplateRoles)
	var denied []Denied
	for _, a := range accesses {
		ok, reason, err := rv.review(ctx, a)
		if err != nil {
			r.add(cannotReview(CheckDaemonRBAC, caller, err))
			return
		}
		if !ok {
			denied = append(denied, Denied{Access: a, Reason: reason})
		}
	}
	r.add(DaemonRBACCheck(rv.user, len(accesses), denied))
}

func cannotReview(name, caller string, err error) Check {
	c := Check{Name: name, Status: Warn, Message: fmt.Sprintf("could not ask the API server as %s: %v", caller, err),
		Fix: "run doctor as a cluster admin (who may create subjectaccessreviews), or with the daemon's own token"}
	if !apierrors.IsForbidden(err) {
		c.Status, c.Fix = Fail, "check the API server"
	}
	return c
}

func (d *Doctor) checkPolicy(ctx context.Context, r *Report, daemon string) {
	adm := d.Kube.AdmissionregistrationV1()
	pols, err := adm.ValidatingAdmissionPolicies().List(ctx, metav1.ListOptions{})
	var binds []admissionv1.ValidatingAdmissionPolicyBinding
	if err == nil {
		var bl *admissionv1.ValidatingAdmissionPolicyBindingList
		if bl, err = adm.ValidatingAdmissionPolicyBindings().List(ctx, metav1.ListOptions{}); err == nil {
			binds = bl.Items
		}
	}
	if err != nil {
		c := Check{Name: CheckPolicy, Status: Warn, Message: "could not read the admission policies: " + err.Error(),
			Fix: "run doctor as a cluster admin to check the admission policy"}
		if !apierrors.IsForbidden(err) {
			c.Status = Fail
			c.Fix = "the API server must serve admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (Kubernetes 1.30 or later)"
		}
		r.add(c)
		return
	}
	r.add(d.fenceCheck(ctx, daemon, pols.Items, binds))
	r.add(StorePolicyCheck(pols.Items, binds))
}

// fenceCheck checks the policy that applies to the daemon's requests.
func (d *Doctor) fenceCheck(ctx context.Context, daemon string, pols []admissionv1.ValidatingAdmissionPolicy, binds []admissionv1.ValidatingAdmissionPolicyBinding) Check {
	fence, bad := FindFence(daemon, pols, binds)
	if bad != nil {
		return *bad
	}
	var data map[string]string
	var readErr error
	if ref := fence.Binding.Spec.ParamRef; ref != nil && ref.Name != "" {
		cm, err := d.Kube.CoreV1().ConfigMaps(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			readErr = err
		default:
			data = cm.Data
			if data == nil {
				data = map[string]string{}
			}
		}
	}
	return FenceParamsCheck(fence, data, readErr, d.Config)
}

// checkGrants asks, for a sample of the users each managed binding holds,
// whether they may do what Run:AI's CLI does (SubjectAccessReview as
// that user): the roles really grant it.
func (d *Doctor) checkGrants(ctx context.Context, r *Report, caller string, projects []plan.Project) {
	n := d.Sample
	if n <= 0 {
		n = 2
	}
	for _, g := range GrantKinds {
		users, ns, what := d.grantSample(ctx, g, projects)
		c := Check{Name: CheckGrants}
		if len(users) == 0 {
			c.Status, c.Message = Warn, what+" holds no user yet: what it grants is not checked"
			c.Fix = "run `runai-ldap-sync once` (or wait for the daemon's first cycle), then doctor again"
			r.add(c)
			continue
		}
		sort.Strings(users)
		if len(users) > n {
			users = users[:n]
		}
		var denied []string
		for _, u := range users {
			rv := &reviewer{cs: d.Kube, user: u, plainUser: true}
			for _, a := range g.For(ns) {
				ok, _, err := rv.review(ctx, a)
				if err != nil {
					r.add(cannotReview(CheckGrants, caller, err))
					return
				}
				if !ok {
					denied = append(denied, u+" may not "+a.String())
				}
			}
		}
		if len(denied) > 0 {
			c.Status = Fail
			c.Message = fmt.Sprintf("%s binds ClusterRole %s, but %s: Run:AI's CLI fails for them", what, g.Role, strings.Join(denied, "; "))
			c.Fix = fmt.Sprintf("ClusterRole %s lacks what Run:AI installs in it: compare `kubectl get clusterrole %s -o yaml` with Run:AI's install for your version", g.Role, g.Role)
		} else {
			c.Status, c.Message = OK, fmt.Sprintf("%s: %s may %s", what, strings.Join(users, ", "), accessList(g.For(ns)))
		}
		r.add(c)
	}
}

// grantSample reads the binding of kind g whose users checkGrants
// samples: the viewer binding, the first project executor binding that
// holds users, or the index map. It returns its users, the namespace their
// access is asked in, and the binding's name as the check says it.
func (d *Doctor) grantSample(ctx context.Context, g GrantKind, projects []plan.Project) (users []string, ns, what string) {
	runaiNS := d.Config.Kubernetes.RunaiNamespace
	rbac := d.Kube.RbacV1()
	switch g.Binding {
	case model.ViewerBinding:
		what = "ClusterRoleBinding " + g.Binding
		b, err := rbac.ClusterRoleBindings().Get(ctx, g.Binding, metav1.GetOptions{})
		if err == nil {
			users = usersOf(b.Subjects)
		}
		if len(projects) > 0 {
			ns = projects[0].Namespace
		}
	case model.ExecutorBinding:
		for _, p := range projects {
			b, err := rbac.RoleBindings(p.Namespace).Get(ctx, g.Binding, metav1.GetOptions{})
			if err == nil && len(usersOf(b.Subjects)) > 0 {
				return usersOf(b.Subjects), p.Namespace, "RoleBinding " + p.Namespace + "/" + g.Binding
			}
		}
		what = "RoleBinding " + g.Binding + " (no project has one with users)"
	case model.IndexMapBinding:
		what, ns = "RoleBinding "+runaiNS+"/"+g.Binding, runaiNS
		b, err := rbac.RoleBindings(runaiNS).Get(ctx, g.Binding, metav1.GetOptions{})
		if err == nil {
			users = usersOf(b.Subjects)
		}
	}
	return users, ns, what
}

func accessList(as []Access) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

func (d *Doctor) checkUserID(ctx context.Context, r *Report, caller string, kubeOK bool) {
	c := Check{Name: CheckUserID}
	name := caller
	if d.User != nil {
		var err error
		if name, err = whoAmI(ctx, d.User); err != nil {
			c.Status, c.Message = Fail, "the API server did not answer who the --user-kubeconfig user is: "+err.Error()
			c.Fix = "check --user-kubeconfig and --user-context, and that the user's login (e.g. OIDC token) is current"
			r.add(c)
			return
		}
	} else if !kubeOK || strings.HasPrefix(name, "system:") {
		c.Status = Warn
		c.Message = "the user-ID shape is not checked: doctor runs as " + orUnknown(name) + ", not as a person from the directory"
		c.Fix = "run doctor with --user-kubeconfig FILE, the kubeconfig of a person who logs in to the cluster (e.g. with OIDC)"
		r.add(c)
		return
	}
	cands := Candidates(name)
	if d.DirectoryUser != "" {
		cands = []string{d.DirectoryUser}
	}
	people, err := d.Dir.FindPeople(ctx, cands)
	if err != nil {
		c.Status, c.Message = Fail, "could not search the directory for "+name+": "+err.Error()
		c.Fix = "check ldap.userBaseDN and ldap.userFilter"
		r.add(c)
		return
	}
	r.add(UserIDCheck(name, people, d.Config.LDAP))
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown user"
	}
	return s
}

// reviewer asks the API server whether user may do something: as
// themselves (SelfSubjectAccessReview) when self, else for them
// (SubjectAccessReview, which needs create on subjectaccessreviews).
type reviewer struct {
	cs   kubernetes.Interface
	self bool
	user string
	// plainUser: a person (no ServiceAccount groups).
	plainUser bool
}

func (rv *reviewer) review(ctx context.Context, a Access) (bool, string, error) {
	attrs := &authzv1.ResourceAttributes{Verb: a.Verb, Group: a.Group, Resource: a.Resource, Subresource: a.Subresource,
		Namespace: a.Namespace, Name: a.Name}
	if rv.self {
		res, err := rv.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}}, metav1.CreateOptions{})
		if err != nil {
			return false, "", err
		}
		return res.Status.Allowed, res.Status.Reason, nil
	}
	spec := authzv1.SubjectAccessReviewSpec{ResourceAttributes: attrs, User: rv.user, Groups: []string{"system:authenticated"}}
	if ns, ok := serviceAccountNamespace(rv.user); ok && !rv.plainUser {
		spec.Groups = append(spec.Groups, "system:serviceaccounts", "system:serviceaccounts:"+ns)
	}
	res, err := rv.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	return res.Status.Allowed, res.Status.Reason, nil
}

// usersOf returns the names of the User subjects.
func usersOf(subjects []rbacv1.Subject) []string {
	var out []string
	for _, s := range subjects {
		if model.IsUser(model.Subject{Kind: s.Kind, APIGroup: s.APIGroup, Name: s.Name}) {
			out = append(out, s.Name)
		}
	}
	return out
}
