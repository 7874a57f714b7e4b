package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

const (
	imageVersion = "v0.0.0-imagetest"
	imageBinary  = "/usr/local/bin/runai-ldap-sync"
	imageCA      = "/etc/ssl/certs/ca-certificates.crt"
	hostCA       = "/etc/ssl/certs/ca-certificates.crt"
)

// buildImage runs hack/image.sh (what `make image` runs) into dir and
// returns the OCI archive's path.
func buildImage(t *testing.T, dir string) string {
	t.Helper()
	root := repoRoot(t)
	cmd := exec.Command(filepath.Join(root, "hack", "image.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DIST_DIR="+dir, "VERSION="+imageVersion, "GOARCH=amd64", "SOURCE_DATE_EPOCH=1700000000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hack/image.sh: %v\n%s", err, out)
	}
	t.Logf("hack/image.sh:\n%s", out)
	archive := filepath.Join(dir, "runai-ldap-sync-"+imageVersion+"-linux-amd64.oci.tar")
	if _, err := os.Stat(archive); err != nil {
		t.Fatalf("hack/image.sh wrote no %s: %v", archive, err)
	}
	return archive
}

// readTar returns the regular files of a tar stream by name.
func readTar(t *testing.T, r io.Reader) (map[string][]byte, map[string]*tar.Header) {
	t.Helper()
	files, headers := map[string][]byte{}, map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, headers
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "/")
		headers[name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = b
		}
	}
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

// blob returns a blob of the layout, checking its digest and size.
func blob(t *testing.T, layout map[string][]byte, d descriptor) []byte {
	t.Helper()
	hexDigest, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q is not sha256", d.Digest)
	}
	b, ok := layout["blobs/sha256/"+hexDigest]
	if !ok {
		t.Fatalf("blob %s missing from the layout", d.Digest)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hexDigest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content does not match its digest or size", d.Digest)
	}
	return b
}

