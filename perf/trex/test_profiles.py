"""Checks of the rvs TRex profiles, offline: load each profile the way TRex does
(STLProfile.load_py), serialise every stream to the JSON TRex's server receives, and check the
packet bytes and field-engine program against an independent parse (scapy) and a small
interpreter of the VM instructions the profiles use.

Run with perf/trex/run_tests.sh (it builds perf/out/venv from perf/requirements.txt).
"""

import base64
import ipaddress
import os
import socket
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from trex_stl_lib.api import STLError, STLProfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = ["nflow_64b", "syn_flood", "imix", "latency"]
DST_MAC = "0c:42:a1:00:00:01"


def load(name, style, **opts):
    """Load a profile with old-style keyword tunables or a new-style tunables list."""
    path = os.path.join(HERE, name + ".py")
    if style == "kwargs":
        return STLProfile.load_py(path, **opts)
    argv = []
    for k, v in opts.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    return STLProfile.load_py(path, tunables=argv)


def streams_json(profile):
    out = []
    for s in profile.get_streams():
        j = s.to_json()
        j["_name"] = s.name
        j["_next"] = s.next
        j["_bytes"] = base64.b64decode(j["packet"]["binary"])
        out.append(j)
    return out


def by_name(js):
    return {j["_name"]: j for j in js}


def offsets(raw):
    """(ipv4 offset, tcp offset) found by scapy, independently of the profiles' constants."""
    p = Ether(raw)
    assert IP in p and TCP in p, "not Ethernet/IPv4/TCP"
    ip_off = len(raw) - len(bytes(p[IP]))
    tcp_off = len(raw) - len(bytes(p[TCP]))
    return ip_off, tcp_off


def ipv4_checksum_ok(raw, ip_off):
    hdr = raw[ip_off:ip_off + 20]
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def tuple_program(j):
    """The tuple generator of a stream's VM and the instructions after it."""
    ins = j["vm"]["instructions"]
    gens = [i for i in ins if i["type"] == "tuple_flow_var"]
    assert len(gens) == 1, "expected one tuple generator, got %r" % ins
    return gens[0], ins


def tuple_at(gen, k):
    """The k-th (ip, port) of a TRex tuple generator: addresses vary fastest."""
    n_ips = gen["ip_max"] - gen["ip_min"] + 1
    return gen["ip_min"] + k % n_ips, gen["port_min"] + k // n_ips


def tuple_count(gen):
    n = (gen["ip_max"] - gen["ip_min"] + 1) * (gen["port_max"] - gen["port_min"] + 1)
    return min(n, gen["limit_flows"])


def run_vm(j, k):
    """Apply the stream's field-engine program for flow k to its packet bytes."""
    gen, ins = tuple_program(j)
    ip, port = tuple_at(gen, k)
    vals = {gen["name"] + ".ip": (ip, 4), gen["name"] + ".port": (port, 2)}
    b = bytearray(j["_bytes"])
    for i in ins:
        if i["type"] == "write_flow_var":
            v, size = vals[i["name"]]
            assert i["is_big_endian"] and i["add_value"] == 0
            o = i["pkt_offset"]
            assert 0 <= o and o + size <= len(b), "write beyond the packet"
            b[o:o + size] = v.to_bytes(size, "big")
        elif i["type"] == "fix_checksum_ipv4":
            o = i["pkt_offset"]
            b[o + 10:o + 12] = b"\x00\x00"
            s = sum(struct.unpack("!10H", bytes(b[o:o + 20])))
            while s >> 16:
                s = (s & 0xFFFF) + (s >> 16)
            b[o + 10:o + 12] = struct.pack("!H", ~s & 0xFFFF)
    return bytes(b), ip, port


@pytest.fixture(params=["kwargs", "tunables"])
def style(request):
    return request.param


@pytest.mark.parametrize("name", PROFILES)
def test_every_stream_is_tcp_to_the_vip_with_valid_ipv4(name, style):
    js = streams_json(load(name, style, flows=1000, dst_mac=DST_MAC))
    assert js, "profile produced no streams"
    for j in js:
        raw = j["_bytes"]
        p = Ether(raw)
        assert p.dst == DST_MAC
        assert p[IP].dst == "198.18.0.100" and p[TCP].dport == 80
        ip_off, _ = offsets(raw)
        assert ip_off == 14
        assert ipv4_checksum_ok(raw, ip_off), "IPv4 checksum of %s" % j["_name"]
        # TCP checksum as built is valid (scapy recomputes it on a copy without it).
        q = Ether(raw)
        del q[TCP].chksum
        assert Ether(bytes(q))[TCP].chksum == p[TCP].chksum
        # 64-byte frames: no TCP payload, IPv4 total length 40; larger: fills the frame.
        if len(raw) == 60:
            assert p[IP].len == 40
        else:
            assert p[IP].len == len(raw) - 14


