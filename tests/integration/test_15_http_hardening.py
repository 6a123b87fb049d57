"""HTTP/1.1 defects found with third-party tools (issue 5), each through the real binary: backend
response heads split across reads at every offset, oversized heads, Host confusion, underscore
header names, Connection nominating protected fields, transfer codings and versions, and path
normalisation before routing."""
import json

import pytest

import testenv
from testenv import Conn, ScriptedOrigin, split_at


def _config(certs, tmp_path, port, backends, routes=None, **extra):
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "debug", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": routes or [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {name: (t if isinstance(t, dict) else {"targets": list(t)})
                     for name, t in backends.items()},
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def scripted():
    made = []

    def make(respond, gap=0.02):
        o = ScriptedOrigin(respond, gap)
        made.append(o)
        return o

    yield make
    for o in made:
        o.close()


def _raw(port, data, timeout=10):
    """Sends raw request bytes on a new TLS connection; returns the parsed response."""
    with Conn(port, timeout=timeout) as c:
        c.send(data)
        return c.read_response()


def _echo(r):
    assert r.status == 200, (r.status, r.body[:300])
    return r.json()


def _h(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


# ---------------------------------------------------------------------------------------------
# 1. Response heads split across reads

BIG = "v" * 100
CL_RESP = ("HTTP/1.1 200 OK\r\nX-Big: %s\r\nContent-Length: 5\r\nX-After: yes\r\n\r\nhello"
           % BIG).encode()
CHUNKED_RESP = ("HTTP/1.1 200 OK\r\nX-Big: %s\r\nTransfer-Encoding: chunked\r\nX-After: yes"
                "\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" % BIG).encode()


def _split_responder(method, target, head):
    # target: /split/<kind>/<offset>
    _, _, kind, off = target.split("/")
    data = CL_RESP if kind == "cl" else CHUNKED_RESP
    off = int(off)
    return (split_at(data, off) if 0 < off < len(data) else [data]), True


@pytest.mark.parametrize("kind,body", [("cl", b"hello"), ("chunked", b"hello world")])
def test_response_split_at_every_offset(gateway, scripted, certs, tmp_path, kind, body):
    o = scripted(_split_responder)
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address]},
                    log={"level": "info"}))
    data = CL_RESP if kind == "cl" else CHUNKED_RESP
    # One kept-alive client connection for all offsets: each response must also leave the
    # connection (and the pooled backend connection) in a clean state for the next.
    with Conn(port) as c:
        for off in range(1, len(data)):
            r = c.request("GET", "/split/%s/%d" % (kind, off))
            assert (r.status, r.reason) == (200, "OK"), (off, r.status, r.reason, r.body[:200])
            assert r.header("X-Big") == BIG, (off, r.headers)
            assert r.header("X-After") == "yes", (off, r.headers)
            assert r.body == body, (off, r.body[:200])
    assert o.accepts <= 3, "backend connections were not reused: %d" % o.accepts


def test_response_head_in_many_small_pieces(gateway, scripted, certs, tmp_path):
    # A 20 KB head (under limits.max_header_bytes) arriving 1 KB at a time.
    fields = "".join("X-F%03d: %s\r\n" % (i, "a" * 220) for i in range(90))
    data = ("HTTP/1.1 200 OK\r\n%sContent-Length: 2\r\n\r\nok" % fields).encode()
    o = scripted(lambda m, t, h: (split_at(data, *range(1000, len(data), 1000)), True),
                 gap=0.005)
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    with Conn(port) as c:
        r = c.request("GET", "/")
        assert r.status == 200 and r.body == b"ok", (r.status, r.body[:200])
        assert r.header("X-F089") == "a" * 220


@pytest.mark.parametrize("pieces", [1, 5])
def test_oversized_response_head_is_an_honest_502(gateway, scripted, certs, tmp_path, pieces):
    fields = "".join("X-F%03d: %s\r\n" % (i, "b" * 400) for i in range(100))  # ~41 KB
    data = ("HTTP/1.1 200 OK\r\n%sContent-Length: 2\r\n\r\nok" % fields).encode()
    step = len(data) // pieces
    o = scripted(lambda m, t, h: (split_at(data, *range(step, len(data), step))
                                  if pieces > 1 else [data], False))
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    with Conn(port) as c:
        r = c.request("GET", "/")
    assert r.status == 502, (r.status, r.body[:300])
    assert b"response head larger than 32768 bytes" in r.body, r.body
    assert gw.wait_log(lambda t: "response head larger than 32768 bytes" in t
                       and "limits.max_header_bytes" in t)
    assert "folding" not in gw.log_text()


