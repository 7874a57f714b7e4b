package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/ldapsrc"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/controller"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/doctor"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/metrics"
)

// requestTimeout bounds each of doctor's API requests.
const requestTimeout = 30 * time.Second

// runDoctor runs `doctor`: the checks, printed as text or JSON, and
// doctor's exit status.
func runDoctor(f *flags, stdout, stderr io.Writer) error {
	cfg, tmpl, err := f.loadConfig()
	if err != nil {
		return &exitError{code: doctor.ExitFailures, err: err}
	}
	log, err := f.quietLogger("error", stderr) // the report is the output
	if err != nil {
		return usageErr(err)
	}
	defer func() { _ = log.Sync() }()
	klog.SetLogger(newKlogLogger(log.Named("client-go")))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	src := ldapsrc.New(cfg.LDAP, log.Named("ldap"))
	defer src.Close()
	d := &doctor.Doctor{Config: cfg, Dir: src, DirectoryUser: f.directoryUser, DaemonUser: f.daemonUser}
	if tmpl != nil {
		d.TemplateRoles = tmpl.ClusterRoles()
	}
	kc, err := f.doctorClients(cfg, d)
	if err != nil {
		return &exitError{code: doctor.ExitFailures, err: err}
	}
	d.Plan = func(ctx context.Context) doctor.Projects {
		// As diff's (newDaemon), on doctor's Source: one bind for the run.
		s := controller.New(cfg, src, kc, log, metrics.NewMetrics(version))
		if cfg.Projects.Provisioning() {
			s.WithProvisioning(src, kc).WithTemplate(tmpl)
		}
		rep := s.Cycle(ctx, controller.CycleOptions{DryRun: true})
		p := doctor.Projects{Projects: rep.Projects, Missing: rep.MissingGroups, Failed: rep.FailedGroups}
		if rep.Fatal {
			p.Err = rep.Err
		}
		return p
	}
	rep := d.Run(ctx)
	if f.output == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return &exitError{code: doctor.ExitFailures, err: err}
	}
	if code := rep.ExitCode(); code != doctor.ExitOK {
		return &exitError{code: code}
	}
	return nil
}

// doctorClients connects doctor to the API server as the daemon would
// (d.Kube, and the client of its dry-run cycle; d.KubeErr when it cannot,
// which doctor reports as a check) and, with --user-kubeconfig or
// --user-context, as a person (d.User). No request waits for ever on a
// silent API server.
func (f *flags) doctorClients(cfg *config.Config, d *doctor.Doctor) (*kube.Client, error) {
	kc, cc, err := f.kubeClient(cfg, requestTimeout)
	if err == nil {
		d.Kube, d.Where = kc.Clientset(), fmt.Sprintf("%s, from %s", cc.Host, cc.Source)
		if cc.Context != "" {
			d.Where += " context " + cc.Context
		}
	}
	d.KubeErr = err
	if f.userKubeconfig == "" && f.userContext == "" {
		return kc, nil
	}
	ucc, err := kube.RestConfig(f.userKubeconfig, f.userContext)
	if err != nil {
		return nil, fmt.Errorf("--user-kubeconfig: %w", err)
	}
	if ucc.Timeout == 0 {
		ucc.Timeout = requestTimeout
	}
	if d.User, err = kubernetes.NewForConfig(ucc.Config); err != nil {
		return nil, fmt.Errorf("--user-kubeconfig: %w", err)
	}
	return kc, nil
}
