// Package config holds the runai-ldap-sync configuration file: its schema,
// defaults, strict loading and validation.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Modes.
const (
	ModeEnforce = "enforce"
	ModeDryRun  = "dry-run"
)

// Policies decide which subjects a cycle may remove.
const (
	// PolicySync removes only subjects this tool added itself.
	PolicySync = "sync"
	// PolicyUpsertOnly never removes anything.
	PolicyUpsertOnly = "upsert-only"
	// PolicyAuthoritative removes every User subject that is not desired.
	PolicyAuthoritative = "authoritative"
)

// User ID case handling.
const (
	CaseLower    = "lower"
	CasePreserve = "preserve"
)

// Directory schemas.
const (
	SchemaActiveDirectory = "activeDirectory"
	// SchemaGroupOfNames is OpenLDAP/389-DS/FreeIPA groupOfNames or
	// groupOfUniqueNames with member DNs, nested groups expanded here.
	SchemaGroupOfNames = "groupOfNames"
	// SchemaRFC2307 is posixGroup with memberUid values that are user IDs.
	SchemaRFC2307 = "rfc2307"
)

// Member resolution strategies for Active Directory.
const (
	ResolveInChain = "inChain"
	ResolveExpand  = "expand"
)

// ProjectPlaceholder is replaced by the project name in group name templates.
const ProjectPlaceholder = "{project}"

// Config is the whole configuration file.
type Config struct {
	// Schedule is a robfig/cron spec ("@every 5m", "*/10 * * * *").
	Schedule string `yaml:"schedule"`
	// Mode is enforce (write) or dry-run (compute and report only).
	Mode string `yaml:"mode"`
	// Policy decides what may be removed: sync, upsert-only, authoritative.
	Policy string `yaml:"policy"`
	// Guard limits how much may be removed from (or added to) one binding
	// within a rolling window.
	Guard Guard `yaml:"guard"`
	// Ownership decides which users present in a binding are the tool's.
	Ownership  Ownership  `yaml:"ownership"`
	LDAP       LDAP       `yaml:"ldap"`
	Groups     Groups     `yaml:"groups"`
	Projects   Projects   `yaml:"projects"`
	Kubernetes Kubernetes `yaml:"kubernetes"`
	Server     Server     `yaml:"server"`
	// LeaderElection lets several replicas of `run` stand by while one writes.
	LeaderElection LeaderElection `yaml:"leaderElection"`
	// Repair re-applies the desired state to bindings edited by hand.
	Repair Repair `yaml:"repair"`
	// Retry spaces the retries of a failed cycle.
	Retry Retry `yaml:"retry"`
	// Incremental polls the directory for changes between full cycles.
	Incremental Incremental `yaml:"incremental"`

	// FileRoot is the directory every file named here must be in (Load
	// sets it; never from the file itself). "" confines nothing.
	FileRoot string `yaml:"-"`
}

// Incremental configures change detection between full cycles: every
// PollInterval the directory is asked what changed (AD: highestCommittedUSN
// and uSNChanged; OpenLDAP: entryCSN), and only the bindings fed by a
// changed group or user are re-synced. The schedule stays the safety net.
type Incremental struct {
	Enabled      bool          `yaml:"enabled"`
	PollInterval time.Duration `yaml:"pollInterval"`
}

// LeaderElection configures the Lease (in kubernetes.runaiNamespace) that
// replicas of `run` compete for; only the holder writes. once and diff
// never take part.
type LeaderElection struct {
	Enabled       bool          `yaml:"enabled"`
	LeaseName     string        `yaml:"leaseName"`
	LeaseDuration time.Duration `yaml:"leaseDuration"`
	RenewDeadline time.Duration `yaml:"renewDeadline"`
	RetryPeriod   time.Duration `yaml:"retryPeriod"`
}

// Repair configures drift repair between cycles: a managed binding changed
// or deleted by someone else is repaired from the last cycle's desired
// state (without reading the directory), at most once per MinInterval.
type Repair struct {
	Enabled     bool          `yaml:"enabled"`
	MinInterval time.Duration `yaml:"minInterval"`
}

// Retry bounds the exponential backoff between retries of a failed cycle.
type Retry struct {
	MinBackoff time.Duration `yaml:"minBackoff"`
	MaxBackoff time.Duration `yaml:"maxBackoff"`
}

