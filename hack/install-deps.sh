#!/usr/bin/env bash
# Installs the Debian packages the demo, the tests and the bench need (hack/deps.txt: Samba as an
# Active Directory domain controller with its provisioning schema, OpenLDAP's slapd, ldap-utils,
# and the build tools), then checks that every file the test harness uses is really there.
# Idempotent: installs nothing when everything is already there.
#
#   hack/install-deps.sh            install what is missing, then verify
#   hack/install-deps.sh --verify   verify only (exit 1 naming the package to install)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
list="${DEPS_LIST:-$root/hack/deps.txt}"

pkgs=()
declare -A files=()
while read -r pkg rest; do
	[[ -z "$pkg" || "$pkg" == \#* ]] && continue
	pkgs+=("$pkg")
	files[$pkg]="${rest:-}"
done <"$list"

# verify prints one line per missing file with the package that provides it.
verify() {
	local bad=0 pkg f
	for pkg in "${pkgs[@]}"; do
		for f in ${files[$pkg]}; do
			# A glob that matches nothing stays as it is and fails the -e test.
			if ! compgen -G "$f" >/dev/null; then
				echo "missing $f: apt-get install $pkg (listed in hack/deps.txt)" >&2
				bad=1
			fi
		done
	done
	return $bad
}

if [[ "${1:-}" == "--verify" ]]; then
	verify
	exit
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
		exit 1
	fi
	echo "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The packages start system daemons that would hold the LDAP ports the test
	# harness needs; the harness runs its own private instances.
	for svc in samba-ad-dc smbd nmbd winbind slapd; do
		systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
	done
	pkill -x slapd >/dev/null 2>&1 || true
fi
if ! verify; then
	echo "make deps: the packages above are installed but files the tests need are missing; install the named packages (or reinstall them: apt-get install --reinstall PACKAGE)" >&2
	exit 1
fi
