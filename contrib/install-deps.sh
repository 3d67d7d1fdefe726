#!/bin/bash
# install-deps.sh - installs, with apt-get, every Debian 12 package that
# tidesync needs to build, run its demo and run its whole test suite.
# Run as root (or with sudo).  Safe to run again.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
	exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(
	# build
	build-essential cmake pkg-config
	libfuse3-dev libjansson-dev libcurl4-openssl-dev libpq-dev libsqlite3-dev
	# run
	fuse3 sqlite3 ca-certificates
	# tests: servers, sanitizers, fuzzing, editors and tools driven over the mount
	postgresql-15 postgresql-client-15 valgrind clang libclang-rt-14-dev
	vim nano emacs-nox tmux jq python3 procps psmisc locales util-linux time
	# the local REST application (Directus, from the npm registry; native modules compile)
	nodejs g++ make
)
apt_stamp=/var/lib/apt/periodic/tidesync-update-stamp
if [ ! -f "$apt_stamp" ] || [ -n "$(find "$apt_stamp" -mmin +360 2>/dev/null)" ]; then
	apt-get update -qq
	mkdir -p "$(dirname "$apt_stamp")" && touch "$apt_stamp"
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm ships separately from some nodejs builds
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends npm

# Locales the locale tests use.
need_gen=0
for l in en_US de_DE fr_FR; do
	if ! locale -a 2>/dev/null | grep -qi "^${l}\.utf-\?8$"; then
		sed -i "s/^# *\(${l}.UTF-8 UTF-8\)/\1/" /etc/locale.gen
		grep -q "^${l}.UTF-8 UTF-8" /etc/locale.gen || echo "${l}.UTF-8 UTF-8" >>/etc/locale.gen
		need_gen=1
	fi
done
[ $need_gen = 0 ] || locale-gen >/dev/null
echo "install-deps: all packages present"
