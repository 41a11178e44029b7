#!/usr/bin/env bash
# The house's walls, checked: the crate graph, what each crate may depend on, and where `unsafe`
# may live. Needs only cargo (no DPDK); exits non-zero on the first broken wall.
#
#   scripts/check-house.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() {
    echo "check-house: $*" >&2
    exit 1
}

# What a crate pulls in at build and run time (its normal dependencies, dev ones left out).
deps() { cargo tree --offline -p "$1" -e normal --prefix none "${@:2}" 2>/dev/null | awk '{print $1}' | sort -u; }

for c in rvs-dataplane rvs-control rvsadm; do
    deps "$c" | grep -qx dpdk-sys && fail "$c depends on dpdk-sys"
done
# The dataplane: no serde unless asked for (the control crate asks), no sockets' crates.
for bad in serde serde_json toml tracing; do
    deps rvs-dataplane --no-default-features | grep -qx "$bad" && fail "rvs-dataplane depends on $bad"
done
# The line: dataplane <- control <- rvsadm; the daemon on top. Nothing below looks up.
deps rvs-dataplane | grep -qxE 'rvs-control|rvsadm|rvs' && fail "rvs-dataplane depends on a crate above it"
deps rvs-control | grep -qxE 'rvsadm|rvs' && fail "rvs-control depends on a crate above it"

# `unsafe` (code, not comments) only in dpdk/, the daemon's wrapper, and the dataplane's mem.rs.
found=$(grep -rnP --include='*.rs' '^(?!\s*//).*\bunsafe\b' src crates dpdk/src |
    grep -vE '^(src/dpdk(/|\.rs)|dpdk/src/|crates/dataplane/src/mem\.rs)' |
    grep -vE 'forbid\(unsafe_code\)|deny\(unsafe_code\)' || true)
[[ -z $found ]] || fail "unsafe outside the wrapper: $found"
echo "check-house: crate graph and unsafe placement ok"
