"""Handshake failures: each is logged with the peer address and a reason, counted per reason by
the status backend, and the gateway keeps serving."""
import re
import socket
import ssl
import struct
import time

import pytest

import testenv
from testenv import Conn, s_client, tls_context

# Failure tokens of src/tls/failure.c (the status backend's "handshake_failures" keys), and what a
# log line about the failure must contain: the token or words of its sentence.
TOKENS = {
    "version": "unsupported_version",
    "cipher": "no_shared_cipher",
    "group": "no_shared_group",
    "sslv2": "sslv2_hello",
    "plain_http": "plain_http",
    "hangup": "client_hangup",
    "timeout": "handshake_timeout",
}
REASONS = {
    "version": r"unsupported_version|TLS versions?",
    "cipher": r"no_shared_cipher|cipher suite",
    "group": r"no_shared_group|group",
    "sslv2": r"sslv2",
    "plain_http": r"plain_http|plain HTTP",
    "hangup": r"client_hangup|closed or reset",
    "timeout": r"handshake_timeout|did not finish in time",
}


def _config(certs, tmp_path, p_main, p_x25519):
    routes = [{"path_prefix": "/_status", "backend": "status"},
              {"path_prefix": "/", "backend": "status"}]
    return {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [
            {"name": "main", "address": "127.0.0.1:%d" % p_main,
             "tls": {"certificates": ["ec"]}, "routes": routes},
            {"name": "x25519", "address": "127.0.0.1:%d" % p_x25519,
             "tls": {"certificates": ["ec"], "curves": ["X25519"]}, "routes": routes},
        ],
        "backends": {"status": {"builtin": "status"}},
        "timeouts": {"handshake": 1},
    }


def _failures(port):
    r = testenv.get(port, "/_status")
    assert r.status == 200, r.body
    doc = r.json()
    assert isinstance(doc.get("handshake_failures"), dict), doc
    return doc["handshake_failures"]


def _count(failures, reason):
    return failures.get(TOKENS[reason], 0)


def _client_hello():
    """The bytes of a real TLS 1.3 ClientHello."""
    ctx = tls_context(verify=False)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


SSLV2_HELLO = (lambda body: struct.pack(">H", 0x8000 | len(body)) + body)(
    b"\x01\x00\x02" + struct.pack(">HHH", 3, 0, 16) + b"\x01\x00\x80" + bytes(range(16)))
# The old record format with a TLS 1.0 version inside: how v3-capable clients once said hello.
SSLV2_COMPAT_HELLO = (lambda body: struct.pack(">H", 0x8000 | len(body)) + body)(
    b"\x01\x03\x01" + struct.pack(">HHH", 6, 0, 16) + b"\x00\x00\x2f\x00\x00\x35"
    + bytes(range(16)))
# What OpenSSL 3 sends to both before closing (captured from `openssl s_server -tls1_3`): a fatal
# (2) protocol_version (70) alert in a record carrying the hello's version, TLS 1.2 for SSLv2's.
ALERT_PROTOCOL_VERSION = {SSLV2_HELLO: bytes.fromhex("15030300020246"),
                          SSLV2_COMPAT_HELLO: bytes.fromhex("15030100020246")}


def _raw(port, data=b"", close_after_send=False, read_timeout=5):
    """Connects, sends data; returns (local port, bytes read until EOF, seconds until EOF)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=testenv.t(read_timeout))
    lport = s.getsockname()[1]
    t0 = time.monotonic()
    try:
        if data:
            s.sendall(data)
        if close_after_send:
            return lport, b"", 0.0
        got = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            got += d
        return lport, got, time.monotonic() - t0
    finally:
        s.close()


def _raw_ending(port, data):
    """Connects, sends data; returns (local port, bytes read, "eof" or "reset")."""
    s = socket.create_connection(("127.0.0.1", port), timeout=testenv.t(5))
    lport = s.getsockname()[1]
    got = b""
    try:
        s.sendall(data)
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                return lport, got, "reset"
            if not d:
                return lport, got, "eof"
            got += d
    finally:
        s.close()


def _wait_logged(gw, lport, reason):
    peer = "127.0.0.1:%d" % lport
    rx = re.compile(REASONS[reason], re.I)
    text = gw.wait_log(lambda s: any(peer in l and rx.search(l.replace(peer, ""))
                                     for l in s.splitlines()), timeout=5)
    assert text, "no log line with %s and a %s reason:\n%s" % (peer, reason, gw.log_tail())


def test_handshake_failures(gateway, certs, tmp_path):
    p_main, p_x = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, p_main, p_x))
    before = _failures(p_main)

    # 1. client offers only TLS 1.2 to a TLS 1.3-only listener
    lport = testenv.free_port()
    s = socket.socket()
    s.settimeout(testenv.t(5))
    s.bind(("127.0.0.1", lport))
    s.connect(("127.0.0.1", p_main))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_context(verify=False, max_version=ssl.TLSVersion.TLSv1_2).wrap_socket(
            s, server_hostname="localhost")
    s.close()
    _wait_logged(gw, lport, "version")

    # 2. no TLS 1.3 suite in common
    lport = testenv.free_port()
    r = s_client(p_main, "-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256", bind_port=lport)
    assert not r.connected, r.out
    _wait_logged(gw, lport, "cipher")

    # 3. no group in common
    lport = testenv.free_port()
    r = s_client(p_x, "-tls1_3", "-groups", "secp521r1", bind_port=lport)
    assert not r.connected, r.out
    _wait_logged(gw, lport, "group")

    # 4. SSLv2 client hellos: answered with a protocol_version alert and a clean close, as
    # OpenSSL does (a reset would lose the alert, and tlsfuzzer's sslv2hello cases expect it)
    for hello, alert in ALERT_PROTOCOL_VERSION.items():
        lport, got, ending = _raw_ending(p_main, hello)
        assert (got.hex(), ending) == (alert.hex(), "eof"), \
            "expected the alert %s then EOF, got %r then %s" % (alert.hex(), got.hex(), ending)
        _wait_logged(gw, lport, "sslv2")

    # 5. plain HTTP to the TLS port
    lport, got, _ = _raw(p_main, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400"), got[:200]
    assert re.search(rb"https|tls", got, re.I), got
    _wait_logged(gw, lport, "plain_http")

    # 6. client hangs up mid-handshake
    hello = _client_hello()
    lport, _, _ = _raw(p_main, hello[:len(hello) // 2], close_after_send=True)
    _wait_logged(gw, lport, "hangup")

    # 7. client says nothing: closed after timeouts.handshake (1 s)
    lport, got, took = _raw(p_main, b"", read_timeout=10)
    assert got == b"" or got[0] == 0x15, got  # nothing, or a TLS alert
    assert 0.8 <= took < testenv.t(2.5), "closed after %.1f s (handshake timeout 1 s)" % took
    _wait_logged(gw, lport, "timeout")

    # still serving, and the counters went up
    with Conn(p_main) as c:
        assert c.request("GET", "/").status == 200
    after = _failures(p_main)
    for reason in REASONS:
        assert _count(after, reason) > _count(before, reason), \
            "%s not counted: before %s after %s" % (reason, before, after)
