"""IMIX to the rvs VIP: 64/594/1518-byte TCP frames at 7:4:1 packets.

    start -f perf/trex/imix.py -m 10gbps --port 0 -t --flows 300000 --dst-mac <rvs MAC>

Three continuous streams at 7:4:1 of --pps in packets, each over its own share of the flows
(disjoint source-port ranges), each primed with one SYN per flow (--prime 1).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rvs_profile  # noqa: E402

IMIX = [(64, 7), (594, 4), (1518, 1)]  # (wire size, packet share)


class RvsImix:
    def get_streams(self, direction=0, tunables=None, **kwargs):
        o = rvs_profile.parse_options(
            "imix", tunables, kwargs,
            extra=[(("--pps",), {"type": float, "default": 1.2e6, "help": "total pps"})])
        total = sum(w for _, w in IMIX)
        streams = []
        port_base = o.sport_min
        for size, share in IMIX:
            flows = max(o.flows * share // total, 1)
            streams += rvs_profile.primed_streams(o, "imix_%d" % size, size, flows,
                                                  o.pps * share / total, flags="PA",
                                                  port_base=port_base)
            _, _, _, pmax = rvs_profile.tuple_ranges(o, flows, port_base)
            port_base = pmax + 1
        return streams


def register():
    return RvsImix()
