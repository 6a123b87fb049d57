"""Protocol-neutral streams: the access log counts bytes per stream (what the client received for
that exchange, the 101 head of a WebSocket upgrade included) and names the protocol of each
request (HTTP/1.1, HTTP/1.0)."""
import json
import os

import testenv
from testenv import Conn, pp2
from testenv.wsecho import raw_ws_handler


def _config(certs, tmp_path, port, target, access, fmt="json"):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "format": fmt, "access_log": access},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [target]}},
    }


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _docs(path, n):
    testenv.wait_until(lambda: len(_read(path).splitlines()) >= n, testenv.t(5),
                       what="%d access log lines" % n)
    return [json.loads(l) for l in _read(path).splitlines()]


def _split_responses(raw):
    """Raw bytes of consecutive HTTP/1 responses with Content-Length bodies, one per entry."""
    out = []
    while raw:
        head_end = raw.index(b"\r\n\r\n") + 4
        length = 0
        for line in raw[:head_end].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        out.append(raw[:head_end + length])
        raw = raw[head_end + length:]
    return out


def test_access_log_bytes_and_protocol_per_stream(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    access = os.path.join(str(tmp_path), "access.log")
    gateway(_config(certs, tmp_path, port, o.address, access))
    # Three requests on one connection, pipelined, of very different response sizes; the last
    # one is HTTP/1.0 and closes the connection.
    reqs = (b"GET /download?size=70000&m=a HTTP/1.1\r\nHost: h\r\n\r\n"
            b"GET /status/404?m=b HTTP/1.1\r\nHost: h\r\n\r\n"
            b"GET /download?size=5&m=c HTTP/1.0\r\nHost: h\r\n\r\n")
    with Conn(port) as c:
        c.send(reqs)
        raw = c.recv_all()
    parts = _split_responses(raw)
    assert len(parts) == 3, raw[:500]
    docs = _docs(access, 3)
    by_marker = {}
    for d in docs:
        for m in ("a", "b", "c"):
            if d.get("path", "").endswith("m=" + m):
                by_marker[m] = d
    assert sorted(by_marker) == ["a", "b", "c"], docs
    for m, part in zip(("a", "b", "c"), parts):
        assert by_marker[m]["bytes"] == len(part), (m, by_marker[m], len(part))
    assert by_marker["a"]["protocol"] == "HTTP/1.1" and by_marker["b"]["protocol"] == "HTTP/1.1"
    assert by_marker["c"]["protocol"] == "HTTP/1.0", by_marker["c"]


def test_access_log_text_names_protocol(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    access = os.path.join(str(tmp_path), "access.log")
    gateway(_config(certs, tmp_path, port, o.address, access, fmt="text"))
    with Conn(port) as c:
        assert c.request("GET", "/echo?m=t").status == 200
    testenv.wait_until(lambda: "m=t" in _read(access), testenv.t(5), what="access log line")
    line = [l for l in _read(access).splitlines() if "m=t" in l][0]
    assert line.endswith(" proto=HTTP/1.1"), line


def test_access_log_counts_the_upgrade_head(gateway, certs, tmp_path):
    """A WebSocket upgrade is logged when the connection becomes a tunnel: its bytes are the 101
    head the client gets (the tunnel's bytes are not the request's)."""
    greeting = b"hi"
    b = pp2.TCPBackend(raw_ws_handler(greeting), proxy_header="none", name="raw-ws")
    port = testenv.free_port()
    access = os.path.join(str(tmp_path), "access.log")
    try:
        gateway(_config(certs, tmp_path, port, b.address, access))
        with Conn(port) as c:
            c.send(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got:
                d = c.f.read1(4096)
                assert d, got
                got += d
            head = got[:got.index(b"\r\n\r\n") + 4]
            assert head.startswith(b"HTTP/1.1 101 "), head
            docs = _docs(access, 1)
        assert docs[0]["status"] == 101, docs
        assert docs[0]["bytes"] == len(head), (docs[0], head)
        assert docs[0]["protocol"] == "HTTP/1.1", docs[0]
    finally:
        b.close()
