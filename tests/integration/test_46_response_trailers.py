"""Response trailers from an HTTP/1.1 backend (chunked trailer section) reach HTTP/2 clients as a
trailing HEADERS frame with END_STREAM and HTTP/1.1 clients as the chunked trailer section; only
fields a trailer may carry, within limits.max_header_bytes; HTTP/1.0 clients get none."""
import pytest

import testenv
from testenv import Conn, ScriptedOrigin

hpack = pytest.importorskip("hpack")
pytest.importorskip("hyperframe.frame")
from hyperframe.frame import (DataFrame, GoAwayFrame, HeadersFrame,  # noqa: E402
                              RstStreamFrame)
from testenv.h2raw import H2  # noqa: E402

BODY = b"hello trailers"
TRAILED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
           b"Trailer: X-Checksum\r\n\r\n%x\r\n%s\r\n0\r\n"
           b"X-Checksum: abc\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\nGrpc-Status: 0\r\n\r\n"
           % (len(BODY), BODY))


def _respond(target):
    if target == "/big":  # a trailer section over limits.max_header_bytes (1024)
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n"
                b"X-Big: %s\r\nX-Checksum: abc\r\n\r\n" % (len(BODY), BODY, b"b" * 2000))
    return TRAILED


@pytest.fixture
def backend():
    o = ScriptedOrigin(lambda method, target, head: ([_respond(target)], True), gap=0)
    yield o
    o.close()


def _config(certs, tmp_path, port, o):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "debug"},
        "limits": {"max_header_bytes": 1024},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]}},
    }


def _dechunk(data):
    """(body, trailer section lines, rest) of a chunked body at the start of data."""
    body = b""
    while True:
        line, _, data = data.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            break
        body += data[:n]
        assert data[n:n + 2] == b"\r\n"
        data = data[n + 2:]
    trailers = []
    while True:
        line, _, data = data.partition(b"\r\n")
        if line == b"":
            return body, trailers, data
        trailers.append(line)


def test_http11_client_gets_the_chunked_trailer_section(gateway, certs, tmp_path, backend):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    with Conn(port) as c:
        # Two responses on one connection: the trailer section must not break keep-alive framing.
        c.send(Conn.build("GET", "/one", "localhost") +
              Conn.build("GET", "/two", "localhost", headers=[("Connection", "close")]))
        raw = c.recv_all()
    for _ in range(2):
        head, _, raw = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower(), head
        body, trailers, raw = _dechunk(raw)
        assert body == BODY
        assert trailers == [b"X-Checksum: abc", b"Grpc-Status: 0"], trailers
    assert raw == b""


def test_http10_client_gets_no_trailers(gateway, certs, tmp_path, backend):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    with Conn(port) as c:
        c.send(b"GET /one HTTP/1.0\r\nHost: localhost\r\n\r\n")
        raw = c.recv_all()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    assert body == BODY, body  # the body ends at close, with no chunk framing or trailer


def test_trailer_section_over_the_limit_is_dropped(gateway, certs, tmp_path, backend):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    with Conn(port) as c:
        c.send(Conn.build("GET", "/big", "localhost", headers=[("Connection", "close")]))
        raw = c.recv_all()
    head, _, raw = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    body, trailers, rest = _dechunk(raw)
    assert body == BODY and trailers == [] and rest == b""


def _h2_get(certs, port, path):
    c = H2(certs, port)
    c.send(c.head(1, path=path))
    dec = hpack.Decoder()
    heads, body = [], b""
    while True:
        f = c.frame()
        assert f is not None and not isinstance(f, (GoAwayFrame, RstStreamFrame)), f
        if isinstance(f, HeadersFrame) and f.stream_id == 1:
            heads.append((dict(dec.decode(f.data)), "END_STREAM" in f.flags))
        elif isinstance(f, DataFrame) and f.stream_id == 1:
            body += f.data
        else:
            continue
        if "END_STREAM" in f.flags:
            break
    c.close()
    return heads, body


def test_http2_client_gets_a_trailing_headers_frame(gateway, certs, tmp_path, backend):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    heads, body = _h2_get(certs, port, "/one")
    assert body == BODY
    assert len(heads) == 2, heads
    assert heads[0][0][":status"] == "200" and not heads[0][1]
    assert heads[1] == ({"x-checksum": "abc", "grpc-status": "0"}, True), heads
    # Over the limit: no trailing HEADERS, the DATA ends the stream.
    heads, body = _h2_get(certs, port, "/big")
    assert body == BODY and len(heads) == 1, heads


def test_curl_http2_sees_the_response(gateway, certs, tmp_path, backend):
    """A real client is served a trailed response whole."""
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    r = testenv.curl("--http2", "--cacert", certs.ca.cert, "--resolve",
                     "localhost:%d:127.0.0.1" % port, "https://localhost:%d/one" % port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY, r.stdout
