# shellcheck shell=bash disable=SC2034
# Shared definitions for the rvs lab scripts. Source it; do not run it.
#
# Everything the lab creates lives in network namespaces named rvs-* and under one state
# directory ($RVS_LAB_DIR, default /tmp/rvs-lab). Processes are stopped by the PID files the
# scripts wrote, and only when they still live in a namespace this lab created.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=$(basename "$0")
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

LAB_DIR=${RVS_LAB_DIR:-/tmp/rvs-lab}
case $LAB_DIR in
/?*/?*) ;;
*)
    echo "RVS_LAB_DIR must be an absolute path at least two levels deep (got '$LAB_DIR')" >&2
    exit 2
    ;;
esac
LAB_NETNS_FILE="$LAB_DIR/netns.created"
LAB_PID_DIR="$LAB_DIR/pids"

# Namespace names: $RVS_LAB_NS_PREFIX-* (default rvs-*), so that two labs can live side by side.
LAB_NS_PREFIX=${RVS_LAB_NS_PREFIX:-rvs}
[[ $LAB_NS_PREFIX =~ ^[a-z][a-z0-9]{0,5}$ ]] || {
    echo "RVS_LAB_NS_PREFIX must be 1-6 lowercase letters/digits (got '$LAB_NS_PREFIX')" >&2
    exit 2
}
# Addresses: all inside 198.18.0.0/15 (RFC 2544 benchmarking range).
NS_SW=$LAB_NS_PREFIX-sw
NS_CLIENT=$LAB_NS_PREFIX-client
NS_DIR=$LAB_NS_PREFIX-dir
NS_RS1=$LAB_NS_PREFIX-rs1
NS_RS2=$LAB_NS_PREFIX-rs2
LAB_NAMESPACES=("$NS_SW" "$NS_CLIENT" "$NS_DIR" "$NS_RS1" "$NS_RS2")
LAB_NET=198.18.0.0/24
VIP=198.18.0.100
DIP=198.18.0.2
CLIENT_IP=198.18.0.10
RS1_IP=198.18.0.11
RS2_IP=198.18.0.12
VIP_PORT=80
# The slow endpoint: $SLOW_BYTES served at $SLOW_RATE bytes/s (~12 s per download).
SLOW_PATH=/big.bin
SLOW_BYTES=1572864
SLOW_RATE=131072

LAB_CONFIG=${RVS_LAB_CONFIG:-$REPO_ROOT/configs/lab.toml}
RVS_SOCK=${RVS_LAB_SOCKET:-$LAB_DIR/control.sock}

