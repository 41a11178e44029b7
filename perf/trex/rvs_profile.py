"""Shared pieces of the rvs TRex STL profiles (nflow_64b, syn_flood, imix, latency).

Not a profile itself (no register()). The profiles import it from their own directory, which
TRex puts on sys.path while loading a profile: copy the whole perf/trex directory to the TRex box.

Packets are Ethernet / IPv4 (20-byte header) / TCP (20-byte header) from clients in CLIENTS to
VIP:VPORT. The field engine writes at numeric byte offsets (no scapy field names in the VM):
IPv4 source at 26, TCP source port at 34, IPv4 checksum fixed over the header at 14.

Tunables work both ways TRex passes them: new style `start -f nflow_64b.py -t --flows 1000000`
(a list handed to get_streams as `tunables`) and old style `-t flows=1000000` (keywords, as
trex-stl-lib 0.3 and STLProfile.load_py(path, flows=...) do).
"""

import argparse

from trex_stl_lib.api import (
    IP,
    TCP,
    Ether,
    Padding,
    Raw,
    STLPktBuilder,
    STLScVmRaw,
    STLStream,
    STLTXCont,
    STLTXSingleBurst,
    STLVmFixIpv4,
    STLVmTupleGen,
    STLVmWrFlowVar,
)
from trex_stl_lib.trex_stl_streams import STLStreamDstMAC_CFG_FILE, STLStreamDstMAC_PKT

# Byte offsets in an untagged Ethernet / IPv4 (IHL 5) / TCP frame.
ETH_LEN = 14
IPV4_OFFSET = 14  # start of the IPv4 header (what STLVmFixIpv4 wants)
IPV4_SRC_OFFSET = 26  # IPv4 source address (4 bytes)
IPV4_DST_OFFSET = 30
TCP_OFFSET = 34
TCP_SPORT_OFFSET = 34  # TCP source port (2 bytes)
TCP_DPORT_OFFSET = 36
HEADERS_LEN = 54  # Ethernet + IPv4 + TCP
FCS = 4  # TRex sizes are wire sizes; the NIC appends the FCS

# Placeholder dst MAC in the built packets when --dst-mac is not given: TRex then puts its port's
# configured dest_mac (trex_cfg.yaml port_info / `l2 --dst`) there. With --dst-mac, the packet's
# own dst MAC is sent (the rvs port MAC; rvs logs it as "port started ... mac=").
DEFAULT_DST_MAC = "02:70:63:61:70:00"
DEFAULT_SRC_MAC = "02:00:00:00:00:fe"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # A bad tunable must fail the profile load with a message, not exit the TRex console.
        raise ValueError("%s: %s" % (self.prog, message))


def parse_options(description, tunables, kwargs, extra=None, defaults=None):
    """Options from the new-style TRex tunables list (`-t --flows 100000`) and/or old-style
    keyword tunables (`-t flows=100000`, trex-stl-lib 0.3); keywords win over the list."""
    p = _Parser(prog=description, description=description)
    p.add_argument("--flows", type=int, default=65536, help="distinct client (ip, port) tuples")
    p.add_argument("--vip", default="198.18.0.100")
    p.add_argument("--vport", type=int, default=80)
    p.add_argument("--client-min", default="198.18.128.1", help="first client address")
    p.add_argument("--client-max", default="198.18.255.254", help="last client address")
    p.add_argument("--sport-min", type=int, default=1024)
    p.add_argument("--dst-mac", default=None,
                   help="rvs port MAC (default: TRex's configured dest_mac for the port)")
    p.add_argument("--src-mac", default=DEFAULT_SRC_MAC)
    p.add_argument("--prime", type=int, default=1,
                   help="1: send one SYN per flow (single burst) before the continuous stream")
    for args, kw in extra or []:
        p.add_argument(*args, **kw)
    if defaults:
        p.set_defaults(**defaults)
    # TRex's ndr tool passes --prof-tun a_b=1 through load_py, which newer TRex turns into
    # "--a_b 1": accept the underscore spelling of every option too.
    for action in list(p._actions):
        for opt in list(action.option_strings):
            if opt.startswith("--") and "-" in opt[2:]:
                alias = "--" + opt[2:].replace("-", "_")
                p._option_string_actions.setdefault(alias, action)
    argv = list(tunables or [])
    for k, v in kwargs.items():
        if k in ("direction", "port_id"):
            continue
        argv += ["--" + k.replace("_", "-"), str(v)]
    o = p.parse_args(argv)
    if o.flows < 1:
        p.error("--flows must be >= 1")
    return o


