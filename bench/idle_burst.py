"""idle_burst.py PID HOST PORT CA N [SETTLE] — the memory of a burst of idle connections.

Prints, one `key value` per line, the resident memory (VmRSS, KiB) of process PID (and its
children) before, with N idle TLS connections open to HOST:PORT, and SETTLE seconds (10)
after they all closed. Each connection completes its handshake (verified against CA) and one
HTTP/1.1 keep-alive `GET /`, so that the server's per-connection buffers exist, then stays idle.
"""
import os
import socket
import ssl
import sys
import time


def rss_kib(pid):
    total = 0
    for p in [pid, *children(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            pass
    return total


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []
    return kids + [g for k in kids for g in children(k)]


def open_one(ctx, host, port):
    raw = socket.create_connection((host, port), timeout=10)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = tls.recv(65536)
        if not chunk:
            raise OSError("closed before answering")
        head += chunk
    return tls


def main():
    pid, host, port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    settle = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
    ctx = ssl.create_default_context(cafile=ca)
    before = rss_kib(pid)
    conns = [open_one(ctx, host, port) for _ in range(n)]
    time.sleep(1)
    held = rss_kib(pid)
    for c in conns:
        c.close()
    time.sleep(settle)
    after = rss_kib(pid)
    print(f"connections {n}\nbefore_kib {before}\nheld_kib {held}\nafter_kib {after}")
    print(f"per_connection_bytes {(held - before) * 1024 // max(n, 1)}")


if __name__ == "__main__":
    sys.exit(main())
