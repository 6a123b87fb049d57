"""The backend fault table: backends that reset mid-response, close mid-head, stall, answer twice,
send a body longer than their Content-Length or cut a chunked body off. For HTTP/1.1 keep-alive
clients and HTTP/2 clients (raw frames and curl --http2), on a pooled backend connection: the
client gets a clean error (502/504) or its connection closed / its stream reset, never a
truncated body presented as whole and never bytes of another response; the backend connection is
not used again, and the next request gets its own correct response from a new connection."""
import re
import shutil
import socket

import pytest

import testenv
from testenv import Conn
from testenv.faulty import FAULTS, STRAY, FaultyBackend, ok_body
from testenv.h2raw import collect_streams

# What the client must see for each fault, whatever protocol it speaks:
#   error: a clean 502/504 response
#   cut:   the response head was relayed, then the client's connection closed (HTTP/1.1) or its
#          stream reset (HTTP/2); a 502 when the failure came before the head was relayed
#   whole: the first response whole, the extra bytes dropped
EXPECT = {
    "reset": ("cut", 502),
    "closehead": ("error", 502),
    "stall": ("error", 504),
    "stallbody": ("cut", 504),
    "twice": ("whole", 200),
    "twicelater": ("whole", 200),
    "long": ("whole", 200),
    "chunkcut": ("cut", 502),
    "chunkreset": ("cut", 502),
    "clte": ("error", 502),
    "twocl": ("error", 502),
    "nocontent": ("whole", 204),
    "headbody": ("whole", 200),
    "badchunk": ("cut", 502),
    "chunknocrlf": ("cut", 502),
    "interimclose": ("error", 502),
    "interimreset": ("error", 502),
    "interimok": ("whole", 200),
    "notmodified": ("whole", 304),
    "headchunked": ("whole", 200),
    "eofbody": ("whole", 200),
    "eofbodyreset": ("cut", 502),
    "tegzip": ("error", 502),
    "tetwice": ("error", 502),
    "teidentity": ("error", 502),
    "tetwolines": ("error", 502),
    "tegzipchunked": ("error", 502),
    "http10": ("whole", 200),
    "badcl": ("error", 502),
    "upgrade": ("error", 502),
    "eofbodynotify": ("whole", 200),
}
assert set(EXPECT) <= set(FAULTS)
# Not faults: a well-framed response after interim ones; its connection may be used again.
SOUND = {"interimok"}

TAG = re.compile(rb"^ok c(\d+)-r(\d+) (\S+)\n$")


@pytest.fixture
def backend():
    b = FaultyBackend()
    yield b
    b.close()


@pytest.fixture
def tls_backend(certs):
    b = FaultyBackend(tls=(certs.ec.cert, certs.ec.key))
    yield b
    b.close()


# Over TLS a body that ends with the connection ends with close_notify, or it may have been cut.
TLS_EXPECT = dict(EXPECT, eofbody=("cut", 502))


def _config(certs, tmp_path, port, be):
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": None},
        "timeouts": {"backend_response": 1},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"], "alpn": ["h2", "http/1.1"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [be.address]}},
    }
    if be.ctx is not None:
        cfg["truststores"] = {"ca": {"type": "pem", "file": certs.ca.cert}}
        cfg["backends"]["app"]["tls"] = {"truststore": "ca", "server_name": "localhost"}
    return cfg


def _tag(body, path):
    """The backend connection number that answered, checking the body is the response to path."""
    m = TAG.match(body)
    assert m and m.group(3) == path.encode(), "not the response to %s: %r" % (path, body[:200])
    return int(m.group(1))


def _method(fault):
    return "HEAD" if fault in ("headbody", "headchunked") else "GET"


def _expect_whole_body(fault, body, cid):
    if fault in ("nocontent", "headbody", "notmodified", "headchunked"):
        assert body == b"", body[:200]
    elif fault == "long":
        assert body == b"hello", body[:200]
    else:
        assert _tag(body, "/" + fault) == cid, body


