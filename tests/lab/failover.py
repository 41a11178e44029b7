#!/usr/bin/env python3
"""Director failover under load, measured from outside rvs (the HA labs' workload).

    failover.py run --client-ns NS --url URL --size BYTES [--n 100] --event 'CMD'
                    --sniff NS[,NS...] --mac MAC [--vip IP] [--after 3] [--limit 60]
                    [--new-url URL] [--out FILE]
    failover.py sniff --mac MAC --vip IP --limit S     (run inside a real server's namespace)

`run` starts N downloads of URL from the client namespace (curl, each bounded), waits `--after`
seconds, runs the event command (a kill, a start) and notes the time, and measures:
- takeover_s: from the event to the first frame to the VIP that the surviving director (its
  MAC, `--mac`) forwarded to a real server, as seen on the real servers' links (one `sniff`
  process per namespace in `--sniff`, started before the event);
- new_conn_s: from the event to the first new connection that completes (a request to
  `--new-url`, default URL, retried every 50 ms, each bounded);
- the downloads: how many completed with exactly `--size` bytes and HTTP 200.
Prints one JSON object (and writes it to `--out`). Exit status 0 when it could measure, whatever
the numbers; the calling test decides what is good enough.

`sniff` prints the Unix time of the first Ethernet frame from MAC carrying IPv4 to VIP, then
exits (or prints nothing by `--limit`).
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import time

ETH_P_ALL = 0x0003


def sniff(args):
    mac = bytes.fromhex(args.mac.replace(":", ""))
    vip = socket.inet_aton(args.vip)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((args.ifname, 0))
    s.settimeout(0.2)
    print("ready", flush=True)
    end = time.time() + args.limit
    while time.time() < end:
        try:
            f = s.recv(128)
        except socket.timeout:
            continue
        # Ethernet: dst 0..6, src 6..12, type 12..14; IPv4 destination at 14 + 16.
        if len(f) >= 34 and f[6:12] == mac and f[12:14] == b"\x08\x00" and f[30:34] == vip:
            print(f"{time.time():.6f}", flush=True)
            return 0
    return 0


def curl(ns, url, limit):
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "--max-time", str(limit),
         "-w", "%{http_code} %{size_download}", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def run(args):
    me = os.path.abspath(__file__)
    sniffers = []
    for ns in filter(None, args.sniff.split(",")):
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, me, "sniff", "--mac", args.mac,
             "--vip", args.vip, "--limit", str(args.limit)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"sniffer in {ns} did not start")
        sniffers.append(p)
    downloads = [curl(args.client_ns, args.url, args.limit) for _ in range(args.n)]
    time.sleep(args.after)
    early = sum(1 for d in downloads if d.poll() is not None)
    event_t = time.time()
    subprocess.run(args.event, shell=True, check=False)
    new_conn_s = None
    end = event_t + args.limit
    new_url = args.new_url or args.url
    while time.time() < end:
        r = subprocess.run(
            ["ip", "netns", "exec", args.client_ns, "curl", "-s", "-o", "/dev/null",
             "--max-time", "1", "-w", "%{http_code}", new_url],
            capture_output=True, text=True, check=False)
        if r.stdout.strip() == "200":
            new_conn_s = time.time() - event_t
            break
        time.sleep(0.05)
    firsts = []
    for p in sniffers:
        try:
            out, _ = p.communicate(timeout=args.limit)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        firsts += [float(x) for x in out.split() if x.replace(".", "").isdigit()]
    results = []
    for d in downloads:
        try:
            out, _ = d.communicate(timeout=args.limit + 5)
        except subprocess.TimeoutExpired:
            d.kill()
            out, _ = d.communicate()
        results.append(out.strip())
    ok = sum(1 for r in results if r == f"200 {args.size}")
    report = {
        "downloads": args.n,
        "intact": ok,
        "broken": [r for r in results if r != f"200 {args.size}"][:10],
        "finished_before_event": early,
        "takeover_s": round(min(firsts) - event_t, 3) if firsts else None,
        "new_conn_s": round(new_conn_s, 3) if new_conn_s is not None else None,
    }
    line = json.dumps(report)
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--client-ns", required=True)
    r.add_argument("--url", required=True)
    r.add_argument("--new-url")
    r.add_argument("--size", type=int, required=True)
    r.add_argument("--n", type=int, default=100)
    r.add_argument("--event", required=True)
    r.add_argument("--sniff", default="")
    r.add_argument("--mac", required=True)
    r.add_argument("--vip", required=True)
    r.add_argument("--after", type=float, default=3.0)
    r.add_argument("--limit", type=float, default=60.0)
    r.add_argument("--out")
    s = sub.add_parser("sniff")
    s.add_argument("--mac", required=True)
    s.add_argument("--vip", required=True)
    s.add_argument("--ifname", default="veth0")
    s.add_argument("--limit", type=float, default=60.0)
    a = ap.parse_args()
    return sniff(a) if a.cmd == "sniff" else run(a)


if __name__ == "__main__":
    sys.exit(main())
