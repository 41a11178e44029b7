#!/bin/sh
# Offline tests of perf/: the TRex profiles (loaded with trex-stl-lib, no TRex server needed)
# and the pcap generator. Builds perf/out/venv from perf/requirements.txt on first use.
#   perf/trex/run_tests.sh [pytest args]
set -eu
perf=$(cd "$(dirname "$0")/.." && pwd)
venv="$perf/out/venv"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! cmp -s "$perf/requirements.txt" "$stamp" 2>/dev/null; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$perf/requirements.txt"
    cp "$perf/requirements.txt" "$stamp"
fi
cd "$perf"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    -W "ignore:the imp module is deprecated:DeprecationWarning" \
    trex/test_profiles.py test_gen_pcap.py test_bench.py "$@"
