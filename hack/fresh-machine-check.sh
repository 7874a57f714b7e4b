#!/usr/bin/env bash
# Proves that `make deps` sets up a machine that never had any of this: in a minimal Debian
# root built from the apt repository (debootstrap --variant=minbase, none of our packages), it
#   1. checks that `install-deps.sh --verify` fails there (nothing installed yet);
#   2. installs the list with one package left out ($FRESH_OMIT, default samba-ad-provision, the
#      Recommends that once broke every new machine) and checks that both the verification and
#      the harness fail, the harness naming the package in its first line;
#   3. runs install-deps.sh with the full list, then the harness test that provisions and starts
#      a Samba AD DC and slapd and reads both with ldapsearch.
# Needs root (chroot, mounts) and the Debian mirror. The pristine root is cached as a tarball in
# $FRESH_CACHE_DIR (default /var/cache/runai-ldap-sync): it holds none of our packages, so reusing
# it proves the same thing and saves the debootstrap (~3-7 min on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
suite=bookworm
mirror="${FRESH_MIRROR:-http://deb.debian.org/debian}"
cache="${FRESH_CACHE_DIR:-/var/cache/runai-ldap-sync}"
omit="${FRESH_OMIT:-samba-ad-provision}"
say() { echo "fresh-machine-check: $*"; }
fail() { echo "fresh-machine-check: FAIL: $*" >&2; exit 1; }

[[ "$(id -u)" -eq 0 ]] || fail "needs root (chroot and mounts); run as root, as CI does"
if ! command -v debootstrap >/dev/null; then
	say "installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
grep -qE "^$omit([[:space:]]|\$)" "$root/hack/deps.txt" || fail "FRESH_OMIT=$omit is not in hack/deps.txt"

work="$(mktemp -d /var/tmp/runai-ldap-sync-fresh.XXXXXX)"
rootfs="$work/root"
mounts=()
cleanup() {
	local i
	# Stop anything the harness left (it should leave nothing), then unmount in reverse order.
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

tarball="$cache/$suite-minbase.tar"
if [[ ! -s "$tarball" ]]; then
	say "building a minimal $suite root with debootstrap from $mirror (cached afterwards in $tarball)"
	start=$SECONDS
	debootstrap --variant=minbase "$suite" "$work/base" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
	mkdir -p "$cache"
	tar -C "$work/base" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
	rm -rf "$work/base"
	say "debootstrap took $((SECONDS - start)) s"
fi
mkdir -p "$rootfs"
tar -C "$rootfs" -xf "$tarball"

# The repository files the check uses, and the harness test compiled here (static, so the
# root needs no Go toolchain).
mkdir -p "$rootfs/repo/hack" "$rootfs/repo/integration/harness"
cp "$root/go.mod" "$rootfs/repo/"
cp "$root/hack/deps.txt" "$root/hack/install-deps.sh" "$rootfs/repo/hack/"
grep -vE "^$omit([[:space:]]|\$)" "$root/hack/deps.txt" >"$rootfs/repo/hack/deps-omit.txt"
say "compiling the harness test"
(cd "$root" && CGO_ENABLED=0 go test -c -o "$rootfs/repo/integration/harness/harness.test" ./integration/harness)

cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
# Package scripts must not start daemons in the root: they would take the host's LDAP ports.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod +x "$rootfs/usr/sbin/policy-rc.d"
mount -t proc proc "$rootfs/proc" && mounts+=("$rootfs/proc")
mount --bind /dev "$rootfs/dev" && mounts+=("$rootfs/dev")
# Downloaded packages are kept between runs (apt verifies them again): none is installed until
# install-deps.sh asks for it, so this changes only the download time.
mkdir -p "$cache/archives/partial"
mount --bind "$cache/archives" "$rootfs/var/cache/apt/archives" && mounts+=("$rootfs/var/cache/apt/archives")
# Samba's ports are fixed: share the host's lock so this Samba waits for (and blocks) the tests'.
touch /tmp/runai-ldap-sync-samba.lock "$rootfs/tmp/runai-ldap-sync-samba.lock"
mount --bind /tmp/runai-ldap-sync-samba.lock "$rootfs/tmp/runai-ldap-sync-samba.lock" && mounts+=("$rootfs/tmp/runai-ldap-sync-samba.lock")

in_root() {
	chroot "$rootfs" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
harness_test() {
	in_root /bin/sh -c 'cd /repo/integration/harness && ./harness.test -test.count=1 -test.v -test.run "^TestServersStartOnThisMachine$"'
}

say "step 1: a machine without the packages fails verification"
if in_root bash /repo/hack/install-deps.sh --verify 2>"$work/verify0.err"; then
	fail "install-deps.sh --verify passed on a root without the packages"
fi
grep -q "apt-get install samba" "$work/verify0.err" || fail "verification did not name the package: $(head -3 "$work/verify0.err")"

say "step 2: the list without $omit"
start=$SECONDS
in_root env DEPS_LIST=/repo/hack/deps-omit.txt bash /repo/hack/install-deps.sh >"$work/install-omit.log" 2>&1 ||
	{ tail -20 "$work/install-omit.log" >&2; fail "install-deps.sh (without $omit) failed"; }
say "installed everything but $omit in $((SECONDS - start)) s"
if in_root bash /repo/hack/install-deps.sh --verify 2>"$work/verify1.err"; then
	fail "install-deps.sh --verify passed without $omit"
fi
grep -q "apt-get install $omit" "$work/verify1.err" || fail "verification did not name $omit: $(cat "$work/verify1.err")"
say "verification fails as it should: $(head -1 "$work/verify1.err")"
if harness_test >"$work/harness-omit.log" 2>&1; then
	say "note: the harness test passes without $omit (it needs nothing from it); the verification above catches it"
else
	grep -q "apt-get install --no-install-recommends.* $omit" "$work/harness-omit.log" ||
		{ tail -30 "$work/harness-omit.log" >&2; fail "the harness failed without $omit but did not name it"; }
	say "the harness fails as it should: $(grep -m1 'this machine lacks' "$work/harness-omit.log" | sed 's/^ *//')"
fi

say "step 3: make deps's script with the full list, then Samba and slapd"
start=$SECONDS
in_root bash /repo/hack/install-deps.sh >"$work/install.log" 2>&1 ||
	{ tail -20 "$work/install.log" >&2; fail "install-deps.sh failed on a fresh root"; }
say "install-deps.sh finished in $((SECONDS - start)) s"
if ! harness_test >"$work/harness.log" 2>&1; then
	tail -40 "$work/harness.log" >&2
	fail "Samba or slapd did not start on a root with exactly the packages of hack/deps.txt"
fi
grep -E '^(--- PASS|ok|PASS)' "$work/harness.log" | head -3
say "OK: make deps's package list is complete for Samba AD, slapd and ldapsearch on a fresh $suite"
