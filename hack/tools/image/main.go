// Command image builds the runai-ldap-sync container image without a Docker
// engine: one layer holding a static binary, the CA bundle and a passwd/group
// naming the non-root user, on an empty base, written as an OCI image layout
// packed into one tar file (load it with `skopeo copy oci-archive:FILE ...`,
// `podman load -i FILE` or `crane push FILE.d ...`).
//
// With several -platform ARCH=BINARY, one image per architecture under an
// OCI image index (a multi-arch image: `skopeo copy --all`).
//
// The result is reproducible: every timestamp is SOURCE_DATE_EPOCH (default
// 0), so the same binaries and CA bundle give the same image digest.
//
//	go run . -binary ../../../bin/linux-amd64/runai-ldap-sync -ca-bundle /etc/ssl/certs/ca-certificates.crt \
//	    -version v1.2.3 -out ../../../dist/runai-ldap-sync-v1.2.3.oci.tar
//	go run . -platform amd64=dist/runai-ldap-sync-linux-amd64 -platform arm64=dist/runai-ldap-sync-linux-arm64 \
//	    -version v1.2.3 -out dist/runai-ldap-sync-v1.2.3.oci.tar
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identity inside the image. hack/Dockerfile uses the same ones.
const (
	binaryPath = "/usr/local/bin/runai-ldap-sync"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	uid        = 65532 // distroless "nonroot"
	userName   = "nonroot"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	flag.StringVar(&o.binary, "binary", "", "static runai-ldap-sync binary (CGO_ENABLED=0) for the target platform")
	flag.StringVar(&o.caBundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle to ship (Debian: package ca-certificates)")
	flag.StringVar(&o.version, "version", "dev", "version, for the image labels and the layout's ref name")
	flag.StringVar(&o.source, "source", "", "source repository URL, for the org.opencontainers.image.source label (optional)")
	flag.StringVar(&o.revision, "revision", "", "VCS revision, for the org.opencontainers.image.revision label (optional)")
	flag.StringVar(&o.arch, "arch", "amd64", "GOARCH of the binary")
	flag.StringVar(&o.out, "out", "", "output: OCI image layout packed as a tar file")
	flag.Func("platform", "ARCH=BINARY, repeated: a multi-arch image (instead of -binary and -arch)", func(v string) error {
		arch, bin, ok := strings.Cut(v, "=")
		if !ok || arch == "" || bin == "" {
			return fmt.Errorf("want ARCH=BINARY, e.g. arm64=dist/runai-ldap-sync-linux-arm64")
		}
		o.platforms = append(o.platforms, platform{arch: arch, binary: bin})
		return nil
	})
	flag.Parse()
	if (o.binary == "") == (len(o.platforms) == 0) || o.out == "" {
		flag.Usage()
		return errors.New("-out and either -binary or -platform are required")
	}
	epoch := int64(0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var err error
		if epoch, err = strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
	}
	o.created = time.Unix(epoch, 0).UTC()
	return build(o)
}

type options struct {
	binary, caBundle, version, source, revision, arch, out string
	platforms                                              []platform
	created                                                time.Time
}

type platform struct{ arch, binary string }

func build(o options) error {
	ca, err := os.ReadFile(o.caBundle)
	if err != nil {
		return fmt.Errorf("read CA bundle (Debian: apt-get install ca-certificates): %w", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return fmt.Errorf("CA bundle %s holds no PEM certificate", o.caBundle)
	}
	if len(o.platforms) == 0 {
		img, err := buildImage(o, o.arch, o.binary, ca)
		if err != nil {
			return err
		}
		return writeLayoutTar(o, func(p layout.Path) error {
			return p.AppendImage(img,
				layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": o.version}),
				layout.WithPlatform(v1.Platform{OS: "linux", Architecture: o.arch}))
		})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]bool{}
	for _, pl := range o.platforms {
		if seen[pl.arch] {
			return fmt.Errorf("-platform %s given twice", pl.arch)
		}
		seen[pl.arch] = true
		img, err := buildImage(o, pl.arch, pl.binary, ca)
		if err != nil {
			return fmt.Errorf("linux/%s: %w", pl.arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: pl.arch}}})
	}
	return writeLayoutTar(o, func(p layout.Path) error {
		return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": o.version}))
	})
}

