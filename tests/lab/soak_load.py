#!/usr/bin/env python3
"""The soak's client load, its sampler and its verdict (tests/soak.sh drives them).

    soak_load.py load --vip IP --port N --out FILE --stop FILE --seconds S
                      [--rate R] [--conc C] [--downloads D] [--slow-path P] [--slow-bytes B]
        Short HTTP/1.0 GETs of "/" (a new connection each) at about R per second over C threads,
        plus D threads downloading P (B bytes) one after another. One line per request:
        `KIND T0 T1 RESULT SERVER BYTES WHY` (KIND short|long, RESULT ok|fail|abort, times in
        epoch seconds). Runs until FILE --stop exists or S seconds passed (then running
        downloads are aborted, not failed).
    soak_load.py sample --socket PATH --pid PID --out CSV --requests FILE --stop FILE
                        --interval S --seconds MAX
        Every S seconds until --stop exists (at most MAX seconds): one CSV row of the daemon's
        RSS, mempool, flows per worker, neighbour entries, drops by reason and the requests so
        far.
    soak_load.py stats --socket PATH --pid PID
        One reading (as JSON) of the same figures, e.g. at idle.
    soak_load.py census --socket PATH
        The flow table by state, and how many flows it holds unlisted (server gone, or expired
        and not yet swept).
    soak_load.py neigh --socket PATH --addr IP
        The MAC the daemon holds for real server IP ("-" when unresolved).
    soak_load.py analyse --samples CSV --requests FILE --events FILE --idle-start JSON
                         --idle-end JSON [--table OUT] [--pool-slack N]
        Classify every failed request against the deliberate breaks in the events file, check
        that nothing grows, print the table and the verdict; exit 1 when the soak failed.
    soak_load.py selftest
        Checks of the verdict's own rules on made-up requests and samples (soak.sh runs it
        first: a verdict that cannot fail proves nothing).

Standard library only; every socket operation has a timeout.
"""

import argparse
import csv
import errno
import json
import os
import select
import socket
import sys
import threading
import time

RPC_TIMEOUT = 5.0

# --- the daemon: JSON-RPC and /proc -------------------------------------------------------------


def rpc(path, method, params=None):
    """One JSON-RPC call on the control socket; the result, or an exception."""
    req = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        req["params"] = params
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(RPC_TIMEOUT)
    try:
        s.connect(path)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise OSError("control socket closed without an answer")
            buf += chunk
    finally:
        s.close()
    msg = json.loads(buf.split(b"\n", 1)[0])
    if "error" in msg:
        raise OSError(f"{method}: {msg['error']}")
    return msg["result"]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def dpdk_rss_kb(pid):
    """Resident kB of DPDK's own memory (hugepage or --no-huge memfd segments and the runtime
    files under /run/dpdk): fixed in size by the EAL's -m, it fills as mbufs are first used.
    The rest of the RSS is the daemon's heap, stacks and libraries."""
    total, dpdk = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                name = line.split()[5] if len(line.split()) > 5 else ""
                dpdk = (name.startswith(("/memfd:nohuge", "/dev/hugepages", "/run/dpdk/",
                                         "/var/run/dpdk/")) or "rtemap" in name)
            elif dpdk and first == "Rss:":
                total += int(line.split()[1])
    return total


def reading(sock, pid):
    """The figures the soak follows, from one `stats` call and /proc."""
    st = rpc(sock, "stats")
    pool = st.get("mempool", {})
    neigh = st.get("neighbours", {})
    rss = rss_kb(pid)
    dpdk = dpdk_rss_kb(pid)
    return {
        "rss_kb": rss,
        "rss_dpdk_kb": dpdk,
        "rss_other_kb": rss - dpdk,
        "pool_in_use": pool.get("in_use", 0),
        "pool_free": pool.get("free", 0),
        "pool_size": pool.get("size", 0),
        "pool_cache": pool.get("cache_size", 0),
        "flows": [w.get("flows", 0) for w in st.get("workers", [])],
        "neigh": neigh.get("entries", 0),
        "drops": {k: v for k, v in sorted(st.get("drops", {}).items()) if v},
        "rx_nombuf": st.get("port", {}).get("rx_nombuf", 0),
        "imissed": st.get("port", {}).get("imissed", 0),
        "oerrors": st.get("port", {}).get("oerrors", 0),
    }


