"""SYN flood: 64-byte SYNs to the rvs VIP, every packet a new (client, port) tuple.

    start -f perf/trex/syn_flood.py -m 5mpps --port 0 -t --flows 16000000 --dst-mac <rvs MAC>

The tuple generator walks --flows distinct (address, port) pairs before repeating, so with
--flows well above rvs's flows_per_worker x workers each SYN is a miss that must create (or be
refused) a flow. Watch rvs's drops (flow_table_full) and flows while it runs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rvs_profile  # noqa: E402

from trex_stl_lib.api import STLPktBuilder, STLStream, STLTXCont  # noqa: E402


class RvsSynFlood:
    def get_streams(self, direction=0, tunables=None, **kwargs):
        o = rvs_profile.parse_options(
            "syn_flood", tunables, kwargs,
            extra=[(("--pps",), {"type": float, "default": 1e6})],
            defaults={"flows": 16 * 1024 * 1024})
        pkt = rvs_profile.tcp_frame(o, 64, "S")
        return [STLStream(name="syn",
                          packet=STLPktBuilder(pkt=pkt, vm=rvs_profile.flow_vm(o, o.flows)),
                          mode=STLTXCont(pps=o.pps), **rvs_profile.mac_kwargs(o))]


def register():
    return RvsSynFlood()
