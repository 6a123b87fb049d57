"""HTTP/2 chosen by ALPN on an http listener (tls.alpn ["h2", "http/1.1"]): curl --http2 and
h2load through the gateway to an HTTP/1.1 origin, 5 MiB bodies intact both ways (with and without
a content-length), the status page and the access log over h2, HTTP/1.1 kept for clients that do
not offer h2 and on listeners that do not list it, and HEADERS followed by RST_STREAM in one write
opening no backend connection."""
import hashlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess

import pytest

import testenv
from testenv import Conn
from testenv.origin import pattern_sha256

pytestmark = pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client)")


def _config(certs, tmp_path, port, o, alpn=("h2", "http/1.1"), access=None):
    tls = {"certificates": ["ec"]}
    if alpn is not None:
        tls["alpn"] = list(alpn)
    log = {"level": "info"}
    if access:
        log["access_log"] = access
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"), "log": log,
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port, "tls": tls,
                       "routes": [{"path_prefix": "/_status", "backend": "status"},
                                  {"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]}, "status": {"builtin": "status"}},
    }


def _curl(certs, port, *args):
    return testenv.curl("--cacert", certs.ca.cert, "--resolve", "localhost:%d:127.0.0.1" % port,
                        *args, timeout=60)


def _url(port, path):
    return "https://localhost:%d%s" % (port, path)


def _status(port):
    return testenv.get(port, "/_status").json()


def test_curl_http2_bodies_both_ways(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    access = os.path.join(str(tmp_path), "access.log")
    gateway(_config(certs, tmp_path, port, o, access=access))
    size = 5 * 1024 * 1024
    r = _curl(certs, port, "--http2", "-o", "-", "-w", "\n%{http_version} %{http_code}",
              _url(port, "/download?size=%d" % size))
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition(b"\n")
    assert tail == b"2 200", (tail, r.stderr)
    assert len(body) == size and hashlib.sha256(body).hexdigest() == pattern_sha256(size)

    up = os.urandom(size)
    path = os.path.join(str(tmp_path), "up.bin")
    with open(path, "wb") as f:
        f.write(up)
    want = hashlib.sha256(up).hexdigest()
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):  # curl then sends no length
        r = _curl(certs, port, "--http2", "--data-binary", "@" + path, "-w",
                  "\n%{http_version} %{http_code}", *extra, _url(port, "/upload"))
        assert r.returncode == 0, r.stderr
        doc, _, tail = r.stdout.rpartition(b"\n")
        assert tail == b"2 200", (tail, doc[:300])
        j = json.loads(doc)
        assert j["sha256"] == want and j["length"] == size, (extra, j)
    # The origin got HTTP/1.1 with our fields; routing used :authority as Host.
    r = _curl(certs, port, "--http2", "-H", "Cookie: a=1", "-H", "Cookie: b=2",
              _url(port, "/echo?x=1"))
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    hdrs = {k.lower(): v for k, v in j["headers"]}
    assert j["version"] == "HTTP/1.1", j
    assert hdrs["host"] == "localhost:%d" % port, j
    assert hdrs["x-forwarded-proto"] == "https" and hdrs["x-forwarded-for"] == "127.0.0.1", j
    assert hdrs["cookie"] == "a=1; b=2", j  # crumbs joined for the HTTP/1.1 backend

    testenv.wait_until(lambda: "/echo?x=1" in open(access).read(), testenv.t(5),
                       what="access log line")
    lines = [l for l in open(access).read().splitlines() if "/upload" in l or "/echo" in l]
    assert lines and all(l.endswith(" proto=HTTP/2") and " alpn=h2 " in l for l in lines), lines
    # Bytes per stream, as framed: the 5 MiB body, its DATA frame headers and the HEADERS frame.
    dl = [l for l in open(access).read().splitlines() if "/download?size=%d" % size in l]
    assert len(dl) == 1, dl
    logged = int(dl[0].split('" 200 ', 1)[1].split(" ", 1)[0])
    assert size + 9 * (size // 16384) <= logged < size + size // 100, (logged, dl[0])


def test_h2load_many_streams(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o))
    r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "32",
                        "https://127.0.0.1:%d/small" % port],
                       capture_output=True, timeout=testenv.t(120))
    out = r.stdout.decode()
    assert "2000 succeeded, 0 failed, 0 errored" in out, out
    assert "status codes: 2000 2xx" in out, out
    s = _status(port)
    assert s["requests"]["total"] >= 2000, s
    # Kept-alive backend connections carried the streams (far fewer connects than requests).
    assert s["backends"]["connects"] < 200, s["backends"]


