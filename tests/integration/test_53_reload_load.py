"""Reloads and a kill -9 under load. 100 SIGHUP reloads at short intervals while HTTP/1.1
keep-alive clients, an HTTP/2 client and clients opening a new connection per request run
without pause: not one request fails, and afterwards the counters add up (accepted = closed +
open). kill -9 under load, then a restart: the listeners come back and the stored state (the
admin config version, an allow list changed through the API) is what it was."""
import json
import os
import random
import re
import signal
import ssl
import threading
import time
import urllib.parse

import pytest

import testenv
from testenv import Conn
from testenv.admin import Admin, admin_section, password_hash
from testenv.h2raw import collect_streams

PW = "reload-load-pw"
RELOADS = 100


def _config(certs, tmp_path, port, plain, target, n=0, admin=None):
    cfg = {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": None},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"clients": {"type": "pem", "file": certs.ca.cert}},
        "listeners": [
            {"name": "public", "address": "127.0.0.1:%d" % port,
             "tls": {"certificates": ["ec"], "alpn": ["h2", "http/1.1"],
                     "client_auth": {"mode": "optional", "truststore": "clients",
                                     "allowed_subjects": ["CN=bob,O=Org"]}},
             # a route that changes with every reload: each one is a real new snapshot
             "routes": [{"path_prefix": "/gen%d/" % n, "backend": "status"},
                        {"path_prefix": "/", "backend": "app"}]},
            {"name": "plain", "address": "127.0.0.1:%d" % plain, "tls": {"disabled": True},
             "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"app": {"targets": [target]}, "status": {"builtin": "status"}},
    }
    if admin:
        cfg["admin"] = admin
    return cfg


class Load:
    """Clients that run until stop(): HTTP/1.1 keep-alive, HTTP/1.1 a connection per request,
    HTTP/2 streams on one connection. Every failure is kept with what it was."""

    def __init__(self, certs, port, tolerate=False, curl=False):
        self.certs, self.port = certs, port
        self.tolerate = tolerate  # during a kill -9: failures are counted, clients reconnect
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.ok = {"keepalive": 0, "newconn": 0, "h2": 0}
        self.failures = []
        self.retried = 0  # HTTP/2 streams above a graceful GOAWAY's last_stream_id, sent again
        self.threads = [threading.Thread(target=self._keepalive, daemon=True) for _ in range(2)]
        self.threads.append(threading.Thread(target=self._newconn, daemon=True))
        self.threads.append(threading.Thread(target=self._h2, daemon=True))
        if curl:
            self.ok["curl_h2"] = 0
            self.threads.append(threading.Thread(target=self._curl, daemon=True))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=testenv.t(30))

    def _count(self, kind):
        with self.lock:
            self.ok[kind] += 1

    def _fail(self, kind, what):
        with self.lock:
            self.failures.append((time.monotonic(), kind, what))
        if self.tolerate:
            time.sleep(0.05)

    def total(self):
        with self.lock:
            return sum(self.ok.values())

    def _keepalive(self):
        c = None
        i = 0
        while not self.stopping.is_set():
            try:
                if c is None:
                    c = Conn(self.port)
                i += 1
                r = c.request("GET", "/echo?ka=%d" % i)
                if r.status != 200 or b'"/echo?ka=%d"' % i not in r.body:
                    self._fail("keepalive", (r.status, r.body[:200]))
                else:
                    self._count("keepalive")
            except (OSError, ConnectionError, ssl.SSLError) as e:
                self._fail("keepalive", repr(e))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def _newconn(self):
        while not self.stopping.is_set():
            try:
                r = testenv.get(self.port, "/new")
                if r.status != 200:
                    self._fail("newconn", r.status)
                else:
                    self._count("newconn")
            except (OSError, ConnectionError, ssl.SSLError) as e:
                self._fail("newconn", repr(e))

    def _curl(self):
        """curl --http2: 20 requests on one connection per run, as a real client handles a
        GOAWAY (a refused stream goes again on a new connection by itself)."""
        n = 0
        while not self.stopping.is_set():
            urls = []
            for i in range(20):
                urls += ["-o", "/dev/null", "https://localhost:%d/curl/%d" % (self.port, n + i)]
            n += 20
            r = testenv.curl("--http2", "-sS", "--cacert", self.certs.ca.cert, "--resolve",
                             "localhost:%d:127.0.0.1" % self.port, "-w", "%{http_code}\n",
                             *urls, timeout=testenv.t(60))
            codes = r.stdout.decode().split()
            if r.returncode != 0 or codes != ["200"] * 20:
                codes = [(i, c) for i, c in enumerate(codes) if c != "200"]
                self._fail("curl_h2", (r.returncode, codes, r.stderr[-300:]))
            else:
                with self.lock:
                    self.ok["curl_h2"] += 20

    def _h2(self):
        hpack = pytest.importorskip("hpack")
        from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame
        from testenv.h2raw import H2
        c = None
        while not self.stopping.is_set():
            try:
                if c is None:
                    c = H2(self.certs, self.port)
                    dec, sid = hpack.Decoder(), 1
                c.send(c.head(sid, path="/h2/%d" % sid))
                status, data, last = None, b"", None
                while True:
                    f = c.frame()
                    if isinstance(f, GoAwayFrame) and f.error_code == 0:
                        # a graceful GOAWAY (a reload): streams up to last_stream_id finish;
                        # a later one was not processed and goes again on a new connection
                        last = f.last_stream_id
                        if sid <= last:
                            continue
                        with self.lock:
                            self.retried += 1
                        break
                    if f is None and last is not None and sid > last:
                        break
                    if f is None or isinstance(f, (GoAwayFrame, RstStreamFrame)):
                        raise ConnectionError("stream %d: %r" % (sid, f))
                    if isinstance(f, HeadersFrame):
                        h = dict(dec.decode(f.data))
                        if f.stream_id == sid and ":status" in h:
                            status = int(h[":status"])
                    elif isinstance(f, DataFrame) and f.stream_id == sid:
                        data += f.data
                    if getattr(f, "stream_id", 0) == sid and "END_STREAM" in f.flags:
                        break
                if last is not None:
                    c.close()
                    c = None
                    if sid > last:
                        continue
                if status != 200 or ("/h2/%d" % sid).encode() not in data:
                    self._fail("h2", (status, data[:200]))
                else:
                    self._count("h2")
                sid += 2
            except (OSError, ConnectionError, ssl.SSLError, AssertionError) as e:
                self._fail("h2", repr(e))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()


def _status(plain):
    with Conn(plain, tls=False) as c:
        return c.request("GET", "/_status").json()


def test_100_reloads_under_keepalive_load(gateway, origin, certs, tmp_path):
    hpack = pytest.importorskip("hpack")  # noqa: F841 (the HTTP/2 client's)
    o = origin("app")
    port, plain = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, plain, o.address))
    load = Load(certs, port, curl=True).start()
    try:
        assert testenv.wait_until(lambda: all(load.ok.values()), testenv.t(10)), load.ok
        t0 = time.monotonic()
        for n in range(1, RELOADS + 1):
            gw.reload(_config(certs, tmp_path, port, plain, o.address, n=n))
            assert gw.wait_log(lambda s: "config reloaded (generation %d)" % (n + 1) in s,
                               timeout=10), "reload %d not applied:\n%s" % (n, gw.log_tail(20))
            assert not load.failures, load.failures[:5]
        took = time.monotonic() - t0
        before = load.total()
        assert testenv.wait_until(lambda: load.total() > before + 10, testenv.t(10))
    finally:
        load.stop()
    print("%d reloads in %.1f s under load: %s requests, failures %d, HTTP/2 streams sent "
          "again after a GOAWAY %d" % (RELOADS, took, load.ok, len(load.failures), load.retried))
    assert not load.failures, load.failures[:10]
    # a reload's GOAWAY comes in two steps: no stream the client sent before it saw the notice
    # is refused (one GOAWAY refused about one per reload, and curl failed those requests)
    assert load.retried == 0, load.retried
    assert all(v > RELOADS / 10 for v in load.ok.values()), load.ok
    st = _status(plain)
    assert st["config_generation"] == RELOADS + 1, st
    # the load is over: every accepted connection is closed or open (this one)
    conns = st["connections"]
    assert conns["accepted"] == conns["closed"] + conns["active"], conns
    assert testenv.wait_until(lambda: _status(plain)["connections"]["active"] == 1,
                              testenv.t(10)), _status(plain)["connections"]
    assert gw.running()


