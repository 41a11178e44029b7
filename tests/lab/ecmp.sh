#!/usr/bin/env bash
# Lab test for active/active directors behind ECMP with BGP (issue 14, part 3): a router reaches
# the VIP through two rvs directors by a Linux multipath route (L4 hash), learnt over BGP from
# BIRD in each director's namespace; each rvs tells its BIRD what to announce with kernel
# routes (src/announce.rs: VIP/32 dev rvs0 table 100 proto 201).
#
#   tests/lab/ecmp.sh                        run every test
#   tests/lab/ecmp.sh t_kill_one_director    run some
#
#   rve-client              rve-rt (router, BIRD AS 65000)               rve-d1 / rve-d2
#   198.19.1.2/24 --- c0 198.19.1.1/24                                  rvs on veth0 (af_packet),
#                         br0 198.18.30.1/24 --- p-d1, p-d2 ---------   rvs0 = DIP .2 / .3,
#                         ip_forward, fib_multipath_hash_policy=1       BIRD AS 65001 over rvs0
#                         BIRD: bgp d1, d2 (hold 3, keepalive 1),
#                         kernel export with `merge paths on`
#                                        --- p-rs1, p-rs2 ----------   rve-rs1 / rve-rs2
#                                                                        198.18.30.11 / .12,
#                                                                        VIP 198.19.100.100 on lo
#
# Both directors: tcp VIP:80, scheduler mh with mh-port over both real servers, sloppy_tcp (a
# director that never saw a flow's SYN still forwards its ACKs, to the same server: mh), and
# [announce] on. The real servers answer the client directly through the router (LVS-DR).
#
# Prints `ok NAME` / `FAIL NAME` per test, `N passed, M failed`, and the measurements (time
# to drop the dead path, first new connection, downloads kept, drain withdraw time); they also
# go to $RVS_ECMP_MEASURE (default /tmp/rve-ecmp-measure.txt). Always tears the lab down; every
# wait is bounded.
set -euo pipefail
shopt -s inherit_errexit
export RVS_LAB_NS_PREFIX=${RVS_LAB_NS_PREFIX:-rve}
export RVS_LAB_DIR=${RVS_LAB_DIR:-/tmp/rve-lab}
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
RPC="$REPO_ROOT/tests/lab/rpc.py"
FAILOVER="$REPO_ROOT/tests/lab/failover.py"
SLOWHTTP="$REPO_ROOT/tests/lab/ecmp/slowhttp.py"

require_root
MEASURE=${RVS_ECMP_MEASURE:-/tmp/rve-ecmp-measure.txt}
DOWNLOADS=${RVS_ECMP_DOWNLOADS:-100}

NS_RT=$LAB_NS_PREFIX-rt
NS_CLIENT=$LAB_NS_PREFIX-client
NS_D1=$LAB_NS_PREFIX-d1
NS_D2=$LAB_NS_PREFIX-d2
NS_RS1=$LAB_NS_PREFIX-rs1
NS_RS2=$LAB_NS_PREFIX-rs2
CLIENT_IP=198.19.1.2
RT_CLIENT_IP=198.19.1.1
RT_IP=198.18.30.1
DIP_1=198.18.30.2
DIP_2=198.18.30.3
RS1_IP=198.18.30.11
RS2_IP=198.18.30.12
VIP=198.19.100.100
VIP_PORT=80
MAC_D1=02:52:56:00:1e:02
MAC_D2=02:52:56:00:1e:03
TABLE=100
AS_RT=65000
AS_DIR=65001
# BGP timers (seconds): without BFD the router drops a dead director's path after HOLD.
HOLD=3
# BFD between the router and each director (100 ms x 3): a dead director's path goes in well
# under a second instead of the hold time. RVS_ECMP_BFD=0 measures the hold time alone.
BFD=${RVS_ECMP_BFD:-1}
# What "the router dropped the dead path within ~HOLD s (or BFD's detection) + margin" allows.
if ((BFD)); then DROP_DEFAULT=1.5; else DROP_DEFAULT=4.5; fi
DROP_LIMIT=${RVS_ECMP_DROP_LIMIT:-$DROP_DEFAULT}