@pytest.mark.parametrize("name", PROFILES)
def test_vm_offsets_hit_ipv4_source_and_tcp_source_port(name, style):
    js = streams_json(load(name, style, flows=70000, dst_mac=DST_MAC))
    with_vm = [j for j in js if j["vm"]["instructions"]]
    assert with_vm, "no stream varies the flow"
    for j in with_vm:
        raw = j["_bytes"]
        ip_off, tcp_off = offsets(raw)
        gen, ins = tuple_program(j)
        writes = {i["name"]: i["pkt_offset"] for i in ins if i["type"] == "write_flow_var"}
        assert writes[gen["name"] + ".ip"] == ip_off + 12  # RFC 791: source address at 12
        assert writes[gen["name"] + ".port"] == tcp_off  # RFC 793: source port first
        fixes = [i["pkt_offset"] for i in ins if i["type"] == "fix_checksum_ipv4"]
        assert fixes == [ip_off]
        # The checksum fix must come after the writes it covers.
        kinds = [i["type"] for i in ins]
        assert kinds.index("fix_checksum_ipv4") > max(
            n for n, t in enumerate(kinds) if t == "write_flow_var")
        # Interpret the program for a few flows: scapy must see the tuple, checksum valid.
        n = tuple_count(gen)
        for k in (0, 1, n // 2, n - 1):
            out, ip, port = run_vm(j, k)
            q = Ether(out)
            assert q[IP].src == str(ipaddress.IPv4Address(ip))
            assert q[TCP].sport == port
            assert q[IP].dst == "198.18.0.100" and q[TCP].dport == 80
            assert ipv4_checksum_ok(out, ip_off)


@pytest.mark.parametrize("flows", [1, 1000, 32766, 32767, 100000, 1000000])
def test_nflow_tuple_generator_gives_the_requested_flow_count(flows, style):
    js = by_name(streams_json(load("nflow_64b", style, flows=flows)))
    gen, _ = tuple_program(js["nflow"])
    assert tuple_count(gen) == flows
    # Distinct tuples: the generator's (ip, port) range holds at least `flows` pairs and every
    # address lies inside the client network.
    net = ipaddress.IPv4Network("198.18.128.0/17")
    assert ipaddress.IPv4Address(gen["ip_min"]) in net
    assert ipaddress.IPv4Address(gen["ip_max"]) in net
    assert 1024 <= gen["port_min"] <= gen["port_max"] <= 65535
    seen = {tuple_at(gen, k) for k in range(min(flows, 5000))}
    assert len(seen) == min(flows, 5000)


def test_nflow_primes_every_flow_with_one_syn_then_continues_with_acks(style):
    js = by_name(streams_json(load("nflow_64b", style, flows=4242)))
    syn, cont = js["nflow_syn"], js["nflow"]
    assert syn["self_start"] and not cont["self_start"]
    assert syn["_next"] == "nflow"
    assert syn["mode"]["type"] == "single_burst" and syn["mode"]["total_pkts"] == 4242
    assert cont["mode"]["type"] == "continuous"
    assert tuple_program(syn)[0] == tuple_program(cont)[0]  # same flows, same order
    assert Ether(syn["_bytes"])[TCP].flags == "S"
    assert Ether(cont["_bytes"])[TCP].flags == "A"
    assert len(syn["_bytes"]) == len(cont["_bytes"]) == 60  # 64 bytes on the wire


def test_nflow_without_priming_is_one_self_starting_stream(style):
    js = streams_json(load("nflow_64b", style, flows=10, prime=0))
    assert [j["_name"] for j in js] == ["nflow"] and js[0]["self_start"]


def test_syn_flood_sends_only_syns_over_16m_tuples_by_default(style):
    js = streams_json(load("syn_flood", style))
    assert len(js) == 1
    j = js[0]
    assert Ether(j["_bytes"])[TCP].flags == "S" and len(j["_bytes"]) == 60
    assert tuple_count(tuple_program(j)[0]) == 16 * 1024 * 1024
    js = streams_json(load("syn_flood", style, flows=123456))
    assert tuple_count(tuple_program(js[0])[0]) == 123456


def test_imix_sizes_rates_and_disjoint_flows(style):
    js = by_name(streams_json(load("imix", style, flows=120000, pps=1200000)))
    cont = [js["imix_64"], js["imix_594"], js["imix_1518"]]
    assert [len(j["_bytes"]) + 4 for j in cont] == [64, 594, 1518]
    rates = [j["mode"]["rate"]["value"] for j in cont]
    assert rates == pytest.approx([700000, 400000, 100000])
    gens = [tuple_program(j)[0] for j in cont]
    assert [tuple_count(g) for g in gens] == [70000, 40000, 10000]
    # Disjoint port ranges, so the three streams never share a flow.
    spans = sorted((g["port_min"], g["port_max"]) for g in gens)
    for (a_lo, a_hi), (b_lo, b_hi) in zip(spans, spans[1:]):
        assert a_hi < b_lo
    for size in (64, 594, 1518):
        syn = js["imix_%d_syn" % size]
        assert syn["_next"] == "imix_%d" % size
        assert syn["mode"]["total_pkts"] == tuple_count(tuple_program(js["imix_%d" % size])[0])


def test_latency_stream_has_latency_flow_stats_beside_background(style):
    js = by_name(streams_json(load("latency", style, flows=5000, pg_id=42)))
    lat = [j for j in js.values() if j["flow_stats"].get("enabled")]
    assert len(lat) == 1, "exactly one stream carries flow stats"
    lat = lat[0]
    assert lat["flow_stats"]["rule_type"] == "latency"
    assert lat["flow_stats"]["stream_id"] == 42
    assert lat["mode"]["type"] == "continuous"
    raw = lat["_bytes"]
    p = Ether(raw)
    # TRex stamps the last 16 bytes: they must be TCP payload, not headers.
    assert len(raw) - 16 >= offsets(raw)[1] + 20
    # Its flow is opened by a SYN with the same tuple, sent before the stream starts.
    syn = Ether(js["latency_syn"]["_bytes"])
    assert syn[TCP].flags == "S"
    assert (syn[IP].src, syn[TCP].sport) == (p[IP].src, p[TCP].sport)
    assert lat["isg"] > 0 and js["latency_syn"]["isg"] == 0
    # ... and that tuple is outside the background's tuple range.
    gen, _ = tuple_program(js["background"])
    src = int(ipaddress.IPv4Address(p[IP].src))
    assert not (gen["ip_min"] <= src <= gen["ip_max"]
                and gen["port_min"] <= p[TCP].sport <= gen["port_max"])
    assert js["background"]["mode"]["type"] == "continuous"


def test_latency_rejects_a_frame_too_small_for_the_stamp(style):
    with pytest.raises(STLError):
        load("latency", style, latency_size=64)


def test_too_many_flows_for_the_client_range_is_an_error(style):
    with pytest.raises(STLError):
        load("nflow_64b", style, flows=10, client_min="198.18.128.1", client_max="198.18.128.1",
             sport_min=65530)


def test_profiles_declare_register_and_tunable_defaults():
    # TRex reads get_streams' defaults as the profile's tunables and needs one per argument.
    for name in PROFILES:
        prof = STLProfile.load_py(os.path.join(HERE, name + ".py"))
        assert prof.meta["type"] == "python"
        assert "direction" in prof.meta["tunables"]


def test_unknown_tunable_is_refused():
    with pytest.raises(STLError):
        STLProfile.load_py(os.path.join(HERE, "nflow_64b.py"), tunables=["--flowz", "3"])


def test_inet_helpers_agree_with_socket():
    import rvs_profile

    for s in ("198.18.128.1", "0.0.0.0", "255.255.255.255"):
        n = rvs_profile.ip_to_int(s)
        assert n == struct.unpack("!I", socket.inet_aton(s))[0]
        assert rvs_profile.int_to_ip(n) == s


@pytest.mark.parametrize("name", PROFILES)
def test_dst_mac_comes_from_the_packet_only_when_given(name):
    # Stream flags: bit 0 = source MAC from the packet, bits 1-2 = destination MAC mode
    # (0 = TRex's port configuration, 1 = the packet's own).
    for j in streams_json(load(name, "kwargs", flows=100, dst_mac=DST_MAC)):
        assert j["flags"] & 1 == 0 and (j["flags"] >> 1) & 3 == 1, j["_name"]
        assert Ether(j["_bytes"]).dst == DST_MAC
    for j in streams_json(load(name, "kwargs", flows=100)):
        assert j["flags"] & 1 == 0 and (j["flags"] >> 1) & 3 == 0, j["_name"]


def test_underscore_spelling_of_tunables_is_accepted():
    # Newer TRex turns ndr's `--prof-tun dst_mac=...` into ["--dst_mac", ...].
    path = os.path.join(HERE, "nflow_64b.py")
    js = streams_json(STLProfile.load_py(path, tunables=["--dst_mac", DST_MAC, "--flows", "77"]))
    assert Ether(js[0]["_bytes"]).dst == DST_MAC
    assert tuple_count(tuple_program(js[0])[0]) == 77
