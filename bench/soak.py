#!/usr/bin/python3
"""Soak: tlsgate (the ASan build by default) under mixed, rate-bounded load for a set time.

Load, each kind in its own thread at its own pace (--scale multiplies every rate):
  full      new TLS connection per request, no session reuse            3/s
  resumed   new TLS connection per request, resuming the last session   3/s
  keepalive 2 HTTP/1.1 keep-alive connections                           10/s in all
  h2        HTTP/2 streams on one connection (a new one after GOAWAY)    5/s
  bulk      1 MiB download and 256 KiB upload, checked                  every 5 s
  mtls      new connection with a client certificate (listener requires)  1/s
  tcp       mode: tcp listener, one HTTP exchange through the tunnel      1/s
  ws        WebSocket echo (2 messages/s; a new connection every 60 s)
  reload    SIGHUP with a changed config                                 every 30 s
It samples every 10 s the gateway's RSS (VmRSS, and under ASan how much of it is shadow memory,
the sanitizer allocator's region, other anonymous memory and files, from /proc/PID/smaps) and its
live heap as the allocator counts it (status page `memory`: glibc malloc in a normal build, the
sanitizer's allocator under ASan, so ASan's quarantine, redzones and bookkeeping are not in it).
Figures at 1, 5, 15 and 30 minutes and at the end; the live heap's figure at a mark is the least
sample of the minute before it (what requests in flight hold at one instant is not growth). The
verdict: the live heap (and for the normal build RSS) is flat when it grew from 5 minutes to the
end by less than 1 MiB + 5 %. The heap judged is the live heap less what the client-certificate
session cache holds (status page `memory.client_auth_sessions_bytes`): that cache keeps each new
mTLS client's session, about 0.8 KiB, for the ticket lifetime (2 h by default), so at the mtls
load's pace it grows by some 50 KiB a minute for two hours by design; it is reported on its own. At the end it stops the load, checks the counters add up (status page: accepted = closed + active),
stops the gateway with SIGTERM (exit 0 expected) and greps its output for sanitizer reports.
Exit status 0 when no request failed, the counters add up and no report was found.

  bench/soak.py [--minutes 30] [--bin build-asan/tlsgate] [--scale 1.0] [--out DIR] [--keep]
                [--quarantine-mb 16] [--asan-options malloc_context_size=2:...] [--glibc-no-tcache]
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--minutes", type=float, default=30.0)
ap.add_argument("--bin", default=os.path.join(REPO, "build-asan", "tlsgate"))
ap.add_argument("--scale", type=float, default=1.0, help="multiplies every rate")
ap.add_argument("--reload-every", type=float, default=30.0)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--quarantine-mb", type=int, default=16,
                help="ASan's quarantine of freed memory (ASan's default, 256, grows RSS for "
                     "the first quarter hour or more, hiding the figure a soak is after)")
ap.add_argument("--asan-options", default="",
                help="more ASAN_OPTIONS (colon-separated), after the quarantine and "
                     "detect_leaks; e.g. malloc_context_size=2 for a smaller stack depot")
ap.add_argument("--glibc-no-tcache", action="store_true",
                help="normal build: turn glibc's per-thread caches off (GLIBC_TUNABLES), whose "
                     "chunks mallinfo2 counts as in use, so the live heap is exact")
ap.add_argument("--out", default=None, help="directory for summary.json and summary.txt")
ap.add_argument("--keep", action="store_true", help="keep the work directory")
args = ap.parse_args()
os.environ["TLSGATE_BIN"] = os.path.abspath(args.bin)
sanitized = "asan" in args.bin
if sanitized:
    os.environ.setdefault("TLSGATE_SANITIZED", "1")
    # print_stats at exit: ASan's own figures (the stack depot's size among them) in the log
    os.environ.setdefault("ASAN_OPTIONS", "quarantine_size_mb=%d:detect_leaks=1:atexit=1:"
                          "print_stats=1%s" % (args.quarantine_mb, (":" + args.asan_options)
                                               if args.asan_options else ""))

if args.glibc_no_tcache:
    os.environ["GLIBC_TUNABLES"] = "glibc.malloc.tcache_count=0"

import testenv  # noqa: E402
from testenv import Conn  # noqa: E402
from testenv.client import set_ca  # noqa: E402
from testenv.gateway import Gateway, sanitizer_lines  # noqa: E402
from testenv.mtls import PKI  # noqa: E402
from testenv.origin import pattern_sha256  # noqa: E402
from testenv.wsecho import WSClient, WSServer  # noqa: E402

work = tempfile.mkdtemp(prefix="tlsgate-soak-")
certs = testenv.make_certs(os.path.join(work, "certs"))
set_ca(certs.ca.cert)
pki = PKI(os.path.join(work, "pki"))
alice = pki.client("alice", "/O=Org/CN=alice")
origin = testenv.Origin("soak")
ws = WSServer()
ports = {k: testenv.free_port() for k in ("public", "mtls", "tcp", "plain")}


def config(gen):
    return {
        "version": 1, "workers": args.workers, "state_dir": os.path.join(work, "state"),
        "log": {"level": "info", "access_log": os.path.join(work, "access.log")},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"clients": {"type": "pem", "file": pki.root.cert}},
        "listeners": [
            {"name": "public", "address": "127.0.0.1:%d" % ports["public"],
             "tls": {"certificates": ["ec"], "alpn": ["h2", "http/1.1"]},
             "routes": [{"path_prefix": "/ws", "backend": "ws"},
                        {"path_prefix": "/gen%d/" % gen, "backend": "status"},
                        {"path_prefix": "/", "backend": "app"}]},
            {"name": "mtls", "address": "127.0.0.1:%d" % ports["mtls"],
             "tls": {"certificates": ["ec"],
                     "client_auth": {"mode": "require", "truststore": "clients"}},
             "routes": [{"path_prefix": "/", "backend": "app"}]},
            {"name": "tcp", "address": "127.0.0.1:%d" % ports["tcp"], "mode": "tcp",
             "backend": "app", "proxy_protocol_out": False, "tls": {"certificates": ["ec"]}},
            {"name": "plain", "address": "127.0.0.1:%d" % ports["plain"],
             "tls": {"disabled": True},
             "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"app": {"targets": [origin.address]}, "ws": {"targets": [ws.address]},
                     "status": {"builtin": "status"}},
    }


gw = Gateway(work, config(0), name="soak")
gw.start(timeout=60)
pid = gw.proc.pid
stop = threading.Event()
lock = threading.Lock()
ok, errors, conns = {}, {}, {}
first_errors = []


def count(kind, good=True, what=None, new_conn=False):
    with lock:
        if new_conn:
            conns[kind] = conns.get(kind, 0) + 1
            return
        d = ok if good else errors
        d[kind] = d.get(kind, 0) + 1
        if not good and len(first_errors) < 20:
            first_errors.append("%.0f s %s: %s" % (time.monotonic() - t_start, kind, what))


def paced(kind, period):
    """Decorator: runs fn() every period/scale seconds until stop; exceptions count as errors."""
    period /= args.scale

    def wrap(fn):
        def run():
            nxt = time.monotonic()
            while not stop.is_set():
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 (every failure is a soak finding)
                    count(kind, False, "%s: %s" % (type(e).__name__, e))
                nxt += period
                stop.wait(max(0.0, nxt - time.monotonic()))
        t = threading.Thread(target=run, daemon=True, name=kind)
        threads.append(t)
        return fn
    return wrap


threads = []
ctx_full = testenv.tls_context()
ctx_resume = testenv.tls_context()
session = [None]


@paced("full", 1 / 3)
def full():
    count("full", new_conn=True)
    with Conn(ports["public"], ctx=ctx_full) as c:
        r = c.request("GET", "/full", headers=[("Connection", "close")])
    count("full", r.status == 200, r.status)


@paced("resumed", 1 / 3)
def resumed():
    count("resumed", new_conn=True)
    s = socket.create_connection(("127.0.0.1", ports["public"]), timeout=30)
    ss = ctx_resume.wrap_socket(s, server_hostname="localhost", session=session[0])
    try:
        ss.sendall(b"GET /resumed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = ss.recv(65536)
            if not d:
                break
            data += d
        if ss.session is not None:
            session[0] = ss.session
        count("resumed", data.startswith(b"HTTP/1.1 200"), data[:60])
        if ss.session_reused:
            count("resumed_hits")
    finally:
        ss.close()


def keepalive_loop(n):
    c, i = None, 0
    period = 0.2 / args.scale
    nxt = time.monotonic()
    while not stop.is_set():
        try:
            if c is None:
                count("keepalive", new_conn=True)
                c = Conn(ports["public"])
            i += 1
            r = c.request("GET", "/echo?ka=%d-%d" % (n, i))
            count("keepalive", r.status == 200 and b"ka=%d-%d" % (n, i) in r.body, r.status)
        except Exception as e:  # noqa: BLE001
            count("keepalive", False, repr(e))
            if c is not None:
                c.close()
            c = None
        nxt += period
        stop.wait(max(0.0, nxt - time.monotonic()))


for n in range(2):
    threads.append(threading.Thread(target=keepalive_loop, args=(n,), daemon=True))

h2state = {"c": None}


@paced("h2", 1 / 5)
def h2():
    import hpack
    from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame
    from testenv.h2raw import H2
    st = h2state
    if st["c"] is None:
        count("h2", new_conn=True)
        st["c"], st["dec"], st["sid"] = H2(certs, ports["public"]), hpack.Decoder(), 1
    c, sid = st["c"], st["sid"]
    st["sid"] += 2
    c.send(c.head(sid, path="/h2/%d" % sid))
    status, data, last = None, b"", None
    try:
        while True:
            f = c.frame()
            if isinstance(f, GoAwayFrame) and f.error_code == 0:
                last = f.last_stream_id  # a reload: streams up to it finish
                if sid <= last:
                    continue
                count("h2_after_goaway")  # not processed (RFC 9113 8.7): sent again below
                break
            if f is None and last is not None:
                break
            if f is None or isinstance(f, (GoAwayFrame, RstStreamFrame)):
                raise ConnectionError("stream %d: %r" % (sid, f))
            if isinstance(f, HeadersFrame):
                h = dict(st["dec"].decode(f.data))
                if f.stream_id == sid and ":status" in h:
                    status = int(h[":status"])
            elif isinstance(f, DataFrame) and f.stream_id == sid:
                data += f.data
            if getattr(f, "stream_id", 0) == sid and "END_STREAM" in f.flags:
                break
    except Exception:
        c.close()
        st["c"] = None
        raise
    if last is not None:
        c.close()
        st["c"] = None
        if sid > last:
            return h2()
    count("h2", status == 200 and b"/h2/%d" % sid in data, status)


@paced("bulk", 5)
def bulk():
    size = 1 << 20
    count("bulk", new_conn=True)
    with Conn(ports["public"], timeout=60) as c:
        r = c.request("GET", "/download?size=%d" % size)
        count("bulk", r.status == 200 and hashlib.sha256(r.body).hexdigest() ==
              pattern_sha256(size), r.status)
        up = os.urandom(256 << 10)
        r = c.request("POST", "/upload", body=up)
        count("bulk", r.status == 200 and r.json()["sha256"] == hashlib.sha256(up).hexdigest(),
              r.status)


ctx_mtls = testenv.tls_context()
ctx_mtls.load_cert_chain(alice.chain, alice.key)


@paced("mtls", 1)
def mtls():
    count("mtls", new_conn=True)
    with Conn(ports["mtls"], ctx=ctx_mtls) as c:
        r = c.request("GET", "/mtls", headers=[("Connection", "close")])
    count("mtls", r.status == 200, r.status)


@paced("tcp", 1)
def tcp():
    count("tcp", new_conn=True)
    with Conn(ports["tcp"]) as c:
        c.send(b"GET /tcp HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = c.recv_all()
    count("tcp", data.startswith(b"HTTP/1.1 200") and b"/tcp" in data, data[:60])


wsstate = {"c": None, "born": 0.0, "i": 0}


@paced("ws", 0.5)
def wsecho():
    st = wsstate
    if st["c"] is not None and time.monotonic() - st["born"] > 60:
        st["c"].close()
        st["c"] = None
    if st["c"] is None:
        count("ws", new_conn=True)
        st["c"], st["born"] = WSClient(ports["public"], "/ws"), time.monotonic()
    st["i"] += 1
    msg = "soak %d" % st["i"]
    try:
        st["c"].send(msg)
        got = st["c"].recv()
    except Exception:
        st["c"] = None
        raise
    count("ws", got == msg, got)


reloads = [0]


def reloader():
    while not stop.wait(args.reload_every):
        reloads[0] += 1
        try:
            gw.reload(config(reloads[0]))
        except Exception as e:  # noqa: BLE001
            count("reload", False, repr(e))


threads.append(threading.Thread(target=reloader, daemon=True))


def rss_kib():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ASan's fixed layout on x86_64 Linux: shadow memory, and the primary allocator's region.
ASAN_SHADOW = (0x00007fff8000, 0x10007fff8000)
ASAN_PRIMARY = (0x600000000000, 0x640000000000)


def rss_parts():
    """RSS (KiB) by kind of mapping: shadow, allocator (ASan's primary region), anon (other
    anonymous memory: the heap of a normal build, ASan's large blocks and bookkeeping, stacks),
    files (the binary and libraries)."""
    parts = {"shadow": 0, "allocator": 0, "anon": 0, "files": 0}
    kind = "anon"
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                lo = int(first.split("-")[0], 16)
                name = line.split()[5] if len(line.split()) > 5 else ""
                if sanitized and ASAN_SHADOW[0] <= lo < ASAN_SHADOW[1]:
                    kind = "shadow"
                elif sanitized and ASAN_PRIMARY[0] <= lo < ASAN_PRIMARY[1]:
                    kind = "allocator"
                elif name.startswith("/"):
                    kind = "files"
                else:
                    kind = "anon"
            elif first == "Rss:":
                parts[kind] += int(line.split()[1])
    return parts


def status():
    with Conn(ports["plain"], tls=False) as c:
        return c.request("GET", "/_status").json()


def cpu_seconds():
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def heap_floor(at, key="heap_allocated_bytes"):
    """The least live-heap sample in the minute up to `at` seconds."""
    w = [m[key] for s, m in heap if at - 60 <= s <= at + 5]
    return min(w) if w else None


t_start = time.monotonic()
for t in threads:
    t.start()
samples = []  # (seconds, rss KiB)
heap = []  # (seconds, status page memory: heap_allocated_bytes, heap_mapped_bytes, ...)
parts = []  # (seconds, rss_parts())
duration = args.minutes * 60
marks = [m * 60 for m in (1, 5, 15, 30) if m * 60 < duration] + [duration]
print("soak: %s, %.1f min, scale %.2f, work dir %s" % (args.bin, args.minutes, args.scale, work),
      flush=True)
try:
    while True:
        el = time.monotonic() - t_start
        if el >= duration or not gw.running():
            break
        samples.append((round(el), rss_kib()))
        parts.append((round(el), rss_parts()))
        try:
            m = status()["memory"]
            m["heap_less_sessions"] = (m["heap_allocated_bytes"] -
                                       m.get("client_auth_sessions_bytes", 0))
            heap.append((round(el), m))
        except Exception as e:  # noqa: BLE001 (a failed status read is a finding)
            count("status", False, repr(e))
        if marks and el >= marks[0] - 5:
            with lock:
                print("  %5.1f min: RSS %.1f MiB (%s), live heap %.2f MiB (floor of the last "
                      "minute %.2f; %.2f less the session cache of %d mTLS sessions), ok %s, "
                      "errors %s, reloads %d, cpu %.0f s"
                      % (el / 60, samples[-1][1] / 1024,
                         ", ".join("%s %.1f" % (k, v / 1024) for k, v in parts[-1][1].items()),
                         heap[-1][1]["heap_allocated_bytes"] / 2**20 if heap else -1,
                         heap_floor(el) / 2**20 if heap else -1,
                         heap_floor(el, "heap_less_sessions") / 2**20 if heap else -1,
                         heap[-1][1].get("client_auth_sessions", -1) if heap else -1,
                         dict(ok), dict(errors),
                         reloads[0], cpu_seconds()), flush=True)
            marks.pop(0)
        stop.wait(min(10.0, max(0.5, duration - el)))
finally:
    stop.set()
    for t in threads:
        t.join(timeout=60)
    if wsstate["c"] is not None:
        wsstate["c"].close()
    if h2state["c"] is not None:
        h2state["c"].close()

alive = gw.running()
final_rss = rss_kib() if alive else 0
final_parts = rss_parts() if alive else {}
end_s = round(time.monotonic() - t_start)
cpu = cpu_seconds() if alive else 0
# the load is over: wait for every connection to be closed (but the status fetch's own)
st = None
deadline = time.monotonic() + 30
while alive and time.monotonic() < deadline:
    st = status()
    if st["connections"]["active"] <= 1:
        break
    time.sleep(0.5)
c = st["connections"] if st else {}
adds_up = bool(c) and c["accepted"] == c["closed"] + c["active"]
exit_code = gw.stop(expect=None, timeout=60) if alive else gw.proc.returncode
reports = sanitizer_lines(gw.log_text())
opened = sum(conns.values())


def rss_at(minute):
    best = None
    for s, r in samples:
        if s <= minute * 60 + 5:
            best = (s, r)
    return best


def mib(v):
    return None if v is None else round(v / 2**20, 2)


def grew(at5, end):
    """Growth from 5 minutes to the end and whether it is flat (< 1 MiB + 5 %)."""
    if at5 is None or end is None:
        return None, None
    return end - at5, end - at5 < (1 << 20) + 0.05 * at5


heap_marks = {("%g min" % m): mib(heap_floor(m * 60)) for m in (1, 5, 15, 30)
              if m * 60 <= duration + 5 and heap_floor(m * 60) is not None}
heap_end = heap_floor(end_s)
heap_mapped_end = heap_floor(end_s, "heap_mapped_bytes")
heap_raw_growth, _ = grew(heap_floor(300), heap_end)
heap_marks_less = {("%g min" % m): mib(heap_floor(m * 60, "heap_less_sessions"))
                   for m in (1, 5, 15, 30)
                   if m * 60 <= duration + 5 and heap_floor(m * 60) is not None}
heap_less_end = heap_floor(end_s, "heap_less_sessions")
heap_growth, heap_flat = grew(heap_floor(300, "heap_less_sessions"), heap_less_end)
sessions_end = heap[-1][1].get("client_auth_sessions") if heap else None
sessions_bytes_end = heap[-1][1].get("client_auth_sessions_bytes") if heap else None
rss5 = rss_at(5)
rss_growth, rss_flat = grew(rss5[1] * 1024 if rss5 and duration > 300 else None,
                            final_rss * 1024 if final_rss else None)
asan_stats = [ln for ln in gw.log_text().splitlines()
              if ln.startswith("Stats:") or "StackDepot" in ln][:20]


summary = {
    "binary": args.bin, "asan_options": os.environ.get("ASAN_OPTIONS"),
    "glibc_tunables": os.environ.get("GLIBC_TUNABLES"), "minutes": args.minutes, "scale": args.scale, "workers": args.workers,
    "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                "load_at_end": os.getloadavg()},
    "requests_ok": ok, "errors": errors, "first_errors": first_errors,
    "connections_opened_by_load": conns, "reloads": reloads[0],
    "rss_mib": {("%g min" % m): round(rss_at(m)[1] / 1024, 1)
                for m in (1, 5, 15, 30) if m * 60 <= duration + 5 and rss_at(m)},
    "rss_mib_end": round(final_rss / 1024, 1),
    "rss_samples": samples,
    "rss_parts_mib_end": {k: round(v / 1024, 1) for k, v in final_parts.items()},
    "rss_parts_samples": parts,
    "heap_allocated_mib": heap_marks, "heap_allocated_mib_end": mib(heap_end),
    "heap_mapped_mib_end": mib(heap_mapped_end),
    "heap_less_sessions_mib": heap_marks_less, "heap_less_sessions_mib_end": mib(heap_less_end),
    "client_auth_sessions_end": sessions_end,
    "client_auth_sessions_mib_end": mib(sessions_bytes_end),
    "heap_growth_5min_to_end_mib": mib(heap_raw_growth),
    "heap_less_sessions_growth_5min_to_end_mib": mib(heap_growth), "heap_flat": heap_flat,
    "rss_growth_5min_to_end_mib": mib(rss_growth), "rss_flat": rss_flat,
    "heap_samples": heap, "asan_stats_at_exit": asan_stats,
    "gateway_cpu_seconds": round(cpu, 1),
    "status_connections": c, "counters_add_up": adds_up,
    "accepted_vs_opened": [c.get("accepted"), opened],
    "exit_code": exit_code, "sanitizer_reports": reports[:20],
}
text = [
    "soak %.1f min, %s, %d workers, scale %.2f, %d reloads" % (
        args.minutes, args.bin, args.workers, args.scale, reloads[0]),
    "requests ok: %s" % json.dumps(ok, sort_keys=True),
    "errors: %s" % json.dumps(errors, sort_keys=True),
    "RSS MiB: %s, end %.1f (%s)" % (
        json.dumps(summary["rss_mib"]), final_rss / 1024,
        ", ".join("%s %.1f" % (k, v / 1024) for k, v in final_parts.items())),
    "live heap MiB (%s allocator; least sample of the minute before each mark): %s, end %s "
    "(allocator's mapped heap %s)" % (heap[-1][1]["allocator"] if heap else "?",
                                      json.dumps(heap_marks), mib(heap_end),
                                      mib(heap_mapped_end)),
    "client-certificate session cache at the end: %s sessions, %s MiB (kept for the ticket "
    "lifetime by design)" % (sessions_end, mib(sessions_bytes_end)),
    "live heap less that cache MiB: %s, end %s" % (json.dumps(heap_marks_less),
                                                  mib(heap_less_end)),
    "live heap from 5 min to the end: %+.2f MiB; less the session cache %+.2f MiB, %s" % (
        (heap_raw_growth or 0) / 2**20, (heap_growth or 0) / 2**20,
        {True: "flat", False: "GROWING", None: "too short to say"}[heap_flat]),
    "RSS from 5 min to the end: %+.2f MiB, %s%s" % (
        (rss_growth or 0) / 2**20, {True: "flat", False: "growing",
                                    None: "too short to say"}[rss_flat],
        " (ASan's own memory included: see the live heap)" if sanitized else ""),
    "gateway CPU: %.1f s" % cpu,
    "connections: %s; accepted = closed + active: %s; opened by the load: %d (+ status and "
    "readiness probes)" % (json.dumps(c), adds_up, opened),
    "exit code %s; sanitizer reports: %d" % (exit_code, len(reports)),
]
text += ["ASan at exit:"] + ["  " + ln for ln in asan_stats] if asan_stats else []
text += ["first errors:"] + ["  " + e for e in first_errors] if first_errors else []
print("\n".join(text), flush=True)
if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write("\n".join(text) + "\n")
    shutil.copy(gw.log_path, os.path.join(args.out, "tlsgate.log"))
origin.close()
ws.close()
if not args.keep:
    shutil.rmtree(work, ignore_errors=True)
good = not errors and adds_up and not reports and exit_code == 0 and heap_flat is not False
if not sanitized:
    good = good and rss_flat is not False
sys.exit(0 if good else 1)
