#!/usr/bin/env python3
"""Raw JSON-RPC 2.0 checks against the rvs control socket (one request per line).

    rpc.py SOCKET send LINE...                 one connection; print one response line per LINE
    rpc.py SOCKET expect-error LINE [CODE]     the answer must be a JSON-RPC error (with CODE)
    rpc.py SOCKET expect-result LINE           the answer must be a JSON-RPC result
    rpc.py SOCKET garbage-then-ok BAD GOOD     one connection: BAD gets an error, GOOD a result

Exit status 0 when the expectation holds, 1 otherwise (the reason on stderr). Every read is
bounded by a timeout.
"""

import json
import socket
import sys

TIMEOUT = 5.0


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.buf = b""

    def request(self, line):
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise SystemExit(f"no answer within {TIMEOUT}s to: {line}")
            if not chunk:
                raise SystemExit(f"connection closed without an answer to: {line}")
            self.buf += chunk
        resp, self.buf = self.buf.split(b"\n", 1)
        return resp.decode(errors="replace")

    def close(self):
        self.sock.close()


def request_id(line):
    try:
        req = json.loads(line)
    except ValueError:
        return None, False
    if isinstance(req, dict) and "id" in req:
        return req["id"], True
    return None, False


def check(line, resp, want_error, code=None):
    """Return None when RESP answers LINE as expected, else the reason."""
    try:
        msg = json.loads(resp)
    except ValueError:
        return f"answer is not JSON: {resp!r}"
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        return f"answer is not a JSON-RPC 2.0 object: {resp}"
    rid, has_id = request_id(line)
    if has_id and msg.get("id") != rid:
        return f"answer id {msg.get('id')!r} does not echo request id {rid!r}: {resp}"
    if not has_id and want_error and msg.get("id", "missing") is not None:
        return f"error for an unparseable request must carry id null: {resp}"
    if want_error:
        err = msg.get("error")
        if "result" in msg or not isinstance(err, dict):
            return f"expected an error object: {resp}"
        if not isinstance(err.get("code"), int) or isinstance(err.get("code"), bool):
            return f"error.code is not an integer: {resp}"
        if not isinstance(err.get("message"), str) or not err["message"]:
            return f"error.message is missing: {resp}"
        if code is not None and err["code"] != code:
            return f"expected error code {code}, got {err['code']}: {resp}"
    else:
        if "error" in msg or "result" not in msg:
            return f"expected a result: {resp}"
    return None


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, cmd, args = argv[1], argv[2], argv[3:]
    conn = Conn(path)
    try:
        if cmd == "send":
            for line in args:
                print(conn.request(line))
            return 0
        if cmd in ("expect-error", "expect-result") and args:
            line = args[0]
            code = int(args[1]) if len(args) > 1 else None
            resp = conn.request(line)
            print(f"    {line!r} -> {resp}", file=sys.stderr)
            why = check(line, resp, cmd == "expect-error", code)
        elif cmd == "garbage-then-ok" and len(args) == 2:
            bad, good = args
            r1 = conn.request(bad)
            print(f"    {bad!r} -> {r1}", file=sys.stderr)
            why = check(bad, r1, True)
            if why is None:
                r2 = conn.request(good)
                print(f"    {good!r} -> {r2}", file=sys.stderr)
                why = check(good, r2, False)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    finally:
        conn.close()
    if why is not None:
        print(f"    {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except OSError as e:
        print(f"    socket error: {e}", file=sys.stderr)
        sys.exit(1)
