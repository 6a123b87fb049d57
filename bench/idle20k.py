#!/usr/bin/env python3
"""Many connections held open against tlsgate on loopback: gateway memory per connection (RSS
delta / n) and whether it still answers a new client at once.

--kind idle     (default) TLS connections that made one keep-alive request, then stay idle
       handshake  plain TCP connections that sent half a ClientHello (stalled handshakes)
       head       TLS connections that sent part of a request head
       body       TLS connections that sent a head (Content-Length 1 MB) and 100 body bytes, to
                  a backend (a local asyncio origin)
       reader     TLS connections that asked the origin for 64 MiB and read none of it
The gateway's timeouts are raised (600 s) so nothing is closed while measuring. Clients run in
--procs processes from their own loopback addresses (127.0.0.10, .11, ...).

Usage: bench/idle20k.py [-n N] [--kind K] [--procs P] [--workers W] [--rounds R] [--keep]
A process may hold at most its RLIMIT_NOFILE hard limit of descriptors (20000 on the machine
of docs/robustness.md, which cannot raise it): the default n is 20000 when the limit allows,
else the limit less 300 (the gateway's own descriptors and the measuring client's). Bounded: opening stops after 300 s."""
import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwlib  # noqa: E402
from flood import client_ctx, half_client_hello  # noqa: E402

ORIGIN_BIG = 64 << 20


def holder(kind, port, src, count, ready, done, results):
    gwlib.raise_nofile(count + 100)
    hello = half_client_hello()
    failed = [0]

    async def open_one(sem, held):
        async with sem:
            w = sock = None
            try:
                if kind == "handshake":
                    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
                    w.write(hello)
                else:
                    sock = socket.socket()
                    if kind == "reader":  # a small window, as a slow reader on a real network
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    sock.bind((src, 0))
                    sock.setblocking(False)
                    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
                    r, w = await asyncio.wait_for(asyncio.open_connection(
                        sock=sock, ssl=client_ctx(), server_hostname="localhost"), 60)
                    if kind == "idle":
                        w.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 60)
                        n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                        await r.readexactly(n)
                    elif kind == "head":
                        w.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                    elif kind == "body":
                        w.write(b"POST /upload HTTP/1.1\r\nHost: localhost\r\n"
                                b"Content-Length: 1000000\r\n\r\n" + b"x" * 100)
                    elif kind == "reader":
                        w.transport.set_read_buffer_limits(high=0)
                        w.transport.pause_reading()
                        w.write(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
                await w.drain()
                held.append(w)
            except Exception:
                failed[0] += 1
                if w is not None:
                    w.transport.abort()
                elif sock is not None:
                    sock.close()

    async def main():
        sem = asyncio.Semaphore(64)
        held = []
        await asyncio.wait_for(asyncio.gather(*[open_one(sem, held) for _ in range(count)]), 300)
        results.put((len(held), failed[0]))
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.2)
        for w in held:
            w.transport.abort()
    asyncio.run(main())


def origin_proc(port_q):
    """A local origin: /big answers ORIGIN_BIG bytes; any other request is read (body too) and
    answered with 'ok'."""
    async def serve(r, w):
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                if head.startswith(b"GET /big"):
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % ORIGIN_BIG)
                    chunk = b"\0" * 65536
                    for _ in range(ORIGIN_BIG // 65536):
                        w.write(chunk)
                        await w.drain()
                    continue
                low = head.lower()
                if b"content-length:" in low:
                    n = int(low.split(b"content-length:")[1].split(b"\r\n")[0])
                    await r.readexactly(n)
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                await w.drain()
        except Exception:
            w.transport.abort()

    async def main():
        srv = await asyncio.start_server(serve, "127.0.0.1", 0, limit=1 << 20)
        port_q.put(srv.sockets[0].getsockname()[1])
        await srv.serve_forever()
    gwlib.raise_nofile(20000)
    asyncio.run(main())


def new_client_latency(port, n):
    ctx = client_ctx()
    lat, fails = [], 0
    for _ in range(n):
        t0 = time.monotonic()
        try:
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                server_hostname="localhost")
            data = gwlib.get_close(s, "/status")
            assert data.startswith(b"HTTP/1.1 200"), data[:60]
            lat.append((time.monotonic() - t0) * 1000)
        except Exception:
            fails += 1
        time.sleep(0.05)
    return lat, fails


