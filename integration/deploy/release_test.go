package deploy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runai-ldap-sync/runai-ldap-sync/integration/harness"
)

// releaseTag is the tag of the clean clone TestRelease releases.
const releaseTag = "v9.8.7-rc.1"

// copyTime is the modification time of the copied files.
var copyTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// cleanTaggedCopy copies the working tree's tracked and new (not ignored)
// files into a fresh git repository, commits them and tags the commit: what
// a release manager's clean clone of a tagged commit holds, with this
// tree's uncommitted changes.
func cleanTaggedCopy(t *testing.T, tag string) string {
	t.Helper()
	root := repoRoot(t)
	ls := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	ls.Dir = root
	out, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "clone")
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == ".cache" || strings.HasPrefix(f, ".cache/") || strings.HasPrefix(f, "dist/") || strings.HasPrefix(f, "bin/") {
			continue
		}
		src := filepath.Join(root, f)
		fi, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		// Older than the tools in the shared bin directory, so that make
		// takes them as up to date instead of rebuilding them there.
		if err := os.Chtimes(p, copyTime, copyTime); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"}, {"add", "-A"},
		{"-c", "user.name=release", "-c", "user.email=release@example.com", "commit", "-q", "-m", "release " + tag},
		{"-c", "user.name=release", "-c", "user.email=release@example.com", "tag", "-a", "-m", tag, tag},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dst
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dst
}

// TestRelease runs `make release` on a clean copy of the tree tagged
// releaseTag and checks every artifact it writes: SHA256SUMS matches each
// file; the static binaries are for linux/amd64 and linux/arm64 and print the
// tag; the multi-arch OCI archive holds an image per architecture, labelled
// with the tag, whose binary is the released one, and the host's runs
// `version` from the unpacked layer; the chart carries the semver of the tag,
// installs (lint --strict, template) on Kubernetes 1.30+ with the image of
// the tag; the CycloneDX SBOM names the main module at the tag and its
// dependencies at go.mod's versions.
func TestRelease(t *testing.T) {
	src := cleanTaggedCopy(t, releaseTag)
	cmd := exec.Command("make", "--no-print-directory", "release")
	cmd.Dir = src
	bin, err := harness.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), harness.BinDirEnv+"="+bin)
	cmd.Env = append(cmd.Env, harness.HelmEnv(t.TempDir())...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	t.Logf("make release:\n%s", lastLines(string(out), 12))
	if strings.Contains(string(out), "not a release") {
		t.Errorf("make release did not see the tag %s:\n%s", releaseTag, out)
	}
	dist := filepath.Join(src, "dist", releaseTag)
	chartVersion := strings.TrimPrefix(releaseTag, "v")
	files := map[string]string{
		"amd64": "runai-ldap-sync-" + releaseTag + "-linux-amd64",
		"arm64": "runai-ldap-sync-" + releaseTag + "-linux-arm64",
		"image": "runai-ldap-sync-" + releaseTag + ".oci.tar",
		"chart": "runai-ldap-sync-" + chartVersion + ".tgz",
		"sbom":  "runai-ldap-sync-" + releaseTag + ".cdx.json",
	}

	// SHA256SUMS lists exactly the artifacts, each with its digest, in the
	// format `sha256sum -c` reads.
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"SHA256SUMS"}
	for _, f := range files {
		want = append(want, f)
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("dist/%s holds %v, want %v", releaseTag, names, want)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q is not `<sha256>  <file>`", sc.Text())
		}
		data, err := os.ReadFile(filepath.Join(dist, file))
		if err != nil {
			t.Fatalf("SHA256SUMS lists %s: %v", file, err)
		}
		if d := sha256.Sum256(data); hex.EncodeToString(d[:]) != sum {
			t.Errorf("SHA256SUMS: %s does not match", file)
		}
		listed[file] = true
	}
	for _, f := range files {
		if !listed[f] {
			t.Errorf("SHA256SUMS does not list %s", f)
		}
	}

	// The binaries: static, for their architecture; the host's prints the tag.
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		ef, err := elf.Open(filepath.Join(dist, files[arch]))
		if err != nil {
			t.Fatal(err)
		}
		if ef.Machine != machine {
			t.Errorf("%s is for %s, want %s", files[arch], ef.Machine, machine)
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", files[arch])
			}
		}
		ef.Close()
	}
	v, err := exec.Command(filepath.Join(dist, files[runtime.GOARCH]), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "runai-ldap-sync "+releaseTag+" ") {
		t.Errorf("%s version: %v %q, want the tag %s", files[runtime.GOARCH], err, v, releaseTag)
	}

	checkReleaseImage(t, filepath.Join(dist, files["image"]), dist, files)
	checkReleaseChart(t, filepath.Join(dist, files["chart"]), chartVersion)
	checkReleaseSBOM(t, filepath.Join(dist, files["sbom"]), src)
}

