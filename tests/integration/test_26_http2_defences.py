"""HTTP/2 defences: rapid reset (CVE-2023-44487), CONTINUATION floods (CVE-2024-27316 family),
HPACK bombs, SETTINGS/PING/empty-frame floods, frames with no effect (PRIORITY, WINDOW_UPDATE
beyond the DATA sent) and zero-window stalls each end the abuser's
connection with GOAWAY(ENHANCE_YOUR_CALM), are logged once with their reason token and counted
on the status page (http2_calm), while another client keeps being served. The http2 section's
settings reach the client's SETTINGS. Frames are built with Debian's python3-hyperframe and
python3-hpack (python3-h2's dependencies)."""
import socket
import ssl
import struct
import threading
import time

import pytest

import testenv

hpack = pytest.importorskip("hpack")
hyperframe = pytest.importorskip("hyperframe.frame")
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame,  # noqa: E402
                              HeadersFrame, PingFrame, PriorityFrame, RstStreamFrame,
                              SettingsFrame, WindowUpdateFrame)
from testenv.h2raw import ENHANCE_YOUR_CALM, H2  # noqa: E402


def _config(certs, tmp_path, port, o, **top):
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/_status", "backend": "status"},
                                  {"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]}, "status": {"builtin": "status"}},
    }
    cfg.update(top)
    return cfg


def _calm(gw, port, token):
    assert gw.wait_log(lambda s: "ENHANCE_YOUR_CALM: reason=%s:" % token in s), gw.log_tail(20)
    lines = [l for l in gw.log_tail(200).splitlines() if "reason=%s:" % token in l]
    assert len(lines) == 1, lines  # logged once
    assert testenv.get(port, "/_status").json()["http2_calm"][token] == 1


def _served(certs, port):
    """Another client is served meanwhile (HTTP/2 through the same worker)."""
    r = testenv.curl("--http2", "--cacert", certs.ca.cert, "--resolve",
                     "localhost:%d:127.0.0.1" % port, "-o", "/dev/null", "-w",
                     "%{http_version} %{http_code}", "https://localhost:%d/small" % port)
    assert r.stdout == b"2 200", (r.stdout, r.stderr)


def test_settings_reach_the_client(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o, http2={
        "max_concurrent_streams": 7, "initial_window_size": 4096, "max_frame_size": 32768,
        "max_header_list_size": 5000}))
    c = H2(certs, port)
    f = c.frame()
    assert isinstance(f, SettingsFrame) and "ACK" not in f.flags, f
    assert f.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == 7
    assert f.settings[SettingsFrame.INITIAL_WINDOW_SIZE] == 4096
    assert f.settings[SettingsFrame.MAX_FRAME_SIZE] == 32768
    assert f.settings[SettingsFrame.MAX_HEADER_LIST_SIZE] == 5000
    c.close()


def test_rapid_reset(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o))
    c = H2(certs, port)
    stop = threading.Event()
    errors = []

    def other():  # a well-behaved client all along
        while not stop.is_set():
            try:
                _served(certs, port)
            except AssertionError as e:
                errors.append(e)
                return

    t = threading.Thread(target=other)
    t.start()
    try:
        burst = b""
        for i in range(600):  # far beyond the burst (2 x max_concurrent_streams)
            sid = 1 + 2 * i
            burst += c.head(sid) + RstStreamFrame(sid, error_code=8).serialize()
        c.send(burst)
        assert c.goaway() == ENHANCE_YOUR_CALM
        assert c.frame() is None  # and closed
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    _calm(gw, port, "rapid_reset")


def test_continuation_flood(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o))
    c = H2(certs, port)
    block = c.enc.encode([(":method", "GET"), (":scheme", "https"), (":path", "/small"),
                          (":authority", "localhost")] + [("x-a%d" % i, "v") for i in range(40)])
    data = HeadersFrame(1, block[:4]).serialize()
    rest = block[4:]
    for i in range(len(rest)):  # one byte per CONTINUATION, never END_HEADERS
        data += ContinuationFrame(1, rest[i:i + 1]).serialize()
    c.send(data)
    assert c.goaway() == ENHANCE_YOUR_CALM
    _calm(gw, port, "continuation_flood")
    _served(certs, port)


def test_hpack_bomb(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o, limits={"max_header_bytes": 4096}))
    c = H2(certs, port)
    # one 3000-byte field added to the dynamic table, then referenced 40 times (1 byte each):
    # 120 KB decoded from 3 KB sent
    name, value = b"x-bomb", b"b" * 3000
    enc = hpack.Encoder()
    head = enc.encode([(":method", "GET"), (":scheme", "https"), (":path", "/small"),
                       (":authority", "localhost")])
    enc_lit = enc.encode([(name, value)])  # literal with incremental indexing (index 62)
    block = head + enc_lit + b"\xbe" * 40
    f = HeadersFrame(1, block)
    f.flags.add("END_HEADERS")
    f.flags.add("END_STREAM")
    c.send(f.serialize())
    assert c.goaway() == ENHANCE_YOUR_CALM
    _calm(gw, port, "hpack_bomb")
    _served(certs, port)


def _unknown_frame(ftype, payload=b"x"):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, 0]) + struct.pack(">I", 0) + payload


@pytest.mark.parametrize("kind", ["settings_flood", "ping_flood", "empty_frame_flood",
                                  "priority_flood", "window_update_flood"])