def _snapshots(plain):
    st = _status(plain)
    return st["config_snapshots_live"], st["backends"]["pool_idle"], st["backends"]["reuses"]


def test_reloads_let_go_of_old_snapshots_at_once(gateway, origin, certs, tmp_path):
    """Idle pooled backend connections belong to the snapshot they were opened under and used to
    keep it (every TLS context and the config) until timeouts.idle (60 s). Now a worker closes
    them when it takes a new snapshot: after 20 reloads, each followed by requests through the
    backend, the old snapshots are gone within seconds; a keep-alive client that stays on its
    old snapshot across all of them gets every answer; the pool keeps working."""
    o = origin("app")
    port, plain = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, plain, o.address))
    assert testenv.wait_until(lambda: _snapshots(plain)[0] == 1, testenv.t(5)), _snapshots(plain)
    old = Conn(port)  # accepted under generation 1: keeps it for its life
    assert old.request("GET", "/old-0").status == 200
    for n in range(1, 21):
        gw.reload(_config(certs, tmp_path, port, plain, o.address, n=n))
        assert gw.wait_log(lambda s: "config reloaded (generation %d)" % (n + 1) in s,
                           timeout=10), gw.log_tail(20)
        for i in range(4):  # new connections: backend connections pooled under generation n+1
            assert testenv.get(port, "/r%d-%d" % (n, i)).status == 200
        r = old.request("GET", "/old-%d" % n)
        assert r.status == 200, r.status
    # generation 21 plus the one the old client holds, and nothing else, within seconds (not
    # after timeouts.idle): a worker closes the idle connections of older ones when it takes the
    # new snapshot, the last ones on the first reload after them
    assert testenv.wait_until(lambda: _snapshots(plain)[0] == 2, testenv.t(3)), _snapshots(plain)
    old.close()
    assert testenv.wait_until(lambda: _snapshots(plain)[0] == 1, testenv.t(3)), _snapshots(plain)
    live, idle, reuses = _snapshots(plain)
    assert idle >= 1, _status(plain)  # the current snapshot's connections stay pooled
    for i in range(4):
        assert testenv.get(port, "/again-%d" % i).status == 200
    assert _snapshots(plain)[2] > reuses, _status(plain)  # and are reused
    gw.reload(_config(certs, tmp_path, port, plain, o.address, n=99))
    assert gw.wait_log(lambda s: "config reloaded (generation 22)" in s, timeout=10)
    assert testenv.wait_until(lambda: _snapshots(plain)[:2] == (1, 0), testenv.t(3)), \
        _status(plain)
    assert gw.running()