# bird_bfd IFACE: the BFD protocol and the BGP option, when BFD is on (else nothing).
bird_bfd() {
    ((BFD)) || return 0
    echo "protocol bfd { interface \"$1\" { interval 100 ms; multiplier 3; }; }"
}
bgp_bfd() { if ((BFD)); then echo "bfd on;"; fi; }

ALL_TESTS=(
    t_both_paths_announced
    t_kill_one_director
    t_drain_withdraws
    t_no_server_withdraws
    t_stop_withdraws
)

now_ms() { echo $(($(date +%s%N) / 1000000)); }
within() { [[ -n $1 && $1 != None ]] && python3 -c "import sys; sys.exit(0 if $1 <= $2 else 1)"; }
jget() { python3 -c "import json,sys; v=json.loads(sys.argv[1])['$2']; print('' if v is None else v)" "$1"; }

# --- namespaces --------------------------------------------------------------------------------

add_ns() {
    ip netns add "$1"
    echo "$1" >>"$LAB_NETNS_FILE"
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
}

# port NS: a veth from the router's bridge (p-NAME) to veth0 in NS, offloads off.
port() {
    local ns=$1 name=${1#"$LAB_NS_PREFIX"-}
    ip -n "$NS_RT" link add "p-$name" type veth peer name veth0 netns "$ns"
    ip -n "$NS_RT" link set "p-$name" master br0
    ip netns exec "$NS_RT" ethtool -K "p-$name" tx off >/dev/null
    ip netns exec "$ns" ethtool -K veth0 tx off >/dev/null
    ip netns exec "$ns" ethtool -K veth0 gro off >/dev/null 2>&1 || true
    ip -n "$NS_RT" link set "p-$name" up
}

# --- real servers ------------------------------------------------------------------------------

start_server() {
    local name=$1 ns=$LAB_NS_PREFIX-$1 i
    ip netns exec "$ns" python3 "$SLOWHTTP" "$name" "$SLOW_BYTES" "$SLOW_RATE" \
        </dev/null >"$LAB_DIR/http-$name.log" 2>&1 &
    echo $! >"$LAB_PID_DIR/http-$name.pid"
    for ((i = 0; i < 50; i++)); do
        [[ $(ip netns exec "$NS_CLIENT" curl -s --max-time 1 "http://$2/" || true) == "$name" ]] && return 0
        sleep 0.1
    done
    die "real server $name does not answer at $2"
}

# --- directors ---------------------------------------------------------------------------------

dir_ns() { if [[ $1 == 1 ]]; then echo "$NS_D1"; else echo "$NS_D2"; fi; }
dir_dip() { if [[ $1 == 1 ]]; then echo "$DIP_1"; else echo "$DIP_2"; fi; }
dir_sock() { echo "$LAB_DIR/d$1.sock"; }
dir_pidfile() { echo "$LAB_PID_DIR/rvs-d$1.pid"; }
dir_pid() { head -n1 "$(dir_pidfile "$1")" 2>/dev/null || true; }
# (common.sh's pid_alive of an empty PID looks at /proc/stat and says yes.)
dir_alive() {
    local p
    p=$(dir_pid "$1")
    [[ -n $p ]] && pid_alive "$p"
}
bird_pidfile() { echo "$LAB_PID_DIR/bird-$1.pid"; }
bird_sock() { echo "$LAB_DIR/bird-$1.ctl"; }

write_dir_config() {
    local x=$1 lcore=$(($1 - 1))
    cat >"$LAB_DIR/d$x.rules" <<EOF
-A -t $VIP:$VIP_PORT -s mh -b mh-port
-a -t $VIP:$VIP_PORT -r $RS1_IP:80 -g -w 1
-a -t $VIP:$VIP_PORT -r $RS2_IP:80 -g -w 1
EOF
    cat >"$LAB_DIR/d$x.toml" <<EOF
# Generated by tests/lab/ecmp.sh: director $x.
[eal]
args = ["-l", "$lcore", "--no-huge", "--no-pci", "-m", "512",
        "--vdev", "net_af_packet0,iface=veth0", "--file-prefix", "$LAB_NS_PREFIX-d$x"]
[port]
id = 0
rx_descriptors = 1024
tx_descriptors = 1024
mbufs = 8191
promiscuous = true
[network]
dip = "$(dir_dip "$x")"
prefix_len = 24
[workers]
lcores = [$lcore]
[tables]
flows_per_worker = 65536
max_services = 64
max_servers = 256
neighbours = 1024
[dataplane]
sloppy_tcp = true
[control]
socket = "$(dir_sock "$x")"
[rules]
file = "$LAB_DIR/d$x.rules"
[kernel]
enabled = true
name = "rvs0"
driver = "tap"
[announce]
enabled = true
table = $TABLE
interval_ms = 100
EOF
}

start_dir() {
    local x=$1 ns sock pid i
    ns=$(dir_ns "$x")
    sock=$(dir_sock "$x")
    rm -f "$sock"
    (cd "$REPO_ROOT" && exec ip netns exec "$ns" "$RVS_BIN" run -c "$LAB_DIR/d$x.toml" --socket "$sock") \
        </dev/null >>"$LAB_DIR/rvs-d$x.log" 2>&1 &
    pid=$!
    echo "$pid" >"$(dir_pidfile "$x")"
    disown
    for ((i = 0; i < 300; i++)); do
        pid_alive "$pid" || {
            tail -n 20 "$LAB_DIR/rvs-d$x.log" >&2
            fail "director $x exited during start-up"
        }
        if [[ -S $sock ]] && "$RVSADM_BIN" --socket "$sock" -L -n >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    fail "director $x: control socket did not answer within 30 s"
}

write_dir_bird() {
    local x=$1
    cat >"$LAB_DIR/bird-d$x.conf" <<EOF
# Generated by tests/lab/ecmp.sh: BIRD of director $x. rvs keeps VIP/32 routes in kernel
# table $TABLE (proto 201) while it can serve them; they are learnt and announced to the router.
router id $(dir_dip "$x");
ipv4 table vips;
protocol device { scan time 10; }
protocol kernel vips_in {
    kernel table $TABLE;
    learn;
    scan time 2;
    ipv4 { table vips; import all; export none; };
}
$(bird_bfd rvs0)
protocol bgp uplink {
    local $(dir_dip "$x") as $AS_DIR;
    neighbor $RT_IP as $AS_RT;
    hold time $HOLD;
    keepalive time 1;
    connect retry time 1;
    error wait time 1, 2;
    $(bgp_bfd)
    ipv4 { table vips; import none; export all; next hop self; };
}
EOF
}

write_rt_bird() {
    cat >"$LAB_DIR/bird-rt.conf" <<EOF
# Generated by tests/lab/ecmp.sh: the router's BIRD. Equal BGP paths are merged into one
# multipath kernel route.
router id $RT_IP;
protocol device { scan time 10; }
protocol kernel {
    merge paths on;
    ipv4 { import none; export all; };
}
$(bird_bfd br0)
template bgp director {
    local $RT_IP as $AS_RT;
    hold time $HOLD;
    keepalive time 1;
    connect retry time 1;
    # A director that comes back is taken back at once (BIRD's default waits 60 s).
    error wait time 1, 2;
    $(bgp_bfd)
    ipv4 { import all; export none; };
}
protocol bgp d1 from director { neighbor $DIP_1 as $AS_DIR; }
protocol bgp d2 from director { neighbor $DIP_2 as $AS_DIR; }
EOF
}

# start_bird NAME NS: one BIRD in NS (foreground under our PID file, its own control socket).
start_bird() {
    local name=$1 ns=$2 i
    ip netns exec "$ns" bird -f -c "$LAB_DIR/bird-$name.conf" -s "$(bird_sock "$name")" \
        -P "$LAB_DIR/bird-$name.own.pid" </dev/null >"$LAB_DIR/bird-$name.log" 2>&1 &
    echo $! >"$(bird_pidfile "$name")"
    disown # killed on purpose by the tests: no job messages
    for ((i = 0; i < 50; i++)); do
        birdc_ "$name" show status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "BIRD $name did not start (see $LAB_DIR/bird-$name.log)"
}

birdc_() { birdc -s "$(bird_sock "$1")" "${@:2}"; }

# kill_pid_now PIDFILE: SIGKILL (a crash), wait until gone.
kill_pid_now() {
    local pid i
    pid=$(head -n1 "$1" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    rm -f "$1"
}

# up X: director X running with its BIRD (fresh).
dir_up() {
    kill_pidfile "$(bird_pidfile "d$1")"
    kill_pidfile "$(dir_pidfile "$1")"
    write_dir_config "$1"
    write_dir_bird "$1"
    start_dir "$1"
    start_bird "d$1" "$(dir_ns "$1")"
}

rpc_x() {
    local line params=${3:-}
    [[ -n $params ]] || params='{}'
    line=$(python3 "$RPC" "$(dir_sock "$1")" send "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":$params}") ||
        fail "director $1: $2: no answer"
    python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["result"]))' "$line" ||
        fail "director $1: $2: $line"
}

