#!/usr/bin/env bash
# Install rvs for production: binaries, rvsadm-save/rvsadm-restore, /etc/rvs, the systemd unit
# and the man pages. Existing files in /etc/rvs are never overwritten (the shipped version is
# installed beside them as FILE.new). Install the runtime and build packages first:
# `scripts/deps.sh --runtime --build`.
#
#   scripts/install.sh [--no-build] [--prefix DIR]    build if needed (cargo build --release), install
#   scripts/install.sh --uninstall [--purge]          remove what was installed; --purge also
#                                                     removes changed files in /etc/rvs
#
# Environment: PREFIX (default /usr/local; --prefix wins), DESTDIR (stage everything under this
# directory, e.g. for a package; needs no root), CARGO_TARGET_DIR / RVS_BIN_DIR (where the
# release binaries are). Installed: $PREFIX/sbin/{rvs,rvsadm,rvsadm-save,rvsadm-restore},
# $PREFIX/lib/systemd/system/rvs.service, $PREFIX/share/man/man{5,8}/, /etc/rvs/{rvs.toml,rules},
# and the list of them in $PREFIX/share/rvs/install-manifest (what --uninstall removes).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

build=1
uninstall=0
purge=0
prefix=${PREFIX:-/usr/local}
while (($#)); do
    case $1 in
    --no-build) build=0 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    --prefix)
        (($# >= 2)) || die "--prefix needs a directory"
        prefix=$2
        shift
        ;;
    --prefix=*) prefix=${1#--prefix=} ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (see scripts/install.sh --help)" ;;
    esac
    shift
done
((purge == 0 || uninstall == 1)) || die "--purge goes with --uninstall"
[[ $prefix == /* ]] || die "the prefix must be an absolute path (got '$prefix')"
prefix=${prefix%/}

destdir=${DESTDIR:-}
if [[ -n $destdir ]]; then
    [[ $destdir == /* ]] || destdir="$PWD/$destdir"
    destdir=${destdir%/}
else
    require_root
fi

SBINDIR=$prefix/sbin
UNITDIR=$prefix/lib/systemd/system
MANDIR=$prefix/share/man
DATADIR=$prefix/share/rvs
CONFDIR=/etc/rvs
MANIFEST=$DATADIR/install-manifest
SRC=$REPO_ROOT/packaging

# The installed path of FILE under DESTDIR.
dest() { printf '%s%s' "$destdir" "$1"; }

on_systemd() { [[ -z $destdir && -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- uninstall -----------------------------------------------------------------------------------
if ((uninstall)); then
    m=$(dest "$MANIFEST")
    [[ -f $m ]] || die "$m not found: nothing installed under prefix $prefix${destdir:+ (DESTDIR $destdir)}"
    if on_systemd && systemctl is-active --quiet rvs.service; then
        log "stopping rvs.service"
        systemctl stop rvs.service
    fi
    if on_systemd; then systemctl disable rvs.service >/dev/null 2>&1 || true; fi
    kept=()
    # Lines: KIND SHA256 PATH (KIND: file, or conf for files in /etc/rvs).
    while read -r kind sum path; do
        [[ -n $path ]] || continue
        f=$(dest "$path")
        [[ -e $f || -L $f ]] || continue
        if [[ $kind == conf ]] && ((purge == 0)) && [[ $(sha "$f") != "$sum" ]]; then
            kept+=("$f")
            continue
        fi
        rm -f -- "$f"
    done <"$m"
    rm -f -- "$m"
    rmdir -- "$(dest "$DATADIR")" "$(dest "$CONFDIR")" 2>/dev/null || true
    if on_systemd; then systemctl daemon-reload || true; fi
    for f in "${kept[@]}"; do
        log "kept $f (changed since it was installed; --purge removes it)"
    done
    log "uninstalled (the saved flows in /var/lib/rvs, if any, are left; remove them by hand)"
    exit 0
fi

# --- build ---------------------------------------------------------------------------------------
if ((build)); then
    find_cargo
    log "building the release binaries (cargo build --release)"
    (cd "$REPO_ROOT" && cargo build --release --bin rvs --bin rvsadm)
fi
for bin in "$RVS_BIN" "$RVSADM_BIN"; do
    [[ -x $bin ]] || die "$bin not found: run cargo build --release (or leave out --no-build)"
done

# --- install -------------------------------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
manifest_lines=()

# put MODE SRC PATH [conf]: install SRC as PATH (under DESTDIR) with MODE and record it. A conf
# file that exists and differs is left as it is; the new one goes to PATH.new.
put() {
    local mode=$1 src=$2 path=$3 kind=${4:-file} f
    f=$(dest "$path")
    if [[ $kind == conf && -e $f ]]; then
        if cmp -s "$src" "$f"; then
            manifest_lines+=("conf $(sha "$src") $path")
            return 0
        fi
        # Yours: kept by --uninstall (its checksum "-" never matches) unless --purge.
        manifest_lines+=("conf - $path")
        path=$path.new
        f=$f.new
        log "kept your $(dest "${path%.new}"); the shipped version is $f (compare and merge by hand)"
        kind="file"
    fi
    install -D -m "$mode" -- "$src" "$f"
    manifest_lines+=("$kind $(sha "$f") $path")
}

# subst SRC: a copy of SRC with @SBINDIR@ replaced; prints the copy's path.
subst() {
    local out
    out="$tmp/$(basename "$1")"
    sed "s#@SBINDIR@#$SBINDIR#g" "$1" >"$out"
    printf '%s' "$out"
}

put 0755 "$RVS_BIN" "$SBINDIR/rvs"
put 0755 "$RVSADM_BIN" "$SBINDIR/rvsadm"
put 0755 "$(subst "$SRC/rvsadm-save")" "$SBINDIR/rvsadm-save"
put 0755 "$(subst "$SRC/rvsadm-restore")" "$SBINDIR/rvsadm-restore"
put 0644 "$(subst "$SRC/rvs.service")" "$UNITDIR/rvs.service"
put 0644 "$REPO_ROOT/docs/man/rvs.8" "$MANDIR/man8/rvs.8"
put 0644 "$REPO_ROOT/docs/man/rvsadm.8" "$MANDIR/man8/rvsadm.8"
put 0644 "$REPO_ROOT/docs/man/rvs.toml.5" "$MANDIR/man5/rvs.toml.5"
install -d -m 0755 "$(dest "$CONFDIR")"
# The configuration may hold a VRRP password: readable by root only.
put 0640 "$REPO_ROOT/configs/rvs.toml" "$CONFDIR/rvs.toml" conf
put 0644 "$SRC/rules" "$CONFDIR/rules" conf

printf '%s\n' "${manifest_lines[@]}" >"$tmp/manifest"
install -D -m 0644 "$tmp/manifest" "$(dest "$MANIFEST")"

if on_systemd; then
    systemctl daemon-reload
fi
log "installed under ${destdir:-/}: $SBINDIR/{rvs,rvsadm,rvsadm-save,rvsadm-restore}, $UNITDIR/rvs.service, $CONFDIR, man pages"
if [[ -z $destdir ]]; then
    log "next: edit $CONFDIR/rvs.toml (PCI address, lcores, DIP), check it with"
    log "      $SBINDIR/rvs check-config -c $CONFDIR/rvs.toml, then: systemctl enable --now rvs"
fi
