#!/usr/bin/env bash
# Install what rvs, its tests and the lab need on Debian/Ubuntu (only what is missing), and
# check that Rust's cargo is available. Runs as root.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_root

PKGS=(
    dpdk libdpdk-dev pkg-config clang libclang-dev build-essential
    nginx-light curl iproute2 ethtool socat python3 python3-venv procps ca-certificates
)

if ! command -v apt-get >/dev/null 2>&1; then
    die "apt-get not found: install these yourself: ${PKGS[*]}"
fi

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

missing=()
for p in "${PKGS[@]}"; do
    if [[ $p == nginx-light ]] && command -v nginx >/dev/null 2>&1; then
        continue # any nginx will do
    fi
    pkg_installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Newer releases dropped nginx-light; plain nginx is equivalent for the lab.
    for i in "${!missing[@]}"; do
        if [[ ${missing[$i]} == nginx-light ]] && ! apt-cache show nginx-light >/dev/null 2>&1; then
            missing[i]=nginx
        fi
    done
    # Installing nginx would start the distribution's nginx service in the root namespace
    # (listening on :80). Keep service starts off during the install, as Debian's own
    # policy-rc.d mechanism allows, unless the admin already has a policy in place.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=1
    fi
    rc=0
    apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    if ((own_policy)); then rm -f "$policy"; fi
    ((rc == 0)) || die "apt-get install failed ($rc)"
else
    log "system packages: all present"
fi

pkg-config --exists 'libdpdk >= 22.11' || die "libdpdk >= 22.11 not found by pkg-config"

find_cargo || exit 1
log "cargo: $(cargo --version)"