def test_status_over_h2_and_http11_fallback(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o))
    r = _curl(certs, port, "--http2", "-w", "\n%{http_version}", _url(port, "/_status"))
    doc, _, ver = r.stdout.rpartition(b"\n")
    assert ver == b"2" and json.loads(doc)["status"] == "ok", r.stdout[:300]
    r = _curl(certs, port, "--http1.1", "-w", "\n%{http_version}", _url(port, "/x"))
    assert r.stdout.endswith(b"\n1.1"), r.stdout
    # A listener without h2 in its alpn keeps HTTP/1.1 even for a client offering h2.
    port2 = testenv.free_port()
    gateway(_config(certs, tmp_path, port2, o, alpn=["http/1.1"]), name="no-h2")
    r = _curl(certs, port2, "--http2", "-w", "\n%{http_version}", _url(port2, "/x"))
    assert r.stdout.endswith(b"\n1.1"), r.stdout


def test_h2_is_the_default_alpn_of_http_listeners(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o, alpn=None))
    r = _curl(certs, port, "-w", "\n%{http_version}", _url(port, "/x"))
    assert r.stdout.endswith(b"\n2"), r.stdout
    r = _curl(certs, port, "--http1.1", "-w", "\n%{http_version}", _url(port, "/x"))
    assert r.stdout.endswith(b"\n1.1"), r.stdout


def _frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def test_headers_then_reset_opens_no_backend_connection(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o))
    before = _status(port)["backends"]["connects"]
    ctx = ssl.create_default_context(cafile=certs.ca.cert)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=testenv.t(5)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "h2"
            authority = b"localhost"
            # :method GET, :scheme https, :path /, :authority (literal, indexed name 1)
            block = b"\x82\x87\x84\x41" + bytes([len(authority)]) + authority
            burst = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0)
            for sid in range(1, 200, 2):  # 100 streams, each opened and reset at once
                burst += _frame(1, 0x4 | 0x1, sid, block) + _frame(3, 0, sid, b"\x00\x00\x00\x08")
            s.sendall(burst)
            # The connection still works: one real request after the burst.
            s.sendall(_frame(1, 0x4 | 0x1, 201, block))
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
                # a HEADERS frame on stream 201 with :status 200 (static index 8: 0x88)
                i = got.find(b"\x01\x04\x00\x00\x00\xc9")
                if i >= 0 or b"\x01\x05\x00\x00\x00\xc9" in got:
                    break
    assert b"\x00\x00\x00\xc9" in got, got[:200]
    after = _status(port)["backends"]["connects"]
    assert after - before <= 1, (before, after)  # only the real request's
    assert len(o.requests) == 1, o.requests


def test_shutdown_lets_streams_in_flight_finish(gateway, origin, certs, tmp_path):
    """SIGTERM: the HTTP/2 connection gets GOAWAY and its stream in flight completes."""
    import signal
    import threading
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o))
    size = 4 * 1024 * 1024
    out = {}

    def fetch():
        out["r"] = _curl(certs, port, "--http2", "--limit-rate", "2M", "-o", "-", "-w",
                         "\n%{http_version} %{http_code}", _url(port, "/download?size=%d" % size))

    t = threading.Thread(target=fetch)
    t.start()
    testenv.wait_until(lambda: len(o.requests) >= 1, testenv.t(5), what="the request in flight")
    gw.signal(signal.SIGTERM)
    t.join(testenv.t(60))
    r = out["r"]
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition(b"\n")
    assert tail == b"2 200" and hashlib.sha256(body).hexdigest() == pattern_sha256(size)
    gw.wait_exit(timeout=testenv.t(10))


