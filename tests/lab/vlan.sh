#!/usr/bin/env bash
# Lab tests for 802.1Q VLAN (docs/vlan.md): the lab switch's port to the director made an
# 802.1Q trunk, the client's and the real servers' ports access ports of VLAN 100 (by the tc BPF
# programs of tests/lab/vlan_trunk.bpf.c on the switch's p-dir: this machine's kernel has neither
# 8021q sub-interfaces nor bridge VLAN filtering), the director with `[network] vlan = 100` and
# the kernel path on. HTTP through the VIP (ARP for the VIP answered tagged, real servers
# resolved by tagged requests, frames forwarded with their tag: the trunk drops anything else
# the director sends), the DIP through the kernel path (tag off towards rvs0, on again on the way
# out), and frames that are not the VLAN's counted (`vlan_untagged`, `vlan_other`).
#
#   tests/lab/vlan.sh                            run every test
#   tests/lab/vlan.sh t_http_through_tagged_vip  run some
#
# Prints one `ok NAME` / `FAIL NAME` line per test and finally `N passed, M failed`. Always
# tears the lab down (this suite's namespaces: rvq-*, see RVS_LAB_NS_PREFIX). Every
# traffic-generating command and every wait is bounded. Needs root, the release binaries
# (cargo build --release), clang (the BPF object is built into the lab directory) and a kernel
# with cls_bpf and clsact.
set -euo pipefail
shopt -s inherit_errexit
# This suite's own namespaces (rvq-*) and state directory, apart from the other suites'.
export RVS_LAB_NS_PREFIX=${RVS_LAB_NS_PREFIX:-rvq}
export RVS_LAB_DIR=${RVS_LAB_DIR:-/tmp/rvq-lab}
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
RPC="$REPO_ROOT/tests/lab/rpc.py"

require_root
VID=100

ALL_TESTS=(
    t_http_through_tagged_vip
    t_dip_through_kernel_path
    t_untagged_and_other_vlans_counted
)

# The lab's configuration (its rules file makes the VIP's service, rr over rs1 and rs2) on
# VLAN $VID, with the kernel path on (net_tap) and an EAL file prefix of this suite's own.
write_config() {
    local cfg="$LAB_DIR/vlan-lab.toml"
    sed -e 's/"--file-prefix", "rvs"/"--file-prefix", "rvq"/' \
        -e "s/^prefix_len = 24.*/prefix_len = 24\nvlan = $VID/" \
        "$REPO_ROOT/configs/lab.toml" >"$cfg"
    printf '\n[kernel]\nenabled = true\nname = "rvs0"\ndriver = "tap"\n' >>"$cfg"
    grep -q "^vlan = $VID$" "$cfg" || die "could not put vlan = $VID into $cfg"
    LAB_CONFIG=$cfg
}

# The switch's port to the director as a trunk (see the header and the BPF source).
make_trunk() {
    local obj="$LAB_DIR/vlan_trunk.o"
    clang -O2 -target bpf -I"/usr/include/$(uname -m)-linux-gnu" \
        -c "$REPO_ROOT/tests/lab/vlan_trunk.bpf.c" -o "$obj"
    ip netns exec "$NS_SW" tc qdisc add dev p-dir clsact
    ip netns exec "$NS_SW" tc filter add dev p-dir egress bpf da obj "$obj" sec tc/to_trunk
    ip netns exec "$NS_SW" tc filter add dev p-dir ingress bpf da obj "$obj" sec tc/from_trunk
}

# The director's kernel must not answer on veth0 (as in tests/lab/kernel_path.sh).
quiet_veth0() {
    ip -n "$NS_DIR" link set dev veth0 arp off
    ip netns exec "$NS_DIR" sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.veth0.rp_filter=1 >/dev/null
}

# One JSON-RPC call; prints the result member as JSON.
rpc() {
    local line
    line=$(python3 "$RPC" "$RVS_SOCK" send "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":{}}")
    python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["result"]))' "$line" ||
        fail "$1: $line"
}

# drop_count REASON: the drops counted under REASON so far.
drop_count() {
    rpc stats | python3 -c "import json,sys; print(json.load(sys.stdin)['drops'].get('$1', 0))"
}

setup() {
    "$REPO_ROOT/scripts/lab.sh" up >/dev/null
    make_trunk
    quiet_veth0
    write_config
    start_rvs
}

teardown() {
    stop_rvs || true
    "$REPO_ROOT/scripts/lab.sh" down >/dev/null 2>&1 || true
}

t_http_through_tagged_vip() {
    local out n1 n2
    out=$(requests 10)
    n1=$(count_of rs1 <<<"$out")
    n2=$(count_of rs2 <<<"$out")
    ((n1 + n2 == 10)) || fail "answers: $(tr '\n' ' ' <<<"$out")"
    ((n1 >= 1 && n2 >= 1)) || fail "round robin over both: rs1 $n1, rs2 $n2"
    # The client learned the VIP from the director's ARP reply (tagged on the trunk).
    ip -n "$NS_CLIENT" neigh show "$VIP" | grep -qi "$(ns_mac "$NS_DIR")" ||
        fail "the client's neighbour entry for the VIP: $(ip -n "$NS_CLIENT" neigh show "$VIP")"
}

t_dip_through_kernel_path() {
    local addr
    addr=$(ip -n "$NS_DIR" -4 -br addr show dev rvs0) || fail "no rvs0 in $NS_DIR"
    [[ $addr == *" $DIP/24"* ]] || fail "rvs0 lacks the DIP: $addr"
    in_client ping -c 3 -i 0.2 -W 2 "$DIP" >/dev/null || fail "no answer from the DIP over VLAN $VID"
}

t_untagged_and_other_vlans_counted() {
    local u0 o0 u1 o1 i
    u0=$(drop_count vlan_untagged)
    o0=$(drop_count vlan_other)
    # A SYN to VIP:80 at the director's MAC tagged with VLAN 1 (the trunk's native VLAN: it
    # reaches the director untagged) and with VLAN 101 (it reaches it so), from the client.
    timeout 10 ip netns exec "$NS_CLIENT" python3 - "$(ns_mac "$NS_DIR")" "$CLIENT_IP" "$VIP" <<'EOF'
import socket, struct, sys
dst = bytes.fromhex(sys.argv[1].replace(":", ""))
src_ip, vip = socket.inet_aton(sys.argv[2]), socket.inet_aton(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("veth0", 0))
src = s.getsockname()[4]
ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0x4000, 64, 6, 0, src_ip, vip))
csum = sum(struct.unpack("!10H", ip))
while csum >> 16:
    csum = (csum & 0xFFFF) + (csum >> 16)
ip[10:12] = struct.pack("!H", ~csum & 0xFFFF)
tcp = struct.pack("!HHIIBBHHH", 40999, 80, 1, 0, 0x50, 0x02, 0xFFFF, 0, 0)
for vid in (1, 101):
    tag = b"\x81\x00" + struct.pack("!H", vid)
    for _ in range(3):
        s.send(dst + src + tag + b"\x08\x00" + bytes(ip) + tcp)
EOF
    for ((i = 0; i < 20; i++)); do
        u1=$(drop_count vlan_untagged)
        o1=$(drop_count vlan_other)
        ((u1 >= u0 + 3 && o1 >= o0 + 3)) && return 0
        sleep 0.1
    done
    fail "vlan_untagged $u0 -> $u1, vlan_other $o0 -> $o1 (3 more of each expected)"
}

lab_select_tests "$@"
lab_require_bins
trap teardown EXIT
lab_setup setup
lab_run_selected
