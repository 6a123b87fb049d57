"""Backend and request failures: refused target, slow origin, header limits, slow clients."""
import time

import testenv
from testenv import Conn


def _config(certs, tmp_path, port, target, timeouts=None, limits=None):
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [target]}},
    }
    if timeouts:
        cfg["timeouts"] = timeouts
    if limits:
        cfg["limits"] = limits
    return cfg


def test_refused_target_gives_502(gateway, certs, tmp_path):
    dead = testenv.free_port()
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, "127.0.0.1:%d" % dead))
    with Conn(port) as c:
        r = c.request("GET", "/")
        assert r.status == 502
    target = "127.0.0.1:%d" % dead
    text = gw.wait_log(lambda s: any(target in l and "refused" in l.lower()
                                     for l in s.splitlines()))
    assert text, "no log line naming %s and 'refused':\n%s" % (target, gw.log_tail())


def test_slow_origin_gives_504(gateway, origin, certs, tmp_path):
    o = origin("slow")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o.address, timeouts={"backend_response": 1}))
    with Conn(port) as c:
        t0 = time.monotonic()
        r = c.request("GET", "/slow?seconds=4")
        took = time.monotonic() - t0
    assert r.status == 504
    assert 0.8 <= took < testenv.t(3), "504 after %.1f s (timeout 1 s)" % took


def test_header_limits(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o.address,
                         limits={"max_header_bytes": 4096, "max_headers": 20}))
    with Conn(port) as c:
        r = c.request("GET", "/echo", headers=[("X-Big", "a" * 8000)])
        assert r.status == 431
    with Conn(port) as c:
        r = c.request("GET", "/echo", headers=[("X-H%d" % i, "v") for i in range(40)])
        assert r.status in (431, 400), r.status
    with Conn(port) as c:  # within the limits, and the gateway is still alive
        r = c.request("GET", "/echo", headers=[("X-H%d" % i, "v" * 50) for i in range(15)])
        assert r.status == 200
    assert gw.running()
    assert not any(p.startswith("/echo") and any(k == "X-Big" for k, _ in h)
                   for _, p, h in o.requests), "an over-limit request reached the origin"


def test_request_headers_timeout(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o.address, timeouts={"request_headers": 1}))
    with Conn(port) as c:
        c.send(b"GET /echo HT")
        t0 = time.monotonic()
        c.sock.settimeout(testenv.t(5))
        data = c.recv_all()
        took = time.monotonic() - t0
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
    assert 0.8 <= took < testenv.t(3), "closed after %.1f s (timeout 1 s)" % took
    assert o.requests == []


class _BlackHole:
    """A loopback listener whose accept queue is full: further connects hang (SYNs dropped)."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.held = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(self.sock.getsockname())
            except BlockingIOError:
                pass
            self.held.append(s)
        time.sleep(0.2)

    def close(self):
        for s in self.held:
            s.close()
        self.sock.close()


def test_backend_connect_timeout(gateway, origin, certs, tmp_path):
    hole = _BlackHole()
    try:
        port = testenv.free_port()
        gw = gateway(_config(certs, tmp_path, port, hole.address,
                             timeouts={"backend_connect": 1}))
        with Conn(port) as c:
            t0 = time.monotonic()
            r = c.request("GET", "/")
            took = time.monotonic() - t0
        assert r.status == 504, r.status
        assert 0.8 <= took < testenv.t(3), "504 after %.1f s (backend_connect 1 s)" % took
        text = gw.wait_log(lambda s: any(hole.address in l and "connect timed out" in l
                                         for l in s.splitlines()))
        assert text, "no log line naming the target and the timeout:\n" + gw.log_tail()

        # With a second, healthy target the request fails over instead.
        o = origin("app")
        port2 = testenv.free_port()
        cfg = _config(certs, tmp_path, port2, hole.address, timeouts={"backend_connect": 1})
        cfg["backends"]["app"]["targets"].append(o.address)
        gateway(cfg)
        with Conn(port2) as c:
            for _ in range(2):  # round-robin starts on either target
                assert c.request("GET", "/echo").status == 200
    finally:
        hole.close()