# --- the load -------------------------------------------------------------------------------------


class Log:
    """Request lines, appended and flushed one at a time (the sampler counts them)."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, kind, t0, t1, result, r):
        with self.lock:
            self.f.write(f"{kind} {t0:.3f} {t1:.3f} {result} {r.server} {r.nbytes} {r.cport} "
                         f"{r.why}\n")


class Answer:
    """What one GET got: HTTP status (0: none), the server that answered ("-": unknown), body
    bytes, the client port, and why it is incomplete ("-": it is not)."""

    def __init__(self, status=0, server="-", nbytes=0, cport=0, why="-"):
        self.status, self.server, self.nbytes, self.cport, self.why = \
            status, server, nbytes, cport, why


def http_get(vip, port, path, timeout, stopped=None, stall=None, chunk_timeout=0.5):
    """GET path over a new connection. `why` is 'stalled' when nothing arrived for `stall`
    seconds (a connection the director drops hangs rather than fails), 'abort' when
    `stopped()` became true while data still flowed."""
    deadline = time.monotonic() + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    a = Answer()
    try:
        # Non-blocking connect: the kernel picks the port as usual and we learn it at once.
        s.setblocking(False)
        err = s.connect_ex((vip, port))
        a.cport = s.getsockname()[1]
        if err not in (0, errno.EINPROGRESS):
            a.why = f"connect-{err}"
            return a
        _, w, _ = select.select([], [s], [], timeout)
        if not w:
            a.why = "connect-timeout"
            return a
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            a.why = f"connect-{err}"
            return a
        s.setblocking(True)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {vip}\r\nUser-Agent: rvs-soak\r\n\r\n".encode())
        buf, head, first_body = b"", None, b""
        last_data = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            quiet = time.monotonic() - last_data
            if left <= 0:
                a.why = "timeout"
            elif stall is not None and quiet > stall:
                a.why = "stalled"
            elif stopped is not None and stopped():
                a.why = "abort" if quiet < 3.0 else "stalled"
            if a.why != "-":
                a.server = server_of(buf if head is None else head)
                return a
            s.settimeout(min(left, chunk_timeout) if stopped is not None else left)
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            last_data = time.monotonic()
            if head is None:
                buf += data
                if b"\r\n\r\n" in buf:
                    head, rest = buf.split(b"\r\n\r\n", 1)
                    a.nbytes = len(rest)
                    first_body = rest[:64]
            else:
                a.nbytes += len(data)
                if len(first_body) < 64:
                    first_body += data[: 64 - len(first_body)]
        if head is None:
            a.why = "no-header"
            return a
        a.server = server_of(head)
        try:
            a.status = int(head.split(b"\r\n")[0].split()[1])
        except (IndexError, ValueError):
            a.why = "bad-status"
            return a
        if a.server == "-" and first_body.strip():
            a.server = first_body.strip().decode(errors="replace").split()[0]
        return a
    except OSError as e:
        a.why = f"io-{e.errno}"
        return a
    finally:
        s.close()


def director_flow(sock, client, cport):
    """What the director lists for the flow from client:cport, e.g. 'rs=198.18.0.13/SYN_RECV';
    'unlisted' when `connections` has no such flow (never seen, or its server is gone); then
    the drop counters at that moment, e.g. 'unlisted;no_dest=118'."""
    try:
        for c in rpc(sock, "connections", {"limit": 1000000}).get("connections", []):
            if c.get("client") == client and c.get("cport") == cport:
                return f"rs={c.get('rs')}/{c.get('state')}"
        drops = rpc(sock, "stats").get("drops", {})
        return "unlisted;" + (",".join(f"{k}={v}" for k, v in sorted(drops.items())) or "-")
    except (OSError, ValueError):
        return "unknown"


def server_of(head):
    """The X-Server header's value in (the start of) a response, or '-'."""
    for h in head.split(b"\r\n")[1:]:
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"x-server":
            return v.strip().decode(errors="replace") or "-"
    return "-"


