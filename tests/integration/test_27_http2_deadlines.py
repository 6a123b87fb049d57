"""HTTP/2 deadlines on the session's one timer: a head that never ends (timeouts.request_headers),
a body slower than limits.min_body_rate (408 on that stream, then RST_STREAM(NO_ERROR)), a
connection without streams (GOAWAY after timeouts.idle even while the client sends PINGs), and a
graceful two-step GOAWAY on reload (SIGHUP) and on SIGTERM with the streams in flight completing."""
import signal
import time

import pytest

import testenv

hpack = pytest.importorskip("hpack")
pytest.importorskip("hyperframe.frame")
from hyperframe.frame import (DataFrame, GoAwayFrame, HeadersFrame, PingFrame,  # noqa: E402
                              RstStreamFrame)
from testenv.h2raw import H2  # noqa: E402

NO_ERROR = 0


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


def _frames_while_pinging(c, limit, stop, ping=True):
    """Frames until stop(frame) is true or the connection closes, PINGing every 0.3 s; returns
    (the frame that stopped it or None, the seconds it took)."""
    start = time.monotonic()
    pinged = 0
    c.s.settimeout(0.2)
    while time.monotonic() - start < testenv.t(limit):
        if ping and time.monotonic() - pinged >= 0.3:
            pinged = time.monotonic()
            try:
                c.send(PingFrame(0, opaque_data=b"stillup!").serialize())
            except OSError:
                return None, time.monotonic() - start
        try:
            f = c.frame()
        except TimeoutError:
            continue
        if f is None or stop(f):
            return f, time.monotonic() - start
    raise AssertionError("nothing happened within %s s" % limit)


def _until_closed(c):
    """What stream 1 and the connection saw until the gateway closed it: ("goaway", code,
    last stream id), ("head", status), ("data", bytes), ("rst", stream id, code)."""
    dec = hpack.Decoder()
    seen = []
    c.s.settimeout(testenv.t(10))
    while True:
        f = c.frame()
        if f is None:
            return seen
        if isinstance(f, GoAwayFrame):
            seen.append(("goaway", f.error_code, f.last_stream_id))
        elif isinstance(f, HeadersFrame) and f.stream_id == 1:
            seen.append(("head", dict(dec.decode(f.data))[":status"]))
        elif isinstance(f, DataFrame) and f.stream_id == 1 and f.data:
            seen.append(("data", bytes(f.data)))
        elif isinstance(f, RstStreamFrame):
            seen.append(("rst", f.stream_id, f.error_code))


def test_request_head_deadline(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o, timeouts={"request_headers": 1}))
    c = H2(certs, port)
    c.send(c.head(1, end_headers=False))  # a CONTINUATION never follows (nor may anything else)
    f, took = _frames_while_pinging(c, 10, lambda f: isinstance(f, GoAwayFrame), ping=False)
    assert isinstance(f, GoAwayFrame) and f.error_code == NO_ERROR, f
    assert 0.9 <= took < 5, took
    assert gw.wait_log(lambda s: "reason=request_headers_timeout:" in s), gw.log_tail(20)
    s = testenv.get(port, "/_status").json()
    assert s["request_failures"]["request_headers_timeout"] == 1, s["request_failures"]


def test_slow_body_gets_408_on_its_stream(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o,
                         limits={"min_body_rate": 1000, "min_body_rate_grace": 1}))
    c = H2(certs, port)
    c.send(c.head(1, path="/upload", end_stream=False, extra=[("content-length", "100000")]) +
           DataFrame(1, b"x" * 10).serialize())
    dec = hpack.Decoder()
    got = {}

    def stop(f):
        if isinstance(f, HeadersFrame) and f.stream_id == 1:
            got.update(dict(dec.decode(f.data)))
        return isinstance(f, RstStreamFrame) and f.stream_id == 1 or isinstance(f, GoAwayFrame)

    f, took = _frames_while_pinging(c, 10, stop)
    assert got.get(":status") == "408", got
    assert isinstance(f, RstStreamFrame) and f.error_code == NO_ERROR, f
    assert 0.9 <= took < 5, took
    assert gw.wait_log(lambda s: "reason=request_body_timeout:" in s and "stream 1" in s), \
        gw.log_tail(20)
    # the connection goes on: another stream is served on it
    c.send(c.head(3))
    f, _ = _frames_while_pinging(c, 10, lambda f: isinstance(f, HeadersFrame) and f.stream_id == 3)
    assert isinstance(f, HeadersFrame) and dict(dec.decode(f.data))[":status"] == "200"
    assert testenv.get(port, "/_status").json()["requests"]["body_timeouts"] == 1


def test_idle_without_streams_goaway(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o, timeouts={"idle": 1}))
    c = H2(certs, port)
    c.send(c.head(1))
    f, took = _frames_while_pinging(c, 10, lambda f: isinstance(f, GoAwayFrame))
    assert isinstance(f, GoAwayFrame) and f.error_code == NO_ERROR, f
    assert 0.9 <= took < 4, took  # PINGs do not keep a connection without streams open
    assert c.frame() is None
    assert "ENHANCE_YOUR_CALM" not in gw.log_tail(50)


def test_reload_sends_goaway_and_the_stream_completes(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port, o)
    gw = gateway(cfg)
    c = H2(certs, port)
    c.send(c.head(1, path="/slow?seconds=2"))
    time.sleep(0.5)
    cfg["limits"] = {"max_headers": 99}
    gw.reload(cfg)
    seen = _until_closed(c)
    # two steps (RFC 9113 6.8): the shutdown notice, then the final GOAWAY naming stream 1
    assert seen[0] == ("goaway", NO_ERROR, 2 ** 31 - 1), seen
    assert ("goaway", NO_ERROR, 1) in seen, seen
    assert ("head", "200") in seen and ("data", b"slow done\n") in seen, seen
    # a new connection is served under the new config
    assert testenv.get(port, "/x").status == 200


def test_sigterm_two_step_goaway_serves_a_stream_sent_after_the_notice(gateway, origin, certs,
                                                                       tmp_path):
    """SIGTERM drains HTTP/2 as a reload does: the shutdown notice first, so a request the client
    sends before it reads the notice is still served, then the final GOAWAY naming it; also for
    a connection with nothing in flight (it used to be closed at once, racing the client)."""
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o))
    busy, idle = H2(certs, port), H2(certs, port)
    busy.send(busy.head(1, path="/slow?seconds=1"))
    assert testenv.wait_until(lambda: any(p.startswith("/slow") for _, p, _ in o.requests),
                              testenv.t(5)), "the slow request never reached the origin"
    gw.signal(signal.SIGTERM)
    idle.s.settimeout(testenv.t(10))
    f = idle.goaway_frame()
    assert (f.error_code, f.last_stream_id) == (NO_ERROR, 2 ** 31 - 1), f
    idle.send(idle.head(1, path="/late"))  # sent after the notice, before the final GOAWAY
    seen = _until_closed(idle)
    assert ("head", "200") in seen and ("goaway", NO_ERROR, 1) in seen, seen
    assert not any(s[0] == "rst" for s in seen), seen
    seen = _until_closed(busy)
    assert seen[0] == ("goaway", NO_ERROR, 2 ** 31 - 1), seen
    assert ("goaway", NO_ERROR, 1) in seen and ("data", b"slow done\n") in seen, seen
    assert gw.wait_exit(timeout=testenv.t(15)) == 0, gw.log_tail()
