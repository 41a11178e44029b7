#!/usr/bin/env python3
"""Write classic pcap files of TCP traffic to a virtual service, for benchmarking rvs.

Standard library only. Every frame is Ethernet / IPv4 (20-byte header) / TCP (20-byte header)
with correct IPv4 and TCP checksums, addressed to VIP:PORT (default 198.18.0.100:80) from many
distinct clients (source addresses across 198.18.128.0/17, source ports varied).

Sizes are Ethernet frame sizes *on the wire*, FCS included, as traffic generators count them:
a "64-byte" frame is 60 bytes in the pcap (the NIC, or nobody for net_pcap, adds the 4-byte FCS).

Variants
  established  FLOWS flows; the file holds one SYN per flow, then ACKS passes of one 64-byte ACK
               per flow (flows in the same order, so every lookup is for a flow touched a whole
               pass ago: cold in cache). Replayed with net_pcap's infinite_rx, the first loop
               creates the flows and every later packet is a flow-table hit. The SYN comes first
               so the flows are created even by a director that, like IPVS, only schedules a
               new TCP connection on a SYN.
  syn          FLOWS distinct flows, one 64-byte SYN each: every packet is a new connection
               as long as the director's flow table is smaller than FLOWS (bench.sh runs this
               variant with a smaller table so the replay keeps missing).
  imix         FLOWS flows of 12 frames each in the 7:4:1 mix of 64/594/1518-byte frames:
               a SYN, six 64-byte ACKs, four 594-byte and one 1518-byte data segments.

Replay memory: net_pcap with infinite_rx=1 copies the whole file into mbufs of the port's
mempool when the queue is set up, so the pool needs (frames in the file) + (working set) mbufs.
`--info` prints the frame count so callers can size the pool.

Examples
  perf/gen_pcap.py established -o perf/out/established.pcap
  perf/gen_pcap.py syn --flows 1048576 -o perf/out/syn.pcap
  perf/gen_pcap.py --check perf/out/established.pcap
"""

import argparse
import ipaddress
import os
import struct
import sys

# net_pcap (rx_pcap/tx_pcap, no iface) gives its first port the locally administered MAC
# 02:'p':'c':'a':'p':<index> = 02:70:63:61:70:00; verified with dpdk-testpmd 22.11 (see README).
NET_PCAP_MAC = "02:70:63:61:70:00"
CLIENT_MAC = "02:00:00:00:00:fe"  # the "router" the clients' traffic comes through

ETH_HDR = 14
IP_HDR = 20
TCP_HDR = 20
MIN_FRAME = 60  # without FCS
FCS = 4

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

IMIX_PATTERN = [  # (wire size, flags) for one flow, 7:4:1
    (64, TCP_SYN),
    (64, TCP_ACK),
    (594, TCP_ACK | TCP_PSH),
    (64, TCP_ACK),
    (594, TCP_ACK | TCP_PSH),
    (64, TCP_ACK),
    (1518, TCP_ACK | TCP_PSH),
    (64, TCP_ACK),
    (594, TCP_ACK | TCP_PSH),
    (64, TCP_ACK),
    (594, TCP_ACK | TCP_PSH),
    (64, TCP_ACK),
]


def parse_mac(s):
    parts = s.replace("-", ":").split(":")
    if len(parts) != 6:
        raise argparse.ArgumentTypeError("invalid MAC address %r" % s)
    try:
        b = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError("invalid MAC address %r" % s) from None
    return b