def cmd_load(a):
    log = Log(a.out)
    end = time.monotonic() + a.seconds
    done = threading.Event()

    def stopped():
        return done.is_set() or time.monotonic() >= end or os.path.exists(a.stop)

    def short_worker():
        interval = a.conc / a.rate
        nxt = time.monotonic()
        while not stopped():
            t0 = time.time()
            r = http_get(a.vip, a.port, "/", a.timeout)
            t1 = time.time()
            ok = r.why == "-" and r.status == 200 and r.server.startswith("rs")
            if not ok and r.why == "-":
                r.why = f"status-{r.status}"
            if r.why == "connect-timeout" and a.socket:
                r.why += ":" + director_flow(a.socket, a.client, r.cport)
            log.write("short", t0, t1, "ok" if ok else "fail", r)
            nxt = max(nxt + interval, time.monotonic())
            while not stopped() and time.monotonic() < nxt:
                time.sleep(min(0.05, nxt - time.monotonic()))

    def long_worker():
        while not stopped():
            t0 = time.time()
            r = http_get(a.vip, a.port, a.slow_path, a.long_timeout, stopped, stall=a.stall)
            t1 = time.time()
            if r.why == "abort":
                result = "abort"
            elif r.why == "-" and r.status == 200 and r.nbytes == a.slow_bytes:
                result = "ok"
            else:
                result = "fail"
                if r.why == "-":
                    r.why = f"status-{r.status}-bytes-{r.nbytes}"
            log.write("long", t0, t1, result, r)
            if result != "ok":
                time.sleep(0.5)  # a failing path is not hammered

    threads = [threading.Thread(target=short_worker, daemon=True) for _ in range(a.conc)]
    threads += [threading.Thread(target=long_worker, daemon=True) for _ in range(a.downloads)]
    for t in threads:
        t.start()
    try:
        while not stopped():
            time.sleep(0.2)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=a.timeout + 2)
    return 0


# --- sampling -------------------------------------------------------------------------------------


def count_requests(path):
    c = {"ok": 0, "fail": 0, "long_ok": 0, "long_fail": 0}
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) < 4:
                    continue
                if p[0] == "short" and p[3] in ("ok", "fail"):
                    c[p[3]] += 1
                elif p[0] == "long" and p[3] in ("ok", "fail"):
                    c["long_" + p[3]] += 1
    except FileNotFoundError:
        pass
    return c


FIELDS = ["t", "rss_kb", "rss_dpdk_kb", "rss_other_kb", "pool_in_use", "pool_free", "flows", "flows_total", "neigh",
          "req_ok", "req_fail", "dl_ok", "dl_fail", "rx_nombuf", "imissed", "oerrors", "drops"]


def cmd_sample(a):
    start = time.monotonic()
    t_wall = time.time()
    with open(a.out, "w", newline="", buffering=1) as f:
        w = csv.writer(f)
        w.writerow(["epoch"] + FIELDS)
        k = 0
        while True:
            target = start + k * a.interval
            while time.monotonic() < target:
                if os.path.exists(a.stop):
                    return 0
                time.sleep(min(0.2, target - time.monotonic()))
            if os.path.exists(a.stop) or time.monotonic() - start > a.seconds:
                return 0
            try:
                r = reading(a.socket, a.pid)
            except (OSError, ValueError) as e:
                print(f"sample: {e}", file=sys.stderr)
                r = None
            c = count_requests(a.requests)
            now = time.time()
            if r is not None:
                w.writerow([f"{now:.3f}", f"{now - t_wall:.0f}", r["rss_kb"], r["rss_dpdk_kb"],
                            r["rss_other_kb"], r["pool_in_use"],
                            r["pool_free"], "/".join(str(x) for x in r["flows"]), sum(r["flows"]),
                            r["neigh"], c["ok"], c["fail"], c["long_ok"], c["long_fail"],
                            r["rx_nombuf"], r["imissed"], r["oerrors"],
                            " ".join(f"{k2}={v}" for k2, v in r["drops"].items()) or "-"])
            k += 1


