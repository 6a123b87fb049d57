#!/usr/bin/python3
"""profile.py — the cost model's driver (run by bench/profile.sh, which makes the certificates,
renders the configs, builds malloc_count.so and starts the origin; see bench/README.md).

For each server (tlsgate, nginx) it starts the server under one tool at a time and drives a
sequential load from this process, phase by phase, marking the boundaries:

  warm-up | idle (IDLE s) | full (N) | resumed (N) | keep-alive requests (K)     plain config
  warm-up | mtls (N)                                                              mtls config

Tools: "cg" = valgrind --tool=callgrind --trace-children=no, `callgrind_control -d PID` at each
mark (each dump holds the cost since the previous one); "native" = strace -f -ttt (syscalls by
name, split by the marks' timestamps) with malloc_count.so preloaded (counters read from a shared
file at each mark); "perf" = perf stat -e cycles,instructions attached per phase (only where the
machine has hardware counters). Per operation = (phase total - idle rate x phase time) / ops.
"""
import argparse
import collections
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

SMALL = b"x" * 99
P = argparse.ArgumentParser()
P.add_argument("--work", required=True)
P.add_argument("--servers", default="tlsgate,nginx")
P.add_argument("--tools", default="cg,native")
P.add_argument("--n", type=int, default=100, help="handshakes per handshake phase")
P.add_argument("--k", type=int, default=1000, help="requests in the keep-alive phase")
P.add_argument("--idle", type=float, default=3.0)
P.add_argument("--idle-conns", type=int, default=500, help="idle TLS connections held (0: none)")
P.add_argument("--workers", type=int, default=2)
P.add_argument("--port", type=int, required=True)
P.add_argument("--backend-port", type=int, required=True)
P.add_argument("--tlsgate-bin", required=True)
P.add_argument("--candidate", required=True)
P.add_argument("--nginx-conf-plain", required=True)
P.add_argument("--nginx-conf-mtls", required=True)
P.add_argument("--cert", required=True)
P.add_argument("--key", required=True)
P.add_argument("--client-ca", required=True)
P.add_argument("--client-cert", required=True)
P.add_argument("--client-key", required=True)
P.add_argument("--malloc-so", required=True)
P.add_argument("--out", required=True)
P.add_argument("--preload", default="", help="a library preloaded into tlsgate (an allocator)")
A = P.parse_args()
WORK = A.work
LIVE = []  # process groups to stop on exit


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ client
def context(mtls):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = ssl.TLSVersion.TLSv1_3
    if mtls:
        c.load_cert_chain(A.client_cert, A.client_key)
    return c


CTX = {False: None, True: None}


def connect(mtls=False, session=None):
    if CTX[mtls] is None:
        CTX[mtls] = context(mtls)
    s = socket.create_connection(("127.0.0.1", A.port), timeout=60)
    t = CTX[mtls].wrap_socket(s, server_hostname="localhost", session=session)
    c = t.cipher()
    if c[0] != "TLS_AES_128_GCM_SHA256" or c[1] != "TLSv1.3":
        raise SystemExit("profile: negotiated %s, not TLS 1.3 AES-128-GCM (OPENSSL_CONF?)" % (c,))
    return t


def read_response(t, buf):
    while b"\r\n\r\n" not in buf:
        d = t.recv(65536)
        if not d:
            raise RuntimeError("connection closed before the response head")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("response: %r" % head[:80])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else None
    while n is not None and len(rest) < n:
        d = t.recv(65536)
        if not d:
            break
        rest += d
    if n is None:  # read to EOF
        while True:
            d = t.recv(65536)
            if not d:
                break
            rest += d
        n = len(rest)
    if rest[:n] != SMALL:
        raise RuntimeError("body: %r" % rest[:40])
    return rest[n:]


