#!/usr/bin/env python3
"""Side-by-side forwarding benchmark: dpdk-testpmd (macswap) vs rvs on the same lcore.

Run through perf/bench.sh (which documents the environment knobs). Both programs read the same
pcap through net_pcap with infinite_rx=1 and transmit to /dev/null; each round starts one program,
lets it warm up, reads its port's opackets at t0 and t0+WINDOW, stops it, then does the same with
the other program (the order alternates per round). Mpps = delta(opackets) / elapsed / 1e6, where
the counter read time is the midpoint between sending the request and receiving the answer.

Exit status: 0 when every measurement ran (whatever the numbers), 2 when a program is missing or
cannot start (EAL failure, socket never answering), 1 on internal errors.
"""

import datetime
import json
import os
import platform
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")

VIP = "198.18.0.100"
DIP = "198.18.0.2"
REAL_SERVERS = ["198.18.0.%d" % (11 + i) for i in range(8)]


def rs_mac(i):
    return "02:00:00:00:01:%02x" % (i + 1)


class CannotRun(Exception):
    """The benchmark cannot run (missing program, start failure): exit status 2."""


def env_int(name, default):
    v = os.environ.get(name, "")
    if v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise CannotRun("%s=%r is not an integer" % (name, v)) from None


def env_float(name, default):
    v = os.environ.get(name, "")
    if v == "":
        return default
    try:
        return float(v)
    except ValueError:
        raise CannotRun("%s=%r is not a number" % (name, v)) from None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def stop_process(proc, sig, grace):
    """Signal our own child by PID, wait up to grace seconds, then SIGKILL it."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        log("  pid %d did not stop within %ds: SIGKILL" % (proc.pid, grace))
        proc.kill()
        return proc.wait(10)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Testpmd:
    """dpdk-testpmd in interactive mode driven through stdin; output goes to a log file."""

    name = "testpmd"

    def __init__(self, cfg, variant, pcap, mbufs, logpath):
        self.cfg = cfg
        self.logpath = logpath
        lcores = "%d,%d" % (cfg["main_lcore"], cfg["fwd_lcore"])
        self.argv = [
            cfg["testpmd"], "-l", lcores, "--main-lcore", str(cfg["main_lcore"]),
            *eal_memory(cfg), "--no-pci", "--file-prefix", "rvs-bench-testpmd",
            "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=/dev/null,infinite_rx=1" % pcap,
            "--", "-i", "--forward-mode=macswap", "--nb-cores=1",
            "--rxd=%d" % cfg["descriptors"], "--txd=%d" % cfg["descriptors"],
            "--burst=32", "--total-num-mbufs=%d" % mbufs,
        ]
        # testpmd printf()s to a pipe are block-buffered: unbuffer them (stdbuf execs in place,
        # so the PID we signal is testpmd's own).
        from shutil import which
        if which("stdbuf"):
            self.argv = ["stdbuf", "-o0", "-e0"] + self.argv
        self.proc = None
        self.out = b""

    def _read(self, timeout):
        """Read whatever testpmd printed within timeout seconds (b"" on EOF)."""
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], max(timeout, 0))
        if not r:
            return None
        data = os.read(fd, 65536)
        if data:
            self.out += data
            self.logf.write(data)
            self.logf.flush()
        return data

    def _wait_for(self, pattern, start, timeout):
        """Wait until pattern appears in the output after offset start; return the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.out, start)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self._read(min(left, 0.5))
            if data == b"":  # EOF: testpmd exited
                return rx.search(self.out, start)

    def _cmd(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def start(self):
        self.logf = open(self.logpath, "wb")
        self.logf.write((" ".join(self.argv) + "\n").encode())
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
        except OSError as e:
            raise CannotRun("cannot start %s: %s" % (self.argv[0], e)) from None
        # testpmd prints its prompt once the port is configured and started.
        if not self._wait_for(rb"testpmd> ", 0, self.cfg["start_timeout"]):
            self.stop()
            raise CannotRun("testpmd did not reach its prompt (EAL or port failure); log %s:\n%s"
                            % (self.logpath, tail(self.logpath)))
        self._cmd("start")

    def counters(self):
        """(time, opackets, extra dict) from `show port stats all`."""
        start = len(self.out)
        t_send = time.monotonic()
        self._cmd("show port stats all")
        m = self._wait_for(rb"TX-packets:\s+(\d+)", start, 10)
        t_recv = time.monotonic()
        if not m:
            raise CannotRun("testpmd did not answer `show port stats all`; log %s" % self.logpath)
        block = self.out[start:m.end() + 200]
        extra = {}
        for key, rx in (("imissed", rb"RX-missed:\s+(\d+)"), ("rx_nombuf", rb"RX-nombuf:\s+(\d+)"),
                        ("ipackets", rb"RX-packets:\s+(\d+)")):
            mm = re.search(rx, block)
            if mm:
                extra[key] = int(mm.group(1))
        return (t_send + t_recv) / 2, int(m.group(1)), extra

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self._cmd("stop")
                self._cmd("quit")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            deadline = time.monotonic() + 15
            while self.proc.poll() is None and time.monotonic() < deadline:
                self._read(0.2)
        stop_process(self.proc, signal.SIGTERM, 5)
        self.logf.close()


class Rvs:
    """The rvs daemon with a generated config; counters from its JSON-RPC control socket."""

    name = "rvs"

    def __init__(self, cfg, variant, pcap, mbufs, logpath):
        self.cfg = cfg
        self.logpath = logpath
        self.sock = os.path.join(OUT, "rvs-bench.sock")
        self.conf = os.path.join(OUT, "bench-%s.toml" % variant)
        rules = os.path.join(OUT, "bench.rules")
        with open(rules, "w") as f:
            f.write("# generated by perf/bench.py\n-A -t %s:80 -s rr\n" % VIP)
            for rs in REAL_SERVERS:
                f.write("-a -t %s:80 -r %s:80 -g -w 1\n" % (VIP, rs))
        flows = cfg["syn_table"] if variant == "syn" else cfg["flow_table"]
        eal = ["-l", "%d,%d" % (cfg["main_lcore"], cfg["fwd_lcore"]),
               "--main-lcore", str(cfg["main_lcore"]), *eal_memory(cfg), "--no-pci",
               "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=/dev/null,infinite_rx=1" % pcap,
               "--file-prefix", "rvs-bench-rvs"]
        lines = [
            "# generated by perf/bench.py for the %s variant" % variant,
            "[eal]",
            "args = [%s]" % ", ".join(json.dumps(a) for a in eal),
            "[port]",
            "id = 0",
            "rx_descriptors = %d" % cfg["descriptors"],
            "tx_descriptors = %d" % cfg["descriptors"],
            "mbufs = %d" % mbufs,
            "promiscuous = true",
            "[network]",
            'dip = "%s"' % DIP,
            "prefix_len = 24",
            "[workers]",
            "lcores = [%d]" % cfg["fwd_lcore"],
            "[tables]",
            "flows_per_worker = %d" % flows,
            "max_services = 256",
            "max_servers = 4096",
            "neighbours = 4096",
            "[control]",
            "socket = %s" % json.dumps(self.sock),
            "[rules]",
            "file = %s" % json.dumps(rules),
        ]
        for i, rs in enumerate(REAL_SERVERS):
            lines += ["[[neighbour]]", 'addr = "%s"' % rs, 'mac = "%s"' % rs_mac(i)]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        # rvs makes a kernel interface (the kernel path) where it runs: a namespace of the
        # bench's own, so the host's network is never touched (deleted by stop()).
        self.ns = "rvb-bench-%d" % os.getpid()
        self.argv = ["ip", "netns", "exec", self.ns,
                     cfg["rvs"], "run", "-c", self.conf, "--socket", self.sock, "--log", "info"]
        self.proc = None
        self.last = None

    def rpc(self, method, timeout=5):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.sock)
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method}).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        reply = json.loads(buf.split(b"\n", 1)[0])
        if "result" not in reply:
            raise ValueError("rvs answered %s with %s" % (method, reply.get("error", reply)))
        return reply["result"]

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        subprocess.run(["ip", "netns", "del", self.ns], stderr=subprocess.DEVNULL, check=False)
        try:
            subprocess.run(["ip", "netns", "add", self.ns], check=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            raise CannotRun("cannot create network namespace %s: %s" % (self.ns, e)) from None
        self.logf = open(self.logpath, "wb")
        self.logf.write((" ".join(self.argv) + "\n").encode())
        self.logf.flush()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                         stderr=subprocess.STDOUT, cwd=ROOT)
        except OSError as e:
            raise CannotRun("cannot start %s: %s" % (self.argv[0], e)) from None
        deadline = time.monotonic() + self.cfg["start_timeout"]
        err = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if os.path.exists(self.sock):
                try:
                    self.rpc("stats", timeout=2)
                    return
                except (OSError, ValueError) as e:
                    err = e
            time.sleep(0.2)
        self.stop()
        raise CannotRun("rvs did not answer on %s (exit %s, last error %s); log %s:\n%s"
                        % (self.sock, self.proc.returncode, err, self.logpath, tail(self.logpath)))

    def counters(self):
        t_send = time.monotonic()
        try:
            st = self.rpc("stats")
        except (OSError, ValueError) as e:
            raise CannotRun("rvs stats failed: %s; log %s" % (e, self.logpath)) from None
        t_recv = time.monotonic()
        port = st.get("port", {})
        self.last = st
        extra = {k: port.get(k, 0) for k in ("ipackets", "imissed", "rx_nombuf")}
        extra["drops"] = st.get("drops", {})
        extra["flows"] = sum(w.get("flows", 0) for w in st.get("workers", []))
        return (t_send + t_recv) / 2, int(port["opackets"]), extra

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc, signal.SIGINT, 15)
        self.logf.close()
        subprocess.run(["ip", "netns", "del", self.ns], stderr=subprocess.DEVNULL, check=False)


