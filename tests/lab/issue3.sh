#!/usr/bin/env bash
# Lab tests for "Everything an LVS operator relies on": ipvsadm tutorial commands, every
# scheduler's observable behaviour, persistence across two workers, weight-0 drain with wlc,
# connection thresholds, timeout expiry in `-lnc`, and the -S / -C / -R round trip. All observed
# through the VIP with curl from the client namespace (scripts/lab.sh). Needs root and the
# release binaries (cargo build --release).
#
#   tests/lab/issue3.sh                  run every test
#   tests/lab/issue3.sh t_sched_sh t_thresholds     run some
#
# Prints one `ok NAME` / `FAIL NAME` line per test and finally `N passed, M failed`; what each
# scheduler did (answers per real server) is also written to $RVS_ISSUE3_COUNTS
# (default /tmp/rvs-lab-issue3-counts.txt). Always tears the lab down. Every traffic-generating
# command is bounded (curl --max-time, request counts, bounded polls).
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
RPC="$REPO_ROOT/tests/lab/rpc.py"

require_root
SVC="$VIP:$VIP_PORT"
COUNTS=${RVS_ISSUE3_COUNTS:-/tmp/rvs-lab-issue3-counts.txt}
ONE_WORKER_CONFIG="$REPO_ROOT/configs/lab.toml"
TWO_WORKER_CONFIG="$REPO_ROOT/configs/lab2q.toml"

ALL_TESTS=(
    t_tutorial_commands
    t_sched_rr
    t_sched_wrr
    t_sched_lc
    t_sched_wlc
    t_sched_sed
    t_sched_nq
    t_sched_sh
    t_sched_sh_port
    t_sched_dh
    t_sched_mh
    t_sched_fo
    t_sched_ovf
    t_sched_lblc
    t_sched_lblcr
    t_wlc_weight0_drain
    t_thresholds
    t_timeout_expiry_lnc
    t_save_clear_restore
    t_persist_two_workers
    t_no_persist_two_workers
)

# Tests that need the two-worker director (configs/lab2q.toml); all others run on configs/lab.toml.
two_workers() {
    [[ $1 == t_persist_two_workers || $1 == t_no_persist_two_workers ]]
}

# Tests that start on a freshly started daemon (empty flow tables: connections of earlier tests
# to the same real servers would count against rs1's threshold for their whole FIN_WAIT timeout).
fresh_daemon() {
    [[ $1 == t_thresholds ]]
}

# --- helpers (used inside tests; `fail` ends the current test) ---------------------------------

oneline() { tr '\n' ' ' <<<"$1"; }
indent() { sed 's/^/      /' >&2; } # indented onto stderr

# "rs1=N rs2=M[ none=K]" for a list of answers.
tally() {
    local n1 n2 n0
    n1=$(count_of rs1 <<<"$1")
    n2=$(count_of rs2 <<<"$1")
    n0=$(count_of none <<<"$1")
    if ((n0)); then echo "rs1=$n1 rs2=$n2 none=$n0"; else echo "rs1=$n1 rs2=$n2"; fi
}

# record LABEL TEXT: print it and append it to the counts summary.
record() {
    echo "    [$1] $2" >&2
    printf '%-22s %s\n' "$1" "$2" >>"$COUNTS"
}

# Every answer is WORD.
all_are() { # all_are WORD ANSWERS
    [[ -n $2 && $(count_of "$1" <<<"$2") -eq $(wc -l <<<"$2") ]]
}

# The single server all ANSWERS came from, or nothing when they differ / none answered.
sole_server() {
    local u
    u=$(sort -u <<<"$1")
    [[ $u == rs1 || $u == rs2 ]] && echo "$u"
    return 0
}