def one_close(mtls=False, session=None):
    """One connection, GET /small with Connection: close, read to the end; returns the socket's
    last session and whether the handshake resumed."""
    t = connect(mtls, session)
    t.sendall(b"GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    read_response(t, b"")
    try:
        while t.recv(65536):
            pass
    except (ssl.SSLError, OSError):
        pass
    s, r = t.session, t.session_reused
    t.close()
    return s, r


def run_full(n, mtls=False):
    for _ in range(n):
        _, r = one_close(mtls)
        if r:
            raise SystemExit("profile: a full-handshake connection resumed")


def run_resumed(n, session):
    for _ in range(n):
        session, r = one_close(False, session)
        if not r:
            raise SystemExit("profile: a connection did not resume")
    return session


def ka_requests(t, k):
    buf = b""
    for _ in range(k):
        t.sendall(b"GET /small HTTP/1.1\r\nHost: localhost\r\n\r\n")
        buf = read_response(t, buf)


def wait_ready(proc, limit, mtls):
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("profile: server exited (%s) before it was ready" % proc.returncode)
        try:
            one_close(mtls)
            return
        except (OSError, RuntimeError, ssl.SSLError):
            time.sleep(0.5)
    raise SystemExit("profile: server not ready after %ss" % limit)


# ------------------------------------------------------------------ servers and tools
def server_cmd(name, mode, d):
    if name == "tlsgate":
        cmd = [A.candidate, str(A.port), str(A.backend_port), A.cert, A.key, str(A.workers), d]
        if mode == "mtls":
            cmd.append(A.client_ca)
        return cmd
    conf = A.nginx_conf_plain if mode == "plain" else A.nginx_conf_mtls
    return ["/usr/sbin/nginx", "-c", conf, "-p", d + "/"]


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, task)) as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


class Run:
    """One server start under one tool."""

    def __init__(self, name, mode, tool):
        self.name, self.mode, self.tool = name, mode, tool
        self.dir = os.path.join(WORK, "%s-%s-%s" % (name, mode, tool))
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o1777)  # nginx workers write their dumps as nobody
        os.makedirs(os.path.join(self.dir, "nginx-tmp"), exist_ok=True)
        env = dict(os.environ)
        prefix = []
        if tool == "cg":
            prefix = ["valgrind", "--tool=callgrind", "--trace-children=no", "--vgdb=yes",
                      "--callgrind-out-file=%s/cg.%%p" % self.dir]
        elif tool == "native":
            self.mfile = os.path.join(self.dir, "malloc.count")
            with open(self.mfile, "wb") as f:
                f.write(b"\0" * 4096)
            os.chmod(self.mfile, 0o666)
            self.strace = os.path.join(self.dir, "strace.log")
            prefix = ["strace", "-f", "-ttt", "-qq", "-o", self.strace,
                      "-E", "LD_PRELOAD=" + A.malloc_so, "-E", "MALLOC_COUNT_FILE=" + self.mfile]
        if A.preload and name == "tlsgate":
            # another allocator: the allocation counter would route malloc back to glibc's
            if tool == "native":
                prefix = prefix[:prefix.index("-E")] + ["-E", "LD_PRELOAD=" + A.preload]
            else:
                prefix = ["env", "LD_PRELOAD=" + A.preload] + prefix
        env.pop("OPENSSL_CONF", None)  # the client's policy is not the server's
        env["TLSGATE_REAL"] = A.tlsgate_bin
        env["PROFILE_PREFIX"] = " ".join(prefix)
        cmd = server_cmd(name, mode, self.dir)
        if name == "nginx":
            cmd = prefix + cmd
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        LIVE.append(self.proc)
        self.marks = []  # (phase, time, extra)
        self.perf = None
        wait_ready(self.proc, 240 if tool == "cg" else 60, mode == "mtls")

    def pids(self):
        return descendants(self.proc.pid)

    def traced_pids(self):
        """The pids of the server itself (not the strace/valgrind wrapper processes)."""
        ps = self.pids()
        out = []
        for p in ps:
            try:
                with open("/proc/%d/comm" % p) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm not in ("strace", "candidate.sh", "bash", "sh"):
                out.append(p)
        return out

    def mark(self, phase, ops):
        time.sleep(0.4)  # the server finishes the last connection (close, free)
        t = time.time()
        extra = {}
        if self.tool == "cg":
            extra["dumps"] = self.dump()
        elif self.tool == "native":
            with open(self.mfile, "rb") as f:
                a, b, r, fr, _, used, rel = struct.unpack("<7Q", f.read(56))
            extra["malloc"] = (a, b, r, fr, used - rel) if _ == 0x6d636e74 else None
            extra["rss"] = self.rss_kib()
        elif self.tool == "perf":
            extra["perf"] = self.perf_stop()
            self.perf_start()
        self.marks.append((phase, t, ops, extra))

    def rss_kib(self):
        total = 0
        for p in self.traced_pids():
            try:
                with open("/proc/%d/status" % p) as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        return total

    def dump(self):
        before = set(os.listdir(self.dir))
        pids = [p for p in self.pids() if os.path.exists("/proc/%d" % p)]
        subprocess.run(["callgrind_control", "-d"] + [str(p) for p in pids],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        deadline = time.time() + 120
        while time.time() < deadline:
            new = [f for f in set(os.listdir(self.dir)) - before if f.startswith("cg.")]
            if len(new) >= len(pids) and all(self.complete(f) for f in new):
                return sorted(new)
            time.sleep(0.2)
        raise SystemExit("profile: callgrind dumps missing in %s" % self.dir)

    def complete(self, f):
        try:
            with open(os.path.join(self.dir, f), "rb") as fh:
                fh.seek(0, 2)
                n = fh.tell()
                fh.seek(max(0, n - 200))
                return b"totals:" in fh.read()
        except OSError:
            return False

    def perf_start(self):
        self.perf = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", "cycles,instructions", "-p",
             ",".join(str(p) for p in self.traced_pids())],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def perf_stop(self):
        if not self.perf:
            return {}
        self.perf.send_signal(signal.SIGINT)
        _, err = self.perf.communicate(timeout=30)
        out = {}
        for line in err.decode().splitlines():
            f = line.split(",")
            if len(f) > 2 and f[0].isdigit():
                out[f[2]] = int(f[0])
        return out

    def stop(self):
        if self.perf:
            self.perf_stop()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # nginx workers may outlive the master briefly
        time.sleep(0.5)
        self.log.close()
        LIVE.remove(self.proc)