def pcap_for(variant, cfg):
    """Path of the variant's pcap (generated if missing) and its frame count."""
    path = os.path.join(OUT, "%s.pcap" % variant)
    gen = [sys.executable, os.path.join(HERE, "gen_pcap.py"), variant]
    if not os.path.exists(path):
        log("generating %s" % path)
        subprocess.run(gen + ["-o", path], check=True, timeout=600)
    # Count records from the file itself (cheap: headers only).
    n = 0
    with open(path, "rb") as f:
        f.seek(24)
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            incl = int.from_bytes(rec[8:12], "little")
            f.seek(incl, 1)
            n += 1
    return path, n


def measure(prog, cfg):
    """Start prog, warm up, return (Mpps, extra) over the window, stop prog."""
    try:
        prog.start()
        time.sleep(cfg["warmup"])
        t0, c0, e0 = prog.counters()
        time.sleep(max(cfg["window"] - (time.monotonic() - t0), 0))
        t1, c1, e1 = prog.counters()
    finally:
        prog.stop()
    # Counters over the window (drops per reason, imissed, rx_nombuf); gauges (flows) at t1.
    extra = {}
    for k, v in e1.items():
        if k == "ipackets":
            continue
        if isinstance(v, dict):
            before = e0.get(k, {})
            extra[k] = {why: n - before.get(why, 0) for why, n in v.items()
                        if n - before.get(why, 0)}
        elif k == "flows":
            extra[k] = v
        else:
            extra[k] = v - e0.get(k, 0)
    return (c1 - c0) / (t1 - t0) / 1e6, extra


