#!/usr/bin/env bash
# One-command demo from a fresh clone (as root): install deps, build, bring the namespace lab
# up, run rvs as the LVS-DR director, balance HTTP over two nginx real servers, show the
# client's ARP entry for the VIP and rvs's counters, then tear everything down.
#
#   scripts/demo.sh            (as root; from a normal user: sudo scripts/demo.sh)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_root
REQUESTS=${DEMO_REQUESTS:-20}

# RVS_SKIP_BUILD=1: use the binaries already built (under $CARGO_TARGET_DIR or $RVS_BIN_DIR).
if [[ ${RVS_SKIP_BUILD:-0} != 1 ]]; then
    "$REPO_ROOT/scripts/deps.sh"
    find_cargo
    log "building (cargo build --release)"
    (cd "$REPO_ROOT" && cargo build --release)
fi

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -f $LAB_DIR/rvs.log ]] && ((rc != 0)); then
        log "rvs log (last 20 lines):"
        tail -n 20 "$LAB_DIR/rvs.log" >&2 || true
    fi
    stop_rvs || true
    "$REPO_ROOT/scripts/lab.sh" down || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$REPO_ROOT/scripts/lab.sh" up
start_rvs

echo
echo "== configuring the virtual service (ipvsadm syntax, through rvsadm; -C first clears"
echo "   what configs/lab.rules loaded at start, so every step is shown here)"
for cmd in \
    "-C" \
    "-A -t $VIP:$VIP_PORT -s rr" \
    "-a -t $VIP:$VIP_PORT -r $RS1_IP -g -w 1" \
    "-a -t $VIP:$VIP_PORT -r $RS2_IP -g -w 1"; do
    echo "# rvsadm $cmd"
    # shellcheck disable=SC2086 # word splitting of the option string is intended
    rvsadm $cmd
done
echo "# rvsadm -L -n"
rvsadm -L -n

echo
echo "== $REQUESTS requests from the client ($CLIENT_IP) to http://$VIP/"
declare -A seen=()
for ((i = 1; i <= REQUESTS; i++)); do
    body=$(vip_get / 3 || true)
    printf '  request %2d -> %s\n' "$i" "${body:-<no answer>}"
    seen[${body:-none}]=$((${seen[${body:-none}]:-0} + 1))
done
for k in "${!seen[@]}"; do
    echo "  $k answered ${seen[$k]} times"
done

echo
echo "== the client's ARP entry for the VIP (answered by rvs on the director's veth0)"
in_client ip neigh show "$VIP"
echo "   director veth0 MAC: $(ns_mac "$NS_DIR")"

echo
echo "== rvsadm -L -n --stats"
rvsadm -L -n --stats

if [[ -z ${seen[rs1]:-} || -z ${seen[rs2]:-} ]]; then
    log "demo: expected answers from both rs1 and rs2"
    exit 1
fi
echo
log "demo finished; tearing down"
