package main

// insider-kube measures what a namespace admin of an unrelated namespace
// can make a `once` cycle cost (issue 24 item 1): the peak RSS of the same
// steady cycle without their objects, with the six bombs (managed
// names and the shard label, a gzip+base64 record of a 16 MB JSON list
// each), and with -big label-matching bindings of about -big-bytes each.
//
//	go run ./hack/bench insider-kube -big 300   # the scale
//	go run ./hack/bench insider-kube -big 30    # a quick look

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/runai-ldap-sync/runai-ldap-sync/config"
	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
	"github.com/runai-ldap-sync/runai-ldap-sync/kube"
	"github.com/runai-ldap-sync/runai-ldap-sync/sync/model"
)

func insiderKubeMain(args []string) int {
	fs := flag.NewFlagSet("insider-kube", flag.ExitOnError)
	projects := fs.Int("projects", 50, "projects (labelled namespaces with an executors group each)")
	big := fs.Int("big", 300, "label-matching bindings of -big-bytes each in the unrelated namespace")
	bigBytes := fs.Int("big-bytes", 1<<20, "size of each of them (subjects)")
	bombMiB := fs.Int("bomb-mib", 16, "size of each bomb's JSON list once inflated")
	_ = fs.Parse(args)
	table, err := insiderKube(*projects, *big, *bigBytes, *bombMiB)
	if err != nil {
		fmt.Fprintf(os.Stderr, "insider-kube: %v\n", err)
		return 1
	}
	fmt.Print(table)
	return 0
}

// insiderKube runs the four cycles and returns their table (markdown).
func insiderKube(projects, big, bigBytes, bombMiB int) (string, error) {
	table, err := insiderKubeRun(projects, big, bigBytes, bombMiB)
	if err != nil {
		return "", fmt.Errorf("insider-kube: %w", err)
	}
	return table, nil
}

func insiderKubeRun(projects, big, bigBytes, bombMiB int) (string, error) {
	ctx := context.Background()
	dir, self, err := scratch("runai-ldap-sync-insider-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	sc := scale{users: 20 * projects, projects: projects, groupSize: 10, bigGroup: 10}
	ldif, _, _, _ := buildLDIF(sc)
	slapd, err := harness.StartSlapd(ctx, filepath.Join(dir, "slapd"), harness.SlapdOptions{Suffix: suffix, LDIF: ldif, SizeLimit: -1})
	if err != nil {
		return "", err
	}
	defer slapd.Stop()
	etcd, err := harness.StartEtcd(ctx, filepath.Join(dir, "etcd"))
	if err != nil {
		return "", err
	}
	defer etcd.Stop()
	api, kubeconfig, err := startCluster(ctx, etcd, filepath.Join(dir, "apiserver"), projects)
	if err != nil {
		return "", err
	}
	defer api.Stop()
	cfgPath := filepath.Join(dir, "config.yaml")
	def := config.Default().Kubernetes
	if err := writeOpenLDAPConfig(cfgPath, slapd, float64(def.QPS), def.Burst); err != nil {
		return "", err
	}
	cs, err := kubernetes.NewForConfig(api.RestConfig())
	if err != nil {
		return "", err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}

	var rows []row
	run := func(name string) error {
		r, err := runCycle(ctx, self, name, cfgPath, kubeconfig, false, 0)
		rows = append(rows, r)
		return err
	}
	fmt.Printf("insider-kube: %d projects; bombs of %d MiB; %d bindings of %d KiB\n", projects, bombMiB, big, bigBytes>>10)
	if err := run("first (creates)"); err != nil {
		return "", err
	}
	if err := run("steady, no insider"); err != nil {
		return "", err
	}
	if err := createBombs(ctx, cs, bombMiB); err != nil {
		return "", err
	}
	if err := run("steady, six bombs"); err != nil {
		return "", err
	}
	if err := createBig(ctx, cs, big, bigBytes); err != nil {
		return "", err
	}
	if err := run(fmt.Sprintf("steady, bombs + %d big", big)); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### A namespace admin's objects (issue 24)\n\nA `once` cycle of %d projects, steady, as the admin of an unrelated namespace adds the six bombs (managed names and the shard label, a `gzip+base64:` record inflating to %d MiB each) and then %d label-matching bindings of about %d KiB each:\n\n", projects, bombMiB, big, bigBytes>>10)
	b.WriteString("| once cycle | peak RSS | seconds | API requests | error |\n|---|---:|---:|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d MiB | %.2f | %s | %s |\n", r.name, r.stats.MaxRSSKiB>>10, r.stats.Seconds, verbs(r.stats.KubeRequests), r.stats.Error)
	}
	return b.String(), nil
}

// createBombs makes the six RoleBindings in namespace team.
func createBombs(ctx context.Context, cs kubernetes.Interface, mib int) error {
	var plain bytes.Buffer
	plain.WriteByte('[')
	for i := 0; plain.Len() < mib<<20; i++ {
		if i > 0 {
			plain.WriteByte(',')
		}
		plain.WriteString(`"aaaaaaaaaaaaaaaaaaaa"`)
	}
	plain.WriteByte(']')
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	_, _ = zw.Write(plain.Bytes())
	_ = zw.Close()
	record := "gzip+base64:" + base64.StdEncoding.EncodeToString(z.Bytes())
	for _, name := range []string{model.ExecutorBinding, model.ExecutorBinding + "-1", model.ExecutorBinding + "-2",
		model.IndexMapBinding + "-1", model.IndexMapBinding + "-2", model.IndexMapBinding + "-3"} {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team",
			Labels: map[string]string{model.ShardOfLabel: "x"}, Annotations: map[string]string{model.ManagedAnnotation: record}},
			RoleRef: kube.ExpectedRoleRef(name)}
		if _, err := cs.RbacV1().RoleBindings("team").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create bomb %s: %w", name, err)
		}
	}
	fmt.Printf("  six bombs created: a record of %d bytes each, %d MiB inflated\n", len(record), mib)
	return nil
}

// createBig makes n bindings of about size bytes of subjects carrying the
// shard label key, with names of no managed binding.
func createBig(ctx context.Context, cs kubernetes.Interface, n, size int) error {
	subjects := make([]rbacv1.Subject, size/110)
	for i := range subjects {
		subjects[i] = kube.UserSubject(fmt.Sprintf("%0100d", i))
	}
	for i := 0; i < n; i++ {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("big-%d", i), Namespace: "team",
			Labels: map[string]string{model.ShardOfLabel: model.ExecutorBinding}},
			RoleRef: kube.ExpectedRoleRef(model.ExecutorBinding), Subjects: subjects}
		if _, err := cs.RbacV1().RoleBindings("team").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create big binding %d: %w", i, err)
		}
	}
	fmt.Printf("  %d bindings of %d subjects created\n", n, len(subjects))
	return nil
}