def main():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=None)
    ap.add_argument("--kind", default="idle",
                    choices=["idle", "handshake", "head", "body", "reader"])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1,
                    help="open and close them this many times (RSS after each: reuse or growth)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    n = args.n or (20000 if hard == resource.RLIM_INFINITY or hard >= 20300 else hard - 300)
    gwlib.raise_nofile(hard if hard != resource.RLIM_INFINITY else 65536)
    print("machine: " + gwlib.machine())
    print("kind %s, n %d (RLIMIT_NOFILE hard limit %s), %d client processes, %d gateway workers"
          % (args.kind, n, hard, args.procs, args.workers))
    # The origin runs in its own process, so it never competes with the measuring client here.
    port_q = mp.Queue()
    origin = mp.Process(target=origin_proc, args=(port_q,), daemon=True)
    origin.start()
    box = [port_q.get(timeout=10)]
    gw = gwlib.Gateway(workers=args.workers, nofile=n + 200, keep=args.keep)
    big = 600
    gw.start({"timeouts": {"handshake": big, "request_headers": big, "idle": big,
                           "backend_response": big},
              "limits": {"min_body_rate": 0},
              "backends": {"app": {"targets": ["127.0.0.1:%d" % box[0]]}},
              "routes": [{"path_prefix": "/status", "backend": "status"},
                         {"path_prefix": "/", "backend": "app"}]})
    try:
        new_client_latency(gw.port, 20)  # warm-up: buffers, caches
        base_lat, _ = new_client_latency(gw.port, 20)
        time.sleep(1)
        rss0 = gw.rss_kib()
        for rnd in range(1, args.rounds + 1):
            if args.rounds > 1:
                print("round %d:" % rnd)
            ready = [mp.Event() for _ in range(args.procs)]
            done = mp.Event()
            q = mp.Queue()
            per = [n // args.procs + (1 if i < n % args.procs else 0) for i in range(args.procs)]
            t0 = time.monotonic()
            procs = [mp.Process(target=holder, args=(args.kind, gw.port, "127.0.0.%d" % (10 + i),
                                                     per[i], ready[i], done, q))
                     for i in range(args.procs)]
            for p in procs:
                p.start()
            for e in ready:
                e.wait(330)
            open_s = time.monotonic() - t0
            opened = failed = 0
            for _ in procs:
                o, f = q.get(timeout=30)
                opened += o
                failed += f
            time.sleep(3)  # let the gateway settle (reader: its buffers fill)
            c0 = gw.cpu_s()
            time.sleep(2)
            cpu_idle = (gw.cpu_s() - c0) / 2
            rss1 = gw.rss_kib()
            st = gw.status()
            lat, lfails = new_client_latency(gw.port, 40)
            print("opened %d of %d in %.1f s (%d failed); gateway reports %d open"
                  % (opened, n, open_s, failed, st["connections"]["active"]))
            print("gateway RSS: %.1f MiB before, %.1f MiB with them open: %.1f KiB per connection; "
                  "gateway CPU while they are held: %.0f %% of a core"
                  % (rss0 / 1024, rss1 / 1024, (rss1 - rss0) / max(opened, 1), cpu_idle * 100))
            print("new client (TLS handshake + GET /status) before: p50 %.1f ms, p99 %.1f ms; "
                  "while held: p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d failed"
                  % (gwlib.pct(base_lat, 50), gwlib.pct(base_lat, 99), gwlib.pct(lat, 50),
                     gwlib.pct(lat, 99), max(lat) if lat else -1, lfails))
            done.set()
            for p in procs:
                p.join(60)
                if p.is_alive():
                    p.kill()
            t1 = time.monotonic()
            while gw.status()["connections"]["active"] > 1 and time.monotonic() - t1 < 60:
                time.sleep(0.2)
            print("all closed %.1f s after the clients let go; gateway RSS then %.1f MiB"
                  % (time.monotonic() - t1, gw.rss_kib() / 1024))
            time.sleep(3)  # a trim after a burst of closes runs a second later (net/trim.c)
            print("gateway RSS 3 s later: %.1f MiB" % (gw.rss_kib() / 1024))
    finally:
        gw.stop()
        origin.kill()


if __name__ == "__main__":
    main()