def cmd_stats(a):
    print(json.dumps(reading(a.socket, a.pid)))
    return 0


def cmd_census(a):
    """The flow table at one moment: listed flows by state (with the longest time left), and how
    many it holds unlisted: `connections` skips flows whose real server is gone and expired
    ones the sweep (a full pass about every 2 s) has not reached yet."""
    st = rpc(a.socket, "stats")
    total = sum(w.get("flows", 0) for w in st.get("workers", []))
    conns = rpc(a.socket, "connections", {"limit": 1000000}).get("connections", [])
    by = {}
    for c in conns:
        if c.get("template"):
            continue
        n, left = by.get(c["state"], (0, 0))
        by[c["state"]] = (n + 1, max(left, c.get("expire_s", 0)))
    listed = sum(n for n, _ in by.values())
    parts = [f"{k} {n} (longest {left} s left)" for k, (n, left) in sorted(by.items())]
    print(f"flows {total}: " + (", ".join(parts) or "none listed") +
          f"; not listed (server gone, or expired and not yet swept) {max(total - listed, 0)}")
    return 0


def cmd_neigh(a):
    for svc in rpc(a.socket, "list").get("services", []):
        for rs in svc.get("servers", []):
            if rs.get("addr") == a.addr:
                n = rs.get("neighbour", {})
                print(n.get("mac", "-"))
                return 0
    print("-")
    return 0


# --- the verdict ------------------------------------------------------------------------------------

# A failed request that overlaps a deliberate break is excused when it started before the break
# ended plus this grace (a SYN lost in the break is retried ~1 s later; the short timeout is 3 s).
GRACE = 1.5


def load_events(path):
    """Windows (kind, begin, end, detail) and instants (kind, at, detail) from the events file:
    lines `EPOCH KIND begin|end|at DETAIL...`. A window never closed ends at +inf."""
    open_w, windows, instants = {}, [], []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 3:
                continue
            t, kind, phase, detail = float(p[0]), p[1], p[2], " ".join(p[3:])
            if phase == "begin":
                open_w[kind] = (t, detail)
            elif phase == "end" and kind in open_w:
                b, d = open_w.pop(kind)
                windows.append((kind, b, t, d))
            elif phase == "at":
                instants.append((kind, t, detail))
    for kind, (b, d) in open_w.items():
        windows.append((kind, b, float("inf"), d))
    return windows, instants


