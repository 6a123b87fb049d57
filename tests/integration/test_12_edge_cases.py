"""HTTP edge cases through the proxy: HEAD, 304 with a Content-Length, malformed backend status
lines, obs-fold and bad header names, HTTP/1.0 clients, unmatched routes, plaintext listeners,
max_connections, backend resets mid-body, Upgrade, idle keep-alive timeout, IPv6, target failover,
and a reload that moves the listener."""
import socket
import ssl
import struct
import threading
import time

import pytest

import testenv
from testenv import Conn, chunked_body


# ---------------------------------------------------------------------------------------------
# helpers

def _config(certs, tmp_path, port, backends, routes=None, workers=1, tls=None, address=None,
            **extra):
    """backends: name -> list of "host:port" targets."""
    cfg = {
        "version": 1, "workers": workers, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": address or "127.0.0.1:%d" % port,
                       "tls": tls or {"certificates": ["ec"]},
                       "routes": routes or [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {name: (t if isinstance(t, dict) else {"targets": list(t)})
                     for name, t in backends.items()},
    }
    cfg.update(extra)
    return cfg


def _echo_headers(r):
    assert r.status == 200, (r.status, r.body[:300])
    return r.json()["headers"]


def _hget(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def _read_to_eof(sock, timeout):
    """Reads a plain or TLS socket until EOF/reset; raises socket.timeout if it stays open."""
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return out
        if not d:
            return out
        out += d


def _split_response(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no complete response head in %r" % raw[:300]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return status, headers, body


class RawOrigin:
    """A tiny loopback origin that hands each request head to handler(sock, method, path, head)
    and writes whatever it likes. The handler returns True to keep the connection for another
    request, False to close it, or "gone" if it closed the socket itself. Requests must have no
    body."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.requests = []  # (method, path)
        self.accepts = 0
        self.closing = False
        self.conns = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True, name="raw-origin")
        self.thread.start()

    def _accept_loop(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepts += 1
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(30)
        buf = b""
        gone = False
        try:
            while not self.closing:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                first = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
                method, path = first[0], first[1] if len(first) > 1 else ""
                with self.lock:
                    self.requests.append((method, path))
                keep = self.handler(c, method, path, head.decode("latin-1"))
                if keep == "gone":
                    gone = True
                    return
                if not keep:
                    return
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(c)
            if not gone:
                try:
                    c.close()
                except OSError:
                    pass

    def close(self):
        self.closing = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)


@pytest.fixture
def raw_origin():
    made = []

    def make(handler):
        o = RawOrigin(handler)
        made.append(o)
        return o

    yield make
    for o in made:
        o.close()


def _ok(sock, body=b"ok\n"):
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Origin: raw\r\n\r\n" % len(body)
                 + body)
    return True


def _start(gateway, origin, certs, tmp_path, **kw):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]}, **kw))
    return gw, o, port


# ---------------------------------------------------------------------------------------------
# 1. HEAD

def test_head_keeps_content_length_without_body(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    want_body = b"origin app /hello\n"
    with Conn(port) as c:
        r = c.request("HEAD", "/hello")
        assert r.status == 200
        assert r.header("Content-Length") == str(len(want_body)), r.headers
        assert r.header("Transfer-Encoding") is None, r.headers
        # Any body bytes after the HEAD response would be read as the next status line here.
        r2 = c.request("GET", "/hello")
        assert r2.status == 200 and r2.body == want_body, (r2.status, r2.body[:200])
        r3 = c.request("HEAD", "/hello")
        assert r3.status == 200 and r3.header("Content-Length") == str(len(want_body))
        assert c.request("GET", "/echo").json()["method"] == "GET"
    assert [m for m, p, _ in o.requests] == ["HEAD", "GET", "HEAD", "GET"]


# ---------------------------------------------------------------------------------------------
# 2. 304 with Content-Length and no body

def test_304_with_content_length_has_no_body(gateway, raw_origin, certs, tmp_path):
    def handler(s, method, path, head):
        if path == "/cached":
            s.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n"
                      b"X-Origin: raw\r\n\r\n")
            return True
        return _ok(s)

    o = raw_origin(handler)
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address]},
                    timeouts={"backend_response": 5}))
    with Conn(port, timeout=10) as c:
        t0 = time.monotonic()
        r = c.request("GET", "/cached", headers=[("If-None-Match", "\"v1\"")])
        took = time.monotonic() - t0
        assert r.status == 304, r.status
        assert r.header("ETag") == "\"v1\""
        assert took < testenv.t(2), "304 took %.1f s (backend_response is 5 s)" % took
        t0 = time.monotonic()
        r = c.request("GET", "/after")
        took = time.monotonic() - t0
        assert r.status == 200 and r.body == b"ok\n", (r.status, r.body[:200])
        assert took < testenv.t(2), "request after the 304 took %.1f s" % took
    assert ("GET", "/after") in o.requests


# ---------------------------------------------------------------------------------------------
# 3. malformed backend status lines

@pytest.mark.parametrize("status_line", [b"HTTP/1.1 000 Zero", b"HTTP/1.1 20 OK"])
def test_malformed_backend_status_gives_502(gateway, raw_origin, certs, tmp_path, status_line):
    def handler(s, method, path, head):
        s.sendall(status_line + b"\r\nContent-Length: 2\r\n\r\nhi")
        return False

    o = raw_origin(handler)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    with Conn(port) as c:
        r = c.request("GET", "/bad-status")
        assert r.status == 502, (r.status, r.body[:200])
    assert o.requests, "the request never reached the raw origin"
    text = gw.wait_log(lambda s: any(o.address in l and "status" in l.lower()
                                     for l in s.splitlines()))
    assert text, "no log line naming %s and the bad status:\n%s" % (o.address, gw.log_tail())
    assert gw.running()


# ---------------------------------------------------------------------------------------------
# 4. obsolete line folding and bad header names

@pytest.mark.parametrize("head", [
    b"GET /echo?fold HTTP/1.1\r\nHost: localhost\r\nX-A: one\r\n two\r\n\r\n",
    b"GET /echo?fold-tab HTTP/1.1\r\nHost: localhost\r\nX-A: one\r\n\ttwo\r\n\r\n",
    b"GET /echo?space HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n",
], ids=["obs-fold-space", "obs-fold-tab", "space-in-name"])
def test_malformed_request_headers_give_400(gateway, origin, certs, tmp_path, head):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    with Conn(port) as c:
        c.send(head)
        r = c.read_response()
        assert r.status == 400, (r.status, r.body[:200])
    with Conn(port) as c:  # the gateway and the origin are fine
        assert c.request("GET", "/echo?good").status == 200
    paths = [p for _, p, _ in o.requests]
    assert paths == ["/echo?good"], "a malformed request reached the origin: %s" % paths


# ---------------------------------------------------------------------------------------------
# 5. HTTP/1.0 clients

def test_http10_client_close_delimited(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    with Conn(port) as c:
        c.send(b"GET /hello HTTP/1.0\r\n\r\n")
        raw = _read_to_eof(c.sock, testenv.t(5))
    status, headers, body = _split_response(raw)
    assert status == 200 and body == b"origin app /hello\n", raw[:400]

    with Conn(port) as c:
        c.send(b"GET /chunked?n=6 HTTP/1.0\r\nHost: localhost\r\n\r\n")
        raw = _read_to_eof(c.sock, testenv.t(5))
    status, headers, body = _split_response(raw)
    assert status == 200, raw[:400]
    assert _hget(headers, "Transfer-Encoding") == [], headers
    assert body == chunked_body(6), "HTTP/1.0 client got %r" % body[:200]
    # the origin did answer chunked (the gateway talks HTTP/1.1 to it)
    assert any(p == "/chunked?n=6" for _, p, _ in o.requests)


# ---------------------------------------------------------------------------------------------
# 6. no route

def test_no_matching_route_gives_404(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path,
                         routes=[{"host": "api.test", "path_prefix": "/", "backend": "app"}])
    with Conn(port) as c:
        r = c.request("GET", "/echo?nomatch")
        assert r.status == 404, (r.status, r.body[:200])
        r = c.request("GET", "/echo?match", headers=[("Host", "api.test")])
        assert r.status == 200 and r.header("X-Origin") == "app"
    assert [p for _, p, _ in o.requests] == ["/echo?match"]


# ---------------------------------------------------------------------------------------------
# 7. plaintext listener

def test_plaintext_listener(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path, tls={"disabled": True})
    with Conn(port, tls=False) as c:
        h = _echo_headers(c.request("GET", "/echo", headers=[("X-Forwarded-Proto", "https")]))
        assert _hget(h, "X-Forwarded-Proto") == ["http"], h
        assert _hget(h, "X-Forwarded-For") == ["127.0.0.1"], h
        assert c.request("GET", "/hello").body == b"origin app /hello\n"  # keep-alive


# ---------------------------------------------------------------------------------------------
# 8. limits.max_connections

def _try_get(port, timeout=3):
    try:
        with Conn(port, timeout=timeout) as c:
            return c.request("GET", "/hello").status
    except OSError:  # refused, reset, TLS EOF, timeout
        return None


def _open_working(port):
    """A TLS connection that answered one request (retrying while readiness probes drain)."""
    def attempt():
        try:
            c = Conn(port, timeout=3)
        except OSError:
            return None
        try:
            if c.request("GET", "/hello").status == 200:
                return c
        except OSError:
            pass
        c.close()
        return None
    c = testenv.wait_until(attempt, testenv.t(3))
    assert c, "could not open a working connection"
    return c


def test_max_connections(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path, limits={"max_connections": 2})
    a = _open_working(port)
    b = _open_working(port)
    try:
        n_before = len(o.requests)
        for _ in range(2):
            assert _try_get(port) is None, "a third connection was served with 2 open"
        assert len(o.requests) == n_before
        # the two open connections still work
        assert a.request("GET", "/hello").status == 200
        assert b.request("GET", "/hello").status == 200
        a.close()
        assert testenv.wait_until(lambda: _try_get(port) == 200, testenv.t(3)), \
            "no new connection accepted after one of the two was closed"
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------------------------
# 9. backend reset mid-response

def test_backend_reset_mid_response(gateway, raw_origin, certs, tmp_path):
    def handler(s, method, path, head):
        if path != "/reset":
            return _ok(s)
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nX-Origin: raw\r\n\r\n"
                  + b"x" * 10000)
        time.sleep(0.3)  # the gateway has forwarded the head and is waiting for more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
        return "gone"

    o = raw_origin(handler)
    port = testenv.free_port()
    # backend_response bounds how long a gateway that misses the reset would hang; the client
    # must see the close well before it.
    backend_response = testenv.t(4)
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]},
                         timeouts={"backend_response": backend_response}))
    problems = []
    with Conn(port) as c:
        c.send(Conn.build("GET", "/reset", "localhost"))
        c.sock.settimeout(testenv.t(5))
        line = c.f.readline(65536)
        assert line, "connection closed before any response"
        status = int(line.split(b" ")[1])
        headers = c._read_headers()
        assert status == 200, status
        assert ("Content-Length", "100000") in headers, headers
        got = b""
        t0 = time.monotonic()
        c.sock.settimeout(testenv.t(2))
        try:
            while True:
                d = c.f.read1(65536)
                if not d:
                    break
                got += d
        except (ssl.SSLError, ConnectionError):
            pass
        except socket.timeout:
            problems.append("the client connection was still open %.1f s after the backend "
                            "reset it (%d of 100000 body bytes received; backend_response is "
                            "%.0f s)" % (time.monotonic() - t0, len(got), backend_response))
    assert len(got) < 100000, "full body arrived despite the reset"
    assert gw.running()
    with Conn(port) as c:
        r = c.request("GET", "/after-reset")
        assert r.status == 200 and r.body == b"ok\n"
    text = gw.wait_log(lambda s: any(o.address in l and "backend=app" in l
                                     for l in s.splitlines()
                                     if "backend error" in l.lower()))
    if not text:
        problems.append("no backend error line naming backend=app and %s" % o.address)
    assert not problems, "\n".join(problems) + "\nlog:\n" + gw.log_tail()


# ---------------------------------------------------------------------------------------------
# 10. Upgrade is not forwarded

def test_refused_upgrade_relayed_as_plain_response(gateway, origin, certs, tmp_path):
    # A WebSocket upgrade is offered to the backend (issue 6); this origin answers 200 instead of
    # 101, so the answer is relayed as is and the connection stays HTTP/1.1.
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    with Conn(port) as c:
        r = c.request("GET", "/echo", headers=[
            ("Connection", "Upgrade"), ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
        assert r.status == 200, r.status
        h = r.json()["headers"]
        assert _hget(h, "Upgrade") == ["websocket"], h
        assert _hget(h, "Connection") == ["Upgrade"], h
        assert _hget(h, "Sec-WebSocket-Key") == ["dGhlIHNhbXBsZSBub25jZQ=="], h
        assert r.header("Upgrade") is None
        # no tunnel was set up: the connection still speaks HTTP/1.1
        assert c.request("GET", "/hello").body == b"origin app /hello\n"
        # Any other Upgrade (h2c) is hop-by-hop and dropped.
        r = c.request("GET", "/echo", headers=[("Connection", "Upgrade"), ("Upgrade", "h2c")])
        names = {k.lower() for k, _ in r.json()["headers"]}
        assert "upgrade" not in names and "connection" not in names


# ---------------------------------------------------------------------------------------------
# 11. keep-alive idle timeout

def test_keepalive_idle_timeout(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path, timeouts={"idle": 1})
    with Conn(port) as c:
        assert c.request("GET", "/hello").status == 200
        t0 = time.monotonic()
        try:
            rest = _read_to_eof(c.sock, testenv.t(4))
        except socket.timeout:
            pytest.fail("idle keep-alive connection still open after %.0f s (timeouts.idle 1)"
                        % testenv.t(4))
        took = time.monotonic() - t0
    assert rest == b"", rest[:200]
    assert 0.7 <= took <= testenv.t(4), "closed after %.2f s (timeouts.idle 1)" % took


# ---------------------------------------------------------------------------------------------
# 12. IPv6 listener

def _has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Conn6(Conn):
    def __init__(self, port, timeout=10):  # pylint: disable=super-init-not-called
        s = socket.create_connection(("::1", port), timeout=testenv.t(timeout))
        self.local_port = s.getsockname()[1]
        self.sock = testenv.tls_context().wrap_socket(s, server_hostname="localhost")
        self.f = self.sock.makefile("rb")
        self.host = "localhost"


def test_ipv6_listener(gateway, origin, certs, tmp_path):
    testenv.need(_has_ipv6_loopback(), "an IPv6 loopback address (::1) on this machine")
    o = origin("app")
    # A port free on ::1 and on 127.0.0.1 (the last assertion checks the IPv4 side stays closed,
    # which says nothing if some other process listens there).
    for _ in range(50):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
        if testenv.port_is_free(port):
            break
    # the readiness probe only knows 127.0.0.1: wait for [::1] here
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]},
                         address="[::1]:%d" % port), ready_ports=[])

    def ready():
        try:
            with Conn6(port, timeout=2) as c:
                return c.request("GET", "/echo")
        except OSError:
            return None
    r = testenv.wait_until(ready, testenv.t(10))
    assert r is not None, "no answer on [::1]:%d:\n%s" % (port, gw.log_tail())
    h = _echo_headers(r)
    assert _hget(h, "X-Forwarded-For") == ["::1"], h
    assert not testenv.can_connect(port), "listening on 127.0.0.1 too"


# ---------------------------------------------------------------------------------------------
# 13. failover to the second target

def test_failover_to_second_target(gateway, origin, certs, tmp_path):
    o = origin("second")
    dead = testenv.free_port()
    port = testenv.free_port()
    target = "127.0.0.1:%d" % dead
    gw = gateway(_config(certs, tmp_path, port, {"app": [target, o.address]}))
    for i in range(4):  # new connections: round robin starts on each target in turn
        with Conn(port) as c:
            r = c.request("GET", "/hello?%d" % i)
            assert r.status == 200, (i, r.status, r.body[:200])
            assert r.header("X-Origin") == "second"
    text = gw.wait_log(lambda s: any(target in l and "refused" in l.lower()
                                     for l in s.splitlines()))
    assert text, "no log line naming %s and 'refused':\n%s" % (target, gw.log_tail())


# ---------------------------------------------------------------------------------------------
# 14. reload that moves the listener

def test_reload_moves_listener(gateway, origin, certs, tmp_path):
    o = origin("app")
    old_port, new_port = testenv.free_port(), testenv.free_port()
    while new_port == old_port:
        new_port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, old_port, {"app": [o.address]}, workers=2))
    old = Conn(old_port)
    try:
        assert old.request("GET", "/before").status == 200
        gw.reload(_config(certs, tmp_path, new_port, {"app": [o.address]}, workers=2))
        assert testenv.wait_until(lambda: _try_get(new_port, timeout=2) == 200, testenv.t(5)), \
            "the new port does not serve after SIGHUP:\n" + gw.log_tail()
        assert testenv.wait_until(lambda: not testenv.can_connect(old_port, timeout=0.5),
                                  testenv.t(5)), "the old port still accepts after SIGHUP"
        # the keep-alive connection accepted on the old port still completes a request
        r = old.request("GET", "/after")
        assert r.status == 200 and r.body == b"origin app /after\n", (r.status, r.body[:200])
    finally:
        old.close()
    assert gw.running()


# ---------------------------------------------------------------------------------------------
# 15. backend_response bounds each silence, not the whole response

def test_backend_response_timeout_restarts_on_progress(gateway, raw_origin, certs, tmp_path):
    """A body that trickles in with gaps well under timeouts.backend_response is delivered in
    full, however long it takes in total."""
    n, gap = 10, testenv.t(0.35)

    def handler(s, method, path, head):
        if path != "/drip":
            return _ok(s)
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Origin: raw\r\n\r\n" % n)
        for _ in range(n):
            time.sleep(gap)
            s.sendall(b"d")
        return True

    o = raw_origin(handler)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]},
                         timeouts={"backend_response": testenv.t(1)}))
    with Conn(port, timeout=20) as c:
        t0 = time.monotonic()
        try:
            r = c.request("GET", "/drip")
        except OSError as e:
            pytest.fail("response cut after %.1f s although the origin never paused %.2f s "
                        "(backend_response %.1f s): %r"
                        % (time.monotonic() - t0, gap, testenv.t(1), e))
        assert r.status == 200 and r.body == b"d" * n, (r.status, r.body)
    assert not gw.log_lines("backend error"), gw.log_tail()


# ---------------------------------------------------------------------------------------------
# Our own responses announce the close when the client asked for it (else clients reuse a socket
# we are about to close).

def test_local_responses_announce_close(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address], "status": {"builtin": "status"}},
                    routes=[{"path_prefix": "/_status", "backend": "status"},
                            {"host": "api.test", "path_prefix": "/", "backend": "app"}]))
    for path, status in (("/_status", 200), ("/nomatch", 404)):
        with Conn(port) as c:
            r = c.request("GET", path, headers=[("Connection", "close")])
            assert r.status == status, (path, r.status)
            assert (r.header("Connection") or "").lower() == "close", (path, r.headers)
    with Conn(port) as c:  # keep-alive requests keep the connection
        r = c.request("GET", "/_status")
        assert r.status == 200 and r.header("Connection") is None
        assert c.request("GET", "/_status").status == 200


# ---------------------------------------------------------------------------------------------
# Out of file descriptors: the gateway pauses accepting instead of spinning, and recovers.

def _cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_out_of_descriptors_pauses_accepting(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]}), fd_limit=64)
    held = []
    try:
        for _ in range(90):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            held.append(s)
        assert gw.wait_log(lambda t: "cannot accept connections" in t), gw.log_tail()
        t0 = _cpu_ticks(gw.proc.pid)
        time.sleep(1.5)
        used = _cpu_ticks(gw.proc.pid) - t0
        # A spinning accept loop would burn ~150 ticks (1.5 s of a core) here.
        assert used < 40, "gateway used %d ticks while out of descriptors" % used
        lines = [l for l in gw.log_text().splitlines() if "cannot accept connections" in l]
        assert len(lines) <= 6, "log not rate limited: %d lines" % len(lines)
    finally:
        for s in held:
            s.close()
    time.sleep(testenv.t(0.5))
    with Conn(port) as c:
        assert c.request("GET", "/echo").status == 200


# ---------------------------------------------------------------------------------------------
# Drain deadline: a response slower than timeouts.shutdown is cut and the process still exits 0.

def test_shutdown_timeout_cuts_slow_requests(gateway, origin, certs, tmp_path):
    import signal as _signal
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]},
                         timeouts={"shutdown": 1}))
    result = {}

    def slow():
        try:
            with Conn(port, timeout=testenv.t(10)) as c:
                result["r"] = c.request("GET", "/slow?seconds=8")
        except Exception as e:  # the cut is expected
            result["error"] = e

    th = threading.Thread(target=slow)
    th.start()
    assert testenv.wait_until(lambda: any(p.startswith("/slow") for _, p, _ in o.requests),
                              testenv.t(5)), "the slow request never reached the origin"
    t0 = time.monotonic()
    gw.signal(_signal.SIGTERM)
    gw.wait_exit(timeout=5)
    took = time.monotonic() - t0
    th.join(testenv.t(10))
    assert gw.proc.returncode == 0, gw.log_tail()
    assert 0.8 <= took < testenv.t(3), "exit %.1f s after SIGTERM (shutdown 1 s)" % took
    assert "r" not in result or result["r"].status != 200, "slow response was not cut"
    assert "shutdown timeout reached" in gw.log_text(), gw.log_tail()