// Guard holds the removal guard limits. Removals from one binding are
// counted over a rolling Window (across cycles, polls and repairs): when
// the window's total would exceed MaxRemovePercent of the users the tool
// manages there, or MaxRemoveCount, or empty the binding, the removals are
// held until approved.
type Guard struct {
	MaxRemovePercent int `yaml:"maxRemovePercent"`
	MaxRemoveCount   int `yaml:"maxRemoveCount"`
	// Window is how far back removals (and additions) are counted; 0
	// counts each write alone.
	Window time.Duration `yaml:"window"`
	// MaxAddCount holds the users one configured group brings to a
	// binding beyond this many in the window (creation and re-creation of
	// the binding included); the other groups' joiners pass. 0 is off.
	MaxAddCount int `yaml:"maxAddCount"`
	// AllowEmptyBelow lets a binding that manages fewer than this many
	// users lose any of them, or all, without approval; 0 guards every
	// binding.
	AllowEmptyBelow int `yaml:"allowEmptyBelow"`
}

// DefaultMaxAddCount is guard.maxAddCount's default: the users one group
// may bring to one binding per guard.window before the rest is held
// (docs/safety.md says why 20).
const DefaultMaxAddCount = 20

// Ownership decides which users present in a binding are the tool's
// (policy sync removes only those).
type Ownership struct {
	// Adopt makes a user already in a binding (put there by hand) the
	// tool's once the directory grants them, so they are removed when they
	// leave the group, in a binding the guard's store does not know yet:
	// adoption is for migrating a hand-kept binding, and a user put by hand
	// into a binding the tool manages is never adopted. Off: only users
	// the tool added are its own.
	Adopt bool `yaml:"adopt"`
}

// LDAP holds the directory connection and resolution settings.
type LDAP struct {
	URLs               []string      `yaml:"urls"`
	StartTLS           bool          `yaml:"startTLS"`
	CAFile             string        `yaml:"caFile"`
	ServerName         string        `yaml:"serverName"`
	InsecureSkipVerify bool          `yaml:"insecureSkipVerify"`
	AllowInsecure      bool          `yaml:"allowInsecure"`
	BindDN             string        `yaml:"bindDN"`
	BindPasswordFile   string        `yaml:"bindPasswordFile"`
	BaseDN             string        `yaml:"baseDN"`
	GroupBaseDN        string        `yaml:"groupBaseDN"`
	UserBaseDN         string        `yaml:"userBaseDN"`
	Schema             string        `yaml:"schema"`
	GroupNameAttribute string        `yaml:"groupNameAttribute"`
	UserIDAttribute    string        `yaml:"userIDAttribute"`
	UserIDCase         string        `yaml:"userIDCase"`
	UserIDPrefix       string        `yaml:"userIDPrefix"`
	PageSize           int           `yaml:"pageSize"`
	Timeout            time.Duration `yaml:"timeout"`
	// CycleTimeout bounds each of a cycle's directory reads as a whole
	// (project discovery; member resolution, all its searches and pages),
	// where Timeout bounds one request: a server that answers slowly but
	// forever cannot hold a cycle, and its bindings, indefinitely.
	CycleTimeout time.Duration `yaml:"cycleTimeout"`
	// UserFilter narrows which entries count as users (groupOfNames and
	// rfc2307 schemas), e.g. "(objectClass=inetOrgPerson)".
	UserFilter string `yaml:"userFilter"`
	// MemberResolution (activeDirectory): expand (default) reads every
	// user under the user base once, and the groups the project groups
	// reach, and expands nesting here; inChain
	// asks the server for each group's transitive members, one search per
	// group (on Samba about 1–2 s each: docs/performance.md).
	MemberResolution string `yaml:"memberResolution"`
	// MaxNestingDepth bounds nested group expansion (groupOfNames schema);
	// a deeper chain is an error for the group, never a shorter list.
	MaxNestingDepth int `yaml:"maxNestingDepth"`
	// AllowWellKnownGroups lets a project group reach Active Directory's
	// all-accounts groups (Domain Users, Domain Computers, Authenticated
	// Users, Everyone, and the primary-group membership that makes Domain
	// Users every account). Off (default): such a group is that group's
	// error and grants nobody, so a group owner who nests Domain Users
	// into a project group cannot grant the whole domain.
	AllowWellKnownGroups bool `yaml:"allowWellKnownGroups"`
	// MaxPacketBytes bounds one LDAP message read from the server (a
	// search entry with all its values, one page's entry at a time); a
	// larger one fails the read with an error naming this key, never an
	// unbounded allocation. Default 64 MiB.
	MaxPacketBytes int64 `yaml:"maxPacketBytes"`
}

// GroupBase is where groups are searched: ldap.groupBaseDN, else ldap.baseDN.
func (l LDAP) GroupBase() string {
	if l.GroupBaseDN != "" {
		return l.GroupBaseDN
	}
	return l.BaseDN
}