// checkReleaseImage reads the multi-arch OCI archive with the standard
// library: index.json names the tag and points at an image index with one
// image per released architecture, each labelled with the tag and holding
// the released binary byte for byte; the host's runs `version`.
func checkReleaseImage(t *testing.T, archive, dist string, files map[string]string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layout, _ := readTar(t, f)
	var top struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(layout["index.json"], &top); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" ||
		top.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != releaseTag {
		t.Fatalf("index.json: %+v, want one OCI image index named %s", top.Manifests, releaseTag)
	}
	var idx struct {
		MediaType string       `json:"mediaType"`
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(blob(t, layout, top.Manifests[0]), &idx); err != nil {
		t.Fatal(err)
	}
	var archs []string
	for _, md := range idx.Manifests {
		if md.Platform == nil || md.Platform.OS != "linux" {
			t.Fatalf("image index entry without a linux platform: %+v", md)
		}
		arch := md.Platform.Architecture
		archs = append(archs, arch)
		var manifest struct {
			Config descriptor   `json:"config"`
			Layers []descriptor `json:"layers"`
		}
		if err := json.Unmarshal(blob(t, layout, md), &manifest); err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Architecture string `json:"architecture"`
			Config       struct {
				Env    []string          `json:"Env"`
				Labels map[string]string `json:"Labels"`
			} `json:"config"`
		}
		if err := json.Unmarshal(blob(t, layout, manifest.Config), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != arch || cfg.Config.Labels["org.opencontainers.image.version"] != releaseTag ||
			cfg.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" || cfg.Config.Labels["org.opencontainers.image.revision"] == "" {
			t.Errorf("linux/%s image: architecture %s, labels %v", arch, cfg.Architecture, cfg.Config.Labels)
		}
		if len(manifest.Layers) != 1 {
			t.Fatalf("linux/%s: %d layers, want 1", arch, len(manifest.Layers))
		}
		gz, err := gzip.NewReader(bytes.NewReader(blob(t, layout, manifest.Layers[0])))
		if err != nil {
			t.Fatal(err)
		}
		layerTar, err := io.ReadAll(gz)
		if err != nil {
			t.Fatal(err)
		}
		lf, lh := readTar(t, bytes.NewReader(layerTar))
		released, err := os.ReadFile(filepath.Join(dist, files[arch]))
		if err != nil {
			t.Fatalf("no released binary for the image's linux/%s: %v", arch, err)
		}
		if !bytes.Equal(lf[strings.TrimPrefix(imageBinary, "/")], released) {
			t.Errorf("linux/%s: the image's binary is not the released %s", arch, files[arch])
		}
		if arch == runtime.GOARCH {
			out := runInRootfs(t, filepath.Join(t.TempDir(), "rootfs"), lf, lh, cfg.Config.Env, "version")
			if !strings.HasPrefix(out, "runai-ldap-sync "+releaseTag+" ") {
				t.Errorf("in the image, version printed %q, want the tag %s", out, releaseTag)
			}
			t.Logf("in the released image (linux/%s): %s", arch, strings.TrimSpace(out))
		}
	}
	slices.Sort(archs)
	if !slices.Equal(archs, []string{"amd64", "arm64"}) {
		t.Errorf("the image index holds %v, want amd64 and arm64", archs)
	}
}

// checkReleaseChart: the packaged chart's version is the tag's semver, its
// appVersion the tag, its kubeVersion 1.30+ (the admission policy it installs
// by default is GA there), it lints strictly with Helm 3 and 4 and renders
// with the image of the tag.
func checkReleaseChart(t *testing.T, tgz, chartVersion string) {
	t.Helper()
	if kv := checkPackagedChart(t, tgz, chartVersion, releaseTag); kv != ">=1.30.0-0" {
		t.Errorf("chart kubeVersion %q, want >=1.30.0-0", kv)
	}
	if _, err := helm(t, "helm", "template", name, tgz, "-n", namespace, "--kube-version", "1.29.9"); err == nil ||
		!strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("the released chart renders for Kubernetes 1.29, where its admission policy is not served: %v", err)
	}
}

// checkReleaseSBOM: a CycloneDX JSON document whose main component is this
// module at the tag, listing the modules the binary is built from at the
// versions the released tree's go.mod (in src) requires.
func checkReleaseSBOM(t *testing.T, path, src string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type component struct {
		Type    string `json:"type"`
		Name    string `json:"name"`
		Version string `json:"version"`
		PURL    string `json:"purl"`
	}
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component component `json:"component"`
		} `json:"metadata"`
		Components []component `json:"components"`
	}
	if err := json.Unmarshal(data, &bom); err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	module, requires := goMod(t, src)
	main := bom.Metadata.Component
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" || main.Name != module || main.Version != releaseTag ||
		!strings.HasPrefix(main.PURL, "pkg:golang/"+module+"@"+releaseTag) {
		t.Fatalf("SBOM: format %q %q, main component %+v; want CycloneDX naming %s@%s", bom.BOMFormat, bom.SpecVersion, main, module, releaseTag)
	}
	got := map[string]string{}
	for _, c := range bom.Components {
		got[c.Name] = c.Version
	}
	direct := 0
	for path, version := range requires {
		if v, ok := got[path]; ok {
			direct++
			if v != version {
				t.Errorf("SBOM: %s at %s, go.mod requires %s", path, v, version)
			}
		}
	}
	if got["github.com/go-ldap/ldap/v3"] == "" || got["k8s.io/client-go"] == "" || direct < 3 {
		t.Errorf("SBOM lists %d components, %d direct requirements; go-ldap and client-go missing?", len(bom.Components), direct)
	}
	t.Logf("SBOM: CycloneDX %s, %s@%s, %d components", bom.SpecVersion, main.Name, main.Version, len(bom.Components))
}

// goMod returns the module path of root's go.mod and its direct requirements
// (path -> version).
func goMod(t *testing.T, root string) (string, map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var module string
	requires := map[string]string{}
	inRequire := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "module "):
			module = strings.TrimSpace(strings.TrimPrefix(line, "module "))
		case line == "require (":
			inRequire = true
		case line == ")":
			inRequire = false
		case strings.HasPrefix(line, "require ") || inRequire:
			f := strings.Fields(strings.TrimPrefix(line, "require "))
			if len(f) >= 2 && !strings.Contains(line, "// indirect") {
				requires[f[0]] = f[1]
			}
		}
	}
	if module == "" || len(requires) == 0 {
		t.Fatalf("go.mod: no module line or no direct requirement")
	}
	return module, requires
}