// TestImage builds the image as `make image` does and checks it by reading
// the OCI layout with the standard library alone (not with the library that
// wrote it): entrypoint, non-root user, CA bundle, a static binary that runs
// `version` inside the image's own root filesystem as user 65532.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	archive := buildImage(t, dir)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layout, _ := readTar(t, f)

	if got := string(layout["oci-layout"]); !strings.Contains(got, `"imageLayoutVersion"`) {
		t.Fatalf("oci-layout = %q", got)
	}
	var index struct {
		SchemaVersion int          `json:"schemaVersion"`
		Manifests     []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(layout["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	md := index.Manifests[0]
	if md.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest media type %s, want OCI", md.MediaType)
	}
	if md.Annotations["org.opencontainers.image.ref.name"] != imageVersion {
		t.Errorf("ref name %q, want %s", md.Annotations["org.opencontainers.image.ref.name"], imageVersion)
	}
	if md.Platform == nil || md.Platform.OS != "linux" || md.Platform.Architecture != "amd64" {
		t.Errorf("platform %+v, want linux/amd64", md.Platform)
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(blob(t, layout, md), &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("config media type %s", manifest.Config.MediaType)
	}
	var cfg struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Config       struct {
			User       string            `json:"User"`
			Entrypoint []string          `json:"Entrypoint"`
			Cmd        []string          `json:"Cmd"`
			Env        []string          `json:"Env"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blob(t, layout, manifest.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Config.Entrypoint, []string{imageBinary}) {
		t.Errorf("entrypoint %v, want [%s]", cfg.Config.Entrypoint, imageBinary)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", cfg.Config.User)
	}
	if !reflect.DeepEqual(cfg.Config.Cmd, []string{"run", "--config", configDir + "/config.yaml"}) {
		t.Errorf("cmd %v", cfg.Config.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("config platform %s/%s", cfg.OS, cfg.Architecture)
	}
	if cfg.Config.Labels["org.opencontainers.image.version"] != imageVersion {
		t.Errorf("labels %v", cfg.Config.Labels)
	}
	if len(manifest.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 {
		t.Fatalf("%d layers, %d diff_ids; want one", len(manifest.Layers), len(cfg.RootFS.DiffIDs))
	}
	if manifest.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Errorf("layer media type %s", manifest.Layers[0].MediaType)
	}
	gz, err := gzip.NewReader(bytes.NewReader(blob(t, layout, manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	layerTar, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(layerTar); "sha256:"+hex.EncodeToString(sum[:]) != cfg.RootFS.DiffIDs[0] {
		t.Error("the layer does not match the config's diff_id")
	}
	files, headers := readTar(t, bytes.NewReader(layerTar))

	// The CA bundle is Debian's.
	want, err := os.ReadFile(hostCA)
	if err != nil {
		t.Fatalf("read %s (apt-get install ca-certificates): %v", hostCA, err)
	}
	if ca := files[strings.TrimPrefix(imageCA, "/")]; !bytes.Equal(ca, want) {
		t.Errorf("%s in the image (%d bytes) is not %s (%d bytes)", imageCA, len(ca), hostCA, len(want))
	}
	if !strings.Contains(string(files["etc/passwd"]), ":65532:65532:") {
		t.Errorf("/etc/passwd names no user 65532:\n%s", files["etc/passwd"])
	}
	binName := strings.TrimPrefix(imageBinary, "/")
	if h := headers[binName]; h == nil || h.Mode&0o111 == 0 || h.Uid != 0 {
		t.Fatalf("%s missing, not executable, or not owned by root: %+v", imageBinary, h)
	}

	out := runInRootfs(t, filepath.Join(dir, "rootfs"), files, headers, cfg.Config.Env, "version")
	if !strings.HasPrefix(out, "runai-ldap-sync "+imageVersion+" ") || !strings.Contains(out, "linux/amd64") {
		t.Errorf("version printed %q", out)
	}
	t.Logf("in the image, as 65532: %s", strings.TrimSpace(out))

	// Reproducible: a second build gives the same manifest.
	archive2 := buildImage(t, filepath.Join(dir, "again"))
	f2, err := os.Open(archive2)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	layout2, _ := readTar(t, f2)
	if !bytes.Equal(layout["index.json"], layout2["index.json"]) {
		t.Errorf("two builds of the same source differ:\n%s\n%s", layout["index.json"], layout2["index.json"])
	}
}

// runInRootfs unpacks an image's layer into rootfs and runs its binary with
// args there: as a container runtime would when root (chroot, user 65532),
// else straight from the unpacked files. It returns the combined output.
func runInRootfs(t *testing.T, rootfs string, files map[string][]byte, headers map[string]*tar.Header, env []string, args ...string) string {
	t.Helper()
	for name, h := range headers {
		p := filepath.Join(rootfs, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode).Perm()|0o111); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, files[name], os.FileMode(h.Mode).Perm()); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("unexpected entry %s of type %c in the layer", name, h.Typeflag)
		}
	}
	if err := os.Chmod(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	binName := strings.TrimPrefix(imageBinary, "/")
	ef, err := elf.Open(filepath.Join(rootfs, binName))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked: the image has no libc")
		}
	}
	ef.Close()

	cmd := exec.Command(imageBinary, args...)
	cmd.Dir = "/"
	cmd.Env = env
	if os.Geteuid() == 0 {
		// As a container runtime would: the image's files only, its user.
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
	} else {
		t.Logf("not root: running the image's binary without chroot")
		cmd.Path = filepath.Join(rootfs, binName)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v in the image: %v\n%s", imageBinary, args, err, out)
	}
	return string(out)
}

// TestDockerfileMatchesImage keeps hack/Dockerfile (for people with Docker;
// it cannot be built here) in step with the image `make image` builds.
func TestDockerfileMatchesImage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "hack", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		`ENTRYPOINT ["` + imageBinary + `"]`,
		`CMD ["run", "--config", "` + configDir + `/config.yaml"]`,
		"USER 65532:65532",
		"CGO_ENABLED=0",
		imageCA,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
}
