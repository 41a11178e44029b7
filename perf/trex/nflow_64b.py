"""N flows of 64-byte TCP segments to the rvs VIP (the established-flow forwarding test).

    start -f perf/trex/nflow_64b.py -m 10mpps --port 0 -t --flows 1000000 --dst-mac <rvs MAC>

With --prime 1 (default) every flow first gets one SYN (single burst), then the continuous
stream sends ACKs round-robin over the same flows: after the first pass every packet is a
flow-table hit. Client address and source port come from a tuple generator (--flows tuples
over --client-min..--client-max x ports from --sport-min).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rvs_profile  # noqa: E402


class RvsNflow64:
    def get_streams(self, direction=0, tunables=None, **kwargs):
        o = rvs_profile.parse_options(
            "nflow_64b", tunables, kwargs,
            extra=[(("--size",), {"type": int, "default": 64, "help": "wire frame size"}),
                   (("--pps",), {"type": float, "default": 1e6})])
        return rvs_profile.primed_streams(o, "nflow", o.size, o.flows, o.pps, flags="A")


def register():
    return RvsNflow64()
