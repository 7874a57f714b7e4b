package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
)

// diff's exit statuses, as kubectl diff's: 0 no changes, 1 changes, >1 an
// error (nothing printed on stdout).
const (
	exitChanges   = 1
	exitDiffError = 2
)

// exitError ends a command with code; err, when set, is printed on
// stderr as one human-readable line.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// asDiffError gives err diff's error status (>1), keeping a usage error's 2.
func asDiffError(err error) error {
	var ee *exitError
	if errors.As(err, &ee) && ee.code > exitChanges {
		return err
	}
	return &exitError{code: exitDiffError, err: err}
}

// run runs the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(goFlagStyle(args))
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", ee.err)
		}
		return ee.code
	}
	// cobra's own: an unknown command or flag, a missing argument.
	fmt.Fprintf(stderr, "Error: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
	return exitUsage
}

// oneDash matches the single-dash long flags Go's flag package accepted
// (-config FILE), which earlier versions documented nowhere but scripts may use.
var oneDash = regexp.MustCompile(`^-(config|kubeconfig|context|log-level|log-format|approve-removals|user|project|output|version)(=.*)?$`)

// goFlagStyle rewrites -config to --config, so scripts written for the
// flag package keep working.
func goFlagStyle(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if oneDash.MatchString(a) {
			a = "-" + a
		}
		out[i] = a
	}
	return out
}

// cli builds the commands; their flags land in f.
type cli struct {
	f              *flags
	stdout, stderr io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	c := &cli{f: &flags{}, stdout: stdout, stderr: stderr}
	root := c.rootCmd()
	runCmd, onceCmd := c.syncCmds()
	root.AddCommand(runCmd, onceCmd, c.diffCmd(), c.explainCmd(), c.checkCmd(), c.doctorCmd(), c.versionCmd())
	// completion bash|zsh|fish|powershell (cobra's, added here rather than
	// at Execute so that it is listed like the others).
	root.InitDefaultCompletionCmd()
	return root
}

// rootCmd is the command without a subcommand, with the global flags.
func (c *cli) rootCmd() *cobra.Command {
	f, stdout, stderr := c.f, c.stdout, c.stderr
	root := &cobra.Command{
		Use:   "runai-ldap-sync",
		Short: "Keep Run:AI project access in step with Active Directory groups",
		Long: `runai-ldap-sync keeps Run:AI project access in Kubernetes in step with Active
Directory (or LDAP) groups: it writes the users of each project's groups into
Run:AI's role bindings. See docs/cli.md for commands, exit statuses and doctor.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		// No command: the usage, and a usage error.
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetOut(stderr)
			_ = c.Help()
			return &exitError{code: exitUsage}
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate(versionLine() + "\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath()))
	})
	pf := root.PersistentFlags()
	pf.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	pf.StringVar(&f.context, "context", "", "kubeconfig context to use (default: its current-context)")
	pf.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&f.logFormat, "log-format", "auto", "log format: json, text, or auto (text on a terminal, else JSON)")
	_ = root.RegisterFlagCompletionFunc("log-level", fixed("debug", "info", "warn", "error"))
	_ = root.RegisterFlagCompletionFunc("log-format", fixed("auto", "json", "text"))
	_ = root.MarkPersistentFlagFilename("kubeconfig")
	_ = root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return kube.Contexts(f.kubeconfig), cobra.ShellCompDirectiveNoFileComp
	})

	return root
}

func (c *cli) configFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.f.config, "config", "", "configuration file (required)")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
}

// outputFlag adds -o text|json, checked before cmd runs (a usage error).
func (c *cli) outputFlag(cmd *cobra.Command, what string) {
	cmd.Flags().StringVarP(&c.f.output, "output", "o", "text", "output format: text or json ("+what+")")
	_ = cmd.RegisterFlagCompletionFunc("output", fixed("text", "json"))
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if c.f.output != "text" && c.f.output != "json" {
			return usageErr(fmt.Errorf("-o must be text or json, got %q", c.f.output))
		}
		return nil
	}
}

// syncCmds are run (the daemon) and once.
func (c *cli) syncCmds() (runCmd, onceCmd *cobra.Command) {
	runCmd = &cobra.Command{
		Use:     "run",
		Aliases: []string{"daemon"},
		Short:   "The daemon: a cycle at start, then on the schedule, polls and repairs between",
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			return runSync("run", c.f, c.stdout, c.stderr)
		},
	}
	c.configFlag(runCmd)

	onceCmd = &cobra.Command{
		Use:   "once",
		Short: "Run one cycle, then exit (status 1 if it failed)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			return runSync("once", c.f, c.stdout, c.stderr)
		},
	}
	c.configFlag(onceCmd)
	// Not for run: it would switch the guard off for the life of the pod.
	onceCmd.Flags().StringVar(&c.f.approve, "approve-removals", "", "approve what the guard holds on this one binding (ClusterRoleBinding/NAME or RoleBinding/NAMESPACE/NAME), for this one cycle")
	return runCmd, onceCmd
}

func (c *cli) diffCmd() *cobra.Command {
	diffCmd := &cobra.Command{
		Use:   "diff",
		Short: "Print what a cycle would change, write nothing (exit 0: no changes, 1: changes, >1: error)",
		Long: `diff runs a cycle in dry-run mode and prints the plan. As kubectl diff, it exits
0 when nothing would change, 1 when something would, and 2 on an error; when
the plan could not be made in full (an unreachable API server or directory, a
failed group), nothing is printed on stdout and the error goes to stderr.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			return runSync("diff", c.f, c.stdout, c.stderr)
		},
	}
	c.configFlag(diffCmd)
	c.outputFlag(diffCmd, "a JSON list of changes")
	return diffCmd
}

