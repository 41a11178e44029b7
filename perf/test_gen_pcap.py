"""Tests of perf/gen_pcap.py: the frames are checked with scapy (an independent parser and
checksum implementation), not with gen_pcap's own reader."""

import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

import gen_pcap


def gen(tmp_path, *args):
    out = str(tmp_path / "t.pcap")
    assert gen_pcap.main(list(args) + ["-o", out]) == 0
    return out, rdpcap(out)


def assert_checksums_valid(p):
    q = p.copy()
    del q[IP].chksum
    del q[TCP].chksum
    q = Ether(bytes(q))
    assert p[IP].chksum == q[IP].chksum, "IPv4 checksum"
    assert p[TCP].chksum == q[TCP].chksum, "TCP checksum"


def flow(p):
    return (p[IP].src, p[TCP].sport, p[IP].dst, p[TCP].dport)


def test_established_is_one_syn_per_flow_then_ack_passes(tmp_path):
    _, pkts = gen(tmp_path, "established", "--flows", "300", "--acks", "2")
    assert len(pkts) == 900
    syns, acks = pkts[:300], pkts[300:]
    assert all(p[TCP].flags == "S" for p in syns)
    assert all(p[TCP].flags == "A" for p in acks)
    assert len({flow(p) for p in syns}) == 300
    # Each ACK pass covers the same flows in the same order as the SYN pass.
    assert [flow(p) for p in acks[:300]] == [flow(p) for p in syns]
    assert [flow(p) for p in acks[300:]] == [flow(p) for p in syns]
    for p in pkts:
        raw = bytes(p)
        assert len(raw) == 60  # 64 on the wire with the FCS
        assert p.dst == gen_pcap.NET_PCAP_MAC and p.type == 0x0800
        assert p[IP].dst == "198.18.0.100" and p[TCP].dport == 80
        assert p[IP].len == 40  # pure SYN/ACK, the rest is Ethernet padding
        assert_checksums_valid(p)


def test_flows_are_distinct_beyond_one_wrap_of_the_client_addresses(tmp_path):
    # 32766 hosts in the default /17: flow 32766 must reuse address 0 with the next port.
    _, pkts = gen(tmp_path, "syn", "--flows", "5", "--clients", "198.18.128.0/29")
    keys = [flow(p) for p in pkts]
    assert len(set(keys)) == 5
    assert [k[0] for k in keys] == ["198.18.128.%d" % i for i in (1, 2, 3, 4, 5)]
    _, pkts = gen(tmp_path, "syn", "--flows", "14", "--clients", "198.18.128.0/29")
    keys = [flow(p) for p in pkts]
    assert len(set(keys)) == 14
    assert keys[6] == ("198.18.128.1", 1025, "198.18.0.100", 80)


def test_client_capacity_is_enforced(tmp_path):
    with pytest.raises(SystemExit):
        gen(tmp_path, "syn", "--flows", "7", "--clients", "198.18.128.0/30",
            "--sport-min", "1024", "--sport-max", "1026")


def test_syn_variant_is_all_new_flows(tmp_path):
    _, pkts = gen(tmp_path, "syn", "--flows", "1000")
    assert len(pkts) == 1000
    assert all(p[TCP].flags == "S" for p in pkts)
    assert len({flow(p) for p in pkts}) == 1000
    for p in pkts[:50]:
        assert_checksums_valid(p)


def test_imix_is_7_4_1_of_64_594_1518_with_valid_checksums(tmp_path):
    _, pkts = gen(tmp_path, "imix", "--flows", "20", "--dst-mac", "0c:42:a1:00:00:01")
    sizes = [len(bytes(p)) + 4 for p in pkts]
    assert len(pkts) == 240
    assert sizes.count(64) == 140 and sizes.count(594) == 80 and sizes.count(1518) == 20
    for p in pkts:
        assert p.dst == "0c:42:a1:00:00:01"
        assert_checksums_valid(p)
        if len(bytes(p)) > 60:
            assert p[IP].len == len(bytes(p)) - 14
    # Every flow starts with its SYN before any of its data.
    first = {}
    for p in pkts:
        first.setdefault(flow(p), p[TCP].flags)
    assert len(first) == 20 and all(f == "S" for f in first.values())


def test_check_rejects_a_corrupted_frame(tmp_path, capsys):
    out, _ = gen(tmp_path, "established", "--flows", "10")
    assert gen_pcap.main(["--check", out]) == 0
    assert "20 frames, 10 distinct flows, 10 SYN" in capsys.readouterr().out
    data = bytearray(open(out, "rb").read())
    # First record: 24-byte global header + 16-byte record header; flip a TCP port byte.
    data[24 + 16 + 35] ^= 0x01
    open(out, "wb").write(bytes(data))
    with pytest.raises(SystemExit, match="bad TCP checksum"):
        gen_pcap.main(["--check", out])


def test_pcap_global_header_is_classic_ethernet(tmp_path):
    out, _ = gen(tmp_path, "syn", "--flows", "1")
    magic, vmaj, vmin, _, _, snap, link = struct.unpack("<IHHiIII", open(out, "rb").read(24))
    assert (magic, vmaj, vmin, link) == (0xA1B2C3D4, 2, 4, 1) and snap >= 1518


def test_info_matches_what_is_written(tmp_path, capsys):
    assert gen_pcap.main(["imix", "--flows", "3", "--info"]) == 0
    n = int(capsys.readouterr().out)
    _, pkts = gen(tmp_path, "imix", "--flows", "3")
    assert n == len(pkts) == 36