# ---------------------------------------------------------------------------------------------
# 3. Host confusion

def _two_backends(gateway, origin, certs, tmp_path, **extra):
    app, admin = origin("app"), origin("admin")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [app.address], "admin": [admin.address]},
                         routes=[{"host": "admin.internal", "path_prefix": "/",
                                  "backend": "admin"},
                                 {"path_prefix": "/", "backend": "app"}], **extra))
    return gw, port


def test_absolute_form_authority_replaces_host(gateway, origin, certs, tmp_path):
    gw, port = _two_backends(gateway, origin, certs, tmp_path)
    e = _echo(_raw(port, b"GET http://localhost/echo HTTP/1.1\r\nHost: admin.internal\r\n\r\n"))
    assert e["origin"] == "app"
    assert _h(e["headers"], "Host") == ["localhost"], e["headers"]
    assert e["path"] == "/echo"
    e = _echo(_raw(port, b"GET http://admin.internal:8443/echo?q=1 HTTP/1.1\r\n"
                         b"Host: localhost\r\n\r\n"))
    assert e["origin"] == "admin"
    assert _h(e["headers"], "Host") == ["admin.internal:8443"], e["headers"]
    assert e["path"] == "/echo?q=1"
    # Without a path the backend still gets an origin-form target.
    r = _raw(port, b"GET http://localhost?a=b HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert r.status == 200 and r.body == b"origin app /?a=b\n", (r.status, r.body)


@pytest.mark.parametrize("head,why", [
    (b"GET /echo HTTP/1.1\r\nHost: localhost\r\nHost: admin.internal\r\n\r\n", b"more than one"),
    (b"GET /echo HTTP/1.1\r\nHost: admin.internal\r\nHost: admin.internal\r\n\r\n",
     b"more than one"),
    (b"GET /echo HTTP/1.1\r\nHost:\r\n\r\n", b"invalid Host"),
    (b"GET /echo HTTP/1.1\r\nHost: a b/c@d\r\n\r\n", b"invalid Host"),
    (b"GET /echo HTTP/1.1\r\nHost: user@localhost\r\n\r\n", b"invalid Host"),
    (b"GET /echo HTTP/1.1\r\nHost: localhost:80x\r\n\r\n", b"invalid Host"),
    (b"GET /echo HTTP/1.1\r\nX: y\r\n\r\n", b"without Host"),
    (b"GET http://user@localhost/echo HTTP/1.1\r\nHost: localhost\r\n\r\n", b"user information"),
    (b"GET ftp://localhost/echo HTTP/1.1\r\nHost: localhost\r\n\r\n", b"neither a path"),
])
def test_bad_host_is_400(gateway, origin, certs, tmp_path, head, why):
    gw, port = _two_backends(gateway, origin, certs, tmp_path)
    r = _raw(port, head)
    assert r.status == 400, (r.status, r.body)
    assert why in r.body, r.body
    assert r.header("Connection") == "close"


def test_host_kept_and_single(gateway, origin, certs, tmp_path):
    gw, port = _two_backends(gateway, origin, certs, tmp_path)
    e = _echo(_raw(port, b"GET /echo HTTP/1.1\r\nhost: Admin.Internal:443\r\n\r\n"))
    assert e["origin"] == "admin"
    assert _h(e["headers"], "Host") == ["Admin.Internal:443"], e["headers"]
    # HTTP/1.0 without Host is still accepted (no Host to route by: the catch-all route).
    e = _echo(_raw(port, b"GET /echo HTTP/1.0\r\n\r\n"))
    assert e["origin"] == "app" and _h(e["headers"], "Host") == []


# ---------------------------------------------------------------------------------------------
# 4. Underscores in header names

US_HEAD = (b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX_Forwarded_For: 6.6.6.6\r\n"
           b"Transfer_Encoding: chunked\r\nContent_Length: 5\r\nX-Ok: 1\r\n\r\n")


def test_underscore_headers_dropped_by_default(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    e = _echo(_raw(port, US_HEAD))
    names = [k.lower() for k, _ in e["headers"]]
    assert not [n for n in names if "_" in n], e["headers"]
    assert _h(e["headers"], "X-Forwarded-For") == ["127.0.0.1"]
    assert _h(e["headers"], "X-Ok") == ["1"]
    assert gw.wait_log(lambda t: 'dropped header field "X_Forwarded_For"' in t)


def test_underscore_headers_reject_and_pass(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]},
                         http={"underscores_in_headers": "reject"}))
    r = _raw(port, US_HEAD)
    assert r.status == 400 and b"underscore" in r.body, (r.status, r.body)
    gw.stop()
    port2 = testenv.free_port()
    gateway(_config(certs, tmp_path, port2, {"app": [o.address]},
                    http={"underscores_in_headers": "pass"}), name="pass")
    e = _echo(_raw(port2, US_HEAD))
    assert _h(e["headers"], "X_Forwarded_For") == ["6.6.6.6"]
    assert _h(e["headers"], "X-Forwarded-For") == ["127.0.0.1"]