def _h1_case(port, be, fault, expect=EXPECT):
    kind, status = expect[fault]
    with Conn(port) as c:
        cid = _tag(c.request("GET", "/ok").body, "/ok")
        c.send(Conn.build(_method(fault), "/" + fault, c.host))
        if fault == "twicelater":
            assert be.stray_sent.wait(testenv.t(5))
        try:
            r = c.read_response(_method(fault))
        except ConnectionError:
            r = None
        if r is None:
            assert kind == "cut", "%s: connection closed without a response" % fault
            rest = c.recv_all()
        else:
            rest = b""
            if r.status == status and kind in ("error", "cut"):
                assert r.status in (502, 504), (fault, r.status)
            elif kind == "whole":
                assert r.status == status, (fault, r.status, r.body[:200])
                _expect_whole_body(fault, r.body, cid)
            else:
                raise AssertionError("%s: %d %r, expected %s (%d)" % (fault, r.status,
                                                                      r.body[:200], kind, status))
        assert STRAY not in rest and (r is None or STRAY not in r.body), (fault, rest[:300])
        # The next request: on the same client connection when it is still open, else a new one.
        if r is not None and (r.header("Connection") or "").lower() != "close":
            nxt = c.request("GET", "/ok")
        else:
            with Conn(port) as c2:
                nxt = c2.request("GET", "/ok")
    assert nxt.status == 200, (fault, nxt.status, nxt.body[:300])
    assert STRAY not in nxt.body, (fault, nxt.body)
    cid2 = _tag(nxt.body, "/ok")
    assert cid2 != cid or fault in SOUND, "%s: backend connection c%d was used again after the " \
        "fault" % (fault, cid)
    return r


@pytest.mark.parametrize("fault", sorted(EXPECT))
def test_http11_keepalive_client(gateway, certs, tmp_path, backend, fault):
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, backend))
    _h1_case(port, backend, fault)
    if EXPECT[fault][0] != "whole":
        assert gw.wait_log(lambda s: "backend error:" in s), gw.log_tail()


@pytest.mark.parametrize("fault", sorted(TLS_EXPECT))
def test_http11_keepalive_client_tls_backend(gateway, certs, tmp_path, tls_backend, fault):
    """The same faults from a TLS backend (an end without close_notify)."""
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, tls_backend))
    _h1_case(port, tls_backend, fault, TLS_EXPECT)
    if TLS_EXPECT[fault][0] != "whole":
        assert gw.wait_log(lambda s: "backend error:" in s), gw.log_tail()


# ---- HTTP/2 ----

def _h2_stream(c, sid, path, dec, method="GET"):
    """Sends method path on stream sid (path None: already sent); returns (status or None, data,
    'end' | 'rst')."""
    from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame
    if path is not None:
        c.send(c.head(sid, path=path, method=method))
    status, data = None, b""
    while True:
        f = c.frame()
        assert f is not None, "the gateway closed the HTTP/2 connection (stream %d %s)" % (sid,
                                                                                           path)
        assert not isinstance(f, GoAwayFrame), "GOAWAY on stream %d %s" % (sid, path)
        if isinstance(f, HeadersFrame):
            h = dict(dec.decode(f.data))  # every block: the decoder's table follows them all
        if getattr(f, "stream_id", 0) != sid:
            continue
        if isinstance(f, HeadersFrame):
            if ":status" in h:
                status = int(h[":status"])
        elif isinstance(f, DataFrame):
            data += f.data
        elif isinstance(f, RstStreamFrame):
            return status, data, "rst"
        if "END_STREAM" in f.flags:
            return status, data, "end"


@pytest.mark.parametrize("fault", sorted(EXPECT))
def test_http2_client(gateway, certs, tmp_path, backend, fault):
    _h2_case(gateway, certs, tmp_path, backend, fault, EXPECT)


@pytest.mark.parametrize("fault", sorted(TLS_EXPECT))
def test_http2_client_tls_backend(gateway, certs, tmp_path, tls_backend, fault):
    _h2_case(gateway, certs, tmp_path, tls_backend, fault, TLS_EXPECT)


