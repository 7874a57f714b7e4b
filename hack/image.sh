#!/usr/bin/env bash
# Builds the runai-ldap-sync container image without a Docker engine:
# a static binary (CGO_ENABLED=0), Debian's CA bundle and a non-root user
# (65532) on an empty base, as an OCI image layout packed in one tar file.
#
#   hack/image.sh                      -> dist/runai-ldap-sync-$VERSION-linux-$GOARCH.oci.tar
#   VERSION=v1.2.3 GOARCH=arm64 hack/image.sh
#   DIST_DIR=/tmp/out hack/image.sh    (the tests use this)
#   GOARCHES="amd64 arm64" hack/image.sh -> dist/runai-ldap-sync-$VERSION.oci.tar, one image per
#                                         architecture under an OCI image index (make release)
#
# Load it with `skopeo copy oci-archive:FILE docker://REGISTRY/runai-ldap-sync:TAG` (add --all
# for every architecture of a multi-arch archive) or `podman load -i FILE`. The image builder
# is hack/tools/image (go-containerregistry).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
GOARCH="${GOARCH:-$(go env GOARCH)}"
GOARCHES="${GOARCHES:-}"
DIST_DIR="${DIST_DIR:-$root/dist}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
BIN_DIR="${RUNAI_LDAP_SYNC_BIN_DIR:-$root/.cache/bin}"
# Reproducible by default: the commit time, else 0.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH

if [[ ! -s "$CA_BUNDLE" ]]; then
	echo "image: CA bundle $CA_BUNDLE not found: apt-get install ca-certificates (or set CA_BUNDLE)" >&2
	exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The same flags as `make build` and `make release`, so the image's binary is the released one.
build() {
	echo "image: building runai-ldap-sync $VERSION for linux/$1 (CGO_ENABLED=0)"
	CGO_ENABLED=0 GOOS=linux GOARCH="$1" go build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION" \
		-o "$work/runai-ldap-sync-linux-$1" ./cmd/runai-ldap-sync
}

mkdir -p "$BIN_DIR"
(cd hack/tools/image && go build -o "$BIN_DIR/image-builder" .)

args=(-ca-bundle "$CA_BUNDLE" -version "$VERSION" -source "https://github.com/runai-ldap-sync/runai-ldap-sync"
	-revision "$(git rev-parse HEAD 2>/dev/null || true)")
if [[ -n "$GOARCHES" ]]; then
	out="$DIST_DIR/runai-ldap-sync-$VERSION.oci.tar"
	for arch in $GOARCHES; do
		build "$arch"
		args+=(-platform "$arch=$work/runai-ldap-sync-linux-$arch")
	done
else
	out="$DIST_DIR/runai-ldap-sync-$VERSION-linux-$GOARCH.oci.tar"
	build "$GOARCH"
	args+=(-binary "$work/runai-ldap-sync-linux-$GOARCH" -arch "$GOARCH")
fi
"$BIN_DIR/image-builder" "${args[@]}" -out "$out"