# service_counter X FIELD: the VIP service's counter (conns, packets) on director X.
service_counter() {
    rpc_x "$1" stats | python3 -c "
import json,sys
s = json.load(sys.stdin)['services']
print(sum(v['counters']['$2'] for v in s))"
}

# --- the router's view -------------------------------------------------------------------------

# paths: how many next hops the router has for the VIP (0: no route).
paths() {
    ip -n "$NS_RT" -4 route show "$VIP/32" 2>/dev/null |
        awk '/nexthop via/ { n++ } NR == 1 && / via / { one = 1 } END { print n ? n : (one ? 1 : 0) }'
}

# wait_paths N SECONDS: the router has N paths within SECONDS; prints the ms it took.
wait_paths() {
    local t0 end
    t0=$(now_ms)
    end=$((t0 + $2 * 1000))
    while (($(now_ms) < end)); do
        if [[ $(paths) == "$1" ]]; then
            echo $(($(now_ms) - t0))
            return 0
        fi
        sleep 0.02
    done
    fail "the router has $(paths) paths to $VIP, not $1, after $2 s: $(ip -n "$NS_RT" -4 route show "$VIP/32")"
}

# Both directors up and announcing, the router with both paths, the VIP answering.
pair() {
    local x
    for x in 1 2; do
        dir_alive "$x" || dir_up "$x"
        rpc_x "$x" director.drain '{"on": false}' >/dev/null
    done
    wait_paths 2 20 >/dev/null
    for ((x = 0; x < 30; x++)); do
        [[ $(vip_get / 1 || true) == rs[12] ]] && return 0
        sleep 0.1
    done
    fail "the VIP does not answer"
}

