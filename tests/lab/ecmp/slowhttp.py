#!/usr/bin/env python3
"""The real servers of the ECMP lab (tests/lab/ecmp.sh), so that it needs no nginx: HTTP/1.0 on
port 80 of every address (the VIP on lo included), the same pages as scripts/lab.sh's nginx.

    slowhttp.py NAME BYTES RATE [PIDFILE]

    GET /         -> "NAME\\n"
    GET /big.bin  -> BYTES zero bytes at RATE bytes/s (the long-lived download)
    anything else -> 404

One thread per connection; each request is bounded by the download's own length.
"""

import os
import socket
import sys
import threading
import time

CHUNK = 8192


def serve(conn, name, size, rate):
    try:
        conn.settimeout(10)
        req = b""
        while b"\r\n\r\n" not in req and len(req) < 8192:
            b = conn.recv(1024)
            if not b:
                return
            req += b
        parts = req.split(b" ", 2)
        path = parts[1] if len(parts) > 1 else b""
        if path == b"/":
            body = (name + "\n").encode()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
        elif path == b"/big.bin":
            conn.settimeout(60)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % size)
            sent, t0, zero = 0, time.monotonic(), bytes(CHUNK)
            while sent < size:
                n = min(CHUNK, size - sent)
                conn.sendall(zero[:n])
                sent += n
                # Pace to RATE: sleep until the time this many bytes are due.
                due = t0 + sent / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        else:
            conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    except OSError:
        pass
    finally:
        conn.close()


def main():
    name, size, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 80))
    s.listen(512)
    if len(sys.argv) > 4:
        with open(sys.argv[4], "w") as f:
            f.write(f"{os.getpid()}\n")
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, name, size, rate), daemon=True).start()


if __name__ == "__main__":
    main()
