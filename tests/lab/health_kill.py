#!/usr/bin/env python3
"""Kill a real server's nginx while clients ask the VIP, and measure what rvs's checker does.

    health_kill.py --socket SOCK --lab-dir DIR --vip VIP --rs-name rs1 --rs-addr 198.18.0.11
                   [--kills 5] [--rate 20] [--limit-s 3.0] [--out FILE]

For each of --kills rounds: a client loop (curl from the lab's client namespace, --rate
requests per second, each bounded by --max-time 2) runs throughout; nginx on the real server is
stopped (SIGTERM, its PID file); the control socket's `list` is polled every 20 ms until the
server's health state is "down" (detection time = that moment minus the kill); nginx is started
again and `list` polled until the server is "up", then requests are sent until the server has
answered one again (it is back in rotation).

Prints one JSON object: detection times (s), their median and max, the requests that failed
after a detection (must be 0), the requests that failed between a kill and its detection, and
whether the server answered again after every restart. Exit status 1 when a detection took
longer than --limit-s, a request started after a detection failed, or the server never came
back; 2 on a setup error. Every wait is bounded.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

PREFIX = "rvs"  # the lab's namespace prefix (--ns-prefix)



def rpc(sock_path, method, params=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3.0)
    s.connect(sock_path)
    req = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        req["params"] = params
    s.sendall(json.dumps(req).encode() + b"\n")
    buf = b""
    while b"\n" not in buf:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    s.close()
    resp = json.loads(buf.split(b"\n", 1)[0])
    if "error" in resp:
        raise RuntimeError(f"{method}: {resp['error']}")
    return resp["result"]


def server_state(sock_path, vip, port, addr):
    """The health state ("up", "down", "inhibited") of addr in service vip:port, or None."""
    result = rpc(sock_path, "list")
    services = result["services"] if isinstance(result, dict) else result
    for svc in services:
        spec = svc.get("spec", svc)
        key = spec.get("key", spec)
        if key.get("vip") != vip or key.get("port") != port:
            continue
        for rs in svc.get("servers", []):
            rspec = rs.get("spec", rs)
            if rspec.get("addr") == addr:
                health = rs.get("health") or {}
                return health.get("state", "up")
    return None


class Clients:
    """--rate requests per second from the client namespace; every result recorded."""

    def __init__(self, vip, rate):
        self.vip = vip
        self.period = 1.0 / rate
        self.results = []  # (start, end, body or None)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = []

    def one(self):
        start = time.monotonic()
        try:
            out = subprocess.run(
                ["ip", "netns", "exec", f"{PREFIX}-client", "curl", "-s", "--max-time", "2",
                 f"http://{self.vip}/"],
                capture_output=True, timeout=5, check=False)
            body = out.stdout.decode(errors="replace").strip() if out.returncode == 0 else None
            why = f"curl exit {out.returncode}" if out.returncode else "empty answer"
        except subprocess.TimeoutExpired:
            body, why = None, "curl did not end within 5 s"
        with self.lock:
            self.results.append((start, time.monotonic(), body or None, why))

    def run(self):
        nxt = time.monotonic()
        while not self.stop.is_set():
            t = threading.Thread(target=self.one, daemon=True)
            t.start()
            self.threads.append(t)
            nxt += self.period
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def start(self):
        self.runner = threading.Thread(target=self.run, daemon=True)
        self.runner.start()

    def finish(self):
        self.stop.set()
        self.runner.join(5)
        for t in self.threads:
            t.join(5)


def nginx_pid(lab_dir, name):
    try:
        with open(os.path.join(lab_dir, "pids", f"nginx-{name}.pid")) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop_nginx(lab_dir, name):
    pid = nginx_pid(lab_dir, name)
    if pid is None or not alive(pid):
        raise SystemExit(f"nginx for {name} is not running")
    os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        if not alive(pid):
            return
        time.sleep(0.01)
    raise SystemExit(f"nginx for {name} (pid {pid}) did not stop within 2 s")


def start_nginx(lab_dir, name):
    d = os.path.join(lab_dir, name)
    subprocess.run(
        ["ip", "netns", "exec", f"{PREFIX}-{name}", "nginx", "-c", f"{d}/nginx.conf", "-p", f"{d}/",
         "-e", f"{d}/error.log"], check=True, stdin=subprocess.DEVNULL, timeout=10)
    for _ in range(100):
        pid = nginx_pid(lab_dir, name)
        if pid and alive(pid):
            return
        time.sleep(0.05)
    raise SystemExit(f"nginx for {name} did not start")


def wait_state(args, want, limit):
    """Poll until the server's state is `want`; the moment it was seen, or None after limit s."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if server_state(args.socket, args.vip, args.port, args.rs_addr) == want:
            return time.monotonic()
        time.sleep(0.02)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--lab-dir", required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--rs-name", required=True)
    ap.add_argument("--rs-addr", required=True)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--limit-s", type=float, default=3.0)
    ap.add_argument("--out")
    ap.add_argument("--ns-prefix", default="rvs")
    args = ap.parse_args()
    global PREFIX
    PREFIX = args.ns_prefix

    if server_state(args.socket, args.vip, args.port, args.rs_addr) != "up":
        print(f"{args.rs_addr} is not up in {args.vip}:{args.port} before the test", file=sys.stderr)
        return 2

    clients = Clients(args.vip, args.rate)
    clients.start()
    detections, recoveries, windows, came_back = [], [], [], []
    try:
        time.sleep(1.0)
        for k in range(args.kills):
            killed = time.monotonic()
            stop_nginx(args.lab_dir, args.rs_name)
            seen = wait_state(args, "down", 15.0)
            if seen is None:
                detections.append(None)
                windows.append((killed, None))
                start_nginx(args.lab_dir, args.rs_name)
                wait_state(args, "up", 15.0)
                continue
            detections.append(seen - killed)
            time.sleep(1.5)  # requests after the detection: all must go to the other server
            restarted = time.monotonic()
            start_nginx(args.lab_dir, args.rs_name)
            up = wait_state(args, "up", 15.0)
            windows.append((killed, seen))
            recoveries.append(None if up is None else up - restarted)
            # Back in rotation: it answers one of the client loop's requests within 5 s.
            back = False
            end = time.monotonic() + 5.0
            while time.monotonic() < end and not back:
                time.sleep(0.1)
                with clients.lock:
                    back = any(r[2] == args.rs_name and r[0] > (up or end)
                               for r in clients.results)
            came_back.append(back)
            print(f"round {k + 1}: detected in {seen - killed:.3f} s, "
                  f"back up {'in %.3f s' % (up - restarted) if up else 'never'}, "
                  f"answering again: {back}", file=sys.stderr)
    finally:
        clients.finish()
        if nginx_pid(args.lab_dir, args.rs_name) is None or not alive(
                nginx_pid(args.lab_dir, args.rs_name)):
            try:
                start_nginx(args.lab_dir, args.rs_name)
            except Exception as e:  # noqa: BLE001 - best effort on the way out
                print(f"restarting nginx: {e}", file=sys.stderr)

    # A request counts against the checker when it started after a detection and ended before
    # the next kill; requests in flight at a kill or started before its detection are counted
    # apart.
    kills = [w[0] for w in windows]
    failed_after, failed_before, total = 0, 0, len(clients.results)
    failures = []
    for start, end, body, why in clients.results:
        if body is not None:
            continue
        # The last kill the request lived to see (one in flight at a kill counts with it).
        last = None
        for (killed, seen) in windows:
            if killed <= end:
                last = (killed, seen)
        if last is None:
            failed_after += 1  # before any kill: nothing should fail
            failures.append(f"before any kill: {why}")
        elif last[1] is None or start < last[1]:
            failed_before += 1
        else:
            failed_after += 1
            failures.append(f"started {start - last[1]:.3f} s after a detection "
                            f"({start - last[0]:.3f} s after its kill), took "
                            f"{end - start:.3f} s: {why}")
    ok_det = [d for d in detections if d is not None]
    summary = {
        "kills": len(kills),
        "detection_s": [round(d, 3) if d is not None else None for d in detections],
        "detection_median_s": round(statistics.median(ok_det), 3) if ok_det else None,
        "detection_max_s": round(max(ok_det), 3) if ok_det else None,
        "recovery_s": [round(r, 3) if r is not None else None for r in recoveries],
        "requests": total,
        "failed_after_detection": failed_after,
        "failed_between_kill_and_detection": failed_before,
        "answering_again_after_restart": came_back,
        "failures_after_detection": failures,
    }
    text = json.dumps(summary)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    bad = (len(ok_det) != args.kills or max(ok_det) > args.limit_s or failed_after
           or not all(came_back) or len(came_back) != args.kills)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