// UserBase is where users are searched: ldap.userBaseDN, else ldap.baseDN.
func (l LDAP) UserBase() string {
	if l.UserBaseDN != "" {
		return l.UserBaseDN
	}
	return l.BaseDN
}

// Groups holds the group name templates; {project} is replaced by the
// project name.
type Groups struct {
	Executors     []string `yaml:"executors"`
	Viewers       []string `yaml:"viewers"`
	GlobalViewers []string `yaml:"globalViewers"`
}

// Projects says where Run:AI projects come from, and (opt-in) how their
// namespaces are provisioned.
type Projects struct {
	NamespaceLabel string          `yaml:"namespaceLabel"`
	Static         []StaticProject `yaml:"static"`
	// CreateNamespaces creates the missing namespace of a static or
	// discovered project, labelled <namespaceLabel>=<project>.
	CreateNamespaces bool `yaml:"createNamespaces"`
	// LabelExistingNamespaces labels an existing, unlabelled namespace named
	// for a static or discovered project. A namespace labelled for another
	// project is never changed.
	LabelExistingNamespaces bool `yaml:"labelExistingNamespaces"`
	// NamespaceLabels are added to a namespace when it is created or
	// labelled (never overwriting a label it already has).
	NamespaceLabels map[string]string `yaml:"namespaceLabels"`
	// FromGroups discovers projects from directory group names.
	FromGroups *FromGroups `yaml:"fromGroups"`
	// Template is a file of objects (Run:AI's project template) kept present
	// in every project namespace.
	Template string `yaml:"template"`
	// ExcludeNamespaces are namespaces (names or globs like "team-*-infra")
	// that are never projects, whatever their labels, in addition to the
	// built-in ones (BuiltinFence: kube-*, openshift-*, default, Run:AI's
	// and KAI's namespaces, the daemon's own).
	ExcludeNamespaces []string `yaml:"excludeNamespaces"`
	// NamespacePattern, if set, is a glob every project namespace must
	// match (e.g. "runai-*").
	NamespacePattern string `yaml:"namespacePattern"`
	// MaxNewPerCycle caps how many projects one cycle adds (whoever can
	// create directory groups or label namespaces must not be able to add
	// thousands at once); the rest wait for the next cycles, reported.
	MaxNewPerCycle int `yaml:"maxNewPerCycle"`

	// OwnNamespace is the namespace the daemon runs in (never a project);
	// set at start from the environment, not from the file.
	OwnNamespace string `yaml:"-"`
	// runaiNamespace is kubernetes.runaiNamespace, copied by Validate so
	// that Fenced needs only the projects settings.
	runaiNamespace string
}

// FromGroups turns every directory group whose name matches Pattern into a
// project: "runai-{project}-executors" makes group runai-vision-executors
// the project vision.
type FromGroups struct {
	Pattern string `yaml:"pattern"`
	// BaseDN is where the groups are searched; default ldap.groupBaseDN,
	// then ldap.baseDN.
	BaseDN string `yaml:"baseDN"`
}

// SplitPattern returns the text before and after {project} in a
// fromGroups pattern.
func SplitPattern(pattern string) (prefix, suffix string) {
	prefix, suffix, _ = strings.Cut(pattern, ProjectPlaceholder)
	return prefix, suffix
}

// ProvisionedLabel marks a namespace this tool created or labelled, so a
// project that is no longer configured or discovered can be reported
// (its namespace is never deleted or unlabelled).
const ProvisionedLabel = "runai-ldap-sync.github.io/provisioned"

// Provisioning reports whether any opt-in provisioning feature is on.
func (p *Projects) Provisioning() bool {
	return p.CreateNamespaces || p.LabelExistingNamespaces || p.FromGroups != nil || p.Template != ""
}