func (c *cli) explainCmd() *cobra.Command {
	explainCmd := &cobra.Command{
		Use:   "explain --user ID [--project NAME]",
		Short: "Say why a user has or lacks access (read-only)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			return runExplain(c.f, c.stdout, c.stderr)
		},
	}
	c.configFlag(explainCmd)
	c.outputFlag(explainCmd, "the explanation as JSON")
	explainCmd.Flags().StringVar(&c.f.user, "user", "", "Kubernetes user name to explain, as bound (e.g. alice)")
	explainCmd.Flags().StringVar(&c.f.project, "project", "", "only this project")
	return explainCmd
}

func (c *cli) checkCmd() *cobra.Command {
	checkCmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate the configuration and exit (status 2 with the errors)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, _, err := c.f.loadConfig()
			if err != nil {
				return err
			}
			for _, o := range cfg.OptOuts() {
				fmt.Fprintf(c.stderr, "warning: %s turns off a protection: %s\n", o.Key, o.Risk)
			}
			fmt.Fprintf(c.stdout, "%s: configuration is valid\n", c.f.config)
			return nil
		},
	}
	c.configFlag(checkCmd)
	return checkCmd
}

func (c *cli) doctorCmd() *cobra.Command {
	doctorCmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the setup, read-only: directory, groups, ClusterRoles, RBAC, admission policy, user IDs",
		Long: `doctor checks a setup without writing anything and prints one line per check,
ok, warn or fail, with the fix. It binds to the directory once (a refused
password is never tried again). Exit status: 0 all ok, 1 warnings, 2 failures
(or doctor could not run). See docs/cli.md for every check.

Run it with the daemon's kubeconfig or as a cluster admin; add --user-kubeconfig
(an OIDC user's kubeconfig) to compare the API server's name for that user with
the ID the directory yields.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			return runDoctor(c.f, c.stdout, c.stderr)
		},
	}
	c.configFlag(doctorCmd)
	c.outputFlag(doctorCmd, "the checks as JSON")
	df := doctorCmd.Flags()
	df.StringVar(&c.f.userKubeconfig, "user-kubeconfig", "", "kubeconfig of a person who logs in to the cluster (e.g. OIDC), for the user-ID check")
	df.StringVar(&c.f.userContext, "user-context", "", "context of --user-kubeconfig (or of the default kubeconfig) for the user-ID check")
	df.StringVar(&c.f.directoryUser, "directory-user", "", "that person's account name in the directory (default: derived from the API server's name)")
	df.StringVar(&c.f.daemonUser, "service-account", "", "the daemon's ServiceAccount, NAMESPACE/NAME or NAME in kubernetes.runaiNamespace (default: the caller if a ServiceAccount, else runai-ldap-sync)")
	_ = doctorCmd.MarkFlagFilename("user-kubeconfig")
	return doctorCmd
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(c.stdout, versionLine())
		},
	}
}

func versionLine() string {
	return fmt.Sprintf("runai-ldap-sync %s (%s, %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// noArgs refuses positional arguments as a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr(fmt.Errorf("unexpected arguments: %v", args))
	}
	return nil
}

func fixed(values ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// printDiff runs a dry-run cycle and prints its plan, only when the plan
// is complete: a partial plan would read as "these are all the changes".
func printDiff(ctx context.Context, d *daemon, format string, stdout io.Writer) error {
	rep := d.newPipeline().Cycle(ctx, controller.CycleOptions{DryRun: true})
	if rep.Err != nil {
		return &exitError{code: exitDiffError, err: fmt.Errorf("the plan is incomplete, so none is printed: %w", rep.Err)}
	}
	var out bytes.Buffer
	if err := printPlan(&out, rep, format); err != nil {
		return &exitError{code: exitDiffError, err: fmt.Errorf("print the plan: %w", err)}
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return &exitError{code: exitDiffError, err: err}
	}
	// kubectl diff's 1: a cycle would write something. Held changes and
	// leftovers are listed but written by no cycle.
	if len(rep.Changes())+len(rep.Provision.Namespaces)+len(rep.Provision.Templates) > 0 {
		return &exitError{code: exitChanges}
	}
	return nil
}
