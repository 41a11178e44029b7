"""pytest setup for perf/ tests (perf/trex/run_tests.sh runs them in perf/out/venv)."""

import importlib
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "trex"))

# trex-stl-lib 0.3 does `import imp` (trex_stl_streams.py), a module removed in Python 3.12.
# It only uses imp.reload, so give it one backed by importlib. Harmless on 3.11, where imp exists.
try:
    import imp  # noqa: F401
except ImportError:
    shim = types.ModuleType("imp")
    shim.reload = importlib.reload
    sys.modules["imp"] = shim
