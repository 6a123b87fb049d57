"""Slow request bodies: limits.min_body_rate (after limits.min_body_rate_grace) and
timeouts.request_body end a trickled or overlong body with 408 and close its backend connection;
fast uploads, and uploads held back by a slow backend, are left alone."""
import hashlib
import json
import os
import select
import socket
import ssl
import threading
import time

import pytest

import testenv
from testenv import Conn

# ---------------------------------------------------------------------------------------------
# helpers


def _config(certs, tmp_path, port, target, timeouts=None, limits=None):
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/status", "backend": "status"},
                                  {"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [target]}, "status": {"builtin": "status"}},
    }
    if timeouts:
        cfg["timeouts"] = timeouts
    if limits:
        cfg["limits"] = limits
    return cfg


def _start(gateway, certs, tmp_path, target, **kw):
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, target, **kw))
    return gw, port


def _body_timeouts(port):
    r = testenv.get(port, "/status")
    assert r.status == 200, (r.status, r.body[:200])
    return r.json()["requests"]["body_timeouts"]


def _post_head(length, path="/upload"):
    return ("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
            % (path, length)).encode()


def _read_to_eof(sock, timeout):
    """Reads until EOF/reset; raises socket.timeout if the connection stays open."""
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
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), headers, body


class SlowBody:
    """A client that sent a POST head and trickles its body; `answer` is the gateway's whole
    reply (read to EOF) once it came, `took` the seconds from the end of the head to it."""

    def __init__(self, port, length):
        self.conn = Conn(port)
        self.conn.send(_post_head(length))
        self.t0 = time.monotonic()
        self.answer = None
        self.took = None
        self.closed = False

    def send(self, data):
        try:
            self.conn.sock.sendall(data)
        except OSError:
            pass  # the gateway closed: its answer is waiting in the socket

    def readable(self):
        """The socket became readable: True once the gateway's answer (or EOF) is in."""
        self.conn.sock.setblocking(False)
        try:
            first = self.conn.sock.recv(65536)
        except ssl.SSLWantReadError:
            return False  # TLS 1.3 session tickets, no application data
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            first = b""
        self.took = time.monotonic() - self.t0
        self.answer = first
        try:
            if first:
                self.answer += _read_to_eof(self.conn.sock, testenv.t(3))
            self.closed = True
        except socket.timeout:
            pass
        return True


def _trickle(clients, step, interval, limit):
    """Sends `step` bytes to every unanswered client each `interval` seconds until all were
    answered or `limit` seconds passed."""
    deadline = time.monotonic() + limit
    pending = list(clients)
    while pending and time.monotonic() < deadline:
        for c in pending:
            c.send(b"x" * step)
        tick_end = time.monotonic() + interval
        while pending:
            left = tick_end - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([c.conn.sock for c in pending], [], [], left)
            for c in [c for c in pending if c.conn.sock in ready]:
                if c.readable():
                    pending.remove(c)


class SinkOrigin:
    """A loopback backend that, after each request head, waits `stall` seconds, reads the body,
    then answers 200 with {"length": N, "sha256": H}.
    For every connection it records the body bytes it got and when its socket saw EOF (or a
    reset)."""

    def __init__(self, stall=0.0, release=None):
        self.stall = stall
        self.release = release  # a threading.Event: wait for it instead of `stall` seconds
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []  # {"bytes": n, "eof": monotonic time or None, "sock": socket}
        self.lock = threading.Lock()
        self.closing = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True, name="sink")
        self.thread.start()

    def _accept_loop(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = {"bytes": 0, "eof": None, "sock": c}
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._serve, args=(c, rec), daemon=True).start()

    def _serve(self, c, rec):
        c.settimeout(60)
        buf = b""
        try:
            while not self.closing:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                if self.release is not None:
                    self.release.wait(60)
                else:
                    time.sleep(self.stall)
                h = hashlib.sha256()
                got = min(len(buf), length)
                h.update(buf[:got])
                buf = buf[got:]
                rec["bytes"] += got
                while got < length:
                    d = c.recv(min(length - got, 65536))
                    if not d:
                        return
                    h.update(d)
                    got += len(d)
                    rec["bytes"] += len(d)
                body = json.dumps({"length": got, "sha256": h.hexdigest()}).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
        finally:
            rec["eof"] = time.monotonic()
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
        for rec in conns:
            try:
                rec["sock"].shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)


