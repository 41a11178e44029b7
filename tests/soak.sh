#!/usr/bin/env bash
# The soak: rvs as the LVS-DR director under a bounded client load with flow churn while the
# operator and the network keep changing things, sampled every 10 s. Needs root and the release
# binaries (cargo build --release).
#
#   tests/soak.sh [SECONDS]        default 600 (the full soak); CI runs `tests/soak.sh 60`
#
# The lab is its own (namespaces rvss-*, state in $RVS_SOAK_DIR, default /tmp/rvss-soak), so it
# can run beside tests/lab/*.sh. Topology as scripts/lab.sh plus a third real server:
#
#   rvss-client 198.18.0.10 -- br0 (rvss-sw) -- rvss-dir (rvs on net_af_packet, DIP .2, VIP .100)
#                                |-- rvss-rs1 .11, rvss-rs2 .12, rvss-rs3 .13 (nginx, VIP on lo)
#
# For SECONDS: a client load (tests/lab/soak_load.py: short HTTP/1.0 connections at $SOAK_RATE
# per second over $SOAK_CONC threads, plus $SOAK_DOWNLOADS long downloads of 1.5 MB at 128 kB/s
# one after another) while, every few seconds, rs3 is added, drained (weight 0) and removed and
# rs1/rs2 are re-weighted; and now and then rs2's MAC changes (10 s, then every 200 s), the
# rules are saved with `rvsadm -S -n` and restored with `rvsadm -C; rvsadm -R` (30 s, then every
# 60 s), and the director's port goes down for 2 s (its peer veth in the switch; 45 s, then every
# 100 s). Every 10 s: RSS, mempool in use/free, flows per worker, neighbour entries, requests
# ok/failed and drops by reason, to samples.csv.
#
# Pass when: no request failed except those a deliberate break explains (link down, rules
# cleared and restored, a download from the removed rs3, requests to rs2 until rvs holds its new
# MAC, and a later connection from a client port whose flow a restore or removal left without a
# server: rvs drops its SYN as no_dest for that flow's 900 s; each counted apart;
# SOAK_STRICT_RESTORE=1 excuses nothing for restores); RSS, mempool in use, flows and neighbour
# entries do not grow (mean
# of the last third of the samples against the second third, with a margin); the mempool's
# in-use count at idle after the load equals the one before (within one burst); rvs follows
# rs2's new MAC within $SOAK_MAC_FOLLOW_S seconds (45: today rvs learns it when the entry goes
# stale and is re-asked, ~30 s); every rvsadm command succeeded and the rules survive the
# save/restore byte for byte; rvs is still running.
#
# Results (kept): $RVS_SOAK_OUT (default /tmp/rvss-soak-results): samples.csv, table.txt (the
# table and verdict printed at the end), requests.log, events.log, idle-*.json, rvs.log.
# The FIN_WAIT timeout is set to 10 s (`--set 0 10 0`) so the flow table reaches the load's
# working set within the first third of even a 60 s run; every other timeout is IPVS's.
set -euo pipefail
shopt -s inherit_errexit

DURATION=${1:-600}
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 30 || DURATION > 7200)); then
    echo "usage: $0 [SECONDS]   (30..7200, default 600)" >&2
    exit 2
fi

export RVS_LAB_DIR=${RVS_SOAK_DIR:-/tmp/rvss-soak}
export RVS_LAB_SOCKET=$RVS_LAB_DIR/control.sock
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

OUT=${RVS_SOAK_OUT:-/tmp/rvss-soak-results}
LOAD="$REPO_ROOT/tests/lab/soak_load.py"
SOAK_RATE=${SOAK_RATE:-40}
SOAK_CONC=${SOAK_CONC:-8}
SOAK_DOWNLOADS=${SOAK_DOWNLOADS:-2}
SOAK_MAC_FOLLOW_S=${SOAK_MAC_FOLLOW_S:-45}
INTERVAL=10
STEP=4 # seconds between two churn steps
FIN_TIMEOUT=10 # the director's FIN_WAIT timeout for the soak (--set 0 10 0)