# --- set-up ------------------------------------------------------------------------------------

setup_inner() {
    mkdir -p "$LAB_DIR" "$LAB_PID_DIR"
    : >"$LAB_NETNS_FILE"
    local ns
    for ns in "$NS_RT" "$NS_CLIENT" "$NS_D1" "$NS_D2" "$NS_RS1" "$NS_RS2"; do
        ns_exists "$ns" && die "namespace $ns exists already (another run? scripts/lab.sh down with RVS_LAB_NS_PREFIX=$LAB_NS_PREFIX RVS_LAB_DIR=$LAB_DIR)"
        add_ns "$ns"
    done
    # Router: client side, and a bridge for directors and real servers.
    ip netns exec "$NS_RT" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
    ip -n "$NS_RT" link add c0 type veth peer name veth0 netns "$NS_CLIENT"
    ip netns exec "$NS_RT" ethtool -K c0 tx off >/dev/null
    ip netns exec "$NS_CLIENT" ethtool -K veth0 tx off >/dev/null
    ip -n "$NS_RT" addr add "$RT_CLIENT_IP/24" dev c0
    ip -n "$NS_RT" link set c0 up
    ip -n "$NS_RT" link add br0 type bridge stp_state 0 mcast_snooping 0
    ip netns exec "$NS_RT" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
        net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 >/dev/null 2>&1 || true
    ip -n "$NS_RT" addr add "$RT_IP/24" dev br0
    ip -n "$NS_RT" link set br0 up
    ip -n "$NS_CLIENT" addr add "$CLIENT_IP/24" dev veth0
    ip -n "$NS_CLIENT" link set veth0 up
    ip -n "$NS_CLIENT" route add default via "$RT_CLIENT_IP"

    # Directors: veth0 up without an address; rvs owns the DIP (its rvs0 carries it for BIRD).
    port "$NS_D1"
    port "$NS_D2"
    ip -n "$NS_D1" link set veth0 address "$MAC_D1"
    ip -n "$NS_D2" link set veth0 address "$MAC_D2"
    for ns in "$NS_D1" "$NS_D2"; do
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0 >/dev/null
        ip -n "$ns" link set veth0 arp off
        ip -n "$ns" link set veth0 up
    done

    # Real servers, as for LVS-DR; replies go to the client through the router.
    local i ip
    for i in 1 2; do
        ns=$LAB_NS_PREFIX-rs$i
        if [[ $i == 1 ]]; then ip=$RS1_IP; else ip=$RS2_IP; fi
        port "$ns"
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.lo.arp_ignore=1 \
            net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.lo.arp_announce=2 >/dev/null
        ip -n "$ns" addr add "$VIP/32" dev lo
        ip -n "$ns" addr add "$ip/24" dev veth0
        ip -n "$ns" link set veth0 up
        ip -n "$ns" route add default via "$RT_IP"
    done
    start_server rs1 "$RS1_IP"
    start_server rs2 "$RS2_IP"

    write_rt_bird
    start_bird rt "$NS_RT"
    dir_up 1
    dir_up 2
    pair
}