// buildImage is the image of one architecture.
func buildImage(o options, arch, binary string, ca []byte) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	if err := checkStatic(binary, arch); err != nil {
		return nil, err
	}

	layerTar, err := rootfs(o.created, bin, ca)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: o.created},
			CreatedBy: "hack/tools/image: " + binaryPath + ", " + caPath + ", /etc/passwd, /etc/group",
			Comment:   "runai-ldap-sync " + o.version,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: o.created}
	cf.OS, cf.Architecture = "linux", arch
	labels := map[string]string{
		"org.opencontainers.image.title":       "runai-ldap-sync",
		"org.opencontainers.image.description": "Keeps Run:AI project access in Kubernetes in step with Active Directory groups",
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.created":     o.created.Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	if o.source != "" {
		labels["org.opencontainers.image.source"] = o.source
	}
	if o.revision != "" {
		labels["org.opencontainers.image.revision"] = o.revision
	}
	cf.Config = v1.Config{
		Entrypoint:   []string{binaryPath},
		Cmd:          []string{"run", "--config", "/etc/runai-ldap-sync/config.yaml"},
		User:         fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir:   "/",
		Env:          []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=" + caPath},
		ExposedPorts: map[string]struct{}{"9090/tcp": {}},
		Labels:       labels,
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// elfMachines are the ELF machine types of the architectures we release.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkStatic refuses a dynamically linked binary (the image has no libc) and
// one built for another architecture than the image says.
func checkStatic(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if m, ok := elfMachines[arch]; ok && f.Machine != m {
		return fmt.Errorf("binary %s is for %s, not linux/%s: build it with GOARCH=%s", path, f.Machine, arch, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s is dynamically linked (has an ELF interpreter): build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// rootfs returns the uncompressed layer: the binary, the CA bundle, and the
// user and group files, with fixed owners and times.
func rootfs(mtime time.Time, bin, ca []byte) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", userName, uid, uid, userName, userName)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid)
	type entry struct {
		name string
		mode int64
		dir  bool
		data []byte
		uid  int
	}
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/" + userName + "/", mode: 0o700, dir: true, uid: uid},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: "usr/local/bin/runai-ldap-sync", mode: 0o755, data: bin},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Uid: e.uid, Gid: e.uid, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	return buf.Bytes(), nil
}

// writeLayoutTar writes an OCI image layout into a temporary directory with
// add (an image or an index) and packs that directory into o.out (an
// "oci-archive").
func writeLayoutTar(o options, add func(layout.Path) error) error {
	tmp, err := os.MkdirTemp("", "runai-ldap-sync-image-")
	if err != nil {
		return fmt.Errorf("create temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	if err := add(p); err != nil {
		return fmt.Errorf("write image to OCI layout: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	partial := o.out + ".partial"
	f, err := os.Create(partial)
	if err != nil {
		return fmt.Errorf("create %s: %w", partial, err)
	}
	defer os.Remove(partial)
	if err := packDir(f, tmp, o.created); err != nil {
		f.Close()
		return fmt.Errorf("pack OCI layout into %s: %w", o.out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", partial, err)
	}
	if err := os.Rename(partial, o.out); err != nil {
		return fmt.Errorf("move image into place: %w", err)
	}
	index, err := p.ImageIndex()
	if err != nil {
		return fmt.Errorf("read back the OCI layout: %w", err)
	}
	im, err := index.IndexManifest()
	if err != nil {
		return fmt.Errorf("read back the OCI layout: %w", err)
	}
	for _, d := range im.Manifests {
		fmt.Printf("%s: runai-ldap-sync %s %s %s\n", o.out, o.version, d.MediaType, d.Digest)
	}
	return nil
}

// packDir writes dir as a tar stream in name order with fixed times and
// owners, so the archive is reproducible.
func packDir(w io.Writer, dir string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
