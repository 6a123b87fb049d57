"""Descriptor exhaustion and slow clients: accept backs off with one log line per episode while
open clients are served, and resumes once descriptors are free; a stalled handshake, a trickled
head, a trickled body and a client that does not read its response are each closed by their
timeout (timeouts.handshake, timeouts.request_headers, limits.min_body_rate, timeouts.idle)."""
import json
import socket
import threading
import time

import testenv
from testenv import Conn


def _config(certs, tmp_path, port, sport, timeouts=None, limits=None, backends=None,
            routes=None):
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": routes or [{"path_prefix": "/", "backend": "status"}]},
                      {"name": "status", "address": "127.0.0.1:%d" % sport,
                       "tls": {"disabled": True},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": dict({"status": {"builtin": "status"}}, **(backends or {})),
    }
    if timeouts:
        cfg["timeouts"] = timeouts
    if limits:
        cfg["limits"] = limits
    return cfg


def _status(sport):
    with Conn(sport, tls=False) as c:
        return c.request("GET", "/").json()


def _closed_within(sock, seconds):
    """Reads (and drops) until EOF or a reset; the time it took, or None if still open."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


# ---------------------------------------------------------------------------------------------
# Descriptor exhaustion

def test_descriptor_exhaustion_backs_off_serves_open_clients_and_resumes(gateway, certs,
                                                                          tmp_path):
    port, sport = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, sport, timeouts={"handshake": 60}), fd_limit=64)
    keep = Conn(port)  # an open keep-alive client
    assert keep.request("GET", "/").status == 200
    held = []
    try:
        for _ in range(100):  # more than the 64 descriptors: the rest wait in the backlog
            held.append(socket.create_connection(("127.0.0.1", port), timeout=testenv.t(5)))
        assert gw.wait_log(lambda t: "cannot accept connections" in t, timeout=10), gw.log_tail()
        # The open client is still served, several times, while accept is starved.
        for _ in range(5):
            r = keep.request("GET", "/")
            assert r.status == 200, r.status
        time.sleep(testenv.t(1))  # ten retries of the paused accept
        lines = gw.log_lines("cannot accept connections")
        assert len(lines) == 1, lines
        assert "Too many open files" in lines[0] and "listener public" in lines[0], lines
        assert "limits.max_connections" in lines[0], lines
    finally:
        for s in held:
            s.close()
    assert gw.wait_log(lambda t: "accepting connections again" in t, timeout=10), gw.log_tail()
    # New connections are accepted and served again.
    deadline = time.monotonic() + testenv.t(10)
    while True:
        try:
            with Conn(port) as c:
                assert c.request("GET", "/").status == 200
            break
        except OSError:
            assert time.monotonic() < deadline, gw.log_tail()
            time.sleep(0.1)
    assert keep.request("GET", "/").status == 200
    keep.close()
    assert len(gw.log_lines("cannot accept connections")) == 1, gw.log_tail()


# ---------------------------------------------------------------------------------------------
# Slowloris: each kind closed by its own timeout

def test_stalled_handshakes_closed_by_handshake_timeout(gateway, certs, tmp_path):
    port, sport = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, sport, timeouts={"handshake": 1}),
                 ready_ports=[(sport, False)])
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port), timeout=testenv.t(5))
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01")  # a ClientHello's first bytes, no more
        socks.append(s)
    t0 = time.monotonic()
    took = [_closed_within(s, testenv.t(6)) for s in socks]
    for s in socks:
        s.close()
    assert all(x is not None for x in took), took
    assert time.monotonic() - t0 >= 0.8, "closed before timeouts.handshake"
    assert testenv.wait_until(
        lambda: _status(sport)["handshake_failures"]["handshake_timeout"] == 20, testenv.t(5))
    # (the status request's own connection is the one left)
    assert testenv.wait_until(lambda: _status(sport)["connections"]["active"] == 1, testenv.t(5))


def test_trickled_head_closed_by_request_headers_timeout(gateway, certs, tmp_path):
    port, sport = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, sport,
                         timeouts={"request_headers": 1, "idle": 30}))
    c = Conn(port)
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
    t0 = time.monotonic()
    answer = b""
    c.sock.settimeout(0.2)
    while time.monotonic() - t0 < testenv.t(6):
        try:
            c.send(b"X-Slow: 1\r\n")  # a field every 200 ms: never idle, never complete
        except OSError:
            break
        try:
            b = c.sock.recv(65536)
            if not b:
                break
            answer += b
        except socket.timeout:
            continue
        except OSError:
            break
    took = time.monotonic() - t0
    c.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 0.8 <= took < testenv.t(6), took
    assert _status(sport)["request_failures"]["request_headers_timeout"] == 1
    assert gw.log_lines("reason=request_headers_timeout", "timeouts.request_headers")


def test_trickled_body_closed_by_min_body_rate(gateway, origin, certs, tmp_path):
    o = origin("app")
    port, sport = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, sport, timeouts={"idle": 30},
                         limits={"min_body_rate": 1000, "min_body_rate_grace": 1},
                         backends={"app": {"targets": [o.address]}},
                         routes=[{"path_prefix": "/", "backend": "app"}]))
    c = Conn(port)
    c.send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
    t0 = time.monotonic()
    answer = b""
    c.sock.settimeout(0.1)
    while time.monotonic() - t0 < testenv.t(8):
        try:
            c.send(b"x" * 10)  # 100 bytes/s, a tenth of the rate asked for
        except OSError:
            break
        try:
            b = c.sock.recv(65536)
            if not b:
                break
            answer += b
        except socket.timeout:
            continue
        except OSError:
            break
    took = time.monotonic() - t0
    c.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 0.9 <= took < testenv.t(8), took
    assert _status(sport)["requests"]["body_timeouts"] == 1
    assert gw.log_lines("request body slower than 1000 bytes/s")


def test_client_that_does_not_read_closed_by_idle_timeout(gateway, origin, certs, tmp_path):
    o = origin("app")
    port, sport = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, sport, timeouts={"idle": 1},
                         backends={"app": {"targets": [o.address]}},
                         routes=[{"path_prefix": "/", "backend": "app"}]))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(testenv.t(5))
    s.connect(("127.0.0.1", port))
    s = testenv.tls_context().wrap_socket(s, server_hostname="localhost")
    s.sendall(b"GET /download?size=67108864 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    t0 = time.monotonic()
    # Never read: the gateway's writes stop, and after timeouts.idle without progress it closes.
    line = gw.wait_log(lambda t: "while sending the response (timeouts.idle)" in t, timeout=10)
    took = time.monotonic() - t0
    assert line, gw.log_tail()
    assert took >= 0.9, took
    assert testenv.wait_until(lambda: _status(sport)["connections"]["active"] == 1,
                              testenv.t(5)), _status(sport)
    # The client finds the connection closed once it reads what was sent before.
    assert _closed_within(s, testenv.t(10)) is not None
    s.close()