NSP=rvss-
NS_SW=${NSP}sw
NS_CLIENT=${NSP}client
NS_DIR=${NSP}dir
HOSTS=(client dir rs1 rs2 rs3)
SOAK_NAMESPACES=("$NS_SW" "${HOSTS[@]/#/$NSP}")
RS3_IP=198.18.0.13
declare -A HOST_IP=([client]=$CLIENT_IP [rs1]=$RS1_IP [rs2]=$RS2_IP [rs3]=$RS3_IP)
declare -A HOST_MAC=(
    [client]=02:52:56:00:00:0a
    [dir]=02:52:56:00:00:02
    [rs1]=02:52:56:00:00:0b
    [rs2]=02:52:56:00:00:0c
    [rs3]=02:52:56:00:00:0d
)
RS2_ALT_MAC=02:52:56:00:01:0c
SVC="$VIP:$VIP_PORT"
DPDK_PREFIX=rvss-soak
RVS_CONFIG="$LAB_DIR/rvs.toml"
EVENTS="$LAB_DIR/events.log"
REQUESTS="$LAB_DIR/requests.log"
SAMPLES="$LAB_DIR/samples.csv"
PROBLEMS="$LAB_DIR/problems"

require_root

# --- the soak's own lab ---------------------------------------------------------------------------

soak_ns_ours() {
    [[ $1 == "$NSP"* && -f $LAB_NETNS_FILE ]] && grep -qxF -- "$1" "$LAB_NETNS_FILE"
}

