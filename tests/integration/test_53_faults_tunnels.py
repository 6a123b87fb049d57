"""A backend failure where the client reads to the end of the connection: a tcp listener's
backend that resets after sending some bytes, a WebSocket backend that resets after its 101,
and an HTTP/1.0 client (the response ends with the connection) whose backend cuts the body. The
client gets every byte sent before the failure, then an end that says the stream was cut: over
TLS no close_notify (the TLS client reports an unexpected EOF), plain a reset, never the clean
end that would make a cut stream look whole. The failure is logged with its reason and counted;
a whole close-delimited response still ends with close_notify. The other way, a tcp client's
reset reaches its backend as a reset."""
import socket
import ssl
import struct

import pytest

import testenv
from testenv import pp2
from testenv.faulty import FaultyBackend
from testenv.pp2 import TunnelClient
from testenv.wsecho import ws_accept, ws_frame


def _strict_ctx():
    """Verifies the gateway; a TLS end without close_notify is an error, not an end (Python sets
    OP_IGNORE_UNEXPECTED_EOF by default, which makes the two look alike)."""
    ctx = testenv.tls_context()
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    return ctx


def _cut(c, tls):
    """How the client's stream ended was a cut, not a clean end."""
    if tls:
        return c.eof is not None and "UNEXPECTED_EOF" in c.eof
    return c.eof == "reset"


def _rst(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _reset_handler(greeting):
    def handler(s):
        s.sendall(greeting)
        s.recv(1)  # the client's first byte
        _rst(s.sock)
    return handler


def _base(certs, tmp_path, listener, backends):
    return {"version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
            "log": {"level": "info"}, "keystores": {"ec": certs.ec.keystore()},
            "listeners": [listener], "backends": backends}


@pytest.mark.parametrize("tls_in", [True, False], ids=["tls-in", "plain-in"])
def test_tcp_backend_reset_reaches_the_client_as_a_cut(gateway, certs, tmp_path, tls_in):
    greeting = b"some bytes, then a reset\r\n"
    b = pp2.TCPBackend(_reset_handler(greeting), proxy_header="none", name="resetter")
    port = testenv.free_port()
    cfg = _base(certs, tmp_path,
                {"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                 "backend": "rs", "proxy_protocol_out": False,
                 "tls": {"certificates": ["ec"]} if tls_in else {"disabled": True}},
                {"rs": {"targets": [b.address]}})
    try:
        gw = gateway(cfg)
        with TunnelClient(port, tls=tls_in, ctx=_strict_ctx(), timeout=testenv.t(10)) as c:
            c.send(b"x")
            got = c.recv_until_eof(timeout=testenv.t(5))
            assert got == greeting, got
            assert _cut(c, tls_in), "a backend reset reached the client as %r" % c.eof
        assert gw.wait_log(lambda s: "backend error:" in s and "backend=rs" in s
                           and "reason=io_error" in s and "while tunnelling" in s), gw.log_tail()
    finally:
        b.close()


def test_websocket_backend_reset_reaches_the_client_as_a_cut(gateway, certs, tmp_path):
    """A WebSocket backend that sends its 101 and a frame, then resets: the client reads the
    frame, then an unexpected EOF (no close_notify), and the failure is logged."""
    greeting = b"a frame, then a reset"

    key = "dGhlIHNhbXBsZSBub25jZQ=="

    def handler(s):
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                return
            head += d
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                  % ws_accept(key).encode() + ws_frame(0x1, greeting))
        s.recv(1)  # the client's first frame byte
        _rst(s.sock)
    b = pp2.TCPBackend(handler, proxy_header="none", name="raw-ws")
    port = testenv.free_port()
    try:
        gw = gateway(_base(certs, tmp_path,
                           {"name": "public", "address": "127.0.0.1:%d" % port,
                            "tls": {"certificates": ["ec"]},
                            "routes": [{"path_prefix": "/", "backend": "raw"}]},
                           {"raw": {"targets": [b.address]}}))
        with TunnelClient(port, ctx=_strict_ctx(), timeout=testenv.t(10)) as c:
            c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key.encode())
            got = b""
            while greeting not in got:
                d = c.recv(timeout=testenv.t(5))
                assert d, got
                got += d
            c.send(b"\x81\x82\0\0\0\0hi")  # a masked text frame (mask 0)
            got += c.recv_until_eof(timeout=testenv.t(5))
            assert got.startswith(b"HTTP/1.1 101 "), got[:200]
            assert got.endswith(greeting), got[-100:]
            assert _cut(c, True), "a backend reset reached the WebSocket client as %r" % c.eof
        assert gw.wait_log(lambda s: "backend error:" in s and "while tunnelling" in s), \
            gw.log_tail()
    finally:
        b.close()


