#!/usr/bin/env bash
# The man pages, checked: (a) every page in docs/man renders with groff's warnings as errors;
# (b) every key the daemon's configuration accepts is described in rvs.toml(5), and every
# section of it appears in the shipped configs/rvs.toml; (c) every option rvsadm parses is in
# rvsadm(8). So the references cannot drift from the code. The keys are read from the code: the fields of each deserialized `...Config` /
# `...Section` struct in src/ (and of the dataplane's `Timeouts`, which is `[timeouts]`); the
# fields of `Config` itself are the sections. Needs groff (package groff-base).
#
#   scripts/check-man.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

errors=0
fail() {
    echo "check-man: $*" >&2
    errors=$((errors + 1))
}

command -v groff >/dev/null 2>&1 || {
    echo "check-man: groff not found (apt-get install groff-base)" >&2
    exit 1
}

# (a) Render each page; any warning is an error.
pages=(docs/man/*.[1-8])
((${#pages[@]})) || fail "no man pages in docs/man"
for page in "${pages[@]}"; do
    out=$(groff -man -ww -z "$page" 2>&1) || fail "$page: groff failed"
    [[ -z $out ]] || fail "$page: groff warnings:"$'\n'"$out"
done

# (b) The configuration's keys. Prints "STRUCT FIELD" for the deserialized structs named
# *Config / *Section (and Timeouts), with serde's `rename = "..."` applied.
config_fields() {
    awk '
        FNR == 1 { attrs = ""; st = "" }
        st == "" && /^[[:space:]]*#\[/ { attrs = attrs $0; next }
        st == "" && /^pub struct [A-Za-z0-9_]+ *\{/ {
            name = $3; sub(/\{.*/, "", name)
            if (attrs ~ /Deserialize/ && (name ~ /(Config|Section)$/ || name == "Timeouts")) {
                st = name; rename = ""
            }
            attrs = ""; next
        }
        st == "" { attrs = ""; next }
        /^\}/ { st = ""; next }
        /^[[:space:]]*#\[serde\(.*rename *= *"/ {
            r = $0; sub(/.*rename *= *"/, "", r); sub(/".*/, "", r); rename = r; next
        }
        /^[[:space:]]*pub [a-z0-9_]+ *:/ {
            f = $0; sub(/^[[:space:]]*pub /, "", f); sub(/ *:.*/, "", f)
            if (rename != "") f = rename
            print st, f; rename = ""; next
        }
    ' "$@"
}

man5=docs/man/rvs.toml.5
shipped=configs/rvs.toml
[[ -f $man5 ]] || {
    fail "$man5 missing"
    exit 1
}
# Section headings of the page: `.SH "[name]"`, `.SH "[[name.sub]]"` -> name (and name.sub).
sections=$(sed -n 's/^\.SH "\[\{1,2\}\([a-z0-9_.]*\)\]\{1,2\}"$/\1/p' "$man5")
# The keys the page defines: the words of the line after each `.TP`.
keys=$(awk 'prev == ".TP" { print } { prev = $0 }' "$man5" | tr -c 'a-z0-9_\n' ' ' | tr ' ' '\n' | sort -u)

mapfile -t srcs < <(find src -name '*.rs' | sort)
srcs+=(crates/dataplane/src/model.rs)
fields=$(config_fields "${srcs[@]}")
[[ -n $fields ]] || fail "no configuration structs found in src/ (has the code moved?)"
grep -q '^Config network$' <<<"$fields" || fail "struct Config (with its network field) not found in src/config.rs"

checked=0
while read -r st f; do
    [[ -n $f ]] || continue
    checked=$((checked + 1))
    if [[ $st == Config ]]; then
        grep -qE "^$f(\.|$)" <<<"$sections" ||
            fail "section [$f] (src: Config.$f) has no .SH heading in $man5"
        grep -qE "^#? *\[{1,2}${f}[].]" "$shipped" ||
            fail "section [$f] (src: Config.$f) is not in $shipped (not even commented)"
    else
        grep -qx -- "$f" <<<"$keys" ||
            fail "key '$f' (src: $st.$f) is not described in $man5 (a .TP entry)"
    fi
done <<<"$fields"

# (c) Every option rvsadm's parser knows (crates/control/src/grammar.rs: long_spec, short_spec)
# is in rvsadm(8), supported or not.
man8=docs/man/rvsadm.8
grammar=crates/control/src/grammar.rs
# The accepted long options: the LONG table's entries, less those it names as unsupported.
longs=$(awk '/^const LONG: /,/^];/' "$grammar" | grep -v 'Spec::Unsupported' |
    grep -o '^ *("[a-z0-9-]*"' | grep -o '[a-z0-9-]*' | sort -u)
shorts=$(awk '/^fn short_spec/,/^}/' "$grammar" | grep -o "'[A-Za-z0-9]'" | tr -d "'" | sort -u)
[[ -n $longs && -n $shorts ]] || fail "no options found in $grammar (has the parser moved?)"
for o in $longs; do
    checked=$((checked + 1))
    grep -qE -- "\\\\-\\\\-$o([^a-z-]|$)" "$man8" || fail "rvsadm option --$o is not in $man8"
done
for o in $shorts; do
    checked=$((checked + 1))
    grep -qE -- "\\\\-$o([^A-Za-z0-9-]|$)" "$man8" || fail "rvsadm option -$o is not in $man8"
done

if ((errors)); then
    echo "check-man: $errors problem(s)" >&2
    exit 1
fi
echo "check-man: ${#pages[@]} pages render cleanly; $checked configuration keys, sections and rvsadm options documented"