# Binaries: cargo puts them under $CARGO_TARGET_DIR (relative to the repo when not absolute).
_target=${CARGO_TARGET_DIR:-target}
[[ $_target == /* ]] || _target="$REPO_ROOT/$_target"
BIN_DIR=${RVS_BIN_DIR:-$_target/release}
RVS_BIN="$BIN_DIR/rvs"
RVSADM_BIN="$BIN_DIR/rvsadm"
unset _target

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "needs root: run $0 as root (or with sudo)"
}

# Make `cargo` callable. Under sudo, root's PATH often lacks the invoking user's rustup
# toolchain; use it (read-only, through RUSTUP_HOME) rather than failing.
find_cargo() {
    command -v cargo >/dev/null 2>&1 && return 0
    if [[ -x /root/.cargo/bin/cargo ]]; then
        export PATH="/root/.cargo/bin:$PATH"
        return 0
    fi
    if [[ -n ${SUDO_USER:-} ]]; then
        local home
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        if [[ -n $home && -x $home/.cargo/bin/cargo ]]; then
            export PATH="$home/.cargo/bin:$PATH"
            [[ -d $home/.rustup ]] && export RUSTUP_HOME="$home/.rustup"
            return 0
        fi
    fi
    cat >&2 <<'EOF'
[rvs] error: cargo (Rust >= 1.75) was not found for root.
      Install Rust with rustup (https://rustup.rs), e.g.
          curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
      then re-run (as root, or with sudo from the user who installed it).
      Debian's own `cargo` package is usually too old for this workspace.
EOF
    return 1
}

# True when PID is a live (non-zombie) process.
pid_alive() {
    local pid=$1 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# True when NAME is a namespace this lab created (recorded in $LAB_NETNS_FILE).
ns_is_ours() {
    local name=$1
    [[ -n $name && $name == "$LAB_NS_PREFIX"-* && -f $LAB_NETNS_FILE ]] && grep -qxF -- "$name" "$LAB_NETNS_FILE"
}

ns_exists() {
    [[ -e /run/netns/$1 ]]
}

# Stop one process by PID: TERM, wait up to 5 s, then KILL. Only if it lives in a namespace
# this lab created (so a recycled PID is never hit).
kill_lab_pid() {
    local pid=$1 what=${2:-process} ns i
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    pid_alive "$pid" || return 0
    ns=$(ip netns identify "$pid" 2>/dev/null || true)
    if ! ns_is_ours "$ns"; then
        log "warning: $what (pid $pid) is not in a lab namespace; leaving it alone"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    log "warning: $what (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    log "warning: $what (pid $pid) still alive"
}

kill_pidfile() {
    local file=$1 pid
    [[ -f $file ]] || return 0
    pid=$(head -n1 "$file" 2>/dev/null || true)
    kill_lab_pid "$pid" "$(basename "$file" .pid)"
    rm -f "$file"
}

rvsadm() {
    "$RVSADM_BIN" --socket "$RVS_SOCK" "$@"
}

# Run a command in the client namespace.
in_client() {
    ip netns exec "$NS_CLIENT" "$@"
}

# One bounded HTTP GET of the VIP from the client; prints the body (e.g. "rs1").
vip_get() {
    in_client curl -s --max-time "${2:-3}" "http://$VIP:$VIP_PORT${1:-/}"
}

# Start rvs inside the director namespace in the background, log to $LAB_DIR/rvs.log,
# and wait until its control socket answers. Needs the lab up.
start_rvs() {
    local pid i
    local bin
    for bin in "$RVS_BIN" "$RVSADM_BIN"; do
        if [[ ! -x $bin ]]; then
            log "$bin not found (run: cargo build --release)"
            return 1
        fi
    done
    if ! ns_is_ours "$NS_DIR"; then
        log "lab is not up (run: scripts/lab.sh up)"
        return 1
    fi
    mkdir -p "$(dirname "$RVS_SOCK")" "$LAB_PID_DIR"
    rm -f "$RVS_SOCK"
    log "starting rvs in $NS_DIR (log: $LAB_DIR/rvs.log)"
    # From the repository root: the config names its rules file relative to the working directory.
    (cd "$REPO_ROOT" && exec ip netns exec "$NS_DIR" "$RVS_BIN" run -c "$LAB_CONFIG" --socket "$RVS_SOCK") \
        </dev/null >"$LAB_DIR/rvs.log" 2>&1 &
    pid=$!
    echo "$pid" >"$LAB_PID_DIR/rvs.pid"
    for ((i = 0; i < 300; i++)); do
        if ! pid_alive "$pid"; then
            log "rvs exited during start-up; last lines of its log:"
            tail -n 30 "$LAB_DIR/rvs.log" >&2 || true
            return 1
        fi
        if [[ -S $RVS_SOCK ]] && rvsadm -L -n >/dev/null 2>&1; then
            log "rvs is up (pid $pid, socket $RVS_SOCK)"
            return 0
        fi
        sleep 0.1
    done
    log "rvs control socket $RVS_SOCK did not answer within 30 s; last lines of its log:"
    tail -n 30 "$LAB_DIR/rvs.log" >&2 || true
    return 1
}

stop_rvs() {
    kill_pidfile "$LAB_PID_DIR/rvs.pid"
    rm -f "$RVS_SOCK"
}

# MAC address of veth0 in namespace $1.
ns_mac() {
    ip -n "$1" -br link show dev veth0 | awk '{print $3}'
}

# --- lab test harness shared by tests/lab/*.sh ---------------------------------------------------
# Each suite defines ALL_TESTS and its t_* functions, then uses these. Counters: PASSED, FAILED.
PASSED=0
FAILED=0

rvs_pid() { head -n1 "$LAB_PID_DIR/rvs.pid" 2>/dev/null || true; }

# lab_select_tests [TEST...]: SELECTED := the named tests (all of ALL_TESTS by default); exits 2
# on a name that is not a test.
lab_select_tests() {
    SELECTED=("$@")
    ((${#SELECTED[@]})) || SELECTED=("${ALL_TESTS[@]}")
    local t
    for t in "${SELECTED[@]}"; do
        declare -F "$t" >/dev/null || {
            echo "unknown test '$t'; known: ${ALL_TESTS[*]}" >&2
            exit 2
        }
    done
}

# lab_require_bins: the release binaries exist, or the suite fails at once.
lab_require_bins() {
    local bin
    for bin in "$RVS_BIN" "$RVSADM_BIN"; do
        [[ -x $bin ]] || {
            echo "FAIL setup: $bin not found (run: cargo build --release)"
            echo "0 passed, 1 failed"
            exit 1
        }
    done
}

# lab_run_case NAME [EXIT_TRAP]: run test NAME in a subshell with errexit; its status.
# Call it as `set +e; lab_run_case ...; rc=$?; set -e`, never in an `||`/`&&` list or `if`:
# bash ignores errexit inside those, and a failing step would no longer end the test.
lab_run_case() {
    (
        set -e
        # shellcheck disable=SC2064 # the trap names a function, expanded now on purpose
        if [[ -n ${2:-} ]]; then trap "$2" EXIT; fi
        "$1"
    )
}

# lab_setup FN: run the suite's set-up FN in a subshell with errexit (so a failing step ends
# it; its variables do not survive), and on failure print the suite's failure lines and exit.
lab_setup() {
    local rc=0
    set +e
    (
        set -e
        "$1"
    )
    rc=$?
    set -e
    if ((rc != 0)); then
        echo "FAIL setup"
        echo "0 passed, 1 failed"
        exit 1
    fi
}

# lab_run_selected: run every test in SELECTED (see lab_run_case), record each, print the
# totals; true when none failed.
lab_run_selected() {
    local t rc
    for t in "${SELECTED[@]}"; do
        set +e
        lab_run_case "$t"
        rc=$?
        set -e
        lab_record "$t" "$rc"
    done
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0))
}

# lab_rvs_died: true (after showing the end of its log) when the daemon is no longer running.
lab_rvs_died() {
    pid_alive "$(rvs_pid)" && return 1
    echo "    rvs is not running; last lines of its log:" >&2
    tail -n 20 "$LAB_DIR/rvs.log" >&2 || true
    return 0
}

# lab_record NAME STATUS [NOTE]: one `ok`/`FAIL` line, counted.
lab_record() {
    if (($2 == 0)); then
        echo "ok   $1"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL $1${3:-}"
        FAILED=$((FAILED + 1))
    fi
}

# --- helpers used inside lab tests (`fail` ends the current test) ---------------------------

fail() {
    echo "    $*" >&2
    exit 1
}

# Run one rvsadm command; on a non-zero exit, show it with its output and fail.
adm() {
    local out rc=0
    out=$(rvsadm "$@" 2>&1) || rc=$?
    ((rc == 0)) || fail "rvsadm $* -> exit $rc: $out"
    [[ -z $out ]] || printf '%s\n' "$out"
}

# Fresh service: reset_service SCHED W1 W2 [extra -A options...]
reset_service() {
    local sched=$1 w1=$2 w2=$3
    shift 3
    adm -C
    adm -A -t "$VIP:$VIP_PORT" -s "$sched" "$@"
    adm -a -t "$VIP:$VIP_PORT" -r "$RS1_IP" -g -w "$w1"
    adm -a -t "$VIP:$VIP_PORT" -r "$RS2_IP" -g -w "$w2"
}

# N requests to the VIP; prints one answer per line ("none" when nothing came back).
requests() {
    local n=$1 i body
    for ((i = 0; i < n; i++)); do
        body=$(vip_get / 3 || true)
        echo "${body:-none}"
    done
}

count_of() { # count_of WORD < lines
    grep -cx -- "$1" || true
}
