"""Client-controlled bytes (SNI, request target, Host) are escaped in the access log and the error
log, in text and JSON: one request is always one line, JSON lines parse and keep the bytes."""
import json
import os
import re
import subprocess

import pytest

import testenv
from testenv import Conn

# SNIs sent as raw bytes with openssl s_client (Python's ssl refuses them as server_hostname).
SNI_MIXED = b'a\nb"c\\d e\xc3\xa9\xff'  # newline, quote, backslash, space, UTF-8, invalid byte
SNI_FORGE = b'x","path":"/forged","status":999,"z":"'
SNI_UTF8 = b'caf\xc3\xa9 "q" \\ \r\n end'  # valid UTF-8: JSON must give back exactly these bytes

# Request targets sent raw over TLS (no spaces: a request line cannot carry them).
TARGET_UTF8 = b"/t/caf\xc3\xa9"
TARGET_QUOTE = b'/t/q"\\","status":999,"forged":"'
TARGET_INVALID = b"/t/bad\xff\xc3\xa9"
HOST_QUOTE = b'quote"host.example'

# A text access-log line: peer, listener, the quoted request, status, bytes, then key=value
# tokens whose values never hold a raw space.
TEXT_LINE = re.compile(rb'^\S+ \S+ "((?:[^"\\]|\\.)*)" (\d{3}) (\d+)((?: [a-z_]+=\S+)+)$')


def _config(certs, tmp_path, port, o, fmt, access):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "debug", "format": fmt, "access_log": access},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]}},
    }


def _sclient_get(port, sni, path):
    """One GET with a raw SNI; returns s_client's stdout (the response)."""
    cmd = [b"openssl", b"s_client", b"-connect", b"127.0.0.1:%d" % port, b"-servername", sni,
           b"-quiet"]
    req = b"GET " + path + b" HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n"
    r = subprocess.run(cmd, input=req, capture_output=True, timeout=testenv.t(10))
    assert b"HTTP/1.1 200" in r.stdout, (sni, r.stdout, r.stderr)
    return r.stdout


