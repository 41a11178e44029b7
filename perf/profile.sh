#!/bin/sh
# Where the forwarding core's time goes: one bench.sh round of one program, sampled with
# `perf record -e cpu-clock` on the forwarding lcore while it forwards, then the share of the
# samples per binary: the program's own code against net_pcap, libc (the tx side's fwrite), the
# kernel. The ratio of bench.sh is about (1 - rvs's own share) / (1 - testpmd's own share), so
# this says which part of rvs's gap is its own work. See perf/README.md, "Profile".
#
#   perf/profile.sh rvs|testpmd [established|syn|imix]     (default: established)
#
# Environment: SAMPLE [6] seconds of sampling; FWD_LCORE [1]; START_TIMEOUT [90] s for the
# program to come up and load the pcap; TOP [12] hottest instructions of the program's busiest
# function to list with their source lines (0: none); RVS, TESTPMD and the other bench.sh knobs
# (HUGE, FLOW_TABLE, ...) pass through.
# It signals nothing: bench.sh starts and stops the program, every step bounded in time.
# Needs root and perf (Debian: linux-perf); as root, a missing perf or dpdk-testpmd is installed
# first with `scripts/deps.sh --bench` (DEPS=0: not). Exit status: 0 when it ran, 2 when it
# cannot run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.." || exit 2

prog=${1:-}
variant=${2:-established}
sample=${SAMPLE:-6}
fwd=${FWD_LCORE:-1}
start_timeout=${START_TIMEOUT:-90}
top=${TOP:-12}
case "$prog" in
rvs) bin=${RVS:-target/release/rvs} ;;
testpmd) bin=${TESTPMD:-dpdk-testpmd} ;;
*)
    echo "usage: perf/profile.sh rvs|testpmd [established|syn|imix]" >&2
    exit 2
    ;;
esac
# Install what is missing before bench.sh starts (its start-up wait is bounded).
if [ "${DEPS:-1}" != 0 ] && [ "$(id -u)" -eq 0 ]; then
    if ! command -v perf >/dev/null 2>&1 ||
        { [ "$prog" = testpmd ] && ! command -v "$bin" >/dev/null 2>&1; }; then
        echo "profile: perf or $bin not found: running scripts/deps.sh --bench" >&2
        "$here/../scripts/deps.sh" --bench || exit 2
    fi
fi
command -v perf >/dev/null 2>&1 || {
    echo "profile: perf not found (Debian: linux-perf; as root: scripts/deps.sh --bench)" >&2
    exit 2
}

out=$(mktemp -d /tmp/rvs-profile.XXXXXX)
bench_pid=
cleanup() {
    # bench.sh stops the program it started at the end of its (bounded) window; wait for it
    # rather than signal it (a background job of a script ignores SIGINT).
    if [ -n "$bench_pid" ]; then
        wait "$bench_pid" 2>/dev/null
    fi
    rm -rf "$out"
}
trap cleanup EXIT

# Busy share of cpu $1 over 1 s, in percent (from /proc/stat).
busy() {
    a=$(awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    echo "$a $b" | awk '{ d = ($3 - $1) + ($4 - $2); print (d > 0) ? int(100 * ($3 - $1) / d) : 0 }'
}

idle=$(busy "$fwd")
if [ "$idle" -ge 50 ]; then
    echo "profile: cpu $fwd is already ${idle}% busy before the run; pick an idle FWD_LCORE" >&2
    exit 2
fi

# The window covers the wait below (up to 1 s after the port is up), 2 s and the sampling.
ONLY=$prog ROUNDS=1 WARMUP=3 WINDOW=$((sample + 6)) RESULTS="$out/results.md" \
    perf/bench.sh "$variant" >"$out/bench.out" 2>&1 &
bench_pid=$!

# The forwarding lcore polls without pause once the port is up and the pcap loaded.
waited=0
while [ "$(busy "$fwd")" -lt 90 ]; do
    waited=$((waited + 1))
    if ! kill -0 "$bench_pid" 2>/dev/null || [ "$waited" -ge "$start_timeout" ]; then
        echo "profile: $prog did not start forwarding on cpu $fwd within ${waited} s; bench.sh said:" >&2
        cat "$out/bench.out" >&2
        exit 2
    fi
done
sleep 2
if ! perf record -q -C "$fwd" -e cpu-clock -F 2000 -o "$out/perf.data" -- sleep "$sample" \
    >"$out/perf.log" 2>&1; then
    echo "profile: perf record failed:" >&2
    cat "$out/perf.log" >&2
    exit 2
fi
wait "$bench_pid" 2>/dev/null
bench_pid=

own=$(basename "$bin")
echo "profile: $prog ($bin), variant $variant, cpu $fwd, ${sample} s of cpu-clock samples"
perf report -i "$out/perf.data" --stdio --sort dso 2>/dev/null | awk -v own="$own" '
    /^#/ || NF < 2 { next }
    { share = $1; sub("%", "", share); dso = $2
      if (n < 8) printf "  %7s  %s\n", $1, dso
      n++
      if (dso == own) mine += share }
    END { printf "own code (%s): %.1f%% of the forwarding core\n", own, mine }'

# The hottest instructions of the program's busiest function (everything of the forwarding loop
# is inlined into one), each with its source line: where the cycles stall. A sample lands on
# the instruction after the one the core waits on (a load that misses, a prefetch waiting for
# its translation, a store-to-load forwarding failure).
[ "$top" -gt 0 ] 2>/dev/null || exit 0
path=$(command -v "$bin" 2>/dev/null || echo "$bin")
sym=$(perf report -i "$out/perf.data" --stdio --dsos "$own" --sort sym 2>/dev/null |
    awk '/^#/ || NF < 3 { next } { sub(/^.*\[\.\] /, ""); print; exit }')
[ -n "$sym" ] || exit 0
echo "hottest instructions of $sym (share of its samples, address, instruction, source):"
perf annotate -i "$out/perf.data" --stdio -s "$sym" 2>/dev/null |
    awk '$1 ~ /^[0-9]+\.[0-9]+$/ && $2 == ":" && $1 > 0 { print }' | sort -rn | head -n "$top" |
    while read -r share _ addr insn; do
        addr=${addr%:}
        # The innermost inlined frame in the program's own sources (not the standard library).
        src=$(addr2line -i -e "$path" "0x$addr" 2>/dev/null |
            grep -v -e '^/rustc/' -e '/\.cargo/' | head -n 1 | sed 's|.*/||')
        printf '  %6s%%  %s  %-40.40s %s\n' "$share" "$addr" "$insn" "$src"
    done