def test_kill_9_and_restart_under_load(gateway, origin, certs, tmp_path):
    o = origin("app")
    port, plain, aport = testenv.free_port(), testenv.free_port(), testenv.free_port()
    admin = admin_section(aport, password_hash(PW), tls={"certificates": ["ec"]})
    cfg = _config(certs, tmp_path, port, plain, o.address, admin=admin)
    ports = [(port, True), (plain, False), (aport, True)]
    gw = gateway(cfg, ready_ports=ports)
    allow = "/api/v1/listeners/public/allowed-client-certificate-subjects"
    subject = "CN=carol,O=Org"
    with Admin(aport, password=PW) as a:
        r = a.request("PUT", allow + "/" + urllib.parse.quote(subject))
        assert r.status == 201, r.body
        version = r.json["version"]
    stored = json.load(open(os.path.join(str(tmp_path / "state"), "config.json")))
    assert stored["version"] == version
    load = Load(certs, port, tolerate=True).start()
    try:
        assert testenv.wait_until(lambda: all(load.ok.values()), testenv.t(10)), load.ok
        gw.expect_exit()
        os.killpg(gw.proc.pid, signal.SIGKILL)
        gw.wait_exit()
        assert gw.returncode == -signal.SIGKILL
        killed_at = time.monotonic()
        t0 = time.monotonic()
        gw2 = gateway(cfg, name="restarted", ready_ports=ports)
        back_in = time.monotonic() - t0
        before = dict(load.ok)
        assert testenv.wait_until(lambda: all(load.ok[k] > before[k] for k in before),
                                  testenv.t(15)), (before, load.ok, load.failures[-5:])
    finally:
        load.stop()
    print("restarted and ready in %.2f s; failures while down: %d" % (back_in, len(load.failures)))
    # requests fail only while nothing listens (between the kill and the restart being ready)
    late = [f for f in load.failures if f[0] > killed_at + back_in + testenv.t(2)]
    assert not late, late[:5]
    with Admin(aport, password=PW) as a:
        doc = a.get("/api/v1/config").json
        assert doc["version"] == version, doc["version"]
        assert a.get(allow).json["allowed_subjects"] == ["CN=bob,O=Org", subject]
    assert "the stored state" in gw2.log_text(), gw2.log_tail(10)
    assert not [n for n in os.listdir(str(tmp_path / "state")) if ".tmp." in n]
    assert re.search(r"listener public on 127\.0\.0\.1:%d" % port, gw2.log_text())


