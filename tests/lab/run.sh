#!/usr/bin/env bash
# Lab tests: rvs as the LVS-DR director between a client and two nginx real servers, all in
# network namespaces (scripts/lab.sh). Needs root and the release binaries
# (cargo build --release).
#
#   tests/lab/run.sh            run every test
#   tests/lab/run.sh t_rr_order t_wrr_proportion    run some
#
# Prints one `ok NAME` / `FAIL NAME` line per test and finally `N passed, M failed`.
# Always tears the lab down. Every traffic-generating command is bounded (curl --max-time, counts).
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
RPC="$REPO_ROOT/tests/lab/rpc.py"

require_root
SVC="$VIP:$VIP_PORT"

ALL_TESTS=(
    t_rr_order
    t_vip_arp_is_director_mac
    t_access_log_shows_client
    t_wrr_proportion
    t_long_lived_keeps_server
    t_delete_server_and_service
    t_bad_requests_get_errors
    t_connection_survives_garbage
)

# --- helpers (used inside tests; `fail` ends the current test) ---------------------------------

# --- tests ----------------------------------------------------------------------------------------

# rr: 10 requests strictly alternate between the two real servers.
t_rr_order() {
    reset_service rr 1 1
    local answers prev="" a
    answers=$(requests 10)
    echo "    answers: $(echo "$answers" | tr '\n' ' ')" >&2
    while read -r a; do
        [[ $a == rs1 || $a == rs2 ]] || fail "unexpected answer '$a'"
        [[ $a != "$prev" ]] || fail "two answers in a row from $a"
        prev=$a
    done <<<"$answers"
    [[ $(count_of rs1 <<<"$answers") -eq 5 && $(count_of rs2 <<<"$answers") -eq 5 ]] ||
        fail "expected 5 answers from each server"
}

# The client resolved the VIP to the director's veth0 MAC (rvs answers ARP; real servers do not).
t_vip_arp_is_director_mac() {
    reset_service rr 1 1
    [[ -n $(vip_get / 3 || true) ]] || fail "no answer from the VIP"
    local entry mac dirmac
    entry=$(in_client ip neigh show "$VIP" dev veth0)
    echo "    client neigh: $entry" >&2
    mac=$(awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}' <<<"$entry")
    dirmac=$(ns_mac "$NS_DIR")
    [[ -n $mac ]] || fail "no ARP entry with a MAC for $VIP"
    [[ ${mac,,} == "${dirmac,,}" ]] || fail "VIP resolves to $mac, director veth0 is $dirmac"
}

# Direct routing keeps the client's address: nginx logs 198.18.0.10 for requests to the VIP.
t_access_log_shows_client() {
    local h f lines bad
    for h in rs1 rs2; do : >"$LAB_DIR/$h/access.log"; done
    reset_service rr 1 1
    requests 4 >/dev/null
    sleep 0.5 # nginx logs after sending the response
    for h in rs1 rs2; do
        f="$LAB_DIR/$h/access.log"
        lines=$(grep -F " $VIP:$VIP_PORT " "$f" || true)
        [[ -n $lines ]] || fail "$h logged no request to $VIP: $(cat "$f")"
        echo "    $h: $(head -n1 <<<"$lines")" >&2
        bad=$(grep -v "^$CLIENT_IP " <<<"$lines" || true)
        [[ -z $bad ]] || fail "$h logged requests not from $CLIENT_IP: $bad"
    done
}

# wrr 3:1 over 40 requests: 30/10 within +-2.
t_wrr_proportion() {
    reset_service wrr 3 1
    local answers n1 n2
    answers=$(requests 40)
    n1=$(count_of rs1 <<<"$answers")
    n2=$(count_of rs2 <<<"$answers")
    echo "    rs1=$n1 rs2=$n2 (want 30/10)" >&2
    ((n1 + n2 == 40)) || fail "only $((n1 + n2)) of 40 requests answered"
    ((n1 >= 28 && n1 <= 32 && n2 >= 8 && n2 <= 12)) || fail "proportion off"
}

# A long download keeps its real server after that server's weight drops to 0, while new
# connections go to the other one.
t_long_lived_keeps_server() {
    reset_service rr 1 1
    local d="$LAB_DIR/test" pid orig="" other ip i answers code size
    mkdir -p "$d"
    rm -f "$d/slow.out" "$d/slow.hdr" "$d/slow.code"
    in_client curl -s --max-time 60 -o "$d/slow.out" -D "$d/slow.hdr" -w '%{http_code}' \
        "http://$VIP:$VIP_PORT$SLOW_PATH" >"$d/slow.code" &
    pid=$!
    # shellcheck disable=SC2064 # expand now: the PID of this test's download
    trap "kill $pid 2>/dev/null || true" EXIT
    for ((i = 0; i < 50; i++)); do
        orig=$(sed -n 's/^[Xx]-[Ss]erver: *\([a-z0-9]*\).*/\1/p' "$d/slow.hdr" 2>/dev/null || true)
        [[ -n $orig ]] && break
        sleep 0.1
    done
    [[ $orig == rs1 || $orig == rs2 ]] || fail "slow download did not start (server '$orig')"
    if [[ $orig == rs1 ]]; then ip=$RS1_IP other=rs2; else ip=$RS2_IP other=rs1; fi
    echo "    download from $orig; setting its weight to 0" >&2
    rvsadm -e -t "$SVC" -r "$ip" -g -w 0
    pid_alive "$pid" || fail "download finished before the weight change; test not meaningful"
    answers=$(requests 10)
    [[ $(count_of "$other" <<<"$answers") -eq 10 ]] ||
        fail "new requests should all go to $other: $(echo "$answers" | tr '\n' ' ')"
    pid_alive "$pid" || fail "download ended too early (before the new requests were done)"
    wait "$pid" || fail "download failed (curl exit $?)"
    trap - EXIT
    code=$(cat "$d/slow.code")
    size=$(stat -c %s "$d/slow.out")
    echo "    download: HTTP $code, $size bytes, from $orig" >&2
    [[ $code == 200 && $size -eq $SLOW_BYTES ]] || fail "incomplete download"
    grep -q "^$CLIENT_IP $VIP:$VIP_PORT \"GET $SLOW_PATH .* 200 $SLOW_BYTES\$" "$LAB_DIR/$orig/access.log" ||
        fail "$orig did not log the complete download"
}