# Slow downloads (/big.bin, ~12 s) in the background; killed at the end of the test (trap set by
# the runner). slow_start TAG; slow_server TAG prints the X-Server of that download (waits <= 5 s).
SLOW_PIDS=()
SLOW_DIR="$LAB_DIR/test"
slow_start() {
    local tag=$1
    mkdir -p "$SLOW_DIR"
    rm -f "$SLOW_DIR/$tag.out" "$SLOW_DIR/$tag.hdr" "$SLOW_DIR/$tag.code"
    # Not through in_client: a backgrounded function is a subshell, and $! must be curl itself.
    ip netns exec "$NS_CLIENT" curl -s --max-time 60 -o "$SLOW_DIR/$tag.out" -D "$SLOW_DIR/$tag.hdr" -w '%{http_code}' \
        "http://$VIP:$VIP_PORT$SLOW_PATH" >"$SLOW_DIR/$tag.code" 2>/dev/null &
    SLOW_PIDS+=("$!")
    echo "$!" >"$SLOW_DIR/$tag.pid"
}
slow_server() {
    local tag=$1 i s=""
    for ((i = 0; i < 50; i++)); do
        s=$(sed -n 's/^[Xx]-[Ss]erver: *\([a-z0-9]*\).*/\1/p' "$SLOW_DIR/$tag.hdr" 2>/dev/null || true)
        [[ -n $s ]] && break
        sleep 0.1
    done
    echo "${s:-none}"
}
slow_alive() { pid_alive "$(cat "$SLOW_DIR/$1.pid")"; }
# Stop every slow download of this test (the client's socket closes: the director sees it end).
slow_stop_all() {
    local p
    for p in "${SLOW_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${SLOW_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    SLOW_PIDS=()
}

# One JSON-RPC call; prints the result member as JSON.
rpc_result() { # rpc_result METHOD [PARAMS-JSON]
    local line params=${2:-}
    [[ -n $params ]] || params='{}'
    line=$(python3 "$RPC" "$RVS_SOCK" send \
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$params}")
    python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(json.dumps(m["result"]))' "$line" ||
        fail "$1: $line"
}

# Per-worker rx_packets from `stats`, space separated in worker order.
worker_rx() {
    rpc_result stats | python3 -c 'import json,sys
ws = sorted(json.load(sys.stdin)["workers"], key=lambda w: w["worker"])
print(" ".join(str(w["rx_packets"]) for w in ws))'
}

# --- 1. ipvsadm tutorial commands ----------------------------------------------------------------