# ---- reloads under pipelining and concurrent HTTP/2 streams, through a TLS backend pool ----

def _tls_pool_config(certs, tmp_path, port, be, n):
    return {"version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
            "log": {"level": "info", "access_log": None},
            "keystores": {"ec": certs.ec.keystore()},
            "truststores": {"ca": {"type": "pem", "file": certs.ca.cert}},
            "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                           "tls": {"certificates": ["ec"], "alpn": ["h2", "http/1.1"]},
                           "routes": [{"path_prefix": "/gen%d/" % n, "backend": "app"},
                                      {"path_prefix": "/", "backend": "app"}]}],
            "backends": {"app": {"targets": [be.address],
                                 "tls": {"truststore": "ca", "server_name": "localhost"}}}}


def _h2_batch(c, dec, sids):
    """Reads until every stream in sids ended or was reset, or lies above a GOAWAY's last stream
    id: ({sid: (status, data, 'end'|'rst')}, last stream id or None)."""
    return collect_streams(c, dec, sids, goaway_ok=True)


def test_100_reloads_under_pipelining_and_concurrent_streams(gateway, certs, tmp_path):
    """100 reloads while two HTTP/1.1 clients pipeline three requests per write and two HTTP/2
    clients keep eight streams in flight at a time, all through a TLS backend's pooled
    connections: every response is the one to its request (the backend tags each), none fails,
    no stream is refused."""
    hpack = pytest.importorskip("hpack")
    from testenv.faulty import FaultyBackend
    from testenv.h2raw import H2
    tag = re.compile(rb"^ok c\d+-r\d+ /ok\n$")
    be = FaultyBackend(tls=(certs.ec.cert, certs.ec.key))
    port = testenv.free_port()
    gw = gateway(_tls_pool_config(certs, tmp_path, port, be, 0))
    stop = threading.Event()
    ok = {"pipelined": 0, "h2": 0}
    fails = []

    def pipelined():
        c = None
        while not stop.is_set():
            try:
                c = c or Conn(port)
                c.send(b"".join(Conn.build("GET", "/ok", c.host) for _ in range(3)))
                for _ in range(3):
                    r = c.read_response()
                    assert r.status == 200 and tag.match(r.body), (r.status, r.body[:100])
                    ok["pipelined"] += 1
            except (OSError, ConnectionError, ssl.SSLError, AssertionError) as e:
                fails.append(("pipelined", repr(e)))
                c = None
        if c:
            c.close()

    def h2():
        c = None
        while not stop.is_set():
            try:
                if c is None:
                    c, dec, sid = H2(certs, port), hpack.Decoder(), 1
                sids = list(range(sid, sid + 16, 2))
                sid += 16
                c.send(b"".join(c.head(s, path="/ok") for s in sids))
                got, last = _h2_batch(c, dec, sids)
                for s, (status, data, how) in got.items():
                    if last is not None and s > last:
                        fails.append(("h2 refused", s, last))
                    elif status != 200 or how != "end" or not tag.match(data):
                        fails.append(("h2", s, status, how, data[:100]))
                    else:
                        ok["h2"] += 1
                if last is not None:
                    c.close()
                    c = None
            except (OSError, ConnectionError, ssl.SSLError, AssertionError) as e:
                fails.append(("h2", repr(e)))
                c = None
        if c:
            c.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (pipelined, pipelined, h2, h2)]
    for t in threads:
        t.start()
    try:
        assert testenv.wait_until(lambda: all(ok.values()), testenv.t(10)), ok
        t0 = time.monotonic()
        for n in range(1, RELOADS + 1):
            gw.reload(_tls_pool_config(certs, tmp_path, port, be, n))
            assert gw.wait_log(lambda s: "config reloaded (generation %d)" % (n + 1) in s,
                               timeout=10), "reload %d not applied:\n%s" % (n, gw.log_tail(20))
        took = time.monotonic() - t0
        before = dict(ok)
        assert testenv.wait_until(lambda: all(ok[k] > before[k] for k in ok), testenv.t(10))
    finally:
        stop.set()
        for t in threads:
            t.join(testenv.t(30))
        be.close()
    print("%d reloads in %.1f s: %s, failures %d" % (RELOADS, took, ok, len(fails)))
    assert not fails, fails[:10]


