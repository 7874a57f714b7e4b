#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need: Samba as an
# Active Directory domain controller, OpenLDAP's slapd, and ldap-utils.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

pkgs=(samba samba-ad-dc winbind ldap-utils slapd)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
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