def _h2_case(gateway, certs, tmp_path, backend, fault, expect):
    hpack = pytest.importorskip("hpack")
    pytest.importorskip("hyperframe.frame")
    from testenv.h2raw import H2
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    kind, want = expect[fault]
    c = H2(certs, port)
    dec = hpack.Decoder()
    try:
        status, data, end = _h2_stream(c, 1, "/ok", dec)
        assert (status, end) == (200, "end"), (status, end)
        cid = _tag(data, "/ok")
        status, data, end = _h2_stream(c, 3, "/" + fault, dec, _method(fault))
        if fault == "twicelater":
            assert backend.stray_sent.wait(testenv.t(5))
        assert STRAY not in data, (fault, data[:300])
        if kind == "whole":
            assert (status, end) == (want, "end"), (fault, status, end, data[:200])
            _expect_whole_body(fault, data, cid)
        elif kind == "error" or status in (502, 504):
            assert status == want and end == "end", (fault, status, end, data[:200])
        else:
            # the stream is reset after its head, never ended as if the body were whole (an error
            # in the same read as the head is a 502: test_http2_error_in_the_read_of_the_head_...)
            assert status in (200, None) and end == "rst", (fault, status, end, data[:200])
        status, data, end = _h2_stream(c, 5, "/ok", dec)
        assert (status, end) == (200, "end"), (fault, status, end, data[:200])
        assert STRAY not in data, (fault, data)
        assert _tag(data, "/ok") != cid or fault in SOUND, "%s: backend connection c%d used " \
            "again" % (fault, cid)
    finally:
        c.close()


@pytest.mark.parametrize("fault", ["badchunk", "chunknocrlf", "tetwice"])
def test_http2_error_in_the_read_of_the_head_is_a_502(gateway, certs, tmp_path, backend, fault):
    """A backend whose response turns out malformed in the same read as its head (one write: the
    head, then a bad chunk): nothing of that response has gone out to the HTTP/2 client, so it
    gets our 502 with the usual error body, not a bare RST_STREAM (five times, each on a new
    backend connection; HTTP/1.1 clients are unchanged)."""
    hpack = pytest.importorskip("hpack")
    pytest.importorskip("hyperframe.frame")
    from testenv.h2raw import H2
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, backend))
    c = H2(certs, port)
    dec = hpack.Decoder()
    try:
        for i in range(5):
            status, data, end = _h2_stream(c, 1 + 4 * i, "/" + fault, dec)
            assert (status, end) == (502, "end"), (fault, i, status, end, data[:200])
            assert data.startswith(b"Bad Gateway: backend \"app\": ") and \
                b"(bad_response)" in data, data[:300]
            assert STRAY not in data
            status, data, end = _h2_stream(c, 3 + 4 * i, "/ok", dec)
            assert (status, end) == (200, "end"), (fault, status, end, data[:200])
    finally:
        c.close()
    assert len(gw.log_lines("backend error", "reason=bad_response")) == 5


def test_curl_http2_sees_each_fault(gateway, certs, tmp_path, backend):
    """curl --http2 fetching ok, fault, ok over one connection: an error or a failed transfer for
    the fault, and the right body for the request after it."""
    testenv.need(shutil.which("curl") is not None, "curl")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    out = tmp_path / "curl"
    out.mkdir()
    for fault in sorted(EXPECT):
        if fault == "twicelater" or _method(fault) == "HEAD":
            continue  # a pause between the requests, HEAD: covered by the raw client
        urls = []
        for i, p in enumerate(("/ok", "/" + fault, "/ok")):
            urls += ["-o", str(out / ("%s-%d" % (fault, i))),
                     "https://localhost:%d%s" % (port, p)]
        r = testenv.curl("--http2", "-s", "--cacert", certs.ca.cert, "--resolve",
                         "localhost:%d:127.0.0.1" % port, "-w",
                         "%{http_code} %{http_version} %{exitcode}\n",
                         *urls, timeout=testenv.t(30))
        codes = r.stdout.decode().split("\n")
        assert codes[0] == "200 2 0" and codes[2] == "200 2 0", (fault, codes, r.stderr)
        kind, want = EXPECT[fault]
        body = (out / ("%s-1" % fault)).read_bytes() if (out / ("%s-1" % fault)).exists() else b""
        assert STRAY not in body
        if kind == "whole":
            assert codes[1] == "%d 2 0" % want, (fault, codes)
        elif kind == "error":
            assert codes[1] == "%d 2 0" % want, (fault, codes)
        else:
            # curl reports the reset stream (92: not closed cleanly) or got the 502
            assert codes[1] in ("200 2 92", "000 0 92", "502 2 0", "504 2 0"), (fault, codes,
                                                                                 r.stderr)
        first = _tag((out / ("%s-0" % fault)).read_bytes(), "/ok")
        last = _tag((out / ("%s-2" % fault)).read_bytes(), "/ok")
        assert last != first or fault in SOUND, "%s: backend connection c%d used again" % (
            fault, first)