def _raw_get(c, target, host=b"h.example"):
    c.send(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    return c.read_response()


def _text_unescape(s):
    r"""Reverses the text form: \\, \" and \xHH."""
    out, i = bytearray(), 0
    while i < len(s):
        if s[i:i + 1] != b"\\":
            out += s[i:i + 1]
            i += 1
        elif s[i + 1:i + 2] in (b"\\", b'"'):
            out += s[i + 1:i + 2]
            i += 2
        else:
            assert s[i + 1:i + 2] == b"x", s
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
    return bytes(out)


def _json_form(raw):
    """What a JSON reader gets for raw bytes: UTF-8 as is, an invalid byte as the text \\xHH."""
    out, i = "", 0
    while i < len(raw):
        for n in (4, 3, 2, 1):
            try:
                out += raw[i:i + n].decode("utf-8")
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            out += "\\x%02x" % raw[i]
            i += 1
    return out


def _send_all(port):
    """Sends every hostile request: 8 in all."""
    _sclient_get(port, SNI_MIXED, b"/sni/mixed")
    _sclient_get(port, SNI_FORGE, b"/sni/forge")
    _sclient_get(port, SNI_UTF8, b"/sni/utf8")
    with Conn(port, sni="localhost") as c:
        for target in (TARGET_UTF8, TARGET_QUOTE, TARGET_INVALID):
            assert _raw_get(c, target).status == 200
        _raw_get(c, b"/t/host", host=HOST_QUOTE)
    # A raw newline inside the request line is refused by the parser; still one line.
    with Conn(port, sni="localhost") as c:
        c.send(b"GET /t/nl\nforged HTTP/1.1\r\nHost: h.example\r\n\r\n")
        c.recv_all()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_log_escapes_client_bytes(gateway, origin, certs, tmp_path, fmt):
    o = origin("app")
    port = testenv.free_port()
    access = os.path.join(str(tmp_path), "access-%s.log" % fmt)
    gw = gateway(_config(certs, tmp_path, port, o, fmt, access))
    _send_all(port)
    gw.stop()  # flushes the access log
    with open(access, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    assert lines[-1] == b"", data
    lines = lines[:-1]
    # 3 s_client requests, 4 on one connection, 1 refused: one line each, nothing else.
    assert len(lines) == 8, data
    for line in lines:
        # Valid UTF-8 whatever the client sent, and one line even for readers that also split
        # on \r, NEL or U+2028.
        assert len(line.decode("utf-8").splitlines()) == 1, line
    sni_lines = {}
    if fmt == "json":
        docs = [json.loads(l) for l in lines]
        for d in docs:
            assert set(d) >= {"method", "path", "status", "sni"}, d
            assert "forged" not in d and d["status"] != 999, d
        by_path = {d["path"]: d for d in docs}
        for sni, path in ((SNI_MIXED, "/sni/mixed"), (SNI_FORGE, "/sni/forge"),
                          (SNI_UTF8, "/sni/utf8")):
            assert path in by_path, docs
            assert by_path[path]["sni"] == _json_form(sni), by_path[path]
            assert by_path[path]["status"] == 200
        assert by_path["/sni/utf8"]["sni"] == SNI_UTF8.decode("utf-8")
        assert by_path["/t/caf\u00e9"]["status"] == 200, docs
        assert TARGET_QUOTE.decode() in by_path, docs
        assert "/t/bad\\xff\u00e9" in by_path, docs
        host = by_path["/t/host"].get("host", "")
        assert host in ("", HOST_QUOTE.decode()), by_path["/t/host"]
    else:
        parsed = []
        for line in lines:
            m = TEXT_LINE.match(line)
            assert m, line
            request = m.group(1)
            method, _, path = request.partition(b" ")
            tokens = dict(t.split(b"=", 1) for t in m.group(4).split())
            assert len(tokens) == len(m.group(4).split()), line  # no key twice
            assert m.group(2) != b"999", line
            parsed.append((_text_unescape(path), {k: _text_unescape(v) for k, v in tokens.items()}))
        by_path = {p: t for p, t in parsed}
        assert by_path[b"/sni/mixed"][b"sni"] == SNI_MIXED
        assert by_path[b"/sni/forge"][b"sni"] == SNI_FORGE
        assert by_path[b"/sni/utf8"][b"sni"] == SNI_UTF8
        for target in (TARGET_UTF8, TARGET_QUOTE, TARGET_INVALID):
            assert target in by_path, parsed
        assert by_path[b"/t/host"].get(b"host", b"-") in (b"-", HOST_QUOTE), parsed


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_error_log_escapes_sni(gateway, origin, certs, tmp_path, fmt):
    o = origin("app")
    port = testenv.free_port()
    access = os.path.join(str(tmp_path), "access.log")
    gw = gateway(_config(certs, tmp_path, port, o, fmt, access))
    _sclient_get(port, SNI_MIXED, b"/sni/mixed")
    _sclient_get(port, SNI_FORGE, b"/sni/forge")
    gw.stop()
    with open(gw.log_path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")[:-1]
    for line in lines:
        assert len(line.decode("utf-8").splitlines()) == 1, line
    # The two s_client handshakes (the readiness probe's may or may not get that far).
    established = [l for l in lines if b"TLS established" in l and b"sni=localhost" not in l]
    assert len(established) == 2, data
    if fmt == "json":
        docs = [json.loads(l) for l in lines]
        for d in docs:
            assert set(d) == {"time", "level", "msg"}, d
        msgs = [d["msg"] for d in docs if "TLS established" in d["msg"]]
        assert any(m.endswith(" sni=" + _json_form(SNI_MIXED)) for m in msgs), msgs
        assert any(m.endswith(" sni=" + SNI_FORGE.decode()) for m in msgs), msgs
    else:
        assert any(l.endswith(b' sni=a\\x0ab"c\\\\d e\xc3\xa9\\xff') for l in established), data
        assert any(l.endswith(b" sni=" + SNI_FORGE) for l in established), data
        assert not [l for l in lines if l.startswith(b'b"c')], data
