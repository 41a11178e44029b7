#!/bin/sh
# Forwarding benchmark: dpdk-testpmd --forward-mode=macswap vs rvs, same lcore, same pcap,
# alternating rounds. See perf/README.md.
#
#   perf/bench.sh [established|syn|imix ...]       (default: all three)
#
# Environment (defaults in brackets):
#   ROUNDS [3]  WINDOW [10] s  WARMUP [3] s    rounds, measuring window, warm-up before it
#   MAIN_LCORE [0]  FWD_LCORE [1]              EAL main lcore; the forwarding lcore of BOTH programs
#   MEM [3072]                                 EAL -m (MB); net_pcap keeps the pcap in mbufs
#   HUGE [0]                                   1: both programs take MEM from hugetlbfs (reserve
#                                              MEM/2 2 MiB pages and mount hugetlbfs first) instead of --no-huge
#   DESCRIPTORS [1024]                         rx/tx descriptors of both programs
#   FLOW_TABLE [1048576]  SYN_TABLE [65536]    rvs flows_per_worker (SYN_TABLE for the syn variant)
#   START_TIMEOUT [90] s                       how long a program may take to come up
#   TESTPMD [dpdk-testpmd]  RVS [target/release/rvs]
#   ONLY [both] = testpmd | rvs                measure one program only
#   RESULTS [perf/results.md]                  where the dated rows are appended
#   DEPS [1]                                   0: do not install what is missing (see below)
#
# Run it as root (DPDK needs it). On a fresh machine dpdk-testpmd is missing (Debian 12: it is
# in package dpdk-dev, not dpdk): as root, bench.sh then first runs `scripts/deps.sh --bench`,
# which installs only what is missing.
#
# Exit status: 0 when it ran (whatever the figures), 2 when it cannot run (missing binary,
# EAL/port failure, rvs control socket not answering).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
if [ "${DEPS:-1}" != 0 ] && [ "${ONLY:-}" != rvs ] && [ "$(id -u)" -eq 0 ] &&
    ! command -v "${TESTPMD:-dpdk-testpmd}" >/dev/null 2>&1; then
    echo "bench: ${TESTPMD:-dpdk-testpmd} not found: running scripts/deps.sh --bench" >&2
    "$here/../scripts/deps.sh" --bench || {
        echo "bench: scripts/deps.sh --bench failed" >&2
        exit 2
    }
fi
exec python3 "$here/bench.py" "$@"