def test_http2_pooled_connection_with_stray_bytes_is_not_used(gateway, certs, tmp_path, backend):
    """Stream 1's response is parsed whole but held by flow control (window 0) while its backend
    sends stray bytes, which nobody reads (the response is complete). The windows open, stream 1
    ends and its backend connection goes to the pool; stream 3 arrives in the next TLS record of
    the same segment, before the loop polls that connection again: it must not be given the
    stray bytes."""
    hpack = pytest.importorskip("hpack")
    frame = pytest.importorskip("hyperframe.frame")
    from testenv.h2raw import H2
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    c = H2(certs, port, settings={frame.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    dec = hpack.Decoder()
    try:
        c.send(c.head(1, path="/twicelater"))
        assert backend.stray_sent.wait(testenv.t(5))
        w = frame.SettingsFrame(0)  # opens every stream's window: stream 1 ends
        w.settings = {frame.SettingsFrame.INITIAL_WINDOW_SIZE: 65535}
        # two TLS records in one TCP segment: the gateway reads both in one pass
        c.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        c.send(w.serialize())
        c.send(c.head(3, path="/ok"))
        c.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        status, data, end = _h2_stream(c, 3, None, dec)
        assert STRAY not in data, "the stray bytes were served as stream 3's response: %r" % data
        assert (status, end) == (200, "end"), (status, end, data[:200])
        assert _tag(data, "/ok") == 2, data
    finally:
        c.close()


@pytest.mark.parametrize("fault", ["resetearly", "earlyreply"])
def test_backend_cuts_a_request_body_short(gateway, certs, tmp_path, backend, fault):
    """A backend that resets, or answers 413 and closes, while a keep-alive client is still
    sending a request body (made of request lines): the client gets the 502 or the 413, the body
    never becomes requests, and the client's next request gets its own response."""
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    body = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n" * 10000  # 290 KB
    with Conn(port, timeout=20) as c:
        cid = _tag(c.request("GET", "/ok").body, "/ok")
        r = c.request("POST", "/" + fault, body=body)
        assert r.status == (502 if fault == "resetearly" else 413), (r.status, r.body[:200])
        if (r.header("Connection") or "").lower() == "close":
            assert c.is_closed(testenv.t(5))
            with Conn(port) as c2:
                nxt = c2.request("GET", "/ok")
        else:
            nxt = c.request("GET", "/ok")
    assert nxt.status == 200 and _tag(nxt.body, "/ok") != cid, nxt.body
    paths = [p for _, _, p in backend.served]
    assert paths == ["/ok", "/" + fault, "/ok"], paths


@pytest.mark.parametrize("fault", ["resetearly", "earlyreply"])
def test_http2_backend_cuts_a_request_body_short(gateway, certs, tmp_path, backend, fault):
    hpack = pytest.importorskip("hpack")
    frame = pytest.importorskip("hyperframe.frame")
    from testenv.h2raw import H2
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    c = H2(certs, port)
    dec = hpack.Decoder()
    try:
        status, data, end = _h2_stream(c, 1, "/ok", dec)
        cid = _tag(data, "/ok")
        c.send(c.head(3, path="/" + fault, end_stream=False))
        chunk = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n" * 500  # 14.5 KB a frame
        for i in range(4):
            d = frame.DataFrame(3, chunk)
            if i == 3:
                d.flags.add("END_STREAM")
            c.send(d.serialize())
        status, data, end = _h2_stream(c, 3, None, dec)
        want = 502 if fault == "resetearly" else 413
        assert (status, end) in ((want, "end"), (want, "rst"), (None, "rst")), (status, end)
        status, data, end = _h2_stream(c, 5, "/ok", dec)
        assert (status, end) == (200, "end") and _tag(data, "/ok") != cid, (status, data)
    finally:
        c.close()
    assert [p for _, _, p in backend.served] == ["/ok", "/" + fault, "/ok"], backend.served


@pytest.mark.parametrize("fault", ["twicelater", "closelater", "resetlater"])
def test_idle_pooled_connection_that_hears_from_its_backend_is_dropped_at_once(
        gateway, certs, tmp_path, backend, fault):
    """A pooled backend connection whose backend sends bytes, ends or resets while it sits idle is
    closed as the loop sees it (readable interest stays armed while pooled), counted in the status
    page's backends.pool_dropped without any request asking for it; the next request gets a new
    connection and its own response, and finds nothing more to drop."""
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port, backend)
    cfg["listeners"][0]["routes"].insert(0, {"path_prefix": "/_status", "backend": "status"})
    cfg["backends"]["status"] = {"builtin": "status"}
    gateway(cfg)

    def dropped():
        r = testenv.get(port, "/_status")
        assert r.status == 200, r.status
        return r.json()["backends"]["pool_dropped"]

    d0 = dropped()
    with Conn(port) as c:
        cid = _tag(c.request("GET", "/ok").body, "/ok")
        r = c.request("GET", "/" + fault)
        assert r.status == 200 and _tag(r.body, "/" + fault) == cid, (r.status, r.body[:200])
        assert backend.stray_sent.wait(testenv.t(5))
        assert testenv.wait_until(lambda: dropped() == d0 + 1, testenv.t(5)), dropped()
        nxt = c.request("GET", "/ok")
    assert nxt.status == 200 and STRAY not in nxt.body, (nxt.status, nxt.body[:200])
    assert _tag(nxt.body, "/ok") != cid, "backend connection c%d used again" % cid
    assert dropped() == d0 + 1


# twicelater's stray bytes come 50 ms after the response, when the pipelined next request is
# already on that connection: they look exactly like its response (the limit docs/robustness.md
# states: HTTP/1.1 has no request ids).
@pytest.mark.parametrize("fault", sorted(set(EXPECT) - {"twicelater"}))
def test_http11_pipelined_client(gateway, certs, tmp_path, backend, fault):
    """ok, the fault and ok again pipelined in one write on a keep-alive connection: the first
    answered whole; then each response is the one to its request (or the connection closes once
    a response was cut), never stray bytes."""
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    kind, status = EXPECT[fault]
    with Conn(port) as c:
        c.send(Conn.build("GET", "/ok", c.host) + Conn.build(_method(fault), "/" + fault, c.host)
               + Conn.build("GET", "/ok", c.host))
        first = c.read_response()
        cid = _tag(first.body, "/ok")
        try:
            r = c.read_response(_method(fault))
        except ConnectionError:
            r = None
        if r is None:
            assert kind == "cut", fault
            return
        assert STRAY not in r.body, (fault, r.body[:300])
        if kind == "whole":
            assert r.status == status, (fault, r.status, r.body[:200])
            _expect_whole_body(fault, r.body, cid)
        else:
            assert r.status == status, (fault, r.status, r.body[:200])
        if (r.header("Connection") or "").lower() == "close":
            assert c.is_closed(testenv.t(5))
            return
        try:
            nxt = c.read_response()
        except ConnectionError:
            return  # closed after the fault: the third request is not answered
        assert nxt.status == 200 and STRAY not in nxt.body, (fault, nxt.status, nxt.body[:300])
        assert _tag(nxt.body, "/ok") != cid or fault in SOUND, fault


def _h2_collect(c, dec, want):
    """Reads frames until every stream in want ended or was reset: {sid: (status, data, how)}."""
    return collect_streams(c, dec, want)[0]


def test_http2_concurrent_streams_share_the_pool(gateway, certs, tmp_path, backend):
    """Every fault and as many good requests on concurrent streams of one HTTP/2 connection, the
    backend connections shared through the pool: each good stream gets its own response, each
    fault its error or its reset; then a second batch of good streams is served by connections
    none of which carried a fault."""
    pytest.importorskip("hyperframe.frame")
    hpack = pytest.importorskip("hpack")
    from testenv.h2raw import H2
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, backend))
    c = H2(certs, port)
    dec = hpack.Decoder()
    try:
        want, batch, sid = {}, b"", 1
        for fault in sorted(EXPECT):
            for path in ("/ok", "/" + fault):
                want[sid] = path
                batch += c.head(sid, path=path, method="GET" if path == "/ok" else _method(fault))
                sid += 2
        c.send(batch)
        got = _h2_collect(c, dec, want)
        for s, path in want.items():
            status, data, how = got[s]
            assert STRAY not in data, (path, data[:300])
            fault = path[1:]
            if path == "/ok":
                assert (status, how) == (200, "end"), (s, status, how, data[:200])
                _tag(data, "/ok")
                continue
            kind, code = EXPECT[fault]
            if kind == "whole":
                assert (status, how) == (code, "end"), (fault, status, how, data[:200])
            elif kind == "error" or status in (502, 504):
                assert (status, how) == (code, "end"), (fault, status, how, data[:200])
            else:
                assert status in (200, None) and how == "rst", (fault, status, how)
        assert backend.stray_sent.wait(testenv.t(5))
        faulted = {cid for cid, _, p in backend.served if p != "/ok" and p[1:] not in SOUND}
        first = {cid for cid, _, _ in backend.served}
        want2 = {}
        batch = b""
        for _ in range(40):
            want2[sid] = "/ok"
            batch += c.head(sid, path="/ok")
            sid += 2
        c.send(batch)
        got = _h2_collect(c, dec, want2)
        used = set()
        for s in want2:
            status, data, how = got[s]
            assert (status, how) == (200, "end") and STRAY not in data, (s, status, data[:200])
            used.add(_tag(data, "/ok"))
        assert not used & faulted, "connections that carried a fault used again: %s" % (
            used & faulted)
        assert used & first, "the pool was not used (batch 2 on connections %s)" % used
    finally:
        c.close()


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST", "PATCH"])
def test_pooled_connection_closed_as_it_is_reused(gateway, certs, tmp_path, backend, method):
    """The backend reads a request on a pooled connection and closes it without an answer (as a
    backend timing out its idle connection at that moment does). An idempotent request is sent
    again on a new connection and answered; a non-idempotent one is not (RFC 9110 9.2.2: a proxy
    MUST NOT retry it; the backend may have acted on it): 502, and the backend saw it once."""
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, backend))
    with Conn(port) as c:
        cid = _tag(c.request("GET", "/ok").body, "/ok")
        r = c.request(method, "/closeonreuse", headers=[("Content-Length", "0")]
                      if method in ("POST", "PATCH") else None)
    seen = [(i, p) for i, _, p in backend.served if p == "/closeonreuse"]
    if method in ("GET", "DELETE"):
        assert r.status == 200 and _tag(r.body, "/closeonreuse") != cid, (r.status, r.body)
        assert len(seen) == 2, seen
    else:
        assert r.status == 502, (r.status, r.body[:200])
        assert seen == [(cid, "/closeonreuse")], seen
        assert gw.wait_log(lambda s: "backend error:" in s and "reason=closed_early" in s), \
            gw.log_tail()


