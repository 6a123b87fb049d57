"""HTTP/1.1 proxying: large bodies both ways, chunked, keep-alive to origins, forwarded and
hop-by-hop headers, pipelining, 100-continue, routing by host and path."""
import hashlib
import os

import testenv
from testenv import Conn, chunked_body, pattern_sha256

MB20 = 20 * 1024 * 1024


def _config(certs, tmp_path, port, backends, routes=None, workers=2, **extra):
    cfg = {
        "version": 1, "workers": workers, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": routes or [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {name: {"targets": [o.address]} for name, o in backends.items()},
    }
    cfg.update(extra)
    return cfg


def _start(gateway, origin, certs, tmp_path, **kw):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": o}, **kw))
    return gw, o, port


def _blob(size):
    return (hashlib.sha256(b"seed").digest() * (size // 32 + 1))[:size]


def test_large_bodies(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    body = _blob(MB20)
    want = hashlib.sha256(body).hexdigest()
    with Conn(port, timeout=60) as c:
        r = c.request("POST", "/upload", body=body)
        assert r.status == 200 and r.json() == {"origin": "app", "sha256": want, "length": MB20}
        r = c.request("POST", "/upload", body=body, chunked=True)
        assert r.status == 200 and r.json() == {"origin": "app", "sha256": want, "length": MB20}
        r = c.request("GET", "/download?size=%d" % MB20)
        assert r.status == 200 and len(r.body) == MB20
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(MB20)


def test_chunked_response(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    with Conn(port) as c:
        r = c.request("GET", "/chunked?n=40")
        assert r.status == 200 and r.body == chunked_body(40)
        r = c.request("GET", "/echo")  # the connection is still usable afterwards
        assert r.status == 200 and r.json()["path"] == "/echo"


def test_keepalive_reuse(gateway, origin, certs, tmp_path):
    workers = 2
    gw, o, port = _start(gateway, origin, certs, tmp_path, workers=workers)
    o.reset_counts()  # nothing before: readiness probes send no request
    with Conn(port) as c:
        for i in range(20):
            r = c.request("GET", "/echo?i=%d" % i)
            assert r.status == 200 and r.json()["path"] == "/echo?i=%d" % i
    for i in range(20):
        with Conn(port) as c:
            assert c.request("GET", "/x%d" % i).status == 200
    assert len(o.requests) == 40
    assert o.accepts <= workers + 2, "%d origin connections for 40 requests" % o.accepts


def test_forwarded_and_host_headers(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    with Conn(port) as c:
        r = c.request("GET", "/echo", headers=[
            ("Host", "example.test:8443"), ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "http"), ("X-Forwarded-Client-Cert", "Subject=\"CN=evil\""),
            ("X-Custom", "kept")])
    assert r.status == 200
    h = r.json()["headers"]
    get = lambda n: [v for k, v in h if k.lower() == n]
    assert get("host") == ["example.test:8443"], h
    assert get("x-forwarded-for") == ["127.0.0.1"], h
    assert get("x-forwarded-proto") == ["https"], h
    assert get("x-forwarded-client-cert") == [], h
    assert get("x-custom") == ["kept"], h


def test_hop_by_hop_not_forwarded(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    with Conn(port) as c:
        r = c.request("GET", "/echo", headers=[
            ("Connection", "keep-alive, X-Private"), ("X-Private", "secret"),
            ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Upgrade", "foo/1"),
            ("Proxy-Connection", "keep-alive"), ("X-End-To-End", "yes")])
        assert r.status == 200
        h = r.json()["headers"]
        names = {k.lower() for k, _ in h}
        for hop in ("x-private", "keep-alive", "te", "upgrade"):
            assert hop not in names, "%s forwarded: %s" % (hop, h)
        for k, v in h:
            if k.lower() == "connection":
                assert "x-private" not in v.lower(), h
        assert ("X-End-To-End", "yes") in [tuple(x) for x in h], h
        assert c.request("GET", "/echo").status == 200  # still kept alive


def test_pipelined_requests(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    with Conn(port) as c:
        c.send(b"".join(Conn.build("GET", "/echo?n=%d" % i, "localhost") for i in (1, 2, 3)))
        paths = [c.read_response().json()["path"] for _ in range(3)]
    assert paths == ["/echo?n=1", "/echo?n=2", "/echo?n=3"]


def test_expect_100_continue(gateway, origin, certs, tmp_path):
    gw, o, port = _start(gateway, origin, certs, tmp_path)
    body = _blob(2 * 1024 * 1024)
    want = hashlib.sha256(body).hexdigest()
    with Conn(port) as c:
        c.send(Conn.build("POST", "/upload", "localhost",
                          [("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
        c.sock.settimeout(testenv.t(5))
        line = c.f.readline()
        assert line.startswith(b"HTTP/1.1 100"), "no 100 Continue before the body: %r" % line
        assert c.f.readline() in (b"\r\n", b"\n")
        c.send(body)
        r = c.read_response("POST")
        assert r.status == 200 and r.json()["sha256"] == want

    path = os.path.join(str(tmp_path), "upload.bin")
    with open(path, "wb") as f:
        f.write(body)
    # HTTP/1.1 explicitly: the listener offers h2 too, where 100 is a HEADERS frame
    r = testenv.curl("-v", "--http1.1", "--cacert", certs.ca.cert, "-H", "Expect: 100-continue",
                     "--expect100-timeout", "10", "--data-binary", "@" + path,
                     "--resolve", "localhost:%d:127.0.0.1" % port,
                     "https://localhost:%d/upload" % port)
    assert r.returncode == 0, r.stderr
    assert b"HTTP/1.1 100" in r.stderr, r.stderr.decode()
    assert want.encode() in r.stdout, r.stdout


def test_routes_by_host_and_path(gateway, origin, certs, tmp_path):
    a, b = origin("a"), origin("b")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"a": a, "b": b}, routes=[
        {"host": "api.test", "path_prefix": "/v1/", "backend": "b"},
        {"path_prefix": "/static/", "backend": "b"},
        {"path_prefix": "/", "backend": "a"},
    ]))
    cases = [("api.test", "/v1/users", "b"), ("api.test:%d" % port, "/v1/x", "b"),
             ("api.test", "/v2/users", "a"), ("localhost", "/v1/users", "a"),
             ("localhost", "/static/app.js", "b"), ("localhost", "/", "a")]
    with Conn(port) as c:
        for host, path, want in cases:
            r = c.request("GET", path, headers=[("Host", host)])
            assert r.status == 200, (host, path, r.status)
            assert r.header("X-Origin") == want, (host, path, r.header("X-Origin"))