def _plain_config(tmp_path, port, o, cleartext, access=None):
    log = {"level": "info"}
    if access:
        log["access_log"] = access
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"), "log": log,
        "listeners": [{"name": "plain", "address": "127.0.0.1:%d" % port,
                       "tls": {"disabled": True},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]}},
    }
    if cleartext is not None:
        cfg["http2"] = {"cleartext": cleartext}
    return cfg


def test_h2c_prior_knowledge_when_cleartext_is_set(gateway, origin, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    access = os.path.join(str(tmp_path), "access.log")
    gateway(_plain_config(tmp_path, port, o, True, access=access))
    url = "http://127.0.0.1:%d/echo?h2c=1" % port
    r = testenv.curl("--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", url)
    doc, _, tail = r.stdout.rpartition(b"\n")
    assert tail == b"2 200", (r.stdout[-300:], r.stderr)
    j = json.loads(doc)
    hdrs = {k.lower(): v for k, v in j["headers"]}
    assert j["version"] == "HTTP/1.1" and hdrs["x-forwarded-proto"] == "http", j
    # many streams on one h2c connection
    r = subprocess.run(["h2load", "-n", "200", "-c", "2", "-m", "16",
                        "http://127.0.0.1:%d/small" % port],
                       capture_output=True, timeout=testenv.t(60))
    assert "200 succeeded, 0 failed, 0 errored" in r.stdout.decode(), r.stdout.decode()
    # HTTP/1.1 on the same listener as before
    r = testenv.curl("--http1.1", "-w", "\n%{http_version} %{http_code}",
                     "http://127.0.0.1:%d/x" % port)
    assert r.stdout.endswith(b"\n1.1 200"), r.stdout
    testenv.wait_until(lambda: "h2c=1" in open(access).read(), testenv.t(5), what="access log")
    line = [l for l in open(access).read().splitlines() if "h2c=1" in l][0]
    assert line.endswith(" proto=HTTP/2"), line


@pytest.mark.parametrize("cleartext", [None, False])
def test_no_h2c_without_cleartext(gateway, origin, tmp_path, cleartext):
    o = origin("app")
    port = testenv.free_port()
    gateway(_plain_config(tmp_path, port, o, cleartext))
    r = testenv.curl("--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}",
                     "http://127.0.0.1:%d/x" % port)
    assert not r.stdout.endswith(b" 200"), r.stdout
    r = testenv.curl("-w", "\n%{http_version} %{http_code}", "http://127.0.0.1:%d/x" % port)
    assert r.stdout.endswith(b"\n1.1 200"), r.stdout


def test_recycled_streams_follow_a_reload_of_max_headers(gateway, origin, certs, tmp_path):
    """Finished HTTP/2 streams are kept per worker with their header arrays; after a reload that
    raises limits.max_headers, a request with more fields than the old limit is served (a
    recycled stream made under the old limit is not reused), and many streams on one
    connection still complete (h2load: one write per connection per loop iteration)."""
    o = origin("app")
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port, o)
    cfg["limits"] = {"max_headers": 10}
    gw = gateway(cfg)
    r = subprocess.run(["h2load", "-n", "200", "-c", "1", "-m", "32",
                        "https://127.0.0.1:%d/echo" % port], capture_output=True,
                       timeout=testenv.t(60))
    assert b"200 succeeded" in r.stdout, r.stdout
    many = []
    for i in range(30):
        many += ["-H", "x-field-%d: %d" % (i, i)]
    r = _curl(certs, port, "--http2", "-o", "/dev/null", "-w", "%{http_code}", *many,
              _url(port, "/echo"))
    assert r.stdout == b"431", r.stdout  # over the old limit
    cfg = json.loads(json.dumps(gw.config))
    cfg["limits"] = {"max_headers": 50}
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "generation 2" in s), gw.log_tail()
    for _ in range(3):  # recycled streams from before the reload would be taken first
        r = _curl(certs, port, "--http2", "-o", "-", "-w", "\n%{http_code}", *many,
                  _url(port, "/echo"))
        assert r.stdout.endswith(b"\n200"), r.stdout[-300:]
        assert b"x-field-29" in r.stdout.lower()
