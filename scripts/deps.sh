#!/usr/bin/env bash
# Install what rvs, its tests and the lab need on Debian/Ubuntu (only what is missing), and
# check that Rust's cargo is available. Runs as root.
#
#   scripts/deps.sh            build, tests and lab
#   scripts/deps.sh --bench    also what perf/bench.sh and perf/profile.sh need: dpdk-testpmd
#                              (Debian 12: package dpdk-dev), perf (linux-perf), addr2line
#                              (binutils); a missing cargo is then only a warning (the bench
#                              can measure testpmd alone, ONLY=testpmd)
#   scripts/deps.sh --runtime  only what a production director runs with: DPDK's libraries and
#                              dpdk-devbind.py, iproute2, ethtool, kmod (no lab, no test tools)
#   scripts/deps.sh --runtime --build
#                              that plus what building rvs needs (libdpdk-dev, clang, ...): a
#                              production machine that builds rvs itself (scripts/install.sh)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bench=0
runtime=0
build=0
for arg in "$@"; do
    case $arg in
    --bench) bench=1 ;;
    --runtime) runtime=1 ;;
    --build) build=1 ;;
    -h | --help)
        sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown argument '$arg' (usage: scripts/deps.sh [--bench] | --runtime [--build])" ;;
    esac
done
if ((build && !runtime)); then
    die "--build goes with --runtime (the default already installs the build tools)"
fi
if ((runtime && bench)); then
    die "--bench goes with the default set, not with --runtime"
fi

require_root

PKGS=(
    dpdk libdpdk-dev pkg-config clang libclang-dev build-essential keepalived
    nginx-light curl iproute2 ethtool socat python3 python3-venv procps ca-certificates iputils-ping
    # BGP for the ECMP lab (tests/lab/ecmp.sh); its service is not started by the install.
    bird2
    # The VRRP lab's split-brain case cuts the adverts between the directors with an nft bridge
    # table (tests/lab/vrrp.sh).
    nftables
    # The man pages' check (scripts/check-man.sh): groff renders them with warnings as errors.
    groff-base man-db
    # Tests only: the metrics lab scrapes rvs with a real Prometheus, run by hand in a lab
    # namespace (tests/lab/metrics.sh); its service is not started by the install.
    prometheus
)
# A production director: DPDK's runtime libraries (and dpdk-devbind.py, dpdk-hugepages.py, in
# the dpdk package), `ip` for the kernel interface and [announce] routes, ethtool to look at
# the NIC before binding it, modprobe for vfio-pci, procps (sysctl, for rvs rs-setup on real
# servers), CA certificates for SSL_GET checks.
RUNTIME_PKGS=(dpdk iproute2 ethtool kmod procps ca-certificates)
# What building rvs needs on top: libdpdk-dev (headers, pkg-config file), clang and libclang for
# bindgen, a C toolchain for the shim.
BUILD_PKGS=(libdpdk-dev pkg-config clang libclang-dev build-essential)
if ((runtime)); then
    PKGS=("${RUNTIME_PKGS[@]}")
    if ((build)); then
        PKGS+=("${BUILD_PKGS[@]}")
    fi
fi
# perf/bench.sh: dpdk-testpmd (in dpdk-dev on Debian 12, not in dpdk), python3 (above; bench.py
# and gen_pcap.py use its standard library only), stdbuf (coreutils); perf/profile.sh: perf and
# addr2line.
BENCH_PKGS=(dpdk-dev linux-perf binutils)
if ((bench)); then
    PKGS+=("${BENCH_PKGS[@]}")
fi

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
    if [[ $p == linux-perf ]] && command -v perf >/dev/null 2>&1; then
        continue # Ubuntu's perf comes from linux-tools-*
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
        # Ubuntu has no linux-perf: perf is packaged per kernel (linux-tools-$(uname -r)). Only
        # perf/profile.sh needs it, so go on without it when there is no such package.
        if [[ ${missing[$i]} == linux-perf ]] && ! apt-cache show linux-perf >/dev/null 2>&1; then
            tools="linux-tools-$(uname -r)"
            if apt-cache show "$tools" >/dev/null 2>&1; then
                missing[i]=$tools
            else
                log "warning: no package linux-perf nor $tools: install perf yourself for perf/profile.sh"
                unset 'missing[i]'
            fi
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

if ((runtime && !build)); then
    command -v dpdk-devbind.py >/dev/null 2>&1 || log "warning: dpdk-devbind.py not found (package dpdk)"
    log "runtime packages: ok (to build rvs here: scripts/deps.sh --runtime --build)"
    exit 0
fi

pkg-config --exists 'libdpdk >= 22.11' || die "libdpdk >= 22.11 not found by pkg-config"

if ((bench)) && ! command -v dpdk-testpmd >/dev/null 2>&1; then
    die "dpdk-testpmd still not found after installing ${BENCH_PKGS[*]}"
fi

if ! find_cargo; then
    ((bench)) || exit 1
    log "warning: without cargo rvs cannot be built; perf/bench.sh can still measure ONLY=testpmd"
    exit 0
fi
log "cargo: $(cargo --version)"