@pytest.fixture
def sink():
    made = []

    def make(**kw):
        s = SinkOrigin(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _assert_408_and_closed(c, what):
    assert c.answer is not None, "%s: no answer within the test's limit" % what
    status, headers, _ = _split_response(c.answer)
    assert status == 408, (what, c.answer[:300])
    assert headers.get("connection", "").lower() == "close", (what, headers)
    assert c.closed, "%s: the gateway kept the connection open after its 408" % what


# ---------------------------------------------------------------------------------------------
# (a) a trickled body is cut once the grace period is over, and its backend connection closed

def test_trickled_body_gets_408_and_frees_the_backend(gateway, sink, certs, tmp_path):
    s = sink()
    gw, port = _start(gateway, certs, tmp_path, s.address,
                      limits={"min_body_rate": 1000, "min_body_rate_grace": 1})
    c = SlowBody(port, 100000)
    _trickle([c], step=1, interval=0.3, limit=testenv.t(6))
    _assert_408_and_closed(c, "1 byte every 0.3 s")
    # Not before the grace period, and soon after it.
    assert 0.9 <= c.took <= testenv.t(3), "answered after %.2f s (grace 1 s)" % c.took

    assert testenv.wait_until(lambda: s.conns and s.conns[0]["eof"] is not None,
                              testenv.t(3)), "the backend connection was left open"
    assert len(s.conns) == 1 and 1 <= s.conns[0]["bytes"] < 20, s.conns
    lines = gw.log_lines("client 127.0.0.1:%d " % c.conn.local_port, "listener=public",
                         "while reading the request body", "limits.min_body_rate")
    assert len(lines) == 1, gw.log_tail(30)
    assert "of 100000 bytes received" in lines[0], lines[0]
    assert _body_timeouts(port) == 1
    # The backend connection was not pooled: the next request needs a new one.
    with Conn(port) as n:
        r = n.request("POST", "/upload", body=b"hello")
    assert r.status == 200 and r.json()["length"] == 5
    assert len(s.conns) == 2


# ---------------------------------------------------------------------------------------------
# (b) timeouts.request_body: a steady body that would take too long in total

def test_request_body_total_deadline(gateway, origin, certs, tmp_path):
    o = origin("app")
    gw, port = _start(gateway, certs, tmp_path, o.address, timeouts={"request_body": 1})
    c = SlowBody(port, 20000)  # 10 KB/s: well above min_body_rate, but 2 s in all
    _trickle([c], step=1000, interval=0.1, limit=testenv.t(5))
    _assert_408_and_closed(c, "20 KB at 10 KB/s")
    assert 0.9 <= c.took <= testenv.t(3), "answered after %.2f s (request_body 1 s)" % c.took
    lines = gw.log_lines("listener=public", "request body not complete within 1000 ms",
                         "while reading the request body", "timeouts.request_body")
    assert len(lines) == 1, gw.log_tail(30)
    assert not gw.log_lines("limits.min_body_rate"), gw.log_tail(30)
    assert testenv.wait_until(lambda: not o.conns, testenv.t(3)), "backend connection left open"
    assert _body_timeouts(port) == 1


# ---------------------------------------------------------------------------------------------
# (c) fast uploads pass, with the defaults and with a demanding rate

@pytest.mark.parametrize("limits", [None, {"min_body_rate": 100000, "min_body_rate_grace": 0.5}],
                         ids=["defaults", "min_body_rate"])
def test_fast_upload_passes(gateway, origin, certs, tmp_path, limits):
    o = origin("app")
    gw, port = _start(gateway, certs, tmp_path, o.address, limits=limits)
    body = os.urandom(2 * 1024 * 1024)
    want = hashlib.sha256(body).hexdigest()
    with Conn(port) as c:
        r = c.request("POST", "/upload", body=body)
        assert r.status == 200 and r.json()["sha256"] == want, (r.status, r.body[:200])
        r = c.request("POST", "/upload", body=body, chunked=True)
        assert r.status == 200 and r.json()["sha256"] == want, (r.status, r.body[:200])
    assert _body_timeouts(port) == 0
    assert not gw.log_lines("while reading the request body"), gw.log_tail(30)


# ---------------------------------------------------------------------------------------------
# (d) many slow clients at once are all cut, and the gateway keeps serving

def test_many_slow_clients_are_all_cut(gateway, origin, certs, tmp_path):
    o = origin("app")
    gw, port = _start(gateway, certs, tmp_path, o.address,
                      limits={"min_body_rate": 1000, "min_body_rate_grace": 1})
    clients = [SlowBody(port, 100000) for _ in range(20)]
    try:
        assert testenv.wait_until(lambda: len(o.conns) == 20, testenv.t(5)), len(o.conns)
        _trickle(clients, step=1, interval=0.3, limit=testenv.t(8))
        for i, c in enumerate(clients):
            _assert_408_and_closed(c, "client %d" % i)
    finally:
        for c in clients:
            c.conn.close()
    assert testenv.wait_until(lambda: not o.conns, testenv.t(3)), \
        "%d backend connections left open" % len(o.conns)
    assert len(gw.log_lines("while reading the request body", "limits.min_body_rate")) == 20
    assert _body_timeouts(port) == 20
    with Conn(port) as c:
        r = c.request("POST", "/upload", body=b"x" * 5000)
    assert r.status == 200 and r.json()["length"] == 5000


# ---------------------------------------------------------------------------------------------
# (e) back-pressure: a backend slow to take the body does not count against the client

def _wait_held(progress, still, timeout):
    """True once progress["sent"] has not moved for `still` seconds (within timeout)."""
    deadline = time.monotonic() + timeout
    last, since = progress["sent"], time.monotonic()
    while time.monotonic() < deadline and not progress.get("done"):
        time.sleep(0.05)
        now = progress["sent"]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            return True
    return False


def test_slow_backend_does_not_count_against_the_client(gateway, sink, certs, tmp_path):
    # The backend takes nothing until the test lets it. The client sends until the gateway holds
    # it back (whatever the kernel's socket buffers absorb first: the body is far larger than
    # they can be), is held for 1.5 s, then the backend reads at full speed. Counted as client
    # time, the held time would break the 3 MB/s minimum; it is the backend's.
    s = sink(release=threading.Event())
    gw, port = _start(gateway, certs, tmp_path, s.address,
                      limits={"min_body_rate": 3000000, "min_body_rate_grace": 0.5})
    body = os.urandom(48 * 1024 * 1024)
    progress = {"sent": 0}
    with Conn(port, timeout=testenv.t(30)) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)

        def send():
            try:
                c.send(_post_head(len(body)))
                view = memoryview(body)
                for off in range(0, len(body), 65536):
                    c.sock.sendall(view[off:off + 65536])
                    progress["sent"] = off + len(view[off:off + 65536])
            except OSError as e:
                progress["error"] = e
            progress["done"] = True

        th = threading.Thread(target=send, daemon=True)
        th.start()
        held = _wait_held(progress, 1.5, testenv.t(20))
        # The gateway really held the client back (else this test proves nothing).
        assert held and progress["sent"] < len(body), \
            "the gateway took %d of %d bytes while its backend took nothing: no back-pressure " \
            "(%r)" % (progress["sent"], len(body), progress.get("error"))
        s.release.set()
        th.join(testenv.t(30))
        assert progress.get("done") and "error" not in progress, progress
        r = c.read_response("POST")
    assert r.status == 200, (r.status, r.body[:300], gw.log_tail(30))
    assert r.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert _body_timeouts(port) == 0


# ---------------------------------------------------------------------------------------------
# (f) keep-alive: each request's body has its own clock

def test_each_request_restarts_the_body_clock(gateway, origin, certs, tmp_path):
    o = origin("app")
    gw, port = _start(gateway, certs, tmp_path, o.address,
                      limits={"min_body_rate": 1000, "min_body_rate_grace": 0.5})
    with Conn(port) as c:
        c.send(_post_head(10))
        time.sleep(0.2)  # the first body's clock runs for a while
        c.send(b"x" * 10)
        assert c.read_response("POST").status == 200
        time.sleep(1.2)  # idle between requests is not body time
        # Well above the minimum if the clock starts with this head; a clock left running since
        # the first request would see 1000 bytes in over 1.2 s.
        c.send(_post_head(3000) + b"y" * 1000)
        for _ in range(4):
            time.sleep(0.25)
            c.send(b"y" * 500)
        r = c.read_response("POST")
        assert r.status == 200 and r.json()["length"] == 3000, (r.status, r.body[:200])
    assert _body_timeouts(port) == 0