// StaticProject is a project named in the configuration.
type StaticProject struct {
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

// DefaultNamespace is a project's namespace unless one is named:
// runai-<project>, as Run:AI names it.
func DefaultNamespace(project string) string { return "runai-" + project }

// Kubernetes holds API server settings.
type Kubernetes struct {
	RunaiNamespace string `yaml:"runaiNamespace"`
	// QPS and Burst are the client-side rate limit (shipped 50/100); a
	// migration's one-off `once` may raise them to 200/400
	// (docs/operations.md, "Migration: the first cycle's client rate").
	QPS   float32 `yaml:"qps"`
	Burst int     `yaml:"burst"`
	// MaxBindingShards is how many shards (<name>-1, -2, …) a binding may
	// spread its users over when they would pass the safe size of one
	// binding; at most MaxBindingShardsLimit, which the RBAC rules and the
	// admission policy allow. 0: never shard.
	MaxBindingShards int `yaml:"maxBindingShards"`
	// BindingShardBytes is the safe size of one binding by the stored-size
	// estimate, past which users go to shards: 1 MiB (~21,000 users), well
	// under etcd's 1.5 MiB. It can only be lowered (tests do, to shard a
	// few hundred users).
	BindingShardBytes int `yaml:"bindingShardBytes"`
}

// MaxBindingShardsLimit is the most shards the deploy manifests allow a
// binding (model.MaxShards).
const MaxBindingShardsLimit = 16

// DefaultBindingShardBytes is the default and largest
// kubernetes.bindingShardBytes (plan.DefaultShardBytes is it); MinBindingShardBytes
// the smallest.
const (
	DefaultBindingShardBytes = 1 << 20
	MinBindingShardBytes     = 4 << 10
)

// DefaultMaxPacketBytes is ldap.maxPacketBytes by default: 64 MiB holds a
// group of 1,500 member values (AD's range) many times over, and any page
// of users, while a hostile or broken server can no longer make one
// message cost 2 GiB (go-asn1-ber's own limit). Min and Max bound it.
const (
	DefaultMaxPacketBytes = 64 << 20
	MinMaxPacketBytes     = 1 << 20
	MaxMaxPacketBytes     = 1 << 30
)

// Server holds the HTTP listener for /metrics, /healthz and /readyz.
type Server struct {
	Address string `yaml:"address"`
}

// Default returns a configuration with every default filled in; Load
// decodes the file on top of it.
func Default() Config {
	return Config{
		Schedule:  "@every 5m",
		Mode:      ModeEnforce,
		Policy:    PolicySync,
		Guard:     Guard{MaxRemovePercent: 50, MaxRemoveCount: 20, MaxAddCount: DefaultMaxAddCount, Window: time.Hour},
		Ownership: Ownership{Adopt: true},
		LDAP: LDAP{
			Schema:             SchemaActiveDirectory,
			GroupNameAttribute: "cn",
			UserIDAttribute:    "sAMAccountName",
			UserIDCase:         CaseLower,
			PageSize:           500,
			Timeout:            30 * time.Second,
			CycleTimeout:       10 * time.Minute,
			MaxNestingDepth:    10,
			MemberResolution:   ResolveExpand,
			MaxPacketBytes:     DefaultMaxPacketBytes,
		},
		Projects:   Projects{NamespaceLabel: "runai/queue", MaxNewPerCycle: DefaultMaxNewPerCycle},
		Kubernetes: Kubernetes{RunaiNamespace: "runai", QPS: 50, Burst: 100, MaxBindingShards: MaxBindingShardsLimit, BindingShardBytes: DefaultBindingShardBytes},
		Server:     Server{Address: ":9090"},
		LeaderElection: LeaderElection{Enabled: true, LeaseName: "runai-ldap-sync",
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second},
		Repair:      Repair{Enabled: true, MinInterval: 5 * time.Second},
		Retry:       Retry{MinBackoff: 10 * time.Second, MaxBackoff: 5 * time.Minute},
		Incremental: Incremental{Enabled: true, PollInterval: 5 * time.Second},
	}
}

// FileRootEnv names the environment variable that sets the directory every
// file the configuration names must be in (default: the configuration
// file's own directory). It is the Deployment's to set, never the file's:
// whoever may edit the configuration must not point bindPasswordFile at the
// ServiceAccount token, nor caFile at any file of the container.
const FileRootEnv = "RUNAI_LDAP_SYNC_FILE_ROOT"

// Load reads, strictly decodes and validates the file at path. The files it
// names (ldap.caFile, ldap.bindPasswordFile, projects.template) must be in
// $RUNAI_LDAP_SYNC_FILE_ROOT, by default the directory holding path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	root := os.Getenv(FileRootEnv)
	if root == "" {
		root = filepath.Dir(path)
	}
	cfg, err := ParseIn(data, root)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, nil
}

// Parse strictly decodes data (unknown keys are errors) over the defaults
// and validates the result; the files it names may be anywhere (Load
// confines them).
func Parse(data []byte) (*Config, error) { return ParseIn(data, "") }

