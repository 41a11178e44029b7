"""Tests of perf/bench.py's pieces that need no DPDK: the rvs config it generates, the window
arithmetic, the summary formatting."""

import os
import subprocess
import tomllib

import pytest

import bench

CFG = {"main_lcore": 0, "fwd_lcore": 1, "mem": 3072, "descriptors": 1024,
       "flow_table": 1048576, "syn_table": 65536, "rvs": "rvs", "testpmd": "dpdk-testpmd",
       "warmup": 0, "window": 0.01, "start_timeout": 1}


def rvs_binary():
    for p in (os.environ.get("RVS", ""),
              os.path.join(bench.ROOT, "target", "release", "rvs"),
              os.path.join(bench.ROOT, "target", "debug", "rvs")):
        if p and os.access(p, os.X_OK):
            return p
    return None


@pytest.mark.parametrize("huge", [False, True])
def test_both_programs_get_the_same_memory(tmp_path, monkeypatch, huge):
    monkeypatch.setattr(bench, "OUT", str(tmp_path))
    cfg = dict(CFG, huge=huge)
    r = bench.Rvs(cfg, "established", "/tmp/x.pcap", 300000, str(tmp_path / "log"))
    with open(r.conf, "rb") as f:
        rvs_args = tomllib.load(f)["eal"]["args"]
    tp_args = bench.Testpmd(cfg, "established", "/tmp/x.pcap", 300000, str(tmp_path / "tlog")).argv
    for args in (rvs_args, tp_args):
        assert args[args.index("-m") + 1] == "3072"
        assert ("--no-huge" in args) is not huge


@pytest.mark.parametrize("variant,flows", [("established", 1048576), ("syn", 65536)])
def test_generated_rvs_config(tmp_path, monkeypatch, variant, flows):
    monkeypatch.setattr(bench, "OUT", str(tmp_path))
    r = bench.Rvs(CFG, variant, "/tmp/x.pcap", 300000, str(tmp_path / "log"))
    with open(r.conf, "rb") as f:
        c = tomllib.load(f)
    args = c["eal"]["args"]
    assert args[args.index("-l") + 1] == "0,1" and args[args.index("--main-lcore") + 1] == "0"
    assert "net_pcap0,rx_pcap=/tmp/x.pcap,tx_pcap=/dev/null,infinite_rx=1" in args
    assert c["workers"]["lcores"] == [1]  # the forwarding lcore, as testpmd's
    assert c["port"]["mbufs"] == 300000 and c["port"]["rx_descriptors"] == 1024
    assert c["tables"]["flows_per_worker"] == flows
    assert [n["addr"] for n in c["neighbour"]] == bench.REAL_SERVERS
    rules = open(c["rules"]["file"]).read().splitlines()
    assert "-A -t 198.18.0.100:80 -s rr" in rules
    assert sum(1 for line in rules if line.startswith("-a -t 198.18.0.100:80 -r ")) == 8
    exe = rvs_binary()
    if exe:  # the daemon's own validation accepts it
        out = subprocess.run([exe, "check-config", "-c", r.conf], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


class FakeProg:
    name = "fake"

    def __init__(self):
        self.reads = [(10.0, 1000, {"drops": {"a": 5}, "imissed": 1, "flows": 3}),
                      (12.0, 5001000, {"drops": {"a": 7, "b": 4}, "imissed": 1, "flows": 9})]
        self.started = self.stopped = False

    def start(self):
        self.started = True

    def counters(self):
        return self.reads.pop(0)

    def stop(self):
        self.stopped = True


def test_measure_reports_rate_and_window_deltas():
    p = FakeProg()
    mpps, extra = bench.measure(p, CFG)
    assert p.started and p.stopped
    assert mpps == pytest.approx(2.5)  # 5,000,000 frames in 2 s
    assert extra == {"drops": {"a": 2, "b": 4}, "imissed": 0, "flows": 9}


def test_measure_stops_the_program_when_a_read_fails():
    p = FakeProg()

    def boom():
        raise bench.CannotRun("no answer")

    p.counters = boom
    with pytest.raises(bench.CannotRun):
        bench.measure(p, CFG)
    assert p.stopped


def test_fmt_spread():
    assert bench.fmt_spread([3.0, 1.0, 2.0]) == "2.000 (1.000-3.000)"
    assert bench.fmt_spread([]) == "-"