# The classic LVS-DR tutorial, verbatim with rvsadm for ipvsadm: every command exits 0 and prints
# ipvsadm's layout. All commands are run; every problem is listed before failing.
t_tutorial_commands() {
    local out rc errs=() f="$LAB_DIR/test/rules.save" answers
    mkdir -p "$LAB_DIR/test"
    run() { # run CMD...: output in $out, failures collected
        rc=0
        out=$(rvsadm "$@" 2>&1) || rc=$?
        echo "    \$ rvsadm $* (exit $rc)" >&2
        [[ -z $out ]] || indent <<<"$out"
        ((rc == 0)) || errs+=("rvsadm $*: exit $rc: $out")
    }
    expect() { # expect DESCRIPTION REGEX (on $out, one line)
        grep -qE -- "$2" <<<"$out" || errs+=("$1: no line matching /$2/")
    }
    rvsadm -C
    run -A -t 198.18.0.100:80 -s rr
    run -a -t 198.18.0.100:80 -r 198.18.0.11 -g
    run -a -t 198.18.0.100:80 -r 198.18.0.12 -g -w 1
    answers=$(requests 4)
    [[ $(tally "$answers") == "rs1=2 rs2=2" ]] || errs+=("rr after the tutorial: $(oneline "$answers")")
    run -ln
    expect "-ln banner" '^IP Virtual Server version [0-9.]+ \(size=[0-9]+\)$'
    expect "-ln header" '^Prot LocalAddress:Port Scheduler Flags$'
    expect "-ln header 2" '^  -> RemoteAddress:Port +Forward Weight ActiveConn InActConn$'
    expect "-ln service" '^TCP  198\.18\.0\.100:80 rr *$'
    expect "-ln rs1" '^  -> 198\.18\.0\.11:80 +Route +1 +[0-9]+ +[0-9]+ *$'
    expect "-ln rs2" '^  -> 198\.18\.0\.12:80 +Route +1 +[0-9]+ +[0-9]+ *$'
    run -lnc
    expect "-lnc banner" '^IPVS connection entries$'
    expect "-lnc header" '^pro expire state +source +virtual +destination$'
    expect "-lnc entry" '^TCP [0-9]{2}:[0-9]{2} +[A-Z_]+ +198\.18\.0\.10:[0-9]+ +198\.18\.0\.100:80 +198\.18\.0\.1[12]:80 *$'
    run -L -n --stats
    expect "--stats banner" '^IP Virtual Server version'
    expect "--stats header" '^Prot LocalAddress:Port +Conns +InPkts +OutPkts +InBytes +OutBytes$'
    expect "--stats header 2" '^  -> RemoteAddress:Port$'
    expect "--stats service" '^TCP  198\.18\.0\.100:80 +[1-9][0-9]* +[1-9][0-9]* +0 +[1-9][0-9]*K? +0$'
    run -E -t 198.18.0.100:80 -s wrr
    run -e -t 198.18.0.100:80 -r 198.18.0.12:80 -w 3
    run -ln
    expect "-ln after -E" '^TCP  198\.18\.0\.100:80 wrr *$'
    expect "-ln after -e" '^  -> 198\.18\.0\.12:80 +Route +3 +[0-9]+ +[0-9]+ *$'
    answers=$(requests 8)
    echo "    wrr 1:3 over 8: $(tally "$answers")" >&2
    [[ $(tally "$answers") == "rs1=2 rs2=6" ]] || errs+=("wrr 1:3 after -E/-e: $(tally "$answers")")
    rc=0
    rvsadm -S >"$f" 2>&1 || rc=$?
    out=$(cat "$f")
    echo "    \$ rvsadm -S > $f (exit $rc)" >&2
    indent <<<"$out"
    ((rc == 0)) || errs+=("rvsadm -S: exit $rc: $out")
    expect "-S service" '^-A -t 198\.18\.0\.100:(http|80) -s wrr$'
    expect "-S rs1" '^-a -t 198\.18\.0\.100:(http|80) -r 198\.18\.0\.11:(http|80) -g -w 1$'
    expect "-S rs2" '^-a -t 198\.18\.0\.100:(http|80) -r 198\.18\.0\.12:(http|80) -g -w 3$'
    if ((${#errs[@]})); then
        printf '    problem: %s\n' "${errs[@]}" >&2
        exit 1
    fi
}

# --- 2. schedulers ------------------------------------------------------------------------------

# rr: 10 requests strictly alternate.
t_sched_rr() {
    reset_service rr 1 1
    local answers prev="" a
    answers=$(requests 10)
    record rr "$(tally "$answers")  order: $(oneline "$answers")"
    while read -r a; do
        [[ $a == rs1 || $a == rs2 ]] || fail "unexpected answer '$a'"
        [[ $a != "$prev" ]] || fail "two answers in a row from $a"
        prev=$a
    done <<<"$answers"
}

# wrr 3:1 over 40 requests: 30/10 within +-2.
t_sched_wrr() {
    reset_service wrr 3 1
    local answers n1 n2
    answers=$(requests 40)
    n1=$(count_of rs1 <<<"$answers")
    n2=$(count_of rs2 <<<"$answers")
    record "wrr 3:1" "$(tally "$answers") (want 30/10)"
    ((n1 >= 28 && n1 <= 32 && n2 >= 8 && n2 <= 12 && n1 + n2 == 40)) || fail "proportion off"
}

# Three slow downloads are pinned on rs1 (rs2 at weight 0 while they start); then rs2 gets its
# weight back and 10 short requests must all go to rs2, the server without long connections.
steer_away_from_busy() {
    local sched=$1 t s answers servers=""
    reset_service "$sched" 1 1
    adm -e -t "$SVC" -r "$RS2_IP" -g -w 0
    for t in a b c; do
        slow_start "$t"
        s=$(slow_server "$t")
        servers+="$s "
    done
    adm -e -t "$SVC" -r "$RS2_IP" -g -w 1
    [[ $servers == "rs1 rs1 rs1 " ]] || fail "slow downloads should all be on rs1 (rs2 weight 0): $servers"
    answers=$(requests 10)
    for t in a b c; do
        slow_alive "$t" || fail "download $t ended before the short requests were done; not meaningful"
    done
    record "$sched" "3 long downloads on rs1; then 10 short: $(tally "$answers")"
    echo "    -L -n while the downloads run:" >&2
    rvsadm -L -n | indent || true
    slow_stop_all
    all_are rs2 "$answers" || fail "short requests should all go to rs2: $(oneline "$answers")"
}
t_sched_lc() { steer_away_from_busy lc; }
t_sched_wlc() { steer_away_from_busy wlc; }
t_sched_sed() { steer_away_from_busy sed; }
t_sched_nq() { steer_away_from_busy nq; }

# Stickiness: 20 requests from the one client (to the one VIP) all land on one server.
sticky() { # sticky SCHED LABEL [extra -A options]
    local sched=$1 label=$2 answers s
    shift 2
    reset_service "$sched" 1 1 "$@"
    answers=$(requests 20)
    record "$label" "$(tally "$answers") (20 requests, one client, one VIP)"
    s=$(sole_server "$answers")
    [[ -n $s ]] || fail "not all on one server: $(oneline "$answers")"
}
t_sched_sh() { sticky sh sh; }
t_sched_dh() { sticky dh dh; }
t_sched_mh() { sticky mh mh; }
t_sched_lblc() { sticky lblc lblc; }
t_sched_lblcr() { sticky lblcr lblcr; }

# sh with -b sh-port: the source port joins the hash, so a client's connections spread.
t_sched_sh_port() {
    reset_service sh 1 1 -b sh-port
    local answers
    answers=$(requests 20)
    record "sh -b sh-port" "$(tally "$answers") (20 requests, one client, new source port each)"
    [[ $(count_of rs1 <<<"$answers") -gt 0 && $(count_of rs2 <<<"$answers") -gt 0 ]] ||
        fail "expected both servers with sh-port: $(oneline "$answers")"
}

# fo: every request to the highest-weight server.
t_sched_fo() {
    reset_service fo 1 3
    local answers
    answers=$(requests 10)
    record "fo (w 1,3)" "$(tally "$answers")"
    all_are rs2 "$answers" || fail "fo should send all to rs2 (weight 3): $(oneline "$answers")"
}

# ovf: the highest-weight server (rs1, weight 2) takes connections until its active connections
# exceed its weight (IPVS: activeconns > weight); then the next one (rs2) gets them; when the
# long connections end, rs1 again.
t_sched_ovf() {
    reset_service ovf 2 1
    local a1 a2 a3 t servers=""
    a1=$(requests 5)
    for t in a b c; do
        slow_start "$t"
        servers+="$(slow_server "$t") "
    done
    a2=$(requests 5)
    for t in a b c; do
        slow_alive "$t" || fail "download $t ended too early; not meaningful"
    done
    slow_stop_all
    sleep 0.5
    a3=$(requests 5)
    record "ovf (w 2,1)" "idle: $(tally "$a1"); 3 downloads on: $servers; then: $(tally "$a2"); after they end: $(tally "$a3")"
    all_are rs1 "$a1" || fail "idle: all should go to rs1 (weight 2): $(oneline "$a1")"
    [[ $servers == "rs1 rs1 rs1 " ]] || fail "downloads: want rs1 rs1 rs1 (active 0,1,2 <= weight 2), got $servers"
    all_are rs2 "$a2" || fail "rs1 over its weight: all should go to rs2: $(oneline "$a2")"
    all_are rs1 "$a3" || fail "after the downloads: all should go to rs1 again: $(oneline "$a3")"
}

# --- 4. weight 0 drain with wlc -------------------------------------------------------------------

# A long download keeps its real server after that server's weight drops to 0 (wlc), completes
# fully, while new connections all go to the other server.
t_wlc_weight0_drain() {
    reset_service wlc 1 1
    local orig other ip answers code size
    slow_start drain
    orig=$(slow_server drain)
    [[ $orig == rs1 || $orig == rs2 ]] || fail "slow download did not start (server '$orig')"
    if [[ $orig == rs1 ]]; then ip=$RS1_IP other=rs2; else ip=$RS2_IP other=rs1; fi
    echo "    download from $orig; setting its weight to 0" >&2
    adm -e -t "$SVC" -r "$ip" -g -w 0
    slow_alive drain || fail "download finished before the weight change; not meaningful"
    answers=$(requests 10)
    record "wlc drain" "download on $orig (weight 0 now); 10 new: $(tally "$answers")"
    all_are "$other" "$answers" || fail "new requests should all go to $other: $(oneline "$answers")"
    slow_alive drain || fail "download ended too early (before the new requests were done)"
    wait "$(cat "$SLOW_DIR/drain.pid")" || fail "download failed (curl exit $?)"
    code=$(cat "$SLOW_DIR/drain.code")
    size=$(stat -c %s "$SLOW_DIR/drain.out")
    echo "    download: HTTP $code, $size bytes, from $orig" >&2
    [[ $code == 200 && $size -eq $SLOW_BYTES ]] || fail "incomplete download"
}

# --- 5. thresholds ---------------------------------------------------------------------------------

# rs1 with -x 1 (upper threshold; IPVS counts active + inactive connections): while a slow
# download holds rs1, rr sends every new request to rs2; once the download ended and its
# connection left the table (FIN_WAIT shortened to 3 s with --set), rs1 gets traffic again
# (bounded wait, one request per second).
t_thresholds() {
    local before old
    before=$(adm -L --timeout)
    [[ $before =~ ^Timeout\ \(tcp\ tcpfin\ udp\):\ ([0-9]+\ [0-9]+\ [0-9]+)$ ]] ||
        fail "-L --timeout: unexpected output '$before'"
    old=${BASH_REMATCH[1]}
    # shellcheck disable=SC2064 # expand now: the timeouts to put back
    trap "slow_stop_all; rvsadm --set $old >/dev/null 2>&1 || true" EXIT
    # FIN_WAIT for 3 s: the ended download's entry (counted by the threshold) leaves soon.
    adm --set 900 3 300
    adm -C
    adm -A -t "$SVC" -s rr
    adm -a -t "$SVC" -r "$RS1_IP" -g -w 1 -x 1
    adm -a -t "$SVC" -r "$RS2_IP" -g -w 0
    adm -L -n --thresholds >&2
    local s answers a i back=""
    slow_start held
    s=$(slow_server held)
    [[ $s == rs1 ]] || fail "the slow download should be on rs1 (rs2 weight 0), got '$s'"
    adm -e -t "$SVC" -r "$RS2_IP" -g -w 1
    answers=$(requests 8)
    slow_alive held || fail "download ended too early; not meaningful"
    echo "    -L -n --thresholds while rs1 is held:" >&2
    rvsadm -L -n --thresholds | indent || true
    slow_stop_all
    for ((i = 1; i <= 30; i++)); do
        a=$(vip_get / 3 || true)
        if [[ $a == rs1 ]]; then
            back=$i
            break
        fi
        sleep 1
    done
    record "rr, rs1 -x 1" "rs1 held by a download; 8 new: $(tally "$answers"); rs1 again after ${back:-never (30 s)} s (tcpfin 3 s)"
    all_are rs2 "$answers" || fail "rs1 is over its threshold: all should go to rs2: $(oneline "$answers")"
    [[ -n $back ]] || fail "rs1 got no traffic within 30 s after its download ended"
    # shellcheck disable=SC2086 # three numbers
    adm --set $old
}

# --- 6. timeout expiry in -lnc ------------------------------------------------------------------

t_timeout_expiry_lnc() {
    reset_service rr 1 1
    local before port entry list i gone="" t0
    before=$(adm -L --timeout)
    echo "    $before" >&2
    [[ $before =~ ^Timeout\ \(tcp\ tcpfin\ udp\):\ ([0-9]+)\ ([0-9]+)\ ([0-9]+)$ ]] ||
        fail "-L --timeout: unexpected output '$before'"
    local old=("${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}")
    # shellcheck disable=SC2064 # expand now: the timeouts to put back
    trap "rvsadm --set ${old[*]} >/dev/null 2>&1 || true" EXIT
    adm --set 5 5 5
    [[ $(adm -L --timeout) == "Timeout (tcp tcpfin udp): 5 5 5" ]] || fail "--set 5 5 5 not reflected by -L --timeout"
    port=$(in_client curl -s --max-time 3 -o /dev/null -w '%{local_port}' "http://$VIP:$VIP_PORT/") ||
        fail "request failed"
    t0=$SECONDS
    list=$(adm -lnc)
    entry=$(grep -E " $CLIENT_IP:$port +$VIP:$VIP_PORT " <<<"$list" || true)
    echo "    after the request (client port $port):" >&2
    indent <<<"$list"
    [[ -n $entry ]] || fail "no -lnc entry for $CLIENT_IP:$port"
    for ((i = 0; i < 30; i++)); do
        sleep 1
        list=$(adm -lnc)
        if ! grep -qE " $CLIENT_IP:$port +$VIP:$VIP_PORT " <<<"$list"; then
            gone=$((SECONDS - t0))
            break
        fi
    done
    record "timeouts 5 5 5" "entry '$(tr -s ' ' <<<"$entry")' gone after ${gone:-never (30 s)} s"
    [[ -n $gone ]] || fail "entry still listed 30 s after the request: $(grep -F "$CLIENT_IP:$port" <<<"$list")"
    ((gone >= 3)) || fail "entry gone after only $gone s, before its 5 s timeout"
    adm --set "${old[@]}"
    trap - EXIT
}

# --- 7. -S / -C / -R round trip --------------------------------------------------------------------

t_save_clear_restore() {
    local f="$LAB_DIR/test/rules.sn" g="$LAB_DIR/test/rules.sn2" list
    mkdir -p "$LAB_DIR/test"
    adm -C
    adm -A -t "$SVC" -s wlc -p 120 -M 255.255.255.0
    adm -a -t "$SVC" -r "$RS1_IP" -g -w 2 -x 100 -y 50
    adm -a -t "$SVC" -r "$RS2_IP" -g -w 1
    adm -A -t "$VIP:8080" -s sh -b sh-port
    adm -a -t "$VIP:8080" -r "$RS1_IP" -g -w 5
    adm -A -u "$VIP:53" -s wrr
    adm -a -u "$VIP:53" -r "$RS2_IP" -g -w 4
    rvsadm -S -n >"$f" || fail "-S -n failed"
    echo "    rvsadm -S -n:" >&2
    indent <"$f"
    [[ $(grep -c '^-A ' "$f") -eq 3 && $(grep -c '^-a ' "$f") -eq 4 ]] || fail "-S -n: want 3 -A and 4 -a lines"
    grep -qE -- "^-A -t $VIP:$VIP_PORT -s wlc -p 120 -M 255\.255\.255\.0\$" "$f" || fail "-S lacks the persistent wlc service"
    grep -qE -- "^-A -t $VIP:8080 -s sh -b sh-port\$" "$f" || fail "-S lacks the sh-port service"
    adm -C
    list=$(adm -L -n)
    if grep -qE '^(TCP|UDP) ' <<<"$list"; then fail "services left after -C: $list"; fi
    rvsadm -R <"$f" || fail "-R failed"
    rvsadm -S -n >"$g" || fail "-S -n after -R failed"
    diff -u "$f" "$g" >&2 || fail "-S -n after -R differs from before"
    local answers
    answers=$(requests 4)
    echo "    restored service answers: $(oneline "$answers")" >&2
    [[ $(count_of none <<<"$answers") -eq 0 ]] || fail "restored service does not answer"
}

# --- 3. persistence across two workers -------------------------------------------------------------

# 30 requests from one client, each a new connection (new source port); af_packet's fanout
# spreads them over both queues, so both workers must see packets. Prints the per-worker rx delta.
two_worker_run() { # two_worker_run LABEL → answers in $ANSWERS, "rx deltas" checked
    local label=$1 rx0 rx1 d0 d1
    read -r -a rx0 <<<"$(worker_rx)"
    ((${#rx0[@]} == 2)) || fail "stats lists ${#rx0[@]} workers, want 2 (is rvs on configs/lab2q.toml?)"
    ANSWERS=$(requests 30)
    read -r -a rx1 <<<"$(worker_rx)"
    d0=$((rx1[0] - rx0[0]))
    d1=$((rx1[1] - rx0[1]))
    record "$label" "$(tally "$ANSWERS"); worker rx packets +$d0 / +$d1; order: $(oneline "$ANSWERS")"
    ((d0 > 0 && d1 > 0)) || fail "not both workers received packets (+$d0 / +$d1): test not meaningful"
}

t_persist_two_workers() {
    reset_service rr 1 1 -p 60
    two_worker_run "rr -p 60, 2 workers"
    [[ $(count_of none <<<"$ANSWERS") -eq 0 ]] || fail "some requests got no answer"
    [[ -n $(sole_server "$ANSWERS") ]] || fail "with -p 60 all 30 should land on one server"
}

t_no_persist_two_workers() {
    reset_service rr 1 1
    two_worker_run "rr, 2 workers"
    local n1 n2
    n1=$(count_of rs1 <<<"$ANSWERS")
    n2=$(count_of rs2 <<<"$ANSWERS")
    ((n1 + n2 == 30)) || fail "only $((n1 + n2)) of 30 answered"
    ((n1 >= 12 && n2 >= 12)) || fail "without -p both servers should share the 30 (rs1=$n1 rs2=$n2)"
}

# --- runner ---------------------------------------------------------------------------------------

SETUP_OK=0
CURRENT_CONFIG=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_rvs || true
    "$REPO_ROOT/scripts/lab.sh" down >/dev/null 2>&1 || "$REPO_ROOT/scripts/lab.sh" down || true
    exit "$rc"
}


# Run rvs with configuration $1 (restart when it runs with another one, or when $2 is "fresh").
use_config() {
    local cfg=$1
    [[ $cfg == "$CURRENT_CONFIG" && ${2:-} != fresh ]] && pid_alive "$(rvs_pid)" && return 0
    stop_rvs || true
    LAB_CONFIG=$cfg
    CURRENT_CONFIG=$cfg
    log "rvs with $(basename "$cfg")"
    start_rvs
}

run_test() {
    local name=$1 rc note="" cfg=$ONE_WORKER_CONFIG fresh=""
    two_workers "$name" && cfg=$TWO_WORKER_CONFIG
    fresh_daemon "$name" && fresh=fresh
    if ((SETUP_OK)) && ! use_config "$cfg" $fresh; then
        lab_record "$name" 1 " (rvs did not start with $(basename "$cfg"))"
        CURRENT_CONFIG=""
        return 0
    fi
    if ((!SETUP_OK)); then
        lab_record "$name" 1 " (not run: setup failed)"
        return 0
    fi
    set +e
    lab_run_case "$name" slow_stop_all
    rc=$?
    set -e
    if lab_rvs_died; then
        rc=1
        note=" (rvs died)"
        CURRENT_CONFIG=""
    fi
    lab_record "$name" "$rc" "$note"
}

lab_select_tests "$@"
lab_require_bins

# Another lab run (its daemon or nginx alive in the lab namespaces): wait for it, bounded.
for ((i = 0; i < 180; i++)); do
    busy=""
    for ns in "$NS_DIR" "$NS_RS1" "$NS_RS2"; do
        if ns_exists "$ns" && [[ -n $(ip netns pids "$ns" 2>/dev/null) ]]; then busy=$ns; fi
    done
    [[ -z $busy ]] && break
    ((i % 30)) || log "another lab run is using $busy; waiting (at most 180 s)"
    sleep 1
done

trap cleanup EXIT
trap 'exit 130' INT TERM

{
    echo "# rvs lab, issue 3: what each scheduler did (answers per real server), $(date -u +%FT%TZ)"
    echo "# rvs $("$RVS_BIN" version 2>/dev/null | head -n1 || true)"
} >"$COUNTS"

if "$REPO_ROOT/scripts/lab.sh" up; then
    SETUP_OK=1
else
    echo "FAIL setup (lab up)"
    FAILED=$((FAILED + 1))
fi

for t in "${SELECTED[@]}"; do
    run_test "$t"
done

if ((FAILED)) && [[ -f $LAB_DIR/rvs.log ]]; then
    echo "--- rvs log (last 30 lines) ---" >&2
    tail -n 30 "$LAB_DIR/rvs.log" >&2 || true
fi
echo "--- counts per real server ($COUNTS) ---" >&2
cat "$COUNTS" >&2 || true
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
