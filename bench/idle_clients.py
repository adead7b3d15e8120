#!/usr/bin/env python3
"""Opens N keepalive connections to 127.0.0.1:PORT, sends one GET on each and
reads the whole response, then holds them idle until stdin closes (or 120 s).
At most INFLIGHT requests (default 100) are outstanding at a time, as when
clients arrive over a while rather than all in the same millisecond: both
proxies then need about INFLIGHT upstream connections, not N.
Prints "READY <n>" once every connection has had its answer. Loopback only.

    idle_clients.py PORT N [INFLIGHT]"""
import selectors
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
inflight = int(sys.argv[3]) if len(sys.argv) > 3 else 100
sel = selectors.DefaultSelector()
pending = {}
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    sel.register(s, selectors.EVENT_WRITE)
    pending[s] = b""
done = 0
sent = 0
while done < n:
    events = sel.select(timeout=30)
    if not events:
        sys.exit(f"no progress for 30 s ({done} done)")
    for key, ev in events:
        s = key.fileobj
        if ev & selectors.EVENT_WRITE:
            if sent - done >= inflight:
                continue
            s.send(req)
            sent += 1
            sel.modify(s, selectors.EVENT_READ)
            continue
        data = s.recv(65536)
        if not data:
            sys.exit(f"connection closed before its response ({done} done)")
        pending[s] += data
        head, sep, body = pending[s].partition(b"\r\n\r\n")
        if sep:
            length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
            if length and len(body) >= length[0]:
                sel.unregister(s)
                done += 1
print(f"READY {done}", flush=True)
sel.close()
import select
select.select([sys.stdin], [], [], 120)
