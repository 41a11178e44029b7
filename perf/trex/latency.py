"""Latency through rvs: a flow-stats latency stream beside N-flow 64-byte background traffic.

    start -f perf/trex/latency.py -m 5mpps --port 0 -t --flows 100000 --dst-mac <rvs MAC>
    (then `tui` / stats --ps, or STLClient.get_latency_stats(), pg_id --pg-id)

TRex stamps the last 16 bytes of each latency packet and matches it when rvs's forwarded copy
comes back to a TRex port (rvs only rewrites MACs in DR mode), so the latency frame carries
payload (--latency-size, default 128). Its flow (one tuple, outside the background's client
range) is opened by a single SYN sent first; the latency stream starts --latency-isg-us later.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rvs_profile  # noqa: E402

from trex_stl_lib.api import (  # noqa: E402
    STLFlowLatencyStats,
    STLPktBuilder,
    STLStream,
    STLTXCont,
    STLTXSingleBurst,
)


class RvsLatency:
    def get_streams(self, direction=0, tunables=None, **kwargs):
        o = rvs_profile.parse_options(
            "latency", tunables, kwargs,
            extra=[(("--pps",), {"type": float, "default": 1e6, "help": "background pps"}),
                   (("--latency-pps",), {"type": float, "default": 1000}),
                   (("--latency-size",), {"type": int, "default": 128}),
                   (("--latency-isg-us",), {"type": float, "default": 100000}),
                   (("--latency-client",), {"default": "198.18.127.1"}),
                   (("--pg-id",), {"type": int, "default": 7})])
        if o.latency_size < 64 + 16:
            raise ValueError("--latency-size must leave 16 bytes of payload for TRex's stamp")
        streams = rvs_profile.primed_streams(o, "background", 64, o.flows, o.pps, flags="A")
        streams.append(STLStream(
            name="latency_syn",
            packet=STLPktBuilder(pkt=rvs_profile.tcp_frame(o, 64, "S", src=o.latency_client)),
            mode=STLTXSingleBurst(total_pkts=1, pps=1000), **rvs_profile.mac_kwargs(o)))
        streams.append(STLStream(
            name="latency",
            packet=STLPktBuilder(pkt=rvs_profile.tcp_frame(o, o.latency_size, "PA",
                                                           src=o.latency_client)),
            mode=STLTXCont(pps=o.latency_pps),
            isg=o.latency_isg_us,
            flow_stats=STLFlowLatencyStats(pg_id=o.pg_id), **rvs_profile.mac_kwargs(o)))
        return streams


def register():
    return RvsLatency()