def drive(name, mode, tool):
    r = Run(name, mode, tool)
    n, k = A.n, A.k
    try:
        if mode == "plain":
            run_full(5)
            s, _ = one_close()
            run_resumed(5, s)
            t = connect()
            ka_requests(t, 20)
            t.close()
            if tool == "perf":
                r.perf_start()
            r.mark("warm", 0)
            time.sleep(A.idle)
            r.mark("idle", 0)
            run_full(n)
            r.mark("full", n)
            s, _ = one_close()
            r.mark("-", 0)
            run_resumed(n, s)
            r.mark("resumed", n)
            t = connect()
            ka_requests(t, 1)
            r.mark("-", 0)
            ka_requests(t, k)
            r.mark("keepalive", k)
            t.close()
            if tool == "native" and A.idle_conns:
                # scenario d: connections with the handshake done and nothing sent
                time.sleep(0.5)
                r.mark("-", 0)
                held = [connect() for _ in range(A.idle_conns)]
                time.sleep(1.0)
                r.mark("idleconn", A.idle_conns)
                for t in held:
                    t.close()
        else:
            run_full(5, True)
            if tool == "perf":
                r.perf_start()
            r.mark("warm", 0)
            run_full(n, True)
            r.mark("mtls", n)
    finally:
        r.stop()
    return r


# ------------------------------------------------------------------ analysis
def classify(ob, server):
    b = os.path.basename(ob)
    if b.startswith("libssl"):
        return "libssl"
    if b.startswith("libcrypto"):
        return "libcrypto"
    if b.startswith("libuv"):
        return "libuv"
    if b.startswith("libc.so") or b.startswith("libc-"):
        return "libc"
    if b == (os.path.basename(A.tlsgate_bin) if server == "tlsgate" else server):
        return "own"
    return "other"


MALLOC_FNS = re.compile(r"^(malloc|free|calloc|realloc|_int_malloc|_int_free|_int_realloc|"
                        r"malloc_consolidate|unlink_chunk.*|tcache_.*|sysmalloc|__libc_.*alloc|"
                        r"__libc_free|_int_memalign|_mid_memalign|posix_memalign|memalign|"
                        r"aligned_alloc|cfree|arena_get2.*|checked_request2size|__malloc_.*)$")