def excuse(kind, t0, t1, server, windows, instants):
    """The deliberate break that explains a failed request, or None."""
    for wk, b, e, d in windows:
        if not (t0 <= e + GRACE and t1 >= b):
            continue
        if wk in ("link", "restore"):
            return wk
        # The MAC change breaks only requests to that server (or whose server is unknown).
        if wk == "mac" and (server == "-" or server == d.split()[0]):
            return wk
    for ik, t, d in instants:
        # A download from a removed server breaks when its server goes.
        if ik == "remove" and t0 <= t <= t1 and (server == "-" or server == d.split()[0]):
            return "remove"
    return None


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def trend(rows, key, rel, slack):
    """(ok, second-third mean, last-third mean): the last third of the run must not sit above
    the second third by more than rel * mean + slack (the load's own working set is reached
    within the first third)."""
    vals = [float(r[key]) for r in rows]
    n = len(vals)
    if n < 3:
        return True, mean(vals), mean(vals)
    mid = vals[n // 3: 2 * n // 3]
    last = vals[2 * n // 3:]
    m, l2 = mean(mid), mean(last)
    return l2 <= m * (1 + rel) + slack, m, l2


# A flow the director left without a server (a restore or a removal while it lived) stays in the
# table until it times out and takes every new connection that reuses its client port: the SYN
# is dropped as no_dest. A connection broken mid-way leaves an ESTABLISHED flow (900 s); one that
# had just ended leaves its FIN_WAIT flow (--fin-timeout after its last packet). Such a failure
# is the break's doing, counted apart as "<break>-dead-port".
DEAD_FLOW_S = 900 + 30


class Request:
    def __init__(self, kind, t0, t1, result, server, cport, why, line):
        self.kind, self.t0, self.t1, self.result = kind, t0, t1, result
        self.server, self.cport, self.why, self.line = server, cport, why, line


def parse_request(line):
    p = line.split()
    if len(p) < 8:
        return None
    try:
        return Request(p[0], float(p[1]), float(p[2]), p[3], p[4], int(p[6]), p[7], line.strip())
    except ValueError:
        return None


def dead_flow(r, windows, instants, fin_s):
    """(since, until, cause) when a break may have left r's flow without a server, else None;
    of several, the one that leaves it dead longest."""
    found = []
    breaks = [(b, e, "restore") for wk, b, e, _ in windows if wk == "restore"]
    breaks += [(t, t, "remove") for ik, t, d in instants
               if ik == "remove" and d.split()[:1] == [r.server]]
    for b, e, cause in breaks:
        if r.t0 <= e + GRACE and r.t1 >= b:
            found.append((b, r.t1 + DEAD_FLOW_S, cause))
        elif r.t1 < b <= r.t1 + fin_s + GRACE:
            found.append((b, r.t1 + fin_s + GRACE, cause))
    return max(found, key=lambda f: f[1], default=None)


def classify(records, windows, instants, stall, fin_s=10.0, strict_restore=False):
    """(tally of good ones, {kind/break: n} of excused failures, [unexplained lines]).
    `fin_s`: the director's FIN_WAIT timeout; `strict_restore`: a rules restore must not break
    connections (nothing is excused for it)."""
    tally = {"short_ok": 0, "long_ok": 0, "abort": 0}
    excused, unexplained = {}, []
    # Ports whose flow a break may have left without a server: port -> (since, until, cause).
    killed = {}
    for r in sorted(records, key=lambda r: r.t0):
        t0, t1 = r.t0, r.t1
        if r.why == "stalled":
            # It broke when its data stopped: `stall` seconds before it was given up.
            t0, t1 = max(t0, t1 - stall - 2.0), t1 - stall + 1.0
        why = None
        if r.result == "ok":
            tally[f"{r.kind}_ok"] += 1
        elif r.result == "abort":
            tally["abort"] += 1
        else:
            why = excuse(r.kind, t0, t1, r.server, windows, instants)
            since, until, cause = killed.get(r.cport, (0.0, -1.0, ""))
            if why is None and r.why.startswith("connect-timeout") and since <= r.t0 <= until:
                why = f"{cause}-dead-port"
            if strict_restore and why in ("restore", "restore-dead-port"):
                why = None
            if why is None:
                unexplained.append(r.line)
            else:
                excused[f"{r.kind}/{why}"] = excused.get(f"{r.kind}/{why}", 0) + 1
        dead = dead_flow(r, windows, instants, fin_s) if r.cport else None
        # A connect that hit a dead flow made no flow of its own: the older, longer-lived
        # dead flow stays the one that counts.
        if dead is not None and dead[1] > killed.get(r.cport, (0.0, -1.0, ""))[1]:
            killed[r.cport] = dead
    return tally, excused, unexplained


def cmd_analyse(a):
    with open(a.samples) as f:
        rows = list(csv.DictReader(f))
    windows, instants = load_events(a.events)
    idle0 = json.loads(open(a.idle_start).read())
    idle1 = json.loads(open(a.idle_end).read())
    problems = []

    # Requests.
    with open(a.requests) as f:
        records = [r for r in (parse_request(line) for line in f) if r is not None]
    tally, excused, unexplained = classify(records, windows, instants, a.stall, a.fin_timeout,
                                           a.strict_restore)
    if unexplained:
        problems.append(f"{len(unexplained)} request(s) failed outside the deliberate breaks")

    # Growth.
    # The daemon's own memory must be flat; DPDK's (fixed by -m) may fill as more mbufs of
    # the pool are first used, which the mempool's in-use count (and the leak check) covers.
    checks = [
        ("rss_other_kb", "RSS w/o DPDK (kB)", 0.02, 1024),
        ("pool_in_use", "mempool in use", 0.1, 32),
        ("flows_total", "flows", 0.25, 100),
        ("neigh", "neighbour entries", 0.0, 0.5),
    ]
    trend_lines = []
    for key, label, rel, slack in checks:
        ok, m, l2 = trend(rows, key, rel, slack)
        trend_lines.append(f"  {label:18} second third {m:10.1f}   last third {l2:10.1f}   "
                           f"{'flat' if ok else 'GROWING'}")
        if not ok:
            problems.append(f"{label} grows: {m:.1f} -> {l2:.1f}")
    leaked = idle1["pool_in_use"] - idle0["pool_in_use"]
    if leaked > a.pool_slack:
        problems.append(f"mbufs leaked: in use {idle0['pool_in_use']} at idle before the load, "
                        f"{idle1['pool_in_use']} after (slack {a.pool_slack})")

    # The table.
    out = []
    nw = max((len(r["flows"].split("/")) for r in rows), default=1)
    flows_hdr = "flows" if nw == 1 else "flows/worker"
    out.append(f"{'t(s)':>5} {'RSS(MB)':>8} {'DPDK':>6} {'other':>6} {'pool use':>8} {'pool free':>9} {flows_hdr:>12} "
               f"{'neigh':>5} {'req ok':>7} {'failed':>6} {'dl ok':>5} {'dl fail':>7}  drops (cumulative)")
    for r in rows:
        out.append(f"{r['t']:>5} {int(r['rss_kb']) / 1024:8.1f} "
                   f"{int(r['rss_dpdk_kb']) / 1024:6.1f} {int(r['rss_other_kb']) / 1024:6.1f} "
                   f"{r['pool_in_use']:>8} "
                   f"{r['pool_free']:>9} {r['flows']:>12} {r['neigh']:>5} {r['req_ok']:>7} "
                   f"{r['req_fail']:>6} {r['dl_ok']:>5} {r['dl_fail']:>7}  {r['drops']}")
    out.append("")
    out.append(f"idle before the load: mempool in use {idle0['pool_in_use']} of {idle0['pool_size']} "
               f"(cache {idle0['pool_cache']}/lcore), RSS {idle0['rss_kb'] / 1024:.1f} MB "
               f"(DPDK {idle0['rss_dpdk_kb'] / 1024:.1f}, other {idle0['rss_other_kb'] / 1024:.1f}), "
               f"neighbours {idle0['neigh']}")
    out.append(f"idle after the load:  mempool in use {idle1['pool_in_use']}, RSS "
               f"{idle1['rss_kb'] / 1024:.1f} MB (DPDK {idle1['rss_dpdk_kb'] / 1024:.1f}, other "
               f"{idle1['rss_other_kb'] / 1024:.1f}), neighbours {idle1['neigh']}, flows {sum(idle1['flows'])}, "
               f"port rx_nombuf {idle1['rx_nombuf']} imissed {idle1.get('imissed', 0)} "
               f"oerrors {idle1.get('oerrors', 0)}")
    out.append(f"requests: {tally['short_ok']} short ok, {tally['long_ok']} downloads ok, "
               f"{tally['abort']} downloads cut by the end of the run")
    kinds = {}
    for wk, b, e, d in windows:
        kinds.setdefault(wk, []).append(e - b)
    for ik, t, d in instants:
        if ik == "remove":
            kinds.setdefault(ik, []).append(0.0)
    out.append("deliberate breaks: " + (", ".join(
        f"{k} x{len(v)}" + (f" (longest {max(v):.1f} s)" if max(v) > 0 else "")
        for k, v in sorted(kinds.items())) or "none"))
    out.append("failed in a deliberate break: " + (", ".join(
        f"{k} {v}" for k, v in sorted(excused.items())) or "none"))
    out.append(f"failed otherwise: {len(unexplained)}")
    for line in unexplained[:20]:
        out.append(f"    {line}")
    out.append("growth (mean of the second third vs the last third of the samples):")
    out.extend(trend_lines)
    out.append(f"mbufs: in use at idle {idle0['pool_in_use']} before, {idle1['pool_in_use']} after "
               f"({'no leak' if leaked <= a.pool_slack else 'LEAK'}, slack {a.pool_slack})")
    out.append("verdict: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
    text = "\n".join(out)
    print(text)
    if a.table:
        with open(a.table, "w") as f:
            f.write(text + "\n")
    return 0 if not problems else 1


def cmd_selftest(_a):
    inf = float("inf")
    windows = [("link", 100.0, 102.0, ""), ("mac", 200.0, 230.0, "rs2 02:00:00:00:00:01"),
               ("restore", 300.0, 300.2, ""), ("mac", 400.0, inf, "rs2 x")]
    instants = [("remove", 500.0, "rs3"), ("drain", 490.0, "rs3")]
    cases = [
        # (kind, t0, t1, server, expected excuse)
        ("short", 50.0, 53.0, "-", None),           # no break near it
        ("short", 99.0, 102.0, "-", "link"),        # overlaps the link window
        ("short", 103.0, 106.0, "-", "link"),       # starts within the grace after it
        ("short", 104.0, 107.0, "-", None),         # after the grace
        ("short", 210.0, 213.0, "-", "mac"),        # server unknown, in the MAC window
        ("short", 210.0, 213.0, "rs1", None),       # rs1 is not the server whose MAC changed
        ("long", 290.0, 310.0, "rs1", "restore"),
        ("long", 495.0, 501.0, "rs3", "remove"),
        ("long", 495.0, 501.0, "rs1", None),        # rs1 was not removed
        ("long", 480.0, 499.0, "rs3", None),        # ended before the removal
        ("short", 450.0, 453.0, "-", "mac"),        # a window never closed lasts to the end
    ]
    bad = []
    for kind, t0, t1, server, want in cases:
        got = excuse(kind, t0, t1, server, windows, instants)
        if got != want:
            bad.append(f"excuse({kind}, {t0}, {t1}, {server}) = {got}, want {want}")
    # A port whose connection a restore broke blackholes a later connect from it (900 s).
    def req(t0, t1, result, cport, why="-", server="rs1", kind="short"):
        return Request(kind, t0, t1, result, server, cport, why, f"{kind} {t0} {cport} {why}")
    recs = [
        req(299.0, 299.9, "ok", 40001),                     # ended just before the restore
        req(290.0, 310.0, "fail", 40002, "stalled", kind="long"),  # broken by it
        req(299.5, 300.1, "ok", 40003),                     # straddled it: its flow may be dead
        req(495.0, 508.5, "fail", 40004, "stalled", "rs3", "long"),  # rs3 removed under it
        req(700.0, 703.0, "fail", 40002, "connect-timeout:unlisted"),
        req(700.0, 703.0, "fail", 40003, "connect-timeout:unlisted"),
        req(900.0, 903.0, "fail", 40004, "connect-timeout:unlisted"),
        req(700.0, 703.0, "fail", 40005, "connect-timeout:unlisted"),   # never used before
        req(1300.0, 1303.0, "fail", 40001, "connect-timeout:unlisted"),
        req(1300.0, 1303.0, "fail", 40003, "connect-timeout:unlisted"),  # > 900 s later
        req(701.0, 702.0, "fail", 40002, "status-500"),    # not a connect failure
        req(292.0, 292.1, "ok", 40006),                     # its FIN_WAIT flow lives at 300
        req(302.0, 305.0, "fail", 40006, "connect-timeout:unlisted"),  # so this SYN hit it
        req(320.0, 323.0, "fail", 40006, "connect-timeout:unlisted"),  # but it was gone by 320
        req(280.0, 280.1, "ok", 40007),                     # ended 20 s before: flow gone
        req(305.0, 308.0, "fail", 40007, "connect-timeout:unlisted"),
        req(497.0, 499.0, "fail", 40002, "connect-timeout:unlisted"),  # hit the dead flow, made
        req(1000.0, 1003.0, "fail", 40002, "connect-timeout:unlisted"),  # none: still dead
    ]
    _, exc, unexp = classify(recs, windows, instants, 8.0)
    want_exc = {"long/restore": 1, "long/remove": 1, "short/restore-dead-port": 5,
                "short/remove-dead-port": 1}
    if exc != want_exc:
        bad.append(f"classify excused {exc}, want {want_exc}")
    if len(unexp) != 6:
        bad.append(f"classify left {len(unexp)} unexplained, want 6: {unexp}")
    _, exc, unexp = classify(recs, windows, instants, 8.0, strict_restore=True)
    if exc != {"long/remove": 1, "short/remove-dead-port": 1} or len(unexp) != 12:
        bad.append(f"strict: excused {exc}, {len(unexp)} unexplained; want remove 1, "
                   f"remove-dead-port 1, 12 unexplained")
    # rs3 removed under a download (dead 900 s) and a restore just after it ended (its FIN_WAIT
    # span): the longer-lived cause counts.
    both = [req(480.0, 509.0, "fail", 40008, "stalled", "rs3", "long"),
            req(600.0, 603.0, "fail", 40008, "connect-timeout")]
    _, exc, unexp = classify(both, windows + [("restore", 511.0, 511.2, "")], instants, 8.0)
    if exc != {"long/remove": 1, "short/remove-dead-port": 1} or unexp:
        bad.append(f"two causes: excused {exc}, unexplained {unexp}")
    flat = [{"v": 100 + (i % 3)} for i in range(30)]
    rising = [{"v": 100 + 10 * i} for i in range(30)]
    if not trend(flat, "v", 0.05, 0)[0]:
        bad.append("a flat series was called growing")
    if trend(rising, "v", 0.05, 0)[0]:
        bad.append("a rising series was called flat")
    if not trend(rising[:2], "v", 0.0, 0)[0]:
        bad.append("too few samples must not fail")
    for b in bad:
        print(f"selftest: {b}", file=sys.stderr)
    print(f"selftest: {len(cases) + 7 - len(bad)} of {len(cases) + 7} checks hold")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("load")
    p.add_argument("--vip", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--out", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--rate", type=float, default=40.0)
    p.add_argument("--conc", type=int, default=8)
    p.add_argument("--downloads", type=int, default=2)
    p.add_argument("--slow-path", default="/big.bin")
    p.add_argument("--slow-bytes", type=int, default=1572864)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--long-timeout", type=float, default=60.0)
    p.add_argument("--stall", type=float, default=8.0,
                   help="a download with no data for this long has failed")
    p.add_argument("--socket", help="the director's control socket: a failed connect is "
                   "looked up in its flow table")
    p.add_argument("--client", default="198.18.0.10", help="this client's address")
    p = sub.add_parser("sample")
    p.add_argument("--socket", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--requests", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--seconds", type=float, required=True)
    p = sub.add_parser("stats")
    p.add_argument("--socket", required=True)
    p.add_argument("--pid", type=int, required=True)
    p = sub.add_parser("census")
    p.add_argument("--socket", required=True)
    p = sub.add_parser("neigh")
    p.add_argument("--socket", required=True)
    p.add_argument("--addr", required=True)
    p = sub.add_parser("analyse")
    p.add_argument("--samples", required=True)
    p.add_argument("--requests", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--idle-start", required=True)
    p.add_argument("--idle-end", required=True)
    p.add_argument("--table")
    p.add_argument("--pool-slack", type=int, default=32)
    p.add_argument("--stall", type=float, default=8.0)
    p.add_argument("--fin-timeout", type=float, default=10.0,
                   help="the director's FIN_WAIT timeout (seconds)")
    p.add_argument("--strict-restore", action="store_true",
                   help="failures in a rules restore (and on ports it left dead) count")
    sub.add_parser("selftest")
    a = ap.parse_args()
    return {"load": cmd_load, "sample": cmd_sample, "stats": cmd_stats, "neigh": cmd_neigh, "census": cmd_census,
            "analyse": cmd_analyse, "selftest": cmd_selftest}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
