#!/usr/bin/env bash
# Lab tests for the kernel path on the data port (issue 13, part 1): rvs makes the kernel
# interface rvs0 (net_tap) in the director namespace with the port's MAC and the DIP; frames for
# the DIP go to it, and what the kernel sends out of it leaves through the port.
#
#   tests/lab/kernel_path.sh                 run every test
#   tests/lab/kernel_path.sh t_curl_dip      run some
#
# The director's veth0 carries no address, but with net_af_packet the director's kernel sees
# veth0's frames too: with the DIP on rvs0 it would answer DIP traffic on veth0 directly. So the
# director namespace gets `arp off` on veth0 and strict reverse-path filtering (all and veth0):
# a client's packet arriving on veth0 fails rp_filter (its route is through rvs0) and only rvs0
# answers. t_only_rvs0_answers checks that this holds.
#
# Prints one `ok NAME` / `FAIL NAME` line per test and finally `N passed, M failed`; the flood
# measurement (VIP requests/s with and without a DIP flood) goes to $RVS_KERNEL_MEASURE (default
# /tmp/rvs-lab-kernel-measure.txt). Always tears the lab down. Every traffic-generating command
# is bounded (curl --max-time, counts, timeouts).
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
RPC="$REPO_ROOT/tests/lab/rpc.py"

require_root
MEASURE=${RVS_KERNEL_MEASURE:-/tmp/rvs-lab-kernel-measure.txt}
# The kernel listener in the director namespace (python's http.server, bound to the DIP).
DIP_PORT=8080
# A low rate for the lab so that a flood from one client crosses it for sure.
KERNEL_RATE=2000

ALL_TESTS=(
    t_rvs0_is_up
    t_curl_dip
    t_ping_dip
    t_only_rvs0_answers
    t_flood_keeps_vip_forwarding
)

# The lab's configuration (its rules file makes the VIP's service, rr over rs1 and rs2) with a
# [kernel] section of our own (the rest as configs/lab.toml).
write_config() {
    local cfg="$LAB_DIR/kernel-lab.toml"
    {
        cat "$REPO_ROOT/configs/lab.toml"
        printf '\n[kernel]\nenabled = true\nname = "rvs0"\ndriver = "tap"\nrate_pps = %d\nring_size = 256\n' "$KERNEL_RATE"
    } >"$cfg"
    LAB_CONFIG=$cfg
}

# The director's kernel must not answer on veth0 (see the header).
quiet_veth0() {
    ip -n "$NS_DIR" link set dev veth0 arp off
    ip netns exec "$NS_DIR" sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.veth0.rp_filter=1 >/dev/null
}

# One JSON-RPC call; prints the result member as JSON.
rpc() {
    local line params=${2:-}
    [[ -n $params ]] || params='{}'
    line=$(python3 "$RPC" "$RVS_SOCK" send "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$params}")
    python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["result"]))' "$line" ||
        fail "$1: $line"
}

# kernel_stat FIELD: the kernel path's counter FIELD from `stats`.
kernel_stat() {
    rpc stats | python3 -c "import json,sys; print(json.load(sys.stdin)['kernel']['$1'])"
}

start_listener() {
    mkdir -p "$LAB_DIR/dipweb"
    printf 'director\n' >"$LAB_DIR/dipweb/index.html"
    (cd "$LAB_DIR/dipweb" && exec ip netns exec "$NS_DIR" python3 -m http.server --bind "$DIP" "$DIP_PORT") \
        </dev/null >"$LAB_DIR/dipweb.log" 2>&1 &
    echo $! >"$LAB_PID_DIR/dipweb.pid"
    local i
    for ((i = 0; i < 100; i++)); do
        ip netns exec "$NS_DIR" ss -Hltn "sport = :$DIP_PORT" | grep -q LISTEN && return 0
        sleep 0.1
    done
    die "the listener on $DIP:$DIP_PORT did not start (see $LAB_DIR/dipweb.log)"
}

dip_get() {
    in_client curl -s --max-time "${1:-3}" "http://$DIP:$DIP_PORT/"
}

setup() {
    "$REPO_ROOT/scripts/lab.sh" up >/dev/null
    quiet_veth0
    write_config
    start_rvs
    start_listener
}

teardown() {
    kill_pidfile "$LAB_PID_DIR/dipweb.pid" || true
    stop_rvs || true
    "$REPO_ROOT/scripts/lab.sh" down >/dev/null 2>&1 || true
}

t_rvs0_is_up() {
    local link addr mac
    link=$(ip -n "$NS_DIR" -br link show dev rvs0) || fail "no rvs0 in $NS_DIR"
    [[ $link == *UP* ]] || fail "rvs0 is not up: $link"
    addr=$(ip -n "$NS_DIR" -4 -br addr show dev rvs0)
    [[ $addr == *" $DIP/24"* ]] || fail "rvs0 lacks the DIP: $addr"
    mac=$(ip -n "$NS_DIR" -br link show dev rvs0 | awk '{print $3}')
    [[ $mac == "$(ns_mac "$NS_DIR")" ]] || fail "rvs0 has $mac, the port has $(ns_mac "$NS_DIR")"
    [[ $(ip netns exec "$NS_DIR" sysctl -n net.ipv4.conf.rvs0.arp_ignore) == 1 ]] || fail "arp_ignore"
    [[ $(ip netns exec "$NS_DIR" sysctl -n net.ipv4.conf.rvs0.arp_announce) == 2 ]] || fail "arp_announce"
}