# Stop one PID this script started: TERM, up to 5 s, then KILL. Only when it still runs in one of
# our namespaces, or is a direct child of this script (root-namespace helpers).
soak_kill() {
    local pid=$1 ns i ppid
    [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 0
    ns=$(ip netns identify "$pid" 2>/dev/null || true)
    ppid=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
    if ! soak_ns_ours "$ns" && [[ $ppid != "$$" ]]; then
        log "warning: pid $pid is neither in a soak namespace nor our child; leaving it alone"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

soak_down() {
    local f ns pid
    [[ -d $LAB_DIR ]] || return 0
    for f in "$LAB_PID_DIR"/*.pid; do
        [[ -e $f ]] || continue
        soak_kill "$(head -n1 "$f")"
        rm -f "$f"
    done
    if [[ -f $LAB_NETNS_FILE ]]; then
        while read -r ns; do
            if ! soak_ns_ours "$ns" || ! ns_exists "$ns"; then continue; fi
            for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
                soak_kill "$pid"
            done
        done <"$LAB_NETNS_FILE"
        while read -r ns; do
            if [[ $ns != "$NSP"* ]] || ! ns_exists "$ns"; then continue; fi
            ip netns del "$ns" || log "warning: could not delete namespace $ns"
        done < <(tac "$LAB_NETNS_FILE")
    fi
    rm -rf -- "/var/run/dpdk/$DPDK_PREFIX" "$LAB_DIR"
}

write_nginx_conf() {
    local name=$1 d="$LAB_DIR/$1"
    mkdir -p "$d/html" "$d/tmp"
    head -c "$SLOW_BYTES" /dev/zero >"$d/html${SLOW_PATH}"
    cat >"$d/nginx.conf" <<EOF
# Generated by tests/soak.sh for $name.
worker_processes 1;
daemon on;
user root;
pid $LAB_PID_DIR/nginx-$name.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    default_type text/plain;
    sendfile on;
    keepalive_timeout 5s;
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
        listen 80 default_server;
        server_name _;
        root $d/html;
        add_header X-Server $name always;
        location = / { return 200 "$name\n"; }
        location = $SLOW_PATH {
            default_type application/octet-stream;
            limit_rate $SLOW_RATE;
            limit_rate_after 0;
        }
    }
}
EOF
    # Keep only the temp paths of modules this nginx has.
    local m
    for m in proxy fastcgi uwsgi scgi; do
        if nginx -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
            sed -i "/ ${m}_temp_path /d" "$d/nginx.conf"
        fi
    done
}

soak_up() {
    local h ns i
    mkdir -p "$LAB_DIR" "$LAB_PID_DIR"
    chmod 0755 "$LAB_DIR"
    : >"$LAB_NETNS_FILE"
    for ns in "${SOAK_NAMESPACES[@]}"; do
        ns_exists "$ns" && die "namespace $ns exists but was not created by this soak; remove it first"
        ip netns add "$ns"
        echo "$ns" >>"$LAB_NETNS_FILE"
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
    done
    ip -n "$NS_SW" link add br0 type bridge stp_state 0 mcast_snooping 0
    ip -n "$NS_SW" link set br0 up
    for h in "${HOSTS[@]}"; do
        ns=$NSP$h
        ip -n "$NS_SW" link add "p-$h" type veth peer name veth0 netns "$ns"
        ip -n "$NS_SW" link set "p-$h" master br0
        ip -n "$ns" link set veth0 address "${HOST_MAC[$h]}"
        # Complete frames on the wire: no partial checksums, no coalescing.
        ip netns exec "$NS_SW" ethtool -K "p-$h" tx off >/dev/null
        ip netns exec "$ns" ethtool -K veth0 tx off >/dev/null
        ip netns exec "$ns" ethtool -K veth0 gro off >/dev/null 2>&1 || true
        ip -n "$NS_SW" link set "p-$h" up
        ip -n "$ns" link set veth0 up
    done
    ip -n "$NS_CLIENT" addr add "$CLIENT_IP/24" dev veth0
    ip netns exec "$NS_DIR" sysctl -qw net.ipv4.ip_forward=0
    for h in rs1 rs2 rs3; do
        ns=$NSP$h
        ip netns exec "$ns" "$RVS_BIN" rs-setup --vip "$VIP" --apply
        ip -n "$ns" addr add "${HOST_IP[$h]}/24" dev veth0
        write_nginx_conf "$h"
        ip netns exec "$ns" nginx -c "$LAB_DIR/$h/nginx.conf" -p "$LAB_DIR/$h/" -e "$LAB_DIR/$h/error.log" </dev/null
    done
    for h in rs1 rs2 rs3; do
        local got=""
        for ((i = 0; i < 20; i++)); do
            got=$(ip netns exec "$NS_CLIENT" curl -s --max-time 2 "http://${HOST_IP[$h]}/" || true)
            [[ $got == "$h" ]] && break
            sleep 0.2
        done
        [[ $got == "$h" ]] || die "client cannot reach $h directly (got '$got')"
    done
}

write_config() {
    cat >"$RVS_CONFIG" <<EOF
# Generated by tests/soak.sh: configs/lab.toml with the soak's own file-prefix and socket.
[eal]
args = ["-l", "0", "--no-huge", "--no-pci", "-m", "512",
        "--vdev", "net_af_packet0,iface=veth0", "--file-prefix", "$DPDK_PREFIX"]
[port]
id = 0
rx_descriptors = 1024
tx_descriptors = 1024
mbufs = 8191
promiscuous = true
[network]
dip = "$DIP"
prefix_len = 24
[workers]
lcores = [0]
[control]
socket = "$RVS_SOCK"
EOF
}

soak_start_rvs() {
    local pid i
    rm -f "$RVS_SOCK"
    (cd "$LAB_DIR" && exec ip netns exec "$NS_DIR" "$RVS_BIN" run -c "$RVS_CONFIG" --socket "$RVS_SOCK") \
        </dev/null >"$LAB_DIR/rvs.log" 2>&1 &
    pid=$!
    echo "$pid" >"$LAB_PID_DIR/rvs.pid"
    for ((i = 0; i < 300; i++)); do
        pid_alive "$pid" || {
            tail -n 30 "$LAB_DIR/rvs.log" >&2
            die "rvs exited during start-up"
        }
        if [[ -S $RVS_SOCK ]] && rvsadm -L -n >/dev/null 2>&1; then
            RVS_PID=$pid
            return 0
        fi
        sleep 0.1
    done
    die "rvs did not answer on $RVS_SOCK within 30 s"
}

# --- during the run -------------------------------------------------------------------------------

event() { echo "$EPOCHREALTIME $*" >>"$EVENTS"; }
problem() {
    log "problem: $*"
    echo "$*" >>"$PROBLEMS"
}
# One rvsadm command that must succeed (a failure is a problem, the soak goes on).
adm_ok() {
    local out
    if ! out=$(rvsadm "$@" 2>&1); then
        problem "rvsadm $* failed: $out"
    fi
}

CHURN=0
churn_step() {
    case $((CHURN % 6)) in
    0) adm_ok -a -t "$SVC" -r "$RS3_IP:$VIP_PORT" -g -w 1 && event add at rs3 ;;
    1) adm_ok -e -t "$SVC" -r "$RS1_IP:$VIP_PORT" -g -w 3 ;;
    2) adm_ok -e -t "$SVC" -r "$RS3_IP:$VIP_PORT" -g -w 0 && event drain at rs3 ;;
    3) adm_ok -e -t "$SVC" -r "$RS2_IP:$VIP_PORT" -g -w 2 ;;
    4)
        event remove at rs3
        adm_ok -d -t "$SVC" -r "$RS3_IP:$VIP_PORT"
        ;;
    5)
        adm_ok -e -t "$SVC" -r "$RS1_IP:$VIP_PORT" -g -w 1
        adm_ok -e -t "$SVC" -r "$RS2_IP:$VIP_PORT" -g -w 1
        ;;
    esac
    CHURN=$((CHURN + 1))
}

RS2_MAC=${HOST_MAC[rs2]}
# rs2 gets a new MAC; a helper waits (bounded) until rvs holds it and closes the window.
mac_change() {
    local new=$RS2_ALT_MAC
    [[ $RS2_MAC == "$new" ]] && new=${HOST_MAC[rs2]}
    RS2_MAC=$new
    event mac begin rs2 "$new"
    ip -n "${NSP}rs2" link set dev veth0 address "$new"
    (
        t0=$EPOCHREALTIME
        for ((i = 0; i < SOAK_MAC_FOLLOW_S * 4; i++)); do
            m=$(python3 "$LOAD" neigh --socket "$RVS_SOCK" --addr "$RS2_IP" 2>/dev/null || true)
            if [[ ${m,,} == "$new" ]]; then
                event mac end rs2 followed "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1fs", b - a}')"
                exit 0
            fi
            sleep 0.25
        done
        event mac end rs2 not-followed
        echo "rvs still uses rs2's old MAC ${SOAK_MAC_FOLLOW_S}s after it changed to $new" >>"$PROBLEMS"
    ) &
    echo $! >"$LAB_PID_DIR/mac-follow-$CHURN.pid"
}

save_restore() {
    local before after
    event restore begin
    before=$(rvsadm -S -n 2>&1) || problem "rvsadm -S -n failed: $before"
    printf '%s\n' "$before" >"$LAB_DIR/saved.rules"
    adm_ok -C
    if ! after=$(rvsadm -R <"$LAB_DIR/saved.rules" 2>&1); then
        problem "rvsadm -R failed: $after"
    fi
    event restore end
    after=$(rvsadm -S -n 2>&1) || true
    [[ $after == "$before" ]] || problem "rules differ after -S/-C/-R: before <$before> after <$after>"
}

link_flap() {
    event link begin
    ip -n "$NS_SW" link set p-dir down
    sleep 2
    ip -n "$NS_SW" link set p-dir up
    event link end
}

# --- main -----------------------------------------------------------------------------------------

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -d $LAB_DIR ]]; then
        mkdir -p "$OUT"
        cp -f "$LAB_DIR/rvs.log" "$OUT/" 2>/dev/null || true
    fi
    soak_down || true
    exit "$rc"
}

lab_require_bins
python3 "$LOAD" selftest >/dev/null || die "the soak's verdict fails its own checks (soak_load.py selftest)"
command -v nginx >/dev/null || die "nginx not found (run: scripts/deps.sh)"
if [[ -f $LAB_NETNS_FILE ]]; then
    log "cleaning up an earlier soak's lab"
    soak_down
fi
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf -- "$OUT"
mkdir -p "$OUT"

log "soak of ${DURATION}s: lab up ($LAB_DIR, namespaces ${NSP}*)"
soak_up
write_config
: >"$EVENTS"
: >"$REQUESTS"
: >"$PROBLEMS"
soak_start_rvs
log "rvs up (pid $RVS_PID)"
# The client's view of its neighbours (the VIP's MAC among them), for the record.
ip -n "$NS_CLIENT" -ts monitor neigh >"$LAB_DIR/client-neigh.log" 2>&1 &
echo $! >"$LAB_PID_DIR/neigh-monitor.pid"
adm_ok -A -t "$SVC" -s wrr
adm_ok -a -t "$SVC" -r "$RS1_IP:$VIP_PORT" -g -w 1
adm_ok -a -t "$SVC" -r "$RS2_IP:$VIP_PORT" -g -w 1
adm_ok --set 0 "$FIN_TIMEOUT" 0
# Both real servers answer through the VIP before the clock starts (bounded).
for ((i = 0; i < 40; i++)); do
    seen=$(for _ in 1 2 3 4; do in_client curl -s --max-time 2 "http://$VIP/" || true; done | sort -u | tr '\n' ' ')
    [[ $seen == "rs1 rs2 " ]] && break
    sleep 0.25
done
[[ $seen == "rs1 rs2 " ]] || die "the VIP does not reach both real servers (saw '$seen')"
sleep 3
python3 "$LOAD" stats --socket "$RVS_SOCK" --pid "$RVS_PID" >"$LAB_DIR/idle-start.json"
log "idle before the load: $(cat "$LAB_DIR/idle-start.json")"

python3 "$LOAD" sample --socket "$RVS_SOCK" --pid "$RVS_PID" --out "$SAMPLES" \
    --requests "$REQUESTS" --stop "$LAB_DIR/sample.stop" --interval "$INTERVAL" \
    --seconds "$((DURATION + 60))" 2>>"$LAB_DIR/sample.err" &
echo $! >"$LAB_PID_DIR/sampler.pid"
# SOAK_LOOKUP=1: each failed connect is looked up in rvs's flow table (a `connections` call,
# whose allocations then show in the daemon's RSS: off by default).
lookup=()
[[ ${SOAK_LOOKUP:-0} == 1 ]] && lookup=(--socket "$RVS_SOCK" --client "$CLIENT_IP")
ip netns exec "$NS_CLIENT" python3 "$LOAD" load --vip "$VIP" --port "$VIP_PORT" \
    --out "$REQUESTS" --stop "$LAB_DIR/load.stop" --seconds "$((DURATION + 30))" \
    --rate "$SOAK_RATE" --conc "$SOAK_CONC" --downloads "$SOAK_DOWNLOADS" \
    --slow-path "$SLOW_PATH" --slow-bytes "$SLOW_BYTES" "${lookup[@]}" 2>>"$LAB_DIR/load.err" &
LOAD_PID=$!
echo "$LOAD_PID" >"$LAB_PID_DIR/load.pid"
log "load: ~$SOAK_RATE short connections/s over $SOAK_CONC threads, $SOAK_DOWNLOADS downloads"

SECONDS=0
next_churn=$STEP next_mac=10 next_restore=30 next_link=45
while ((SECONDS < DURATION)); do
    pid_alive "$RVS_PID" || {
        problem "rvs died at ${SECONDS}s"
        break
    }
    if ((SECONDS >= next_churn)); then
        churn_step
        next_churn=$((next_churn + STEP))
    fi
    if ((SECONDS >= next_mac)); then
        ((SECONDS + SOAK_MAC_FOLLOW_S + 5 <= DURATION)) && mac_change
        next_mac=$((next_mac + 200))
    fi
    if ((SECONDS >= next_restore)); then
        ((SECONDS + 5 <= DURATION)) && save_restore
        next_restore=$((next_restore + 60))
    fi
    if ((SECONDS >= next_link)); then
        ((SECONDS + 10 <= DURATION)) && link_flap
        next_link=$((next_link + 100))
    fi
    sleep 0.5
done

log "load done after ${SECONDS}s; stopping the client"
touch "$LAB_DIR/load.stop"
for ((i = 0; i < 100; i++)); do
    pid_alive "$LOAD_PID" || break
    sleep 0.1
done
soak_kill "$LOAD_PID"
touch "$LAB_DIR/sample.stop"
for f in "$LAB_PID_DIR"/mac-follow-*.pid; do
    [[ -e $f ]] && soak_kill "$(head -n1 "$f")"
done
sleep 3
if pid_alive "$RVS_PID"; then
    python3 "$LOAD" stats --socket "$RVS_SOCK" --pid "$RVS_PID" >"$LAB_DIR/idle-end.json"
    python3 "$LOAD" census --socket "$RVS_SOCK" >"$LAB_DIR/census.txt" || true
else
    problem "rvs is not running at the end"
    cp "$LAB_DIR/idle-start.json" "$LAB_DIR/idle-end.json"
fi
cp -f "$SAMPLES" "$REQUESTS" "$EVENTS" "$LAB_DIR"/idle-*.json "$LAB_DIR/client-neigh.log" "$OUT/"

rc=0
strict=()
[[ ${SOAK_STRICT_RESTORE:-0} == 1 ]] && strict=(--strict-restore)
python3 "$LOAD" analyse --samples "$SAMPLES" --requests "$REQUESTS" --events "$EVENTS" \
    --idle-start "$LAB_DIR/idle-start.json" --idle-end "$LAB_DIR/idle-end.json" \
    --table "$OUT/table.txt" --fin-timeout "$FIN_TIMEOUT" "${strict[@]}" || rc=1
if [[ -s $PROBLEMS ]]; then
    echo "other problems:"
    sed 's/^/  /' "$PROBLEMS"
    cat "$PROBLEMS" >>"$OUT/table.txt"
    rc=1
fi
grep -h "mac end" "$EVENTS" | sed 's/^/  rs2 MAC change: /' || true
if [[ -s $LAB_DIR/census.txt ]]; then
    echo "  after the load: $(cat "$LAB_DIR/census.txt")" | tee -a "$OUT/table.txt"
fi
if ((rc == 0)); then
    echo "soak ${DURATION}s: PASS (results in $OUT)"
else
    echo "soak ${DURATION}s: FAIL (results in $OUT)"
fi
exit "$rc"