// ParseIn is Parse with every file the configuration names confined to the
// directory root ("" for no confinement).
func ParseIn(data []byte, root string) (*Config, error) {
	cfg := Default()
	cfg.FileRoot = root
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("file is empty: at least ldap and groups must be set")
		}
		return nil, fmt.Errorf("decode YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, errors.New("file holds more than one YAML document; keep the whole configuration in one")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// FieldError is one validation problem, naming the field.
type FieldError struct {
	Field   string
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError lists every problem found, so one run shows them all.
type ValidationError []FieldError

func (v ValidationError) Error() string {
	msgs := make([]string, len(v))
	for i, e := range v {
		msgs[i] = e.Error()
	}
	return "invalid configuration:\n  " + strings.Join(msgs, "\n  ")
}

// ValidProjectName reports whether name can be a Run:AI project name: a
// DNS label, which also guarantees that a project name can never inject
// into an LDAP filter.
func ValidProjectName(name string) bool { return validDNSLabel(name) }

// attrRE is an LDAP attribute description (name or OID).
var attrRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)$`)

// Validate checks every field and returns a ValidationError listing all
// problems, or nil. The stages run in a fixed order so the list reads the
// same way each time.
func (c *Config) Validate() error {
	var errs ValidationError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	c.validateCycle(add)
	c.Guard.validate(add)
	confined := c.checkFiles(add)
	c.LDAP.validate(add, confined)
	c.Groups.validate(add)
	c.Projects.validateStatic(add)
	c.Projects.validateProvisioning(add)
	c.Projects.validateFence(add)
	c.Projects.runaiNamespace = c.Kubernetes.RunaiNamespace
	c.validateStaticFence(add)
	c.Kubernetes.validate(add)
	c.Server.validate(add)
	c.validateDaemon(add)

	if len(errs) > 0 {
		return errs
	}
	return nil
}

// validateCycle checks schedule, mode and policy.
func (c *Config) validateCycle(add func(field, format string, args ...any)) {
	if c.Schedule == "" {
		add("schedule", "must be set, e.g. \"@every 5m\" or \"*/10 * * * *\"")
	} else if _, err := ParseSchedule(c.Schedule); err != nil {
		add("schedule", "%v", err)
	}
	switch c.Mode {
	case ModeEnforce, ModeDryRun:
	default:
		add("mode", "must be %q or %q, got %q", ModeEnforce, ModeDryRun, c.Mode)
	}
	switch c.Policy {
	case PolicySync, PolicyUpsertOnly, PolicyAuthoritative:
	default:
		add("policy", "must be %q, %q or %q, got %q", PolicySync, PolicyUpsertOnly, PolicyAuthoritative, c.Policy)
	}
}

func (g *Guard) validate(add func(field, format string, args ...any)) {
	if g.MaxRemovePercent < 0 || g.MaxRemovePercent > 100 {
		add("guard.maxRemovePercent", "must be between 0 and 100, got %d", g.MaxRemovePercent)
	}
	if g.MaxRemoveCount < 0 {
		add("guard.maxRemoveCount", "must not be negative, got %d", g.MaxRemoveCount)
	}
	if g.Window < 0 {
		add("guard.window", "must not be negative (0 counts each write alone), got %s", g.Window)
	}
	if g.MaxAddCount < 0 {
		add("guard.maxAddCount", "must not be negative (0 is off), got %d", g.MaxAddCount)
	}
	if g.AllowEmptyBelow < 0 {
		add("guard.allowEmptyBelow", "must not be negative (0 guards every binding), got %d", g.AllowEmptyBelow)
	}
}

// validate checks the group name templates.
func (g *Groups) validate(add func(field, format string, args ...any)) {
	templates := 0
	for _, list := range []struct {
		field string
		names []string
	}{
		{"groups.executors", g.Executors},
		{"groups.viewers", g.Viewers},
		{"groups.globalViewers", g.GlobalViewers},
	} {
		templates += len(list.names)
		for i, name := range list.names {
			field := fmt.Sprintf("%s[%d]", list.field, i)
			if err := checkTemplate(name); err != nil {
				add(field, "%v", err)
			}
			if list.field == "groups.globalViewers" && strings.Contains(name, ProjectPlaceholder) {
				add(field, "global viewer groups apply to every project and cannot contain %s", ProjectPlaceholder)
			}
			if list.field != "groups.globalViewers" && !strings.Contains(name, ProjectPlaceholder) {
				// Without it one group would be every project's.
				add(field, "%q must contain %s (one group per project, e.g. \"runai-%s-executors\"); to grant every project, use groups.globalViewers", name, ProjectPlaceholder, ProjectPlaceholder)
			}
		}
	}
	if templates == 0 {
		add("groups", "name at least one group in executors, viewers or globalViewers")
	}
}

// validateStatic checks the namespace label and the static project list.
func (p *Projects) validateStatic(add func(field, format string, args ...any)) {
	if p.NamespaceLabel == "" && len(p.Static) == 0 {
		add("projects", "set namespaceLabel or list static projects, or no project will ever be found")
	}
	if p.NamespaceLabel != "" && !validLabelKey(p.NamespaceLabel) {
		add("projects.namespaceLabel", "%q is not a valid Kubernetes label key", p.NamespaceLabel)
	}
	seen := map[string]int{}
	for i, sp := range p.Static {
		field := fmt.Sprintf("projects.static[%d]", i)
		if !ValidProjectName(sp.Name) {
			add(field+".name", "%q is not a valid project name (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)", sp.Name)
		}
		if prev, ok := seen[sp.Name]; ok {
			add(field+".name", "project %q is already listed at projects.static[%d]", sp.Name, prev)
		}
		seen[sp.Name] = i
		if sp.Namespace != "" && !validDNSLabel(sp.Namespace) {
			add(field+".namespace", "%q is not a valid namespace name", sp.Namespace)
		}
		if sp.Namespace == "" && ValidProjectName(sp.Name) && !validDNSLabel(DefaultNamespace(sp.Name)) && p.CreateNamespaces {
			add(field+".namespace", "the default namespace %s is longer than 63 characters; set a namespace", DefaultNamespace(sp.Name))
		}
	}
}

func (k *Kubernetes) validate(add func(field, format string, args ...any)) {
	if !validDNSLabel(k.RunaiNamespace) {
		add("kubernetes.runaiNamespace", "%q is not a valid namespace name", k.RunaiNamespace)
	}
	if k.QPS <= 0 {
		add("kubernetes.qps", "must be positive, got %v", k.QPS)
	}
	if k.Burst < 1 {
		// client-go's limiter refuses every request with a burst of 0.
		add("kubernetes.burst", "must be at least 1, got %d", k.Burst)
	}
	if k.MaxBindingShards < 0 || k.MaxBindingShards > MaxBindingShardsLimit {
		add("kubernetes.maxBindingShards", "must be between 0 and %d (the shard names the RBAC rules and the admission policy allow), got %d",
			MaxBindingShardsLimit, k.MaxBindingShards)
	}
	if b := k.BindingShardBytes; b < MinBindingShardBytes || b > DefaultBindingShardBytes {
		add("kubernetes.bindingShardBytes", "must be between %d and %d (1 MiB, well under etcd's 1.5 MiB; it can only be lowered), got %d",
			MinBindingShardBytes, DefaultBindingShardBytes, b)
	}
}

func (s *Server) validate(add func(field, format string, args ...any)) {
	if s.Address != "" && !strings.Contains(s.Address, ":") {
		add("server.address", "must be host:port or :port, got %q", s.Address)
	}
}

// validateProvisioning checks the opt-in provisioning keys, and reads and
// parses the template file.
func (p *Projects) validateProvisioning(add func(field, format string, args ...any)) {
	if p.FromGroups != nil && p.NamespaceLabel == "" {
		// Without the label nothing says which namespace a directory-made
		// project may use: any existing runai-<name> would be taken over.
		add("projects.fromGroups", "needs projects.namespaceLabel: a project found in the directory may use only a namespace labelled for it")
	}
	if (p.CreateNamespaces || p.LabelExistingNamespaces) && p.NamespaceLabel == "" {
		for _, k := range []struct {
			field string
			on    bool
		}{{"createNamespaces", p.CreateNamespaces}, {"labelExistingNamespaces", p.LabelExistingNamespaces}} {
			if k.on {
				add("projects."+k.field, "needs projects.namespaceLabel: it is the label that makes a namespace a project")
			}
		}
	}
	if len(p.NamespaceLabels) > 0 && !p.CreateNamespaces && !p.LabelExistingNamespaces {
		add("projects.namespaceLabels", "has no effect unless projects.createNamespaces or projects.labelExistingNamespaces is true")
	}
	for _, k := range slices.Sorted(maps.Keys(p.NamespaceLabels)) {
		field := "projects.namespaceLabels." + k
		switch {
		case !validLabelKey(k):
			add(field, "%q is not a valid Kubernetes label key", k)
		case k == p.NamespaceLabel:
			add(field, "is projects.namespaceLabel, whose value is always the project name")
		case k == ProvisionedLabel:
			add(field, "is reserved: it marks the namespaces this tool provisioned")
		}
		if msgs := validation.IsValidLabelValue(p.NamespaceLabels[k]); len(msgs) > 0 {
			add(field, "%q is not a valid label value: %s", p.NamespaceLabels[k], strings.Join(msgs, "; "))
		}
	}
	if fg := p.FromGroups; fg != nil {
		switch n := strings.Count(fg.Pattern, ProjectPlaceholder); {
		case n != 1:
			add("projects.fromGroups.pattern", "must contain %s exactly once, e.g. \"runai-{project}-executors\", got %q", ProjectPlaceholder, fg.Pattern)
		case fg.Pattern == ProjectPlaceholder:
			add("projects.fromGroups.pattern", "must have text around %s, or every group in the directory would become a project", ProjectPlaceholder)
		default:
			if err := checkTemplate(fg.Pattern); err != nil {
				add("projects.fromGroups.pattern", "%v", err)
			}
		}
	}
}

func (l *LDAP) validate(add func(field, format string, args ...any), confined func(string) bool) {
	l.validateServers(add, confined)
	l.validateBind(add, confined)
	l.validateSearch(add)
	l.validateUserIDs(add)
	l.validateLimits(add)
}

// validateServers checks the URLs, their TLS settings and the CA file.
func (l *LDAP) validateServers(add func(field, format string, args ...any), confined func(string) bool) {
	if len(l.URLs) == 0 {
		add("ldap.urls", "list at least one server, e.g. [\"ldaps://dc1.example.com:636\"]")
	}
	for i, raw := range l.URLs {
		field := fmt.Sprintf("ldap.urls[%d]", i)
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			add(field, "%q is not a URL like ldaps://host:636", raw)
			continue
		}
		switch u.Scheme {
		case "ldaps":
			if l.StartTLS {
				add(field, "ldaps:// is already TLS; set ldap.startTLS: false or use ldap://")
			}
		case "ldap":
			if !l.StartTLS && !l.AllowInsecure {
				add(field, "ldap:// without TLS sends the bind password in clear text; use ldaps://, set ldap.startTLS: true, or set ldap.allowInsecure: true")
			}
		default:
			add(field, "scheme must be ldap or ldaps, got %q", u.Scheme)
		}
	}
	if l.CAFile != "" && confined(l.CAFile) {
		if _, err := os.Stat(l.CAFile); err != nil {
			add("ldap.caFile", "cannot read %q: %v", l.CAFile, errors.Unwrap(err))
		}
	}
}

// validateBind checks the bind identity, its password file and the base DN.
func (l *LDAP) validateBind(add func(field, format string, args ...any), confined func(string) bool) {
	if l.BindDN == "" {
		add("ldap.bindDN", "must be set (the service account to bind as, e.g. svc-runai-sync@EXAMPLE.COM)")
	}
	switch {
	case l.BindPasswordFile == "":
		add("ldap.bindPasswordFile", "must be set (a file holding the bind password, e.g. a mounted Secret)")
	case confined(l.BindPasswordFile): // else checkFiles reports it, and it is not read
		if _, err := os.Stat(l.BindPasswordFile); err != nil {
			add("ldap.bindPasswordFile", "cannot read %q: %v", l.BindPasswordFile, errors.Unwrap(err))
		}
	}
	if l.BaseDN == "" {
		add("ldap.baseDN", "must be set, e.g. \"DC=example,DC=com\"")
	}
}

// validateSearch checks the schema, member resolution and read bounds.
func (l *LDAP) validateSearch(add func(field, format string, args ...any)) {
	switch l.Schema {
	case SchemaActiveDirectory, SchemaGroupOfNames, SchemaRFC2307:
	default:
		add("ldap.schema", "must be %q, %q or %q, got %q", SchemaActiveDirectory, SchemaGroupOfNames, SchemaRFC2307, l.Schema)
	}
	switch l.MemberResolution {
	case ResolveInChain, ResolveExpand:
	default:
		add("ldap.memberResolution", "must be %q or %q, got %q", ResolveInChain, ResolveExpand, l.MemberResolution)
	}
	if l.MaxPacketBytes < MinMaxPacketBytes || l.MaxPacketBytes > MaxMaxPacketBytes {
		add("ldap.maxPacketBytes", "must be between %d and %d bytes, got %d", MinMaxPacketBytes, MaxMaxPacketBytes, l.MaxPacketBytes)
	}
	if l.MaxNestingDepth < 1 || l.MaxNestingDepth > 100 {
		add("ldap.maxNestingDepth", "must be between 1 and 100, got %d", l.MaxNestingDepth)
	}
}

// validateUserIDs checks the attributes and the mapping to Kubernetes users.
func (l *LDAP) validateUserIDs(add func(field, format string, args ...any)) {
	if !attrRE.MatchString(l.GroupNameAttribute) {
		add("ldap.groupNameAttribute", "%q is not an LDAP attribute name", l.GroupNameAttribute)
	}
	if !attrRE.MatchString(l.UserIDAttribute) {
		add("ldap.userIDAttribute", "%q is not an LDAP attribute name", l.UserIDAttribute)
	}
	switch l.UserIDCase {
	case CaseLower, CasePreserve:
	default:
		add("ldap.userIDCase", "must be %q or %q, got %q", CaseLower, CasePreserve, l.UserIDCase)
	}
	if strings.HasPrefix(l.UserIDPrefix, "system:") {
		add("ldap.userIDPrefix", "must not start with \"system:\" (reserved by Kubernetes)")
	}
}

// validateLimits checks page size and timeouts.
func (l *LDAP) validateLimits(add func(field, format string, args ...any)) {
	if l.PageSize < 1 || l.PageSize > 10000 {
		add("ldap.pageSize", "must be between 1 and 10000, got %d", l.PageSize)
	}
	if l.Timeout <= 0 {
		add("ldap.timeout", "must be a positive duration like 30s, got %v", l.Timeout)
	}
	if l.CycleTimeout < l.Timeout {
		add("ldap.cycleTimeout", "must be at least ldap.timeout (%v), got %v: it bounds a whole cycle's directory reads, of which one request is a part", l.Timeout, l.CycleTimeout)
	}
}

// checkTemplate validates a group name template: non-empty and no
// placeholder other than {project}.
func checkTemplate(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("group name is empty")
	}
	rest := strings.ReplaceAll(name, ProjectPlaceholder, "")
	if strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("%q has an unknown placeholder; only %s is replaced", name, ProjectPlaceholder)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", name)
		}
	}
	return nil
}

// ExpandGroup returns the group name for project from template.
func ExpandGroup(template, project string) string {
	return strings.ReplaceAll(template, ProjectPlaceholder, project)
}

// ParseSchedule parses a cron spec the way the daemon runs it: five fields
// or a descriptor such as "@every 5m" or "@hourly".
func ParseSchedule(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron spec (five fields like \"*/10 * * * *\", or \"@every 5m\"): %w", spec, err)
	}
	if strings.HasPrefix(spec, "@every") {
		if d, ok := s.(cron.ConstantDelaySchedule); ok && d.Delay < 10*time.Second {
			return nil, fmt.Errorf("%q runs more often than every 10s; that would load the directory for nothing", spec)
		}
	}
	return s, nil
}

// validateDaemon checks the leaderElection, repair, incremental and retry settings.
func (c *Config) validateDaemon(add func(field, format string, args ...any)) {
	le := c.LeaderElection
	if msgs := validation.IsDNS1123Subdomain(le.LeaseName); len(msgs) > 0 {
		add("leaderElection.leaseName", "%q is not a valid Lease name: %s", le.LeaseName, strings.Join(msgs, "; "))
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"leaseDuration", le.LeaseDuration}, {"renewDeadline", le.RenewDeadline}, {"retryPeriod", le.RetryPeriod}} {
		if d.v <= 0 {
			add("leaderElection."+d.field, "must be a positive duration like 10s, got %v", d.v)
		}
	}
	if le.RenewDeadline > 0 && le.LeaseDuration > 0 && le.LeaseDuration <= le.RenewDeadline {
		add("leaderElection.leaseDuration", "must be longer than renewDeadline (%v), got %v", le.RenewDeadline, le.LeaseDuration)
	}
	// client-go's leader election retries with a jitter of 1.2.
	if le.RetryPeriod > 0 && le.RenewDeadline > 0 && le.RenewDeadline <= le.RetryPeriod*12/10 {
		add("leaderElection.renewDeadline", "must be longer than 1.2 × retryPeriod (%v), got %v", le.RetryPeriod, le.RenewDeadline)
	}
	if c.Repair.MinInterval < time.Second {
		add("repair.minInterval", "must be at least 1s (it bounds how often a binding is rewritten when someone keeps changing it), got %v", c.Repair.MinInterval)
	}
	if c.Incremental.Enabled && c.Incremental.PollInterval < time.Second {
		add("incremental.pollInterval", "must be at least 1s (each poll is a directory search), got %v", c.Incremental.PollInterval)
	}
	if c.Retry.MinBackoff <= 0 {
		add("retry.minBackoff", "must be a positive duration like 10s, got %v", c.Retry.MinBackoff)
	}
	if c.Retry.MaxBackoff < c.Retry.MinBackoff {
		add("retry.maxBackoff", "must be at least retry.minBackoff (%v), got %v", c.Retry.MinBackoff, c.Retry.MaxBackoff)
	}
}

func validDNSLabel(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }

func validLabelKey(k string) bool { return len(validation.IsQualifiedName(k)) == 0 }