setup() {
    : >"$MEASURE"
    echo "ECMP lab ($(date -u +%FT%TZ)): BGP hold $HOLD s keepalive 1 s, BFD $( ((BFD)) && echo "100 ms x 3" || echo off), mh + mh-port, sloppy_tcp, $DOWNLOADS downloads of $SLOW_BYTES bytes at $SLOW_RATE B/s" >>"$MEASURE"
    setup_inner
}

teardown() {
    [[ -z ${RVS_ECMP_KEEP:-} ]] || { log "RVS_ECMP_KEEP set: the lab stays up (scripts/lab.sh down with RVS_LAB_NS_PREFIX=$LAB_NS_PREFIX RVS_LAB_DIR=$LAB_DIR)"; return 0; }
    "$REPO_ROOT/scripts/lab.sh" down >/dev/null 2>&1 || true
}

# --- tests -------------------------------------------------------------------------------------

# Each director announces the VIP (its route in table 100, proto 201; BIRD exports it); the
# router has one route with two next hops, the DIPs.
t_both_paths_announced() {
    pair
    local x r
    for x in 1 2; do
        r=$(ip -n "$(dir_ns "$x")" -4 route show table "$TABLE" proto 201)
        [[ $r == "$VIP dev rvs0 "* ]] || fail "director $x: table $TABLE holds '$r'"
    done
    r=$(ip -n "$NS_RT" -4 route show "$VIP/32")
    [[ $r == *"via $DIP_1 "* && $r == *"via $DIP_2 "* ]] || fail "router: $r"
    echo "router: $(echo "$r" | tr -s ' \n' ' ')" >>"$MEASURE"
}