def ip_to_int(s):
    a, b, c, d = (int(x) for x in s.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def int_to_ip(n):
    return "%d.%d.%d.%d" % ((n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255)


def mac_kwargs(o):
    """STLStream MAC handling: TRex's port MAC as source; destination from the packet when
    --dst-mac was given, else from TRex's port configuration."""
    return {"mac_src_override_by_pkt": False,
            "mac_dst_override_mode": (STLStreamDstMAC_PKT if o.dst_mac
                                      else STLStreamDstMAC_CFG_FILE)}


def tcp_frame(o, wire_size, flags, src=None, sport=None):
    """A scapy frame of wire_size bytes on the wire (FCS not included in the returned packet).
    Up to 64 bytes the segment carries no payload (Ethernet padding makes up the 60 bytes);
    larger frames carry payload, so the IPv4 total length is wire_size - 18."""
    if wire_size < HEADERS_LEN + FCS + 6:
        raise ValueError("frame size %d below the 64-byte minimum" % wire_size)
    base = (Ether(dst=o.dst_mac or DEFAULT_DST_MAC, src=o.src_mac, type=0x0800)
            / IP(src=src or o.client_min, dst=o.vip, ttl=64, id=1, flags="DF")
            / TCP(sport=sport or o.sport_min, dport=o.vport, flags=flags, seq=1, ack=1 if "A" in
                  flags else 0, window=65535 if "S" in flags else 502))
    room = wire_size - FCS - HEADERS_LEN
    if wire_size <= 64:
        return base / Padding(b"\x00" * room)
    return base / Raw(bytes((0x61 + k % 26) for k in range(room)))


def tuple_ranges(o, flows, port_base=None):
    """(ip_min, ip_max, port_min, port_max) of a tuple generator giving exactly `flows` tuples
    (with limit_flows = flows): addresses vary fastest, the port moves when they wrap."""
    lo, hi = ip_to_int(o.client_min), ip_to_int(o.client_max)
    if hi < lo:
        raise ValueError("client range %s-%s is empty" % (o.client_min, o.client_max))
    n_ips = min(hi - lo + 1, flows)
    n_ports = -(-flows // n_ips)
    pmin = o.sport_min if port_base is None else port_base
    pmax = pmin + n_ports - 1
    if pmax > 65535:
        raise ValueError("%d flows need ports %d-%d: widen --client-min/--client-max"
                         % (flows, pmin, pmax))
    return int_to_ip(lo), int_to_ip(lo + n_ips - 1), pmin, pmax


def flow_vm(o, flows, port_base=None, name="tuple"):
    """Field engine: client address and source port from a tuple generator, IPv4 checksum fixed.
    The TCP checksum is left as built (rvs, like IPVS-DR, does not verify it; on a NIC with TCP
    checksum offload use STLVmFixChecksumHw instead if the receivers must see valid segments)."""
    ip_min, ip_max, pmin, pmax = tuple_ranges(o, flows, port_base)
    return STLScVmRaw([
        STLVmTupleGen(name=name, ip_min=ip_min, ip_max=ip_max, port_min=pmin, port_max=pmax,
                      limit_flows=flows),
        STLVmWrFlowVar(fv_name=name + ".ip", pkt_offset=IPV4_SRC_OFFSET),
        STLVmWrFlowVar(fv_name=name + ".port", pkt_offset=TCP_SPORT_OFFSET),
        STLVmFixIpv4(offset=IPV4_OFFSET),
    ])


def primed_streams(o, name, wire_size, flows, pps, flags="A", port_base=None):
    """A continuous stream over `flows` flows; with o.prime, preceded by a single burst of one
    SYN per flow (same tuple generator, same order) so a director that only schedules new TCP
    connections on a SYN has every flow before the data starts."""
    vm_args = (o, flows, port_base)
    cont = STLStream(name=name,
                     packet=STLPktBuilder(pkt=tcp_frame(o, wire_size, flags), vm=flow_vm(*vm_args)),
                     mode=STLTXCont(pps=pps),
                     self_start=not o.prime, **mac_kwargs(o))
    if not o.prime:
        return [cont]
    syn = STLStream(name=name + "_syn",
                    packet=STLPktBuilder(pkt=tcp_frame(o, 64, "S"), vm=flow_vm(*vm_args)),
                    mode=STLTXSingleBurst(total_pkts=flows, pps=pps),
                    next=name,
                    self_start=True, **mac_kwargs(o))
    return [syn, cont]