# fault -> (status, whether the body the client gets is whole)
HTTP10 = {"eofbody": (200, True), "eofbodyreset": (200, False), "chunkcut": (200, False),
          "stallbody": (200, False)}


@pytest.mark.parametrize("tls_in", [True, False], ids=["tls-in", "plain-in"])
@pytest.mark.parametrize("fault", sorted(HTTP10))
def test_http10_client_sees_a_cut_body_as_cut(gateway, certs, tmp_path, fault, tls_in):
    """An HTTP/1.0 client reads the body to the end of the connection: a body the backend cut
    (reset, chunked cut off, stalled past timeouts.backend_response) ends with a cut, a whole
    close-delimited one with a clean end."""
    be = FaultyBackend()
    port = testenv.free_port()
    cfg = _base(certs, tmp_path,
                {"name": "public", "address": "127.0.0.1:%d" % port,
                 "tls": {"certificates": ["ec"]} if tls_in else {"disabled": True},
                 "routes": [{"path_prefix": "/", "backend": "app"}]},
                {"app": {"targets": [be.address]}})
    cfg["timeouts"] = {"backend_response": 1}
    try:
        gw = gateway(cfg)
        with TunnelClient(port, tls=tls_in, ctx=_strict_ctx(), timeout=testenv.t(10)) as c:
            c.send(b"GET /%s HTTP/1.0\r\nHost: x\r\n\r\n" % fault.encode())
            got = c.recv_until_eof(timeout=testenv.t(5))
            status, whole = HTTP10[fault]
            assert got.startswith(b"HTTP/1.1 %d " % status), got[:200]
            if whole:
                assert got.endswith(b"\r\n\r\nok c1-r1 /%s\n" % fault.encode()), got
                assert c.eof == ("close_notify" if tls_in else "fin"), c.eof
            else:
                assert _cut(c, tls_in), "a cut body ended as %r: %r" % (c.eof, got[-100:])
        if not whole:
            assert gw.wait_log(lambda s: "backend error:" in s), gw.log_tail()
    finally:
        be.close()


def test_tcp_client_reset_reaches_the_backend_as_a_reset(gateway, certs, tmp_path):
    """The other way: a tcp listener's client resets; its backend's connection is reset too (a
    FIN would tell the backend the client's stream ended whole)."""
    def handler(s):
        while s.recv(65536):
            pass
    b = pp2.TCPBackend(handler, proxy_header="none", name="sink")
    port = testenv.free_port()
    cfg = _base(certs, tmp_path,
                {"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                 "backend": "sink", "proxy_protocol_out": False, "tls": {"disabled": True}},
                {"sink": {"targets": [b.address]}})
    try:
        gateway(cfg)
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"hello")

        def session():
            return next((x for x in b.sessions if bytes(x.received) == b"hello"), None)
        assert testenv.wait_until(session, testenv.t(5)), [bytes(x.received) for x in b.sessions]
        _rst(s)
        assert session().done.wait(testenv.t(5))
        assert isinstance(session().error, ConnectionResetError), (session().error,
                                                                   session().eof)
    finally:
        b.close()
