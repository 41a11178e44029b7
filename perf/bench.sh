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
#
# Exit status: 0 when it ran (whatever the figures), 2 when it cannot run (missing binary,
# EAL/port failure, rvs control socket not answering).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
exec python3 "$here/bench.py" "$@"