@pytest.mark.parametrize("tls", [False, True], ids=["plain-backend", "tls-backend"])
def test_whole_response_then_reset_is_whole(gateway, certs, tmp_path, tls):
    """A backend that sends a whole response (Connection: close) and resets at once (as a server
    closing with unread input does): the reset often reaches the gateway in the same poll as the
    response, and the response must still be relayed whole, not replaced by a 502. 40 requests,
    each on a new client connection, then 20 HTTP/2 streams."""
    be = FaultyBackend(tls=(certs.ec.cert, certs.ec.key) if tls else None)
    port = testenv.free_port()
    try:
        gateway(_config(certs, tmp_path, port, be))
        got = []
        for _ in range(40):
            with Conn(port) as c:
                r = c.request("GET", "/okreset")
                got.append((r.status, r.body if r.status != 200 else _tag(r.body, "/okreset")))
        assert all(s == 200 for s, _ in got), [g for g in got if g[0] != 200][:3]
        hpack = pytest.importorskip("hpack")
        from testenv.h2raw import H2
        c = H2(certs, port)
        try:
            dec = hpack.Decoder()
            for i in range(20):
                status, data, end = _h2_stream(c, 1 + 2 * i, "/okreset", dec)
                assert (status, end) == (200, "end"), (i, status, end, data[:200])
                _tag(data, "/okreset")
        finally:
            c.close()
    finally:
        be.close()
