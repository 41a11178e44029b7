#!/usr/bin/env bash
# Run every fuzz target under fuzz/fuzz_targets/ for SECONDS each (default 30), seeded from
# fuzz/corpus/<target>/; fail if any target crashes, hangs or breaks an invariant.
#
#   scripts/fuzz.sh [SECONDS]
#
# Needs a nightly toolchain (RVS_FUZZ_TOOLCHAIN, default "nightly") and cargo-fuzz (installed
# with `cargo install cargo-fuzz --locked` when missing). What the fuzzer learns goes to a
# temporary corpus, so the checked-in seeds stay as they are; a crashing input is kept under
# fuzz/artifacts/<target>/ (replay it with `cargo +nightly fuzz run -s none <target> <file>`).
# No sanitizer: the code under test is safe Rust (libFuzzer still finds panics, overflows
# where checked, hangs and broken invariants), and a sanitizer slows the pipeline target ~100x. The fuzz
# build goes to $CARGO_TARGET_DIR/fuzz when CARGO_TARGET_DIR is set, else fuzz/target.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

EACH=${1:-30}
[[ $EACH =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [SECONDS]   (seconds per target, default 30)" >&2
    exit 2
}
TOOLCHAIN=${RVS_FUZZ_TOOLCHAIN:-nightly}

find_cargo
cd "$REPO_ROOT"
cargo "+$TOOLCHAIN" --version >/dev/null 2>&1 ||
    die "cargo fuzz needs the $TOOLCHAIN toolchain: rustup toolchain install $TOOLCHAIN"
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
    target_dir=$CARGO_TARGET_DIR/fuzz
    [[ $target_dir == /* ]] || target_dir=$REPO_ROOT/$target_dir
else
    target_dir=$REPO_ROOT/fuzz/target
fi
work=$(mktemp -d /tmp/rvs-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

log "building the fuzz targets"
cargo "+$TOOLCHAIN" fuzz build -s none --target-dir "$target_dir"

failed=()
for src in fuzz/fuzz_targets/*.rs; do
    t=$(basename "$src" .rs)
    corpus=("$work/$t")
    [[ -d fuzz/corpus/$t ]] && corpus+=("fuzz/corpus/$t")
    mkdir -p "$work/$t" "fuzz/artifacts/$t"
    out=$work/$t.log
    rc=0
    cargo "+$TOOLCHAIN" fuzz run -s none --target-dir "$target_dir" "$t" "${corpus[@]}" -- \
        -max_total_time="$EACH" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$out" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
    if ((rc == 0)); then
        log "$t: ok, ${runs:-?} executions in ${EACH} s, 0 crashes"
    else
        log "$t: FAILED (exit $rc) after ${runs:-?} executions; the log's end:"
        tail -n 40 "$out" >&2
        failed+=("$t")
    fi
done
if ((${#failed[@]} > 0)); then
    die "fuzz targets failed: ${failed[*]} (inputs under fuzz/artifacts/)"
fi
log "all fuzz targets ran ${EACH} s each without a crash"