# ---------------------------------------------------------------------------------------------
# 6. Connection may not remove protected fields

def test_connection_cannot_strip_host_or_credentials(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    e = _echo(_raw(port, b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: Host\r\n\r\n"))
    assert _h(e["headers"], "Host") == ["localhost"]
    e = _echo(_raw(port, b"GET /echo HTTP/1.1\r\nHost: localhost\r\n"
                         b"Connection: close, Authorization, Cookie, X-Forwarded-For, X-Custom\r\n"
                         b"Authorization: Basic eDp5\r\nCookie: a=b\r\nX-Custom: gone\r\n\r\n"))
    assert _h(e["headers"], "Authorization") == ["Basic eDp5"]
    assert _h(e["headers"], "Cookie") == ["a=b"]
    assert _h(e["headers"], "X-Forwarded-For") == ["127.0.0.1"]
    assert _h(e["headers"], "X-Custom") == []  # an ordinary field named in Connection still goes
    body = b"hello"
    e = _echo(_raw(port, b"POST /echo HTTP/1.1\r\nHost: localhost\r\nConnection: Content-Length"
                         b"\r\nContent-Length: 5\r\n\r\n" + body))
    assert e["body_length"] == 5 and _h(e["headers"], "Content-Length") == ["5"]


# ---------------------------------------------------------------------------------------------
# 7. Transfer codings and versions

@pytest.mark.parametrize("head,status", [
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", 501),
    # a coding we do not implement, not ending in chunked (llhttp refuses it too): still the one
    # 501 the client can read, not a second answer that cuts the connection (issue 11)
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\nhello", 501),
    # chunked not last: llhttp refuses the field itself, before the head ends (one 400)
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    (b"POST /echo HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", 400),
    (b"GET /echo HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
    (b"GET /echo HTTP/1.2\r\nHost: localhost\r\n\r\n", 505),
])
def test_codings_and_versions(gateway, origin, certs, tmp_path, head, status):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    r = _raw(port, head)
    assert r.status == status, (r.status, r.body)
    assert r.header("Connection") == "close"
    assert o.requests == []


# Request smuggling forms (RFC 9112 6.1, 6.3): chunked applied twice, a coding before chunked,
# two chunked lines, chunked with a Content-Length in either order: each refused before the
# backend, the connection closed. (Outside testing, issue 17: this already held; kept here.)
SMUGGLE = [
    (b"Transfer-Encoding: chunked, chunked\r\n", 400, "malformed_request"),
    (b"Transfer-Encoding: identity, chunked\r\n", 501, "unsupported_transfer_coding"),
    (b"Transfer-Encoding: gzip, chunked\r\n", 501, "unsupported_transfer_coding"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400, "malformed_request"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400, "malformed_request"),
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400, "malformed_request"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", 400, "malformed_request"),
    (b"Transfer-Encoding: \tchunked \t\r\n", 400, "malformed_request"),
    (b"Transfer-Encoding: chunked,\r\n", 400, "malformed_request"),
]


def test_request_smuggling_forms_refused(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    for te, status, token in SMUGGLE:
        seen = len(gw.log_lines("reason=%s" % token))
        r = _raw(port, b"POST /echo HTTP/1.1\r\nHost: localhost\r\n" + te
                 + b"\r\n5\r\nhello\r\n0\r\n\r\n")
        assert r.status == status, (te, r.status, r.body)
        assert r.header("Connection") == "close", te
        assert gw.wait_log(lambda _: len(gw.log_lines("reason=%s" % token)) == seen + 1), te
    assert o.requests == []


@pytest.mark.parametrize("te", [b"Transfer-Encoding:  chunked\r\n",
                                b"Transfer-Encoding: chunked \r\n",
                                b"Transfer-Encoding: ,chunked\r\n",
                                b"Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n"])
def test_request_chunked_with_odd_spacing_is_reframed(gateway, origin, certs, tmp_path, te):
    """Blank space and empty list elements around one chunked (RFC 9110 5.6.1): the body is read
    as chunked and the backend gets the gateway's own framing, one Transfer-Encoding: chunked
    line, never the client's."""
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    e = _echo(_raw(port, b"POST /echo HTTP/1.1\r\nHost: localhost\r\n" + te
                   + b"\r\n5\r\nhello\r\n0\r\n\r\n"))
    assert e["body_length"] == 5
    assert _h(e["headers"], "Transfer-Encoding") == ["chunked"]
    assert _h(e["headers"], "Content-Length") == []


def test_plain_chunked_still_forwarded(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address]}))
    e = _echo(_raw(port, b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked"
                         b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
    assert e["body_length"] == 5


# ---------------------------------------------------------------------------------------------
# 8. Path normalisation and segment-boundary prefixes

def _status_and_app(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address], "status": {"builtin": "status"}},
                    routes=[{"path_prefix": "/_status", "backend": "status"},
                            {"path_prefix": "/api/", "backend": "status"},
                            {"path_prefix": "/", "backend": "app"}]))
    return o, port


@pytest.mark.parametrize("target,backend", [
    ("/_status", "status"),
    ("/_status/x", "status"),
    ("/_status?x=1", "status"),
    ("/x/../_status", "status"),
    ("/%2e%2e/_status", "status"),
    ("/%2E%2E/%5fstatus", "status"),
    ("/./_status", "status"),
    ("/_statusX", "app"),
    ("/_status%2Fx", "app"),
    ("/api", "app"),
    ("/api/", "status"),
    ("/x/../api/v1", "status"),
])
def test_routing_uses_normalised_path(gateway, origin, certs, tmp_path, target, backend):
    o, port = _status_and_app(gateway, origin, certs, tmp_path)
    r = _raw(port, b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % target.encode())
    assert r.status == 200, (r.status, r.body[:200])
    if backend == "status":
        assert "handshakes" in json.loads(r.body), r.body[:200]
        assert o.requests == []
    else:
        assert r.header("X-Origin") == "app"


@pytest.mark.parametrize("target,forwarded", [
    ("/a/./b/../c?x=%2e&y=/../", "/a/c?x=%2e&y=/../"),
    ("/a%2Fb/%7euser", "/a%2Fb/~user"),
    ("/a%2fb", "/a%2Fb"),
    ("/../../etc/passwd", "/etc/passwd"),
    ("/a/b/..", "/a/"),
    ("/caf%C3%A9", "/caf%C3%A9"),
])
def test_backend_gets_normalised_path(gateway, origin, certs, tmp_path, target, forwarded):
    o, port = _status_and_app(gateway, origin, certs, tmp_path)
    r = _raw(port, b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % target.encode())
    assert r.status == 200, (r.status, r.body[:200])
    assert o.requests[-1][1] == forwarded


@pytest.mark.parametrize("target", ["/%zz", "/a%2", "/a%"])
def test_malformed_percent_encoding_is_400(gateway, origin, certs, tmp_path, target):
    o, port = _status_and_app(gateway, origin, certs, tmp_path)
    r = _raw(port, b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % target.encode())
    assert r.status == 400, (r.status, r.body)
    assert o.requests == []


# ---------------------------------------------------------------------------------------------
# The backend connection is kept after a response whose last read filled the buffer (a large
# body): found by `make bench` (bulk), where every 1 MiB response opened a new connection.

def test_pool_reuse_after_large_responses(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": [o.address]}, log={"level": "info"}))
    with Conn(port) as c:
        for _ in range(5):
            r = c.request("GET", "/download?size=%d" % (1 << 20))
            assert r.status == 200 and len(r.body) == 1 << 20
    assert o.accepts == 1, "backend connections opened: %d" % o.accepts


def test_refusals_counted_per_reason(gateway, origin, certs, tmp_path):
    """Requests we refuse come from one table: the status JSON counts them by its tokens."""
    o, port = _status_and_app(gateway, origin, certs, tmp_path)
    assert _raw(port, b"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n").status == 400
    assert _raw(port, b"GET /x HTTP/2.0\r\nHost: localhost\r\n\r\n").status == 505
    assert _raw(port, b"GET /x HTTP/2.0\r\nHost: localhost\r\n\r\n").status == 505
    r = _raw(port, b"GET /_status HTTP/1.1\r\nHost: localhost\r\n\r\n")
    fails = json.loads(r.body)["request_failures"]
    assert fails["host_invalid"] == 1 and fails["unsupported_http_version"] == 2, fails
    assert fails["no_route"] == 0, fails