def test_frame_floods(gateway, origin, certs, tmp_path, kind):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o))
    c = H2(certs, port)
    if kind == "settings_flood":
        one = SettingsFrame(0, settings={SettingsFrame.ENABLE_PUSH: 0}).serialize()
        data = one * 200
    elif kind == "ping_flood":
        data = PingFrame(0, opaque_data=b"12345678").serialize() * 200
    elif kind == "priority_flood":  # to idle and closed streams alike: no effect here
        data = b"".join(PriorityFrame(1 + 2 * (i % 50), depends_on=0,
                                      stream_weight=i % 256).serialize() for i in range(1000))
    elif kind == "window_update_flood":  # no DATA was sent: nothing to answer
        data = WindowUpdateFrame(0, window_increment=1).serialize() * 1000

    else:
        data = c.head(1, path="/upload", end_stream=False) + DataFrame(1, b"").serialize() * 200
    c.send(data)
    assert c.goaway() == ENHANCE_YOUR_CALM
    _calm(gw, port, kind)
    _served(certs, port)


def test_ordinary_clients_meet_no_limit(gateway, origin, certs, tmp_path):
    """A handful of PINGs and SETTINGS, and a stream reset by a client that changed its mind,
    are no flood."""
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o))
    c = H2(certs, port)
    data = PingFrame(0, opaque_data=b"abcdefgh").serialize() * 5
    data += SettingsFrame(0, settings={SettingsFrame.ENABLE_PUSH: 0}).serialize() * 3
    # a priority tree as older browsers send it, a GREASE frame, a few window increments
    data += b"".join(PriorityFrame(sid, depends_on=0, stream_weight=200).serialize()
                     for sid in (5, 7, 9, 11, 13))
    data += _unknown_frame(0x0b) + WindowUpdateFrame(0, window_increment=1000).serialize() * 4
    data += c.head(1) + RstStreamFrame(1, error_code=8).serialize() + c.head(3)
    c.send(data)
    got = None
    while got is None:
        f = c.frame()
        assert f is not None and not isinstance(f, (GoAwayFrame, RstStreamFrame)), f
        if isinstance(f, HeadersFrame) and f.stream_id == 3:
            got = f
    c.close()
    assert "ENHANCE_YOUR_CALM" not in gw.log_tail(100)


def test_window_updates_answering_data_are_no_flood(gateway, origin, certs, tmp_path):
    """A client that answers every DATA frame with a stream and a connection WINDOW_UPDATE (far
    more than the bare burst of 128 over a 4 MB download) is served to the end."""
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o))
    c = H2(certs, port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 16384})
    c.send(c.head(1, path="/download?size=4000000"))
    got, updates = 0, 0
    while True:
        f = c.frame()
        assert f is not None and not isinstance(f, GoAwayFrame), (f, got, updates)
        if isinstance(f, DataFrame) and f.stream_id == 1:
            got += len(f.data)
            if f.data:
                c.send(WindowUpdateFrame(1, window_increment=len(f.data)).serialize() +
                       WindowUpdateFrame(0, window_increment=len(f.data)).serialize())
                updates += 2
            if "END_STREAM" in f.flags:
                break
    c.close()
    assert got == 4000000 and updates > 400, (got, updates)
    assert "ENHANCE_YOUR_CALM" not in gw.log_tail(100)


def test_zero_window_stall(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o, timeouts={"idle": 1.5}))
    c = H2(certs, port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    c.send(c.head(1, path="/download?size=1000000"))
    start = time.monotonic()
    code = "none"
    # PINGs keep the connection busy, so only the stream's own clock can end it
    c.s.settimeout(0.3)
    pinged = 0
    while time.monotonic() - start < testenv.t(10):
        if time.monotonic() - pinged >= 0.3:
            pinged = time.monotonic()
            c.send(PingFrame(0, opaque_data=b"keepbusy").serialize())
        try:
            f = c.frame()
        except socket.timeout:
            continue
        if f is None:
            code = None
            break
        assert not isinstance(f, DataFrame) or len(f.data) == 0, "DATA through a zero window"
        if isinstance(f, GoAwayFrame):
            code = f.error_code
            break
    assert code == ENHANCE_YOUR_CALM, code
    assert time.monotonic() - start >= 1.4
    _calm(gw, port, "zero_window")
    _served(certs, port)


def test_request_trailers_reach_a_chunked_backend_request(gateway, origin, certs, tmp_path):
    """HTTP/2 request trailers end the chunked body toward the HTTP/1.1 backend; fields a
    trailer may not carry (framing, routing, credentials, ours) are dropped."""
    import json
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o))
    c = H2(certs, port)
    body = b"z" * 50000
    data = c.head(1, path="/upload", end_stream=False)
    for i in range(0, len(body), 16000):
        data += DataFrame(1, body[i:i + 16000]).serialize()
    block = c.enc.encode([("x-checksum", "abc123"), ("grpc-status", "0"),
                          ("authorization", "Basic eA=="), ("x-forwarded-for", "10.0.0.1"),
                          ("cookie", "a=b"), ("x_under", "1")])
    t = HeadersFrame(1, block)
    t.flags.add("END_HEADERS")
    t.flags.add("END_STREAM")
    c.send(data[:16384 * 3])  # within the stream's first window
    c.send(data[16384 * 3:] + t.serialize())
    dec = hpack.Decoder()
    got, doc = {}, b""
    c.s.settimeout(testenv.t(10))
    while True:
        f = c.frame()
        assert f is not None and not isinstance(f, (GoAwayFrame, RstStreamFrame)), f
        if isinstance(f, HeadersFrame) and f.stream_id == 1:
            got.update(dict(dec.decode(f.data)))
        if isinstance(f, DataFrame) and f.stream_id == 1:
            doc += f.data
            if "END_STREAM" in f.flags:
                break
    assert got[":status"] == "200", got
    j = json.loads(doc)
    assert j["length"] == len(body), j
    assert j["trailers"] == [["x-checksum", "abc123"], ["grpc-status", "0"]], j