def test_kill_9_during_admin_writes(gateway, origin, certs, tmp_path):
    """Eight times: allow-list writes through the admin API one after another, and kill -9 at a
    random moment among them. After each restart every write that was answered 201 is there,
    nothing else but the one in flight may be, the stored file parses and no temporary file is
    left."""
    o = origin("app")
    port, plain, aport = testenv.free_port(), testenv.free_port(), testenv.free_port()
    admin = admin_section(aport, password_hash(PW), tls={"certificates": ["ec"]})
    cfg = _config(certs, tmp_path, port, plain, o.address, admin=admin)
    ports = [(port, True), (plain, False), (aport, True)]
    allow = "/api/v1/listeners/public/allowed-client-certificate-subjects"
    state = str(tmp_path / "state")
    confirmed, sent = [], []
    rnd = random.Random(17)
    for cycle in range(9):
        gw = gateway(cfg, name="gw%d" % cycle, ready_ports=ports)
        with Admin(aport, password=PW) as a:
            got = [s for s in a.get(allow).json["allowed_subjects"] if s != "CN=bob,O=Org"]
        assert not [s for s in confirmed if s not in got], (cycle, confirmed, got)
        assert set(got) - set(confirmed) <= set(sent[-1:]), (cycle, got, confirmed)
        assert not [n for n in os.listdir(state) if ".tmp." in n], os.listdir(state)
        with open(os.path.join(state, "config.json")) as f:
            json.load(f)
        if cycle == 8:
            break
        confirmed[:] = got
        stop = threading.Event()

        def writer():
            try:
                with Admin(aport, password=PW) as a:
                    while not stop.is_set():
                        s = "CN=u%d,O=Org" % len(sent)
                        sent.append(s)
                        if a.request("PUT", allow + "/" + urllib.parse.quote(s)).status == 201:
                            confirmed.append(s)
            except Exception:  # noqa: BLE001 (killed: whatever the client library makes of it)
                pass
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        assert testenv.wait_until(lambda: len(confirmed) > len(got), testenv.t(5))
        time.sleep(rnd.random() * 0.3)
        gw.expect_exit()
        os.killpg(gw.proc.pid, signal.SIGKILL)
        gw.wait_exit()
        stop.set()
        t.join(testenv.t(10))
    print("kill -9 during admin writes: %d subjects confirmed of %d sent" % (len(confirmed),
                                                                          len(sent)))
    assert gw.running()


def test_tunnels_and_websockets_survive_reloads(gateway, certs, tmp_path):
    """Four WebSockets and a tcp tunnel opened before 30 reloads keep echoing across them (they
    keep their snapshot); a WebSocket opened after uses the new routes."""
    from testenv import pp2
    from testenv.pp2 import TunnelClient
    from testenv.wsecho import WSClient, WSServer
    ws = WSServer(name="echo")
    tcpb = pp2.TCPBackend(pp2.bulk_handler, proxy_header="none", name="bulk")
    port, tport = testenv.free_port(), testenv.free_port()

    def cfg(n):
        return {"version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
                "log": {"level": "info"}, "keystores": {"ec": certs.ec.keystore()},
                "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                               "tls": {"certificates": ["ec"]},
                               "routes": [{"path_prefix": "/g%d/" % n, "backend": "ws"},
                                          {"path_prefix": "/", "backend": "ws"}]},
                              {"name": "raw", "address": "127.0.0.1:%d" % tport, "mode": "tcp",
                               "backend": "bulk", "proxy_protocol_out": False,
                               "tls": {"certificates": ["ec"]}}],
                "backends": {"ws": {"targets": [ws.address]},
                             "bulk": {"targets": [tcpb.address]}}}
    gw = gateway(cfg(0))
    clients = []
    try:
        clients = [WSClient(port, "/ws%d" % i) for i in range(4)]
        with TunnelClient(tport, ctx=testenv.tls_context(), timeout=testenv.t(10)) as t:
            t.send(b"ECHO 90000\n")
            for n in range(1, 31):
                gw.reload(cfg(n))
                assert gw.wait_log(lambda s: "config reloaded (generation %d)" % (n + 1) in s,
                                   timeout=10), gw.log_tail(20)
                for i, c in enumerate(clients):
                    c.send("m%d-%d" % (n, i))
                    assert c.recv() == "m%d-%d" % (n, i)
                t.send(b"y" * 3000)
                assert t.recv_exact(3000) == b"y" * 3000
        clients.append(WSClient(port, "/g30/new"))
        clients[-1].send("new")
        assert clients[-1].recv() == "new"
    finally:
        for c in clients:
            c.close()
        ws.close()
        tcpb.close()