t_curl_dip() {
    local before after body
    before=$(kernel_stat to_kernel)
    body=$(dip_get 5) || fail "curl http://$DIP:$DIP_PORT/ failed"
    [[ $body == director ]] || fail "unexpected answer: $body"
    after=$(kernel_stat to_kernel)
    ((after > before)) || fail "to_kernel did not rise ($before -> $after): not through rvs0"
    (($(kernel_stat from_kernel) > 0)) || fail "from_kernel is 0: the answer did not leave through rvs"
    # and the VIP still works
    [[ $(vip_get) == rs[12] ]] || fail "the VIP does not answer"
}

t_ping_dip() {
    in_client ping -n -q -c 3 -i 0.2 -W 2 "$DIP" >/dev/null || fail "ping $DIP failed"
}

# The kernel answers only through rvs0: with rvs stopped, the DIP is dead (nothing answers on
# veth0), and the rvs0 counters saw the traffic while rvs runs.
t_only_rvs0_answers() {
    local rx_before rx_after
    rx_before=$(ip -n "$NS_DIR" -s -j link show dev rvs0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])')
    dip_get 5 >/dev/null || fail "curl to the DIP failed"
    rx_after=$(ip -n "$NS_DIR" -s -j link show dev rvs0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])')
    ((rx_after > rx_before)) || fail "rvs0 received nothing ($rx_before -> $rx_after)"
    # The client forgets the DIP's MAC; with rvs stopped, nobody may answer for the DIP.
    stop_rvs
    kill_pidfile "$LAB_PID_DIR/dipweb.pid" || true
    ip -n "$NS_CLIENT" neigh flush dev veth0
    if in_client ping -n -q -c 2 -i 0.2 -W 1 "$DIP" >/dev/null 2>&1; then
        start_rvs >/dev/null 2>&1 || true
        fail "the DIP answered with rvs stopped: the director's kernel answers on veth0"
    fi
    # Back as it was for the next tests.
    start_rvs
    start_listener
}

# A UDP blaster from the client to the DIP (port 9, discard): $2 datagrams/s (paced in batches
# of 100) for $1 seconds at most; prints the datagrams sent. Ten times the lab's kernel rate by
# default: well over the limit, and within what one af_packet socket of the lab takes (an
# unpaced python loop, ~150,000/s, overflows the director's socket before rvs sees a frame).
udp_flood() {
    in_client timeout $(($1 + 5)) python3 -c '
import socket, sys, time
dst, secs, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
payload, n, start = b"x" * 64, 0, time.monotonic()
end = start + secs
while time.monotonic() < end:
    for _ in range(100):
        try:
            s.sendto(payload, (dst, 9))
            n += 1
        except OSError:
            pass
    ahead = n / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
print(n)' "$DIP" "$1" "${2:-$((10 * KERNEL_RATE))}"
}

# VIP requests for $1 seconds, paced at about 20/s; prints "ok failed".
vip_loop() {
    local end ok=0 bad=0
    end=$((SECONDS + $1))
    while ((SECONDS < end)); do
        if [[ $(vip_get / 2) == rs[12] ]]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
        sleep 0.05
    done
    echo "$ok $bad"
}

# Sequential VIP requests for $1 seconds as fast as curl goes; prints requests/s.
vip_rate() {
    local end n=0 start
    start=$(date +%s.%N)
    end=$((SECONDS + $1))
    while ((SECONDS < end)); do
        [[ $(vip_get / 2) == rs[12] ]] && n=$((n + 1))
    done
    python3 -c "import sys; print(round($n / ($(date +%s.%N) - $start), 1))"
}

t_flood_keeps_vip_forwarding() {
    local rl0 full0 rl1 full1 sent res ok bad base flooded pid
    rl0=$(kernel_stat exception_ratelimited)
    full0=$(kernel_stat exception_full)
    # VIP requests at ~20/s while the DIP is flooded.
    udp_flood 8 >"$LAB_DIR/flood.out" &
    pid=$!
    res=$(vip_loop 6)
    wait "$pid" || true
    sent=$(cat "$LAB_DIR/flood.out")
    read -r ok bad <<<"$res"
    rl1=$(kernel_stat exception_ratelimited)
    full1=$(kernel_stat exception_full)
    echo "    flood: $sent datagrams to the DIP; VIP requests during it: $ok ok, $bad failed;" \
        "exception_ratelimited +$((rl1 - rl0)), exception_full +$((full1 - full0))" >&2
    ((bad == 0 && ok > 0)) || fail "VIP requests failed during the flood ($ok ok, $bad failed)"
    ((rl1 > rl0 || full1 > full0)) || fail "neither exception_ratelimited nor exception_full rose"
    lab_rvs_died && fail "rvs died"
    [[ $(dip_get 5) == director ]] || fail "the DIP does not answer after the flood"
    # The measurement: sequential VIP requests/s without and with a flood of the DIP.
    base=$(vip_rate 5)
    udp_flood 7 >"$LAB_DIR/flood2.out" &
    pid=$!
    sleep 1
    flooded=$(vip_rate 5)
    wait "$pid" || true
    {
        echo "kernel path flood measurement ($(date -u +%FT%TZ)), lab, 1 worker, kernel.rate_pps=$KERNEL_RATE"
        echo "VIP requests/s (sequential curl) without flood: $base"
        echo "VIP requests/s (sequential curl) with a UDP flood of the DIP ($(cat "$LAB_DIR/flood2.out") datagrams in 7 s): $flooded"
        echo "port imissed (frames the af_packet socket dropped before rvs): $(rpc stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"]["imissed"])')"
        echo "exception_ratelimited total: $(kernel_stat exception_ratelimited), exception_full total: $(kernel_stat exception_full)"
    } | tee "$MEASURE" >&2
}

main() {
    lab_select_tests "$@"
    lab_require_bins
    trap teardown EXIT
    setup || {
        echo "FAIL setup"
        echo "0 passed, 1 failed"
        exit 1
    }
    lab_run_selected
}

main "$@"
