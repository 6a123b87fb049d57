#!/usr/bin/env python3
"""Handshake flood against tlsgate on loopback while a legitimate client measures latency.

Attackers (each in its own process, from their own loopback addresses):
  * full handshakes as fast as --flooders processes can open them (--concurrency at a time
    each, 127.0.0.2);
  * --half-open plain TCP connections that send nothing (127.0.0.3);
  * --stalled connections that send half a ClientHello and stop (127.0.0.4).
Half-open and stalled connections are opened again (after 0.1 s) when the gateway closes them.
The legitimate client (127.0.0.1) opens a new TLS connection, sends GET / to the built-in status
backend and reads the answer, --rate times a second; its latencies give p50/p99 before the flood
(baseline) and during it. Runs once per --configs entry: "none" (no per-address limits) and
"per_ip" (limits.max_connections_per_ip and handshake_rate_per_ip as printed).

Usage: bench/flood.py [--duration S] [--configs none,per_ip] [--flooders N] [--workers N] [--keep]
Bounded: about (3 + duration + 5) s per config. TLSGATE_BIN picks the binary."""
import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwlib  # noqa: E402

PER_IP = {"max_connections_per_ip": 256, "handshake_rate_per_ip": {"rate": 100, "burst": 200}}


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def half_client_hello():
    """The first half of a real TLS 1.3 ClientHello."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    return hello[: len(hello) // 2]


# ---- attackers (child processes) ----

def full_flood(port, concurrency, stop_at, counts):
    gwlib.raise_nofile(65536)

    async def one():
        ctx = client_ctx()
        while time.time() < stop_at:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="localhost",
                    local_addr=("127.0.0.2", 0)), 10)
                w.transport.abort()
                with counts.get_lock():
                    counts[0] += 1
            except (OSError, ssl.SSLError, asyncio.TimeoutError):
                with counts.get_lock():
                    counts[1] += 1
                await asyncio.sleep(0.01)

    async def main():
        await asyncio.gather(*[one() for _ in range(concurrency)])
    asyncio.run(main())


def hold_flood(port, n_half, n_stalled, stop_at, counts):
    gwlib.raise_nofile(65536)
    hello = half_client_hello()

    async def hold(src, payload, idx):
        while time.time() < stop_at:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
            except OSError:
                await asyncio.sleep(0.1)
                continue
            counts[idx] += 1
            if payload:
                w.write(payload)
            try:
                left = stop_at - time.time()
                if left > 0:
                    await asyncio.wait_for(r.read(), left)  # until the gateway closes it
            except (OSError, asyncio.TimeoutError):
                pass
            w.transport.abort()
            await asyncio.sleep(0.1)

    async def main():
        tasks = [hold("127.0.0.3", b"", 0) for _ in range(n_half)]
        tasks += [hold("127.0.0.4", hello, 1) for _ in range(n_stalled)]
        await asyncio.gather(*tasks)
    asyncio.run(main())


# ---- the legitimate client ----

def legit(port, rate, seconds):
    """Latencies (ms) of new-connection GETs at rate per second for seconds; failures."""
    ctx = client_ctx()
    lat, fails = [], []
    t_end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < t_end:
        nxt += 1.0 / rate
        t0 = time.monotonic()
        try:
            s = socket.socket()
            s.settimeout(10)
            s.bind(("127.0.0.1", 0))
            s.connect(("127.0.0.1", port))
            s = ctx.wrap_socket(s, server_hostname="localhost")
            data = gwlib.get_close(s, "/")
            if not data.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(data[:40])
            lat.append((time.monotonic() - t0) * 1000)
        except Exception as e:  # every failure is reported
            fails.append(repr(e)[:80])
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
    return lat, fails


def run(args, name, limits):
    gw = gwlib.Gateway(workers=args.workers, keep=args.keep)
    extra = {"timeouts": {"handshake": 10}}
    if limits:
        extra["limits"] = limits
    gw.start(extra)
    try:
        legit(gw.port, args.rate, 1)  # warm-up
        base, base_f = legit(gw.port, args.rate, 3)
        rss0, cpu0 = gw.rss_kib(), gw.cpu_s()
        stop_at = time.time() + args.duration + 2
        fc = mp.Array("l", 2)  # shared by the flooder processes
        hc = mp.Array("l", 2, lock=False)
        procs = [mp.Process(target=full_flood, args=(gw.port, args.concurrency, stop_at, fc))
                 for _ in range(args.flooders)]
        procs.append(mp.Process(target=hold_flood,
                                args=(gw.port, args.half_open, args.stalled, stop_at, hc)))
        for p in procs:
            p.start()
        time.sleep(2)  # let the held connections pile up
        st0 = gw.status()
        peak_rss = [gw.rss_kib()]
        sampling = [True]

        def sample():
            while sampling[0]:
                peak_rss[0] = max(peak_rss[0], gw.rss_kib())
                time.sleep(0.5)
        th = threading.Thread(target=sample)
        th.start()
        t0 = time.monotonic()
        lat, fails = legit(gw.port, args.rate, args.duration)
        took = time.monotonic() - t0
        st1 = gw.status()
        sampling[0] = False
        th.join()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        cpu = gw.cpu_s() - cpu0
        hs = st1["handshakes"]["completed"] - st0["handshakes"]["completed"]
        out = {
            "config": name, "limits": limits or "none",
            "baseline_p50": gwlib.pct(base, 50), "baseline_p99": gwlib.pct(base, 99),
            "baseline_fail": len(base_f),
            "p50": gwlib.pct(lat, 50), "p99": gwlib.pct(lat, 99), "max": max(lat) if lat else None,
            "samples": len(lat), "fail": len(fails), "fail_examples": fails[:3],
            "attacker_handshakes_s": fc[0] / (args.duration + 2),
            "gateway_handshakes_s": hs / took,
            "attacker_failed": fc[1], "half_open_opened": hc[0], "stalled_opened": hc[1],
            "open_during": st1["connections"]["active"],
            "refused": st1.get("connection_refusals", {}),
            "hs_timeouts": st1["handshake_failures"].get("handshake_timeout", 0),
            "rss_before_mib": rss0 / 1024, "rss_peak_mib": peak_rss[0] / 1024,
            "cpu_s": cpu, "seconds": took,
        }
        return out
    finally:
        gw.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--rate", type=float, default=20, help="legitimate requests per second")
    ap.add_argument("--concurrency", type=int, default=64, help="full handshakes in flight")
    ap.add_argument("--flooders", type=int, default=1,
                    help="processes opening full handshakes")
    ap.add_argument("--half-open", type=int, default=2000)
    ap.add_argument("--stalled", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--configs", default="none,per_ip")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    gwlib.raise_nofile(65536)
    print("machine: " + gwlib.machine())
    print("flood: full handshakes (%d processes, %d in flight each) + %d half-open + %d stalled mid-handshake, "
          "%g s; legitimate client: new TLS connection + GET, %g/s; gateway workers: %d"
          % (args.flooders, args.concurrency, args.half_open, args.stalled, args.duration, args.rate,
             args.workers))
    ok = True
    for name in args.configs.split(","):
        r = run(args, name, PER_IP if name == "per_ip" else None)
        print()
        print("config %s: limits %s" % (name, r["limits"]))
        print("  legitimate before the flood: p50 %.1f ms, p99 %.1f ms, %d failed"
              % (r["baseline_p50"], r["baseline_p99"], r["baseline_fail"]))
        print("  legitimate during the flood: p50 %.1f ms, p99 %.1f ms, max %.1f ms, "
              "%d samples, %d failed %s"
              % (r["p50"], r["p99"], r["max"], r["samples"], r["fail"], r["fail_examples"]))
        print("  attacker: %.0f full handshakes/s completed (client side), %d failed; "
              "half-open opened %d, stalled opened %d"
              % (r["attacker_handshakes_s"], r["attacker_failed"], r["half_open_opened"],
                 r["stalled_opened"]))
        print("  gateway: %.0f handshakes/s, %d connections open at the end, refused %s, "
              "handshake timeouts %d, RSS %.1f -> peak %.1f MiB, CPU %.1f s in %.1f s"
              % (r["gateway_handshakes_s"], r["open_during"], r["refused"], r["hs_timeouts"],
                 r["rss_before_mib"], r["rss_peak_mib"], r["cpu_s"], r["seconds"]))
        good = r["fail"] == 0 and r["p99"] is not None and r["p99"] < 100
        print("  verdict: %s (p99 < 100 ms and no failure)" % ("PASS" if good else "FAIL"))
        ok = ok and good
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
