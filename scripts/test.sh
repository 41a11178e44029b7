#!/usr/bin/env bash
# Everything CI checks, from a fresh clone (as root): dependencies, unit and in-process DPDK
# tests, the release build, then the namespace lab tests.
#
#   scripts/test.sh          (as root)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_root
"$REPO_ROOT/scripts/deps.sh"
find_cargo
cd "$REPO_ROOT"

failed=()
step() {
    local name=$1 rc=0
    shift
    log "== $name: $*"
    "$@" || rc=$?
    if ((rc != 0)); then
        log "== $name FAILED (exit $rc)"
        failed+=("$name")
    fi
    return 0
}

if command -v shellcheck >/dev/null 2>&1; then
    step shellcheck shellcheck -x scripts/*.sh perf/*.sh tests/lab/run.sh tests/lab/issue3.sh tests/lab/kernel_path.sh tests/lab/health.sh tests/lab/vrrp.sh tests/lab/ecmp.sh tests/lab/ops.sh tests/lab/vlan.sh tests/lab/metrics.sh tests/soak.sh \
        tests/install.sh packaging/rvsadm-save packaging/rvsadm-restore
fi
step house scripts/check-house.sh
# The man pages render without warnings and rvs.toml(5) documents every configuration key.
step man scripts/check-man.sh
# The dataplane, control and rvsadm crates build and pass their tests without DPDK: pkg-config
# is pointed at nothing, so dpdk-sys (whose build script asks pkg-config for libdpdk) could not
# build if any of them pulled it in. A target directory of its own keeps the two builds apart.
step no-dpdk env PKG_CONFIG_PATH=/nonexistent PKG_CONFIG_LIBDIR=/nonexistent \
    CARGO_TARGET_DIR="$REPO_ROOT/target/no-dpdk" \
    cargo test -p rvs-dataplane -p rvs-control -p rvsadm --no-fail-fast
# The rest: the daemon (DPDK wrapper, engine, config) and the bindings.
step unit-tests cargo test -p rvs -p dpdk-sys --no-fail-fast
step trex-profiles "$REPO_ROOT/perf/trex/run_tests.sh"
# Every fuzz target (pipeline, control requests, rules, rvsadm arguments, configuration,
# keepalived.conf, HTTP check responses, the metrics endpoint's requests) for a
# short fixed time from its seeds: a crash, a hang or a broken invariant fails the step.
step fuzz "$REPO_ROOT/scripts/fuzz.sh" 30
step build cargo build --release
if [[ " ${failed[*]} " == *" build "* ]]; then
    log "== lab tests skipped: the release build failed"
    failed+=(install lab-tests lab-tests-issue3 lab-tests-kernel lab-tests-vlan lab-tests-health lab-tests-vrrp lab-tests-ecmp lab-tests-ops lab-tests-metrics soak-60s)
else
    # scripts/install.sh into a staging directory, its files, check-config, --uninstall.
    step install "$REPO_ROOT/tests/install.sh"
    step lab-tests "$REPO_ROOT/tests/lab/run.sh"
    step lab-tests-issue3 "$REPO_ROOT/tests/lab/issue3.sh"
    step lab-tests-kernel "$REPO_ROOT/tests/lab/kernel_path.sh"
    # 802.1Q: the director on a VLAN behind a trunk port (issue 15).
    step lab-tests-vlan "$REPO_ROOT/tests/lab/vlan.sh"
    step lab-tests-health "$REPO_ROOT/tests/lab/health.sh"
    # VRRP failover with connection sync, rvs with keepalived (issue 14, parts 1 and 2).
    step lab-tests-vrrp "$REPO_ROOT/tests/lab/vrrp.sh"
    # Active/active behind an ECMP router that learns the VIP from BIRD (issue 14, part 3).
    step lab-tests-ecmp "$REPO_ROOT/tests/lab/ecmp.sh"
    # Running as a service (issue 15): the installed unit's command, reload, restart and
    # rvsadm -C/-R with 100 downloads each.
    step lab-tests-ops "$REPO_ROOT/tests/lab/ops.sh"
    # The Prometheus endpoint scraped by a real Prometheus (issue 15, metrics).
    step lab-tests-metrics "$REPO_ROOT/tests/lab/metrics.sh"
    # The soak's short form (the full one is `tests/soak.sh`, 600 s: perf/soak.md).
    step soak-60s "$REPO_ROOT/tests/soak.sh" 60
fi

if ((${#failed[@]})); then
    log "FAILED: ${failed[*]}"
    exit 1
fi
log "all passed"