def fold(s):
    """One's complement sum folded to 16 bits."""
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def raw_sum(data):
    """Sum of big-endian 16-bit words (odd length padded with a zero byte), unfolded."""
    if len(data) % 2:
        data = data + b"\x00"
    return sum(struct.unpack("!%dH" % (len(data) // 2), data))


def checksum(data, initial=0):
    """Internet checksum (RFC 1071) of data."""
    return (~fold(raw_sum(data) + initial)) & 0xFFFF


class Client:
    """The i-th client endpoint: distinct (address, port) for every i below capacity()."""

    def __init__(self, net, port_lo, port_hi):
        self.net = ipaddress.IPv4Network(net)
        self.base = int(self.net.network_address) + 1
        self.hosts = self.net.num_addresses - 2  # no network, no broadcast address
        if self.hosts < 1:
            raise ValueError("client network %s has no host addresses" % net)
        self.port_lo = port_lo
        self.ports = port_hi - port_lo + 1

    def capacity(self):
        return self.hosts * self.ports

    def endpoint(self, i):
        # Consecutive flows differ in address (spreads over RSS queues and hash buckets);
        # the port moves every time the addresses wrap around.
        return self.base + i % self.hosts, self.port_lo + i // self.hosts


def tcp_payload_len(wire_size):
    """TCP payload carried by a frame of wire_size: none up to 64 bytes (the 6 bytes between
    the headers and the 60-byte minimum are Ethernet padding, as in a real pure ACK/SYN)."""
    if wire_size <= MIN_FRAME + FCS:
        return 0
    return wire_size - FCS - ETH_HDR - IP_HDR - TCP_HDR


def build_frame(dst_mac, src_mac, src_ip, dst_ip, sport, dport, seq, ack, flags, wire_size,
                ip_id, payload_sums):
    """One Ethernet/IPv4/TCP frame of wire_size bytes (FCS included) as bytes without FCS."""
    frame_len = max(wire_size - FCS, MIN_FRAME)
    payload_len = tcp_payload_len(wire_size)
    total_len = IP_HDR + TCP_HDR + payload_len
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, total_len, ip_id, 0x4000, 64, 6, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    window = 65535 if flags & TCP_SYN else 502
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack if flags & TCP_ACK else 0,
                      (TCP_HDR // 4) << 4, flags, window, 0, 0)
    # Payload: bytes of a fixed pattern per length (its partial sum is cached).
    if payload_len not in payload_sums:
        pl = bytes((0x61 + k % 26) for k in range(payload_len))
        payload_sums[payload_len] = (pl, raw_sum(pl))
    payload, psum = payload_sums[payload_len]
    pseudo = struct.pack("!IIBBH", src_ip, dst_ip, 0, 6, TCP_HDR + payload_len)
    # payload starts at an even offset within the TCP segment (20), so its word sum adds up.
    tcsum = (~fold(raw_sum(pseudo) + raw_sum(tcp) + psum)) & 0xFFFF
    tcp = tcp[:16] + struct.pack("!H", tcsum) + tcp[18:]
    frame = dst_mac + src_mac + b"\x08\x00" + ip + tcp + payload
    if len(frame) < frame_len:
        frame += b"\x00" * (frame_len - len(frame))
    return frame


def frames(args):
    """Yield the frames of the requested variant."""
    clients = Client(args.clients, args.sport_min, args.sport_max)
    if args.flows > clients.capacity():
        raise SystemExit("gen_pcap: %d flows requested but %s x ports %d-%d gives only %d"
                         % (args.flows, args.clients, args.sport_min, args.sport_max,
                            clients.capacity()))
    vip = int(ipaddress.IPv4Address(args.vip))
    dport = args.vport
    sums = {}
    ip_id = 0

    def frame(i, flags, size, seq_off=0):
        nonlocal ip_id
        src, sport = clients.endpoint(i)
        isn = (i * 2654435761) & 0xFFFFFFFF  # per-flow initial sequence number
        seq = isn if flags & TCP_SYN else (isn + 1 + seq_off) & 0xFFFFFFFF
        ip_id = (ip_id + 1) & 0xFFFF
        return build_frame(args.dst_mac, args.src_mac, src, vip, sport, dport, seq,
                           0x10000001, flags, size, ip_id, sums)

    if args.variant == "established":
        for i in range(args.flows):
            yield frame(i, TCP_SYN, 64)
        for p in range(args.acks):
            for i in range(args.flows):
                yield frame(i, TCP_ACK, 64)
    elif args.variant == "syn":
        for i in range(args.flows):
            yield frame(i, TCP_SYN, 64)
    elif args.variant == "imix":
        # Pass by pass: frame k of every flow, then frame k+1, so a flow's frames are far apart.
        off = {}
        for k, (size, flags) in enumerate(IMIX_PATTERN):
            for i in range(args.flows):
                seq_off = off.get(i, 0)
                yield frame(i, flags, size, seq_off)
                if not flags & TCP_SYN:
                    off[i] = seq_off + tcp_payload_len(size)
    else:
        raise SystemExit("gen_pcap: unknown variant %r" % args.variant)


def frame_count(variant, flows, acks):
    if variant == "established":
        return flows * (1 + acks)
    if variant == "syn":
        return flows
    return flows * len(IMIX_PATTERN)


PCAP_GLOBAL = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET


def write_pcap(path, it):
    n = 0
    size = 0
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(PCAP_GLOBAL)
        buf = []
        for fr in it:
            ts_sec, ts_usec = divmod(n, 1000000)
            buf.append(struct.pack("<IIII", ts_sec, ts_usec, len(fr), len(fr)))
            buf.append(fr)
            n += 1
            size += len(fr) + FCS
            if len(buf) >= 8192:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))
    os.replace(tmp, path)
    return n, size


def read_pcap(path):
    """Yield frames of a classic little- or big-endian microsecond pcap."""
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) != 24:
            raise ValueError("%s: short pcap header" % path)
        magic = struct.unpack("<I", hdr[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            e = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            e = ">"
        else:
            raise ValueError("%s: not a classic pcap file (magic %08x)" % (path, magic))
        while True:
            rec = f.read(16)
            if not rec:
                return
            if len(rec) != 16:
                raise ValueError("%s: truncated record header" % path)
            _, _, incl, orig = struct.unpack(e + "IIII", rec)
            data = f.read(incl)
            if len(data) != incl:
                raise ValueError("%s: truncated record" % path)
            yield data


def check_frame(fr):
    """Return (5-tuple, tcp flags, wire size) or raise ValueError if fr is not a valid frame."""
    if len(fr) < ETH_HDR + IP_HDR + TCP_HDR:
        raise ValueError("short frame (%d bytes)" % len(fr))
    if fr[12:14] != b"\x08\x00":
        raise ValueError("not IPv4")
    ip = fr[ETH_HDR:ETH_HDR + IP_HDR]
    if ip[0] != 0x45 or ip[9] != 6:
        raise ValueError("not a 20-byte IPv4 header carrying TCP")
    if checksum(ip) != 0:
        raise ValueError("bad IPv4 checksum")
    total = struct.unpack("!H", ip[2:4])[0]
    if ETH_HDR + total > len(fr):
        raise ValueError("IPv4 total length %d beyond frame" % total)
    seg = fr[ETH_HDR + IP_HDR:ETH_HDR + total]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    if checksum(pseudo + seg) != 0:
        raise ValueError("bad TCP checksum")
    src, dst = struct.unpack("!II", ip[12:20])
    sport, dport = struct.unpack("!HH", seg[:4])
    return (src, sport, dst, dport), seg[13], len(fr) + FCS


def check(path):
    n = 0
    flows = set()
    syns = 0
    sizes = {}
    macs = set()
    for fr in read_pcap(path):
        try:
            key, flags, wire = check_frame(fr)
        except ValueError as e:
            raise SystemExit("gen_pcap: %s: frame %d: %s" % (path, n, e))
        flows.add(key)
        syns += 1 if flags & TCP_SYN else 0
        sizes[wire] = sizes.get(wire, 0) + 1
        macs.add(fr[0:6])
        n += 1
    mac = ",".join(":".join("%02x" % b for b in m) for m in sorted(macs))
    print("%s: %d frames, %d distinct flows, %d SYN, sizes %s, dst mac %s"
          % (path, n, len(flows), syns,
             " ".join("%dB:%d" % (k, v) for k, v in sorted(sizes.items())), mac))
    return n, len(flows)


DEFAULT_FLOWS = {"established": 262144, "syn": 262144, "imix": 8192}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("variant", nargs="?", choices=["established", "syn", "imix"])
    p.add_argument("-o", "--output", help="output file (default perf/out/<variant>.pcap)")
    p.add_argument("--flows", type=int, help="distinct flows (default: established/syn 262144, "
                   "imix 8192)")
    p.add_argument("--acks", type=int, default=1,
                   help="established: ACK passes after the SYN pass (default 1)")
    p.add_argument("--vip", default="198.18.0.100")
    p.add_argument("--vport", type=int, default=80)
    p.add_argument("--clients", default="198.18.128.0/17", help="client source network")
    p.add_argument("--sport-min", type=int, default=1024)
    p.add_argument("--sport-max", type=int, default=65535)
    p.add_argument("--dst-mac", type=parse_mac, default=parse_mac(NET_PCAP_MAC),
                   help="director port MAC (default net_pcap's %s)" % NET_PCAP_MAC)
    p.add_argument("--src-mac", type=parse_mac, default=parse_mac(CLIENT_MAC))
    p.add_argument("--info", action="store_true",
                   help="print the frame count the arguments give, write nothing")
    p.add_argument("--check", metavar="PCAP", help="verify a pcap's frames and checksums")
    args = p.parse_args(argv)

    if args.check:
        check(args.check)
        return 0
    if not args.variant:
        p.error("a variant is required")
    if args.flows is None:
        args.flows = DEFAULT_FLOWS[args.variant]
    if args.flows < 1 or args.acks < 0:
        p.error("--flows must be >= 1 and --acks >= 0")
    if args.info:
        print(frame_count(args.variant, args.flows, args.acks))
        return 0
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out",
                                      args.variant + ".pcap")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    n, size = write_pcap(out, frames(args))
    print("%s: %s, %d flows, %d frames, %.1f MB, avg %.1f B/frame on the wire, dst mac %s"
          % (out, args.variant, args.flows, n, os.path.getsize(out) / 1e6, size / n,
             ":".join("%02x" % b for b in args.dst_mac)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