# 100 long downloads spread over both directors; kill -9 one director (rvs and its BIRD): the
# router drops its path after the hold time, its flows move to the other director, which
# (sloppy_tcp + mh) sends them to the same real servers; >= 99 complete, new connections work.
t_kill_one_director() {
    pair
    local c1 c2 s1 s2 after r intact newc drop_ms kill_ms watch all_ok first_ok fails
    c1=$(service_counter 1 conns)
    c2=$(service_counter 2 conns)
    rm -f "$LAB_DIR/kill.ms"
    # The router's path count, every 20 ms, with times (ms) of each change.
    (
        last=""
        end=$(($(now_ms) + 40000))
        while (($(now_ms) < end)); do
            n=$(paths)
            [[ $n == "$last" ]] || echo "$(now_ms) $n"
            last=$n
            sleep 0.02
        done
    ) >"$LAB_DIR/paths.log" 2>/dev/null &
    watch=$!
    # New connections after the kill: one every 100 ms for 8 s, each bounded by 1 s; when did
    # the first succeed, and from when did every one succeed.
    (
        for ((i = 0; i < 3000; i++)); do
            [[ -f $LAB_DIR/kill.ms ]] && break
            sleep 0.01
        done
        end=$(($(now_ms) + 8000))
        while (($(now_ms) < end)); do
            t=$(now_ms)
            if [[ $(ip netns exec "$NS_CLIENT" curl -s --max-time 1 "http://$VIP/" || true) == rs[12] ]]; then
                echo "$t ok"
            else
                echo "$t fail"
            fi
            sleep 0.1
        done
    ) >"$LAB_DIR/newconn.log" 2>/dev/null &
    local probe=$!
    # The event: both directors' stats (their shares so far), the time, the kill.
    local q='{"jsonrpc":"2.0","id":1,"method":"stats","params":{}}'
    local event
    event="python3 $RPC $(dir_sock 1) send '$q' > $LAB_DIR/d1.stats; python3 $RPC $(dir_sock 2) send '$q' > $LAB_DIR/d2.stats; date +%s%3N > $LAB_DIR/kill.ms; kill -KILL $(dir_pid 1) $(head -n1 "$(bird_pidfile d1)")"
    r=$(python3 "$FAILOVER" run --client-ns "$NS_CLIENT" --url "http://$VIP$SLOW_PATH" \
        --new-url "http://$VIP/" --size "$SLOW_BYTES" --n "$DOWNLOADS" --event "$event" \
        --mac "$MAC_D2" --vip "$VIP" --after 4 --limit 60) || fail "failover.py failed"
    rm -f "$(dir_pidfile 1)" "$(bird_pidfile d1)"
    wait "$probe" || true
    kill "$watch" 2>/dev/null || true
    wait "$watch" 2>/dev/null || true
    conns_in() { python3 -c "
import json,sys
s = json.load(open(sys.argv[1]))['result']['services']
print(sum(v['counters']['conns'] for v in s))" "$1"; }
    s1=$(($(conns_in "$LAB_DIR/d1.stats") - c1))
    s2=$(($(conns_in "$LAB_DIR/d2.stats") - c2))
    after=$(($(service_counter 2 conns) - c2 - s2))
    kill_ms=$(cat "$LAB_DIR/kill.ms")
    drop_ms=$(awk -v k="$kill_ms" '$1 >= k && $2 == 1 { print $1 - k; exit }' "$LAB_DIR/paths.log")
    all_ok=$(awk -v k="$kill_ms" '$2 == "fail" { f = $1 } END { print (f ? f - k + 100 : 0) }' "$LAB_DIR/newconn.log")
    first_ok=$(awk -v k="$kill_ms" '$2 == "ok" { print $1 - k; exit }' "$LAB_DIR/newconn.log")
    fails=$(grep -c fail "$LAB_DIR/newconn.log" || true)
    intact=$(jget "$r" intact)
    newc=$(jget "$r" new_conn_s)
    {
        echo "kill -9 of director 1 (rvs + BIRD) with $DOWNLOADS downloads running: $r"
        echo "  flows scheduled before the kill: director 1 $s1, director 2 $s2; after it director 2 scheduled $after more (director 1's flows on their ACKs, sloppy_tcp, and new connections)"
        echo "  router dropped the dead path after ${drop_ms:-never} ms (hold time $HOLD s, BFD $( ((BFD)) && echo on || echo off))"
        echo "  new connections: first ok after ${first_ok:-never} ms; every one ok from $all_ok ms after the kill ($fails of $(wc -l <"$LAB_DIR/newconn.log") probes failed)"
        echo "  downloads kept: $intact of $DOWNLOADS"
    } | tee -a "$MEASURE" >&2
    ((s1 > 0)) || fail "director 1 forwarded none of the downloads before the kill"
    ((s2 > 0)) || fail "director 2 forwarded none of the downloads before the kill"
    [[ -n $drop_ms ]] || fail "the router never dropped the dead path"
    within "$(python3 -c "print($drop_ms / 1000)")" "$DROP_LIMIT" || fail "the dead path stayed ${drop_ms} ms"
    ((intact * 100 >= DOWNLOADS * 99)) || fail "$intact of $DOWNLOADS downloads intact"
    # New connections within 3 s, by the probe that runs beside the downloads from before the
    # kill (failover.py's own probe starts only after the event command, two stats calls
    # included, and waits out a 1 s timeout per try; under CI load it overstates: reported).
    within "$(python3 -c "print(${first_ok:-99999} / 1000)")" 3 ||
        fail "no new connection within 3 s of the kill (first ok after ${first_ok:-never} ms; failover.py: ${newc:-never} s)"
    within "$(python3 -c "print($all_ok / 1000)")" "$DROP_LIMIT" || fail "new connections failed until $all_ok ms after the kill"
    ((after > 0)) || fail "director 2 took over none of the flows"
}

# With one director left: draining withdraws its route (the router has no route to the VIP at
# once: BIRD sends the withdraw, no hold time involved); undraining announces it again.
t_drain_withdraws() {
    pair
    kill_pid_now "$(bird_pidfile d1)"
    kill_pid_now "$(dir_pidfile 1)"
    wait_paths 1 $((HOLD + 3)) >/dev/null
    local r ms
    r=$(rpc_x 2 director.drain '{"on": true}')
    [[ $(jget "$r" draining) == True ]] || fail "director.drain answered $r"
    ms=$(wait_paths 0 5)
    [[ -z $(ip -n "$NS_D2" -4 route show table "$TABLE" proto 201) ]] || fail "director 2 still holds its route"
    echo "drain on (one director left): router without a route to the VIP after $ms ms" | tee -a "$MEASURE" >&2
    within "$(python3 -c "print($ms / 1000)")" 1.5 || fail "the withdraw took $ms ms"
    rpc_x 2 director.drain '{"on": false}' >/dev/null
    ms=$(wait_paths 1 5)
    echo "drain off: the route is back after $ms ms" | tee -a "$MEASURE" >&2
}

# No real server can take new connections (both weight 0): the VIP is withdrawn; a weight back
# announces it again.
t_no_server_withdraws() {
    pair
    local x ms
    for x in 1 2; do
        "$RVSADM_BIN" --socket "$(dir_sock "$x")" -e -t "$VIP:$VIP_PORT" -r "$RS1_IP:80" -g -w 0
        "$RVSADM_BIN" --socket "$(dir_sock "$x")" -e -t "$VIP:$VIP_PORT" -r "$RS2_IP:80" -g -w 0
    done
    ms=$(wait_paths 0 5)
    echo "every real server at weight 0 on both directors: no route after $ms ms" | tee -a "$MEASURE" >&2
    "$RVSADM_BIN" --socket "$(dir_sock 2)" -e -t "$VIP:$VIP_PORT" -r "$RS2_IP:80" -g -w 1
    wait_paths 1 5 >/dev/null
    "$RVSADM_BIN" --socket "$(dir_sock 1)" -e -t "$VIP:$VIP_PORT" -r "$RS1_IP:80" -g -w 1
    wait_paths 2 5 >/dev/null
}

# A director stopped by SIGTERM withdraws its route before it exits: the router drops the path
# without waiting for the hold time.
t_stop_withdraws() {
    pair
    local pid ms i
    pid=$(dir_pid 1)
    kill -TERM "$pid"
    ms=$(wait_paths 1 $((HOLD + 3)))
    echo "SIGTERM of director 1: router down to one path after $ms ms (hold time $HOLD s)" | tee -a "$MEASURE" >&2
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    rm -f "$(dir_pidfile 1)"
    grep -q "VIP withdrawn" "$LAB_DIR/rvs-d1.log" || fail "director 1 did not log its withdraw"
    within "$(python3 -c "print($ms / 1000)")" 1.5 || fail "the path went after $ms ms (the hold time, not a withdraw)"
}

main() {
    lab_select_tests "$@"
    lab_require_bins
    local tool
    for tool in bird birdc curl ethtool python3; do
        command -v "$tool" >/dev/null || {
            echo "FAIL setup: $tool not found (run: scripts/deps.sh)"
            exit 1
        }
    done
    trap teardown EXIT
    lab_setup setup
    local rc=0
    lab_run_selected || rc=$?
    cat "$MEASURE" >&2
    return "$rc"
}

main "$@"