def fmt_spread(xs, fmt="%.3f"):
    if not xs:
        return "-"
    return (fmt + " (" + fmt + "-" + fmt + ")") % (statistics.median(xs), min(xs), max(xs))


def machine():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s %s" % (platform.machine(), cpu)


def commit():
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        head = r.stdout.strip() or "unknown"
        d = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10)
        return head + ("+dirty" if d.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


RESULTS_HEADER = """# rvs forwarding benchmark results

Appended by `perf/bench.sh` (see perf/README.md). One row per variant per run. Both programs
forward on the same single lcore through net_pcap (infinite_rx, tx to /dev/null); Mpps are frames
sent over a WINDOW-second window after WARMUP seconds, median (min-max) over ROUNDS alternating
rounds; ratio = rvs / testpmd (macswap) per round. Notes: rvs drop rates per reason in the window,
and the 1-minute load average before the variant ran (with 2 CPUs, a load above ~1.5 means other
work competed and the Mpps are depressed; the ratio suffers less). Virtual-device figures measure
per-packet CPU cost, not a NIC: compare ratios, not absolute Mpps, across machines.

| date | commit | machine | variant | rounds x window | testpmd Mpps | rvs Mpps | rvs/testpmd | notes |
|---|---|---|---|---|---|---|---|---|
"""


def append_results(path, rows):
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if new:
            f.write(RESULTS_HEADER)
        for r in rows:
            f.write("| " + " | ".join(r) + " |\n")


def eal_memory(cfg):
    """EAL memory arguments, the same for both programs: -m MEM of anonymous memory in 4 KiB
    pages (--no-huge, the default: nothing to set up), or with HUGE=1 from the hugetlbfs pages
    the host has reserved (as DPDK is deployed; fewer TLB misses for both programs)."""
    if cfg.get("huge"):
        return ["-m", str(cfg["mem"])]
    return ["--no-huge", "-m", str(cfg["mem"])]


def main():
    try:
        cfg = {
            "rounds": env_int("ROUNDS", 3),
            "window": env_float("WINDOW", 10),
            "warmup": env_float("WARMUP", 3),
            "main_lcore": env_int("MAIN_LCORE", 0),
            "fwd_lcore": env_int("FWD_LCORE", 1),
            "mem": env_int("MEM", 3072),
            "huge": env_int("HUGE", 0) != 0,
            "descriptors": env_int("DESCRIPTORS", 1024),
            "flow_table": env_int("FLOW_TABLE", 1048576),
            "syn_table": env_int("SYN_TABLE", 65536),
            "start_timeout": env_float("START_TIMEOUT", 90),
            "testpmd": os.environ.get("TESTPMD", "dpdk-testpmd"),
            "rvs": os.environ.get("RVS", os.path.join(ROOT, "target", "release", "rvs")),
        }
        only = os.environ.get("ONLY", "")
        variants = (os.environ.get("VARIANTS", "") or "established syn imix").split()
        if len(sys.argv) > 1:
            variants = sys.argv[1:]
        for v in variants:
            if v not in ("established", "syn", "imix"):
                raise CannotRun("unknown variant %r (established, syn, imix)" % v)
        if only not in ("", "testpmd", "rvs"):
            raise CannotRun("ONLY=%r: use testpmd or rvs" % only)
        if cfg["main_lcore"] == cfg["fwd_lcore"]:
            raise CannotRun("MAIN_LCORE and FWD_LCORE must differ (testpmd needs both)")
        if cfg["rounds"] < 1 or cfg["window"] <= 0 or cfg["warmup"] < 0:
            raise CannotRun("need ROUNDS >= 1, WINDOW > 0, WARMUP >= 0")
        progs = []
        if only in ("", "testpmd"):
            from shutil import which
            if not which(cfg["testpmd"]):
                raise CannotRun("%s not found (Debian 12: package dpdk-dev; as root, perf/bench.sh "
                                "installs it with scripts/deps.sh --bench)" % cfg["testpmd"])
            progs.append(Testpmd)
        if only in ("", "rvs"):
            if not os.access(cfg["rvs"], os.X_OK):
                raise CannotRun("%s not found: build it (cargo build --release) or set RVS=, "
                                "or ONLY=testpmd" % cfg["rvs"])
            progs.append(Rvs)
        os.makedirs(OUT, exist_ok=True)
        # The binary may be older than the tree's HEAD: record what it says it was built from.
        rvs_version = ""
        if Rvs in progs:
            try:
                rvs_version = subprocess.run([cfg["rvs"], "version"], capture_output=True,
                                             text=True, timeout=10).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                rvs_version = "rvs version unknown"

        log("bench: %s; rounds %d, warmup %gs, window %gs; main lcore %d, forwarding lcore %d "
            "(both programs)" % (" ".join(p.name for p in progs), cfg["rounds"], cfg["warmup"],
                                 cfg["window"], cfg["main_lcore"], cfg["fwd_lcore"]))
        results = {}
        loads = {}
        for v in variants:
            pcap, frames = pcap_for(v, cfg)
            # Other work on the machine skews both programs: record the 1-minute load average.
            try:
                with open("/proc/loadavg") as f:
                    loads[v] = f.read().split()[0]
            except OSError:
                loads[v] = "?"
            # net_pcap infinite_rx keeps every frame of the file in an mbuf of the rx pool.
            mbufs = frames + 4 * cfg["descriptors"] + 16384
            res = {p.name: [] for p in progs}
            notes = {}
            for r in range(cfg["rounds"]):
                order = progs if r % 2 == 0 else list(reversed(progs))
                for P in order:
                    logpath = os.path.join(OUT, "bench-%s-%s-%d.log" % (P.name, v, r + 1))
                    prog = P(cfg, v, pcap, mbufs, logpath)
                    mpps, extra = measure(prog, cfg)
                    res[P.name].append(mpps)
                    desc = ", ".join("%s %s" % (k, extra[k]) for k in sorted(extra)
                                     if extra[k] not in (0, {}))
                    if desc:
                        desc = "(window: " + desc + ")"
                    log("  %-11s round %d  %-7s %7.3f Mpps  %s" % (v, r + 1, P.name, mpps, desc))
                    if P is Rvs:
                        for reason, n in extra.get("drops", {}).items():
                            notes.setdefault(reason, []).append(n / cfg["window"] / 1e6)
            results[v] = (res, notes)

        # Table.
        rows = []
        print()
        print("%-12s %-28s %-28s %-28s" % ("variant", "testpmd Mpps med (min-max)",
                                             "rvs Mpps med (min-max)", "rvs/testpmd med (min-max)"))
        date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        for v in variants:
            res, notes = results[v]
            tp, rv = res.get("testpmd", []), res.get("rvs", [])
            ratios = [b / a for a, b in zip(tp, rv) if a > 0] if tp and rv else []
            print("%-12s %-28s %-28s %-28s" % (v, fmt_spread(tp), fmt_spread(rv),
                                                fmt_spread(ratios, "%.2f")))
            note = []
            if v == "syn" and rv:
                note.append("flow table %d" % cfg["syn_table"])
            if notes:
                # Median drop rate per reason over the rounds (in the window, frames/s).
                note.append("rvs drops " + ", ".join(
                    "%s %.3g/s" % (why, statistics.median(v) * 1e6)
                    for why, v in sorted(notes.items())))
            note.append("load %s" % loads[v])
            if only:
                note.append("ONLY=" + only)
            if cfg.get("huge"):
                note.append("HUGE=1 (2 MiB pages)")
            if rvs_version:
                note.append(rvs_version)
            rows.append([date, commit(), machine(), v,
                         "%dx%gs" % (cfg["rounds"], cfg["window"]),
                         fmt_spread(tp), fmt_spread(rv), fmt_spread(ratios, "%.2f"),
                         "; ".join(note)])
        results_path = os.environ.get("RESULTS", os.path.join(HERE, "results.md"))
        append_results(results_path, rows)
        print("\nappended %d row(s) to %s" % (len(rows), results_path))
        return 0
    except CannotRun as e:
        log("bench: cannot run: %s" % e)
        return 2
    except KeyboardInterrupt:
        log("bench: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