# Deleting a real server, then the service, with raw requests on the control socket.
t_delete_server_and_service() {
    reset_service rr 1 1
    local list answers i
    [[ $(requests 2 | sort -u | wc -l) -eq 2 ]] || fail "service does not use both servers"
    local svc_json="{\"proto\":\"tcp\",\"vip\":\"$VIP\",\"port\":$VIP_PORT}"
    # Raw JSON-RPC (what `rvsadm -d` / `-D` send).
    python3 "$RPC" "$RVS_SOCK" expect-result \
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.delete\",\"params\":{\"service\":$svc_json,\"addr\":\"$RS2_IP\"}}" ||
        fail "server.delete"
    list=$(rvsadm -L -n)
    if grep -qF "$RS2_IP" <<<"$list"; then fail "rs2 still listed after -d: $list"; fi
    grep -qF "$RS1_IP" <<<"$list" || fail "rs1 missing from the listing: $list"
    answers=$(requests 6)
    [[ $(count_of rs1 <<<"$answers") -eq 6 ]] ||
        fail "after deleting rs2, all answers should be rs1: $(echo "$answers" | tr '\n' ' ')"
    python3 "$RPC" "$RVS_SOCK" expect-result \
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"service.delete\",\"params\":$svc_json}" ||
        fail "service.delete"
    list=$(rvsadm -L -n)
    if grep -qF "$VIP" <<<"$list"; then fail "service still listed after -D: $list"; fi
    for ((i = 0; i < 3; i++)); do
        [[ -z $(vip_get / 2 || true) ]] || fail "the VIP still answers after -D"
    done
}

# Malformed or invalid control requests get JSON-RPC errors; the daemon keeps answering.
t_bad_requests_get_errors() {
    reset_service rr 1 1
    local add='{"jsonrpc":"2.0","id":%s,"method":"service.add","params":{"proto":"tcp","vip":"%s","port":80,"scheduler":"rr"}}'
    local line
    python3 "$RPC" "$RVS_SOCK" expect-error 'this is not json {' -32700 || fail "garbage line"
    python3 "$RPC" "$RVS_SOCK" expect-error \
        '{"jsonrpc":"2.0","id":2,"method":"no.such.method","params":{}}' -32601 || fail "unknown method"
    # shellcheck disable=SC2059 # the format is ours
    line=$(printf "$add" 3 "$VIP")
    python3 "$RPC" "$RVS_SOCK" expect-error "$line" || fail "duplicate service"
    # shellcheck disable=SC2059
    line=$(printf "$add" 4 "198.18.0.300")
    python3 "$RPC" "$RVS_SOCK" expect-error "$line" || fail "bad IP address"
    # shellcheck disable=SC2059
    line=$(printf "$add" '"five"' "not-an-ip")
    python3 "$RPC" "$RVS_SOCK" expect-error "$line" || fail "bad IP address (string id)"
    # Still alive and unchanged.
    rvsadm -L -n | grep -qF "$VIP:$VIP_PORT" || fail "listing after bad requests lacks the service"
    [[ $(requests 2 | sort -u | wc -l) -eq 2 ]] || fail "traffic stopped after bad requests"
}

# One connection: a garbage line gets an error and the next valid request on the same
# connection still gets its result.
t_connection_survives_garbage() {
    rvsadm -C
    local good='{"jsonrpc":"2.0","id":7,"method":"service.add","params":{"proto":"tcp","vip":"198.18.0.101","port":8080,"scheduler":"rr"}}'
    python3 "$RPC" "$RVS_SOCK" garbage-then-ok '}{ garbage' "$good" || fail "connection did not survive"
    rvsadm -L -n | grep -qF "198.18.0.101:8080" || fail "service added after garbage is not listed"
    rvsadm -C
}

# --- runner ---------------------------------------------------------------------------------------

SETUP_OK=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_rvs || true
    "$REPO_ROOT/scripts/lab.sh" down >/dev/null 2>&1 || "$REPO_ROOT/scripts/lab.sh" down || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_test() {
    local name=$1 rc note=""
    if ((!SETUP_OK)); then
        lab_record "$name" 1 " (not run: setup failed)"
        return 0
    fi
    set +e
    lab_run_case "$name"
    rc=$?
    set -e
    if lab_rvs_died; then
        rc=1
        note=" (rvs died)"
        start_rvs || SETUP_OK=0
    fi
    lab_record "$name" "$rc" "$note"
}

lab_select_tests "$@"
lab_require_bins

if "$REPO_ROOT/scripts/lab.sh" up && start_rvs; then
    SETUP_OK=1
else
    echo "FAIL setup (lab up / rvs start)"
    FAILED=$((FAILED + 1))
fi

for t in "${SELECTED[@]}"; do
    run_test "$t"
done

if ((FAILED)) && [[ -f $LAB_DIR/rvs.log ]]; then
    echo "--- rvs log (last 30 lines) ---" >&2
    tail -n 30 "$LAB_DIR/rvs.log" >&2 || true
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