def parse_cg(path, server):
    """Self cost (Ir) by object class; and the malloc family's share of libc."""
    names = {"ob": {}, "fn": {}}
    out = collections.Counter()
    ob = fn = ""
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    ir = int(parts[1])
                    cls = classify(ob, server)
                    out[cls] += ir
                    if cls == "libc" and MALLOC_FNS.match(fn):
                        out["malloc"] += ir
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            m = re.match(r"^(ob|fn|cob|cfn|cfi|cfl|fl|fi|fe)=(?:\((\d+)\))?\s*(.*)$", line.rstrip("\n"))
            if m:
                key, ident, nm = m.groups()
                table = "ob" if key in ("ob", "cob") else "fn" if key in ("fn", "cfn") else None
                if table and ident:
                    if nm:
                        names[table][ident] = nm
                    nm = names[table].get(ident, nm)
                if key == "ob":
                    ob = nm
                elif key == "fn":
                    fn = nm
    return out


def strace_counts(path, bounds):
    """bounds: [(phase, t0, t1)] -> {phase: Counter(name)}; only the server's own processes."""
    out = {p: collections.Counter() for p, _, _ in bounds}
    rx = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(?:<\.\.\. )?([a-z0-9_]+)(\(| resumed>)")
    with open(path, errors="replace") as f:
        for line in f:
            m = rx.match(line)
            if not m:
                continue
            t = float(m.group(2))
            for p, t0, t1 in bounds:
                if t0 < t <= t1:
                    if m.group(4) == "(":
                        out[p][m.group(3)] += 1
                    if "= -1 EAGAIN" in line:
                        out[p]["(EAGAIN)"] += 1
                    break
    return out


def analyse(runs, server):
    """-> {phase: {metric: per-op value}}"""
    res = collections.defaultdict(dict)
    for r in runs:
        marks = r.marks
        phases = []
        for i in range(1, len(marks)):
            ph, t, ops, ex = marks[i]
            phases.append((ph, marks[i - 1][1], t, ops, marks[i - 1][3], ex))
        if r.tool == "cg":
            idle_rate = None
            tot = {}
            for ph, t0, t1, ops, ex0, ex in phases:
                c = collections.Counter()
                for f in ex["dumps"]:
                    c.update(parse_cg(os.path.join(r.dir, f), server))
                tot[ph] = (c, t1 - t0, ops)
            if "idle" in tot:
                c, dt, _ = tot["idle"]
                res["idle"]["cg_rate"] = {k: v / dt for k, v in c.items()}
            for ph, (c, dt, ops) in tot.items():
                if not ops:
                    continue
                rate = res["idle"].get("cg_rate", {})
                res[ph]["ir"] = {k: (v - rate.get(k, 0) * dt) / ops for k, v in c.items()}
        elif r.tool == "native":
            bounds = [(ph, t0, t1) for ph, t0, t1, *_ in phases]
            sc = strace_counts(r.strace, bounds)
            idle_dt = next((t1 - t0 for ph, t0, t1, *_ in phases if ph == "idle"), None)
            if idle_dt:
                res["idle"]["sc_rate"] = {k: v / idle_dt for k, v in sc["idle"].items()}
            for ph, t0, t1, ops, ex0, ex in phases:
                if not ops:
                    continue
                rate = res["idle"].get("sc_rate", {})
                res[ph]["sys"] = {k: (v - rate.get(k, 0) * (t1 - t0)) / ops
                                  for k, v in sc[ph].items()}
                m0, m1 = ex0["malloc"], ex["malloc"]
                if m0 is not None and m1 is not None:
                    res[ph]["malloc"] = [(b - a) / ops for a, b in zip(m0, m1)]
                res[ph]["rss"] = (ex["rss"] - ex0["rss"]) / ops
        elif r.tool == "perf":
            for ph, t0, t1, ops, ex0, ex in phases:
                if ops:
                    res[ph]["perf"] = {k: v / ops for k, v in ex.get("perf", {}).items()}
    return res


def fmt(v):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    return "{:.1f}".format(v)


def ratio(a, b):
    if a is None or b is None or not b:
        return ""
    return "%.2fx" % (a / b)


def table(results, servers):
    lines = []
    titles = {"full": "full handshake (per connection)", "resumed": "resumed handshake (per connection)",
              "mtls": "mutual-TLS full handshake (per connection)",
              "keepalive": "kept-alive request (per request)",
              "idleconn": "idle TLS connection, handshake done (per connection)"}
    for ph in ("full", "resumed", "mtls", "keepalive", "idleconn"):
        if not any(ph in results[s] for s in servers):
            continue
        rows = []

        def row(label, getter):
            vals = [getter(results[s].get(ph, {})) for s in servers]
            rows.append((label, vals))

        row("user instructions (callgrind Ir)",
            lambda d: sum(v for k, v in d["ir"].items() if k != "malloc") if "ir" in d else None)
        for cls, label in (("libssl", "  libssl"), ("libcrypto", "  libcrypto"), ("libuv", "  libuv"),
                           ("libc", "  libc"), ("malloc", "    of which malloc/free"),
                           ("own", "  own binary (tlsgate / nginx)"), ("other", "  other")):
            row(label, lambda d, c=cls: d["ir"].get(c, 0) if "ir" in d else None)
        row("system calls", lambda d: sum(v for k, v in d["sys"].items() if k[0] != "(")
            if "sys" in d else None)
        row("&nbsp;&nbsp;of which returned EAGAIN (timing-dependent)",
            lambda d: d["sys"].get("(EAGAIN)", 0) if "sys" in d else None)
        names = set()
        for s in servers:
            names |= set(results[s].get(ph, {}).get("sys", {}))
        names.discard("(EAGAIN)")
        for nm in sorted(names, key=lambda n: -max(results[s].get(ph, {}).get("sys", {}).get(n, 0)
                                                  for s in servers)):
            if max(results[s].get(ph, {}).get("sys", {}).get(nm, 0) for s in servers) < 0.05:
                continue
            row("  " + nm, lambda d, n=nm: d["sys"].get(n, 0) if "sys" in d else None)
        row("allocations (malloc+calloc+memalign)", lambda d: d["malloc"][0] if "malloc" in d else None)
        row("reallocs", lambda d: d["malloc"][2] if "malloc" in d else None)
        row("bytes allocated", lambda d: d["malloc"][1] if "malloc" in d else None)
        row("frees", lambda d: d["malloc"][3] if "malloc" in d else None)
        if ph == "idleconn":
            row("live heap growth, bytes (usable size)", lambda d: d["malloc"][4] if "malloc" in d else None)
            row("RSS growth, KiB", lambda d: d.get("rss"))
        row("perf cycles", lambda d: d.get("perf", {}).get("cycles"))
        lines.append("\n#### %s\n" % titles[ph])
        lines.append("| | " + " | ".join(servers) + (" | %s/%s" % (servers[0], servers[1]) if len(servers) == 2 else "") + " |")
        lines.append("| --- " * (len(servers) + 1 + (len(servers) == 2)) + "|")
        for label, vals in rows:
            if all(v is None for v in vals):
                continue
            r = (" | " + ratio(vals[0], vals[1])) if len(servers) == 2 else ""
            lines.append("| %s | %s%s |" % (label.replace("  ", "&nbsp;&nbsp;"), " | ".join(fmt(v) for v in vals), r))
    return "\n".join(lines)


def main():
    servers = A.servers.split(",")
    tools = A.tools.split(",")
    if "perf" in tools:
        p = subprocess.run(["perf", "stat", "-x", ",", "-e", "cycles", "true"],
                           capture_output=True, text=True)
        if "not supported" in p.stderr or p.returncode != 0:
            log("perf: no hardware counters on this machine (perf stat -e cycles: not supported); skipped")
            tools.remove("perf")
    results = {}
    for s in servers:
        runs = []
        for mode in ("plain", "mtls"):
            for tool in tools:
                log("%s: %s config under %s" % (s, mode, tool))
                t0 = time.time()
                runs.append(drive(s, mode, tool))
                log("  done in %.0f s" % (time.time() - t0))
        results[s] = analyse(runs, s)
    with open(os.path.join(A.out, "profile.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print(table(results, servers))


def on_signal(sig, _):
    raise SystemExit(128 + sig)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    try:
        main()
    finally:
        for p in list(LIVE):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
