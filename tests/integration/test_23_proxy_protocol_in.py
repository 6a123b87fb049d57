"""PROXY protocol in (listeners with `proxy_protocol: true`): HAProxy from Debian in front with
send-proxy-v2 and send-proxy, the real client address in the access log and X-Forwarded-For;
LOCAL; malformed headers, partial headers and timeouts refused, logged and counted;
proxy_protocol_from; config errors."""
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import time

import pytest

import testenv

CLIENT_IP = "127.0.0.2"  # a loopback address other than HAProxy's own 127.0.0.1
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _config(certs, tmp_path, port, status_port, o, access, **listener):
    lst = {"name": "edge", "address": "127.0.0.1:%d" % port, "proxy_protocol": True,
           "tls": {"certificates": ["ec"]},
           "routes": [{"path_prefix": "/", "backend": "app"}]}
    lst.update(listener)
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": access},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [lst,
                      {"name": "status", "address": "127.0.0.1:%d" % status_port,
                       "tls": {"disabled": True},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"app": {"targets": [o.address]}, "status": {"builtin": "status"}},
        "timeouts": {"handshake": 2},
    }


def _start(gateway, certs, tmp_path, o, **listener):
    port, sport = testenv.free_port(), testenv.free_port()
    access = os.path.join(str(tmp_path), "access.log")
    cfg = _config(certs, tmp_path, port, sport, o, access, **listener)
    # Readiness over the plaintext status listener: a probe on the PROXY listener would itself
    # be a refused connection.
    gw = gateway(cfg, ready_ports=[(sport, False)])
    return gw, port, sport, access


def _failures(sport):
    with testenv.Conn(sport, tls=False) as c:
        return c.request("GET", "/").json()["proxy_protocol_failures"]


def _request_over(sock, host="localhost"):
    """One GET over TLS on an already connected (and announced) socket; the response."""
    ctx = testenv.tls_context()
    ss = ctx.wrap_socket(sock, server_hostname=host)
    ss.sendall(b"GET /echo?pp=1 HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = ss.recv(65536)
        if not b:
            break
        data += b
    ss.close()
    return data


def _read_access(path, needle, timeout=5):
    def find():
        try:
            with open(path) as f:
                lines = [l for l in f.read().splitlines() if needle in l]
        except FileNotFoundError:
            return None
        return lines or None
    return testenv.wait_until(find, testenv.t(timeout)) or []


def _closed_without_reply(sock, timeout=5):
    sock.settimeout(testenv.t(timeout))
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


# ---------------------------------------------------------------------------------------------
# HAProxy in front

@pytest.fixture
def haproxy(tmp_path):
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(exe):
        pytest.fail("haproxy is not installed (scripts/deps.sh installs it)")
    procs = []

    def start(gw_port, send):
        port = testenv.free_port()
        cfg = tmp_path / ("haproxy-%d.cfg" % port)
        cfg.write_text(
            "global\n  maxconn 100\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
            "  timeout server 30s\n"
            "frontend fe\n  bind 127.0.0.1:%d\n  default_backend gw\n"
            "backend gw\n  server s1 127.0.0.1:%d %s\n" % (port, gw_port, send))
        log = open(str(tmp_path / ("haproxy-%d.log" % port)), "wb")
        p = subprocess.Popen([exe, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        procs.append((p, log))
        assert testenv.wait_until(lambda: testenv.can_connect(port), testenv.t(10)), \
            "haproxy did not start"
        return port

    yield start
    for p, log in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()


@pytest.mark.parametrize("send", ["send-proxy-v2", "send-proxy"])
def test_haproxy_real_address(gateway, origin, certs, tmp_path, haproxy, send):
    """A client on 127.0.0.2 through HAProxy (which connects from 127.0.0.1): the access log
    and X-Forwarded-For name 127.0.0.2 and the client's own port."""
    o = origin("app")
    gw, port, sport, access = _start(gateway, certs, tmp_path, o)
    hp = haproxy(port, send)
    s = socket.socket()
    s.bind((CLIENT_IP, 0))
    client_port = s.getsockname()[1]
    s.connect(("127.0.0.1", hp))
    data = _request_over(s)
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    lines = _read_access(access, "pp=1")
    assert len(lines) == 1 and lines[0].startswith("%s:%d " % (CLIENT_IP, client_port)), lines
    xff = [v for (m, t, hs) in o.requests if "pp=1" in t
           for k, v in hs if k.lower() == "x-forwarded-for"]
    assert xff == [CLIENT_IP], (xff, o.requests)
    # (HAProxy may hang up inside a header for the readiness probe's connection.)
    fails = _failures(sport)
    assert sum(v for k, v in fails.items() if k != "hangup") == 0, gw.log_tail()


# ---------------------------------------------------------------------------------------------
# raw headers

def _v2(cmd, fam, body):
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def _v2_inet(src, sport, dst, dport, tlvs=b""):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)
    return _v2(1, 0x11, body + tlvs)


def test_v2_with_tlvs_and_ipv6_and_local(gateway, origin, certs, tmp_path):
    """v2 with TLVs, v2 over IPv6, and LOCAL (the balancer's own check: its address stays);
    the header and the ClientHello may arrive in one segment or byte by byte."""
    o = origin("app")
    gw, port, sport, access = _start(gateway, certs, tmp_path, o)

    s = socket.create_connection(("127.0.0.1", port))
    tlv = bytes([0x04]) + struct.pack(">H", 3) + b"abc"  # PP2_TYPE_NOOP
    s.sendall(_v2_inet("203.0.113.7", 40001, "127.0.0.1", port, tlv))
    assert _request_over(s).startswith(b"HTTP/1.1 200")

    s = socket.create_connection(("127.0.0.1", port))
    body = socket.inet_pton(socket.AF_INET6, "2001:db8::5") + \
        socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack(">HH", 40002, 443)
    hdr = _v2(1, 0x21, body)
    for i in range(len(hdr)):  # one byte at a time: every prefix is "need more"
        s.sendall(hdr[i:i + 1])
        time.sleep(0.002)
    assert _request_over(s).startswith(b"HTTP/1.1 200")

    s = socket.create_connection(("127.0.0.1", port))
    local_port = s.getsockname()[1]
    s.sendall(_v2(0, 0x00, b""))
    assert _request_over(s).startswith(b"HTTP/1.1 200")

    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
    assert _request_over(s).startswith(b"HTTP/1.1 200")

    lines = _read_access(access, "pp=1")
    assert testenv.wait_until(lambda: len(_read_access(access, "pp=1")) == 4, testenv.t(5))
    lines = _read_access(access, "pp=1")
    assert lines[0].startswith("203.0.113.7:40001 "), lines
    assert lines[1].startswith("[2001:db8::5]:40002 "), lines
    assert lines[2].startswith("127.0.0.1:%d " % local_port), lines
    assert lines[3].startswith("127.0.0.1:"), lines
    xff = [v for (m, t, hs) in o.requests for k, v in hs if k.lower() == "x-forwarded-for"]
    assert xff[:2] == ["203.0.113.7", "2001:db8::5"], xff


BAD = [
    ("not_proxy", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),  # a ClientHello, no header
    ("not_proxy", b"GET / HTTP/1.1\r\n\r\n"),
    ("v1_malformed", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),  # LF without CR
    ("v1_malformed", b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
    ("v1_malformed", b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"),  # two spaces
    ("v1_bad_address", b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"),
    ("v1_bad_address", b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
    ("v1_bad_address", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"),
    ("v1_bad_address", b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"),
    ("v1_too_long", b"PROXY TCP6 " + b"1" * 120),
    ("v2_bad_version", V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12),
    ("v2_bad_version", V2_SIG + b"\x22\x11\x00\x0c" + b"\x00" * 12),
    ("v2_bad_family", V2_SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12),  # UDP
    ("v2_bad_length", V2_SIG + b"\x21\x11\x00\x08" + b"\x00" * 8),
    ("v2_bad_length", V2_SIG + b"\x21\x11\xff\xff"),
    ("v2_bad_tlv", V2_SIG + b"\x21\x11\x00\x10" + b"\x00" * 12 + b"\x04\x00\x05\x00"),
]


def test_malformed_headers_refused_and_counted(gateway, origin, certs, tmp_path):
    o = origin("app")
    gw, port, sport, access = _start(gateway, certs, tmp_path, o)
    before = _failures(sport)
    want = {}
    for token, data in BAD:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(data)
        assert _closed_without_reply(s), (token, data)
        s.close()
        want[token] = want.get(token, 0) + 1
    assert testenv.wait_until(
        lambda: all(_failures(sport)[k] - before[k] == n for k, n in want.items()),
        testenv.t(5)), (_failures(sport), want)
    assert len(gw.log_lines("reason=v1_bad_address", "listener=edge",
                            "while reading the PROXY protocol header")) == 4, gw.log_tail()
    assert o.requests == []


def test_partial_header_times_out(gateway, origin, certs, tmp_path):
    o = origin("app")
    gw, port, sport, access = _start(gateway, certs, tmp_path, o)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"PROXY TCP4 1.2.3.4")
    t0 = time.monotonic()
    assert _closed_without_reply(s, timeout=10)
    assert time.monotonic() - t0 >= 1.5
    assert testenv.wait_until(lambda: _failures(sport)["timeout"] >= 1, testenv.t(3))
    # A peer that hangs up inside the header is counted as such.
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(V2_SIG[:5])
    s.close()
    assert testenv.wait_until(lambda: _failures(sport)["hangup"] >= 1, testenv.t(3))


@pytest.mark.parametrize("stall", ["nothing", "part of a ClientHello"])
def test_header_and_handshake_share_one_deadline(gateway, origin, certs, tmp_path, stall):
    """timeouts.handshake (2 s) counts from the accept: a client that trickles its PROXY header
    over 1.6 s and then stalls the TLS handshake is closed about 2 s after connecting, not 2 s
    after its header (3.6 s: a full budget for each, as before)."""
    o = origin("app")
    gw, port, sport, access = _start(gateway, certs, tmp_path, o)
    header = b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 443\r\n"
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.monotonic()
    pieces = [header[i:i + 5] for i in range(0, len(header), 5)]
    for i, p in enumerate(pieces):
        s.sendall(p)
        if i < len(pieces) - 1:
            time.sleep(1.6 / (len(pieces) - 1))
    if stall != "nothing":
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a record cut short
    assert _closed_without_reply(s, timeout=10)
    took = time.monotonic() - t0
    assert 1.8 <= took < 3.0, took
    assert testenv.wait_until(lambda: gw.log_lines("peer=192.0.2.7", "handshake_timeout"),
                              testenv.t(3)), gw.log_tail(20)
    assert _failures(sport)["timeout"] == 0  # the header itself came in time


def test_proxy_protocol_from(gateway, origin, certs, tmp_path):
    """With proxy_protocol_from, a peer outside the blocks is a direct client (no header), and a
    PROXY header from it is not believed."""
    o = origin("app")
    gw, port, sport, access = _start(gateway, certs, tmp_path, o,
                                     proxy_protocol_from=["10.0.0.0/8", "2001:db8::/32"])
    r = testenv.get(port, "/direct")
    assert r.status == 200
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(_v2_inet("203.0.113.7", 1, "127.0.0.1", 2))
    assert _closed_without_reply(s)
    assert not [l for l in open(access).read().splitlines() if "203.0.113.7" in l]


def test_proxy_protocol_from_matching(gateway, origin, certs, tmp_path):
    """A peer inside a block must send the header, and is believed."""
    o = origin("app")
    gw, port, sport, access = _start(gateway, certs, tmp_path, o,
                                     proxy_protocol_from=["10.0.0.0/8", "127.0.0.0/30"])
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(_v2_inet("203.0.113.9", 4242, "127.0.0.1", 2))
    assert _request_over(s).startswith(b"HTTP/1.1 200")
    assert _read_access(access, "203.0.113.9:4242 ")
    s = socket.create_connection(("127.0.0.1", port))
    ctx = testenv.tls_context()
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        ctx.wrap_socket(s, server_hostname="localhost")


def test_config_errors(tmp_path, certs):
    cfg = {
        "version": 1, "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "a", "address": "127.0.0.1:1", "proxy_protocol": True,
                       "proxy_protocol_from": ["10.0.0.0/8", "10.1.2.3/8", "nope", 7],
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "s"}]},
                      {"name": "b", "address": "127.0.0.1:2", "proxy_protocol_from": ["::1"],
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "s"}]}],
        "backends": {"s": {"builtin": "status"}},
    }
    path = tmp_path / "pp.json"
    path.write_text(json.dumps(cfg, indent=2))
    r = testenv.tlsgate("check", "-c", str(path))
    err = r.stderr + r.stdout
    assert r.returncode == 2, err
    assert "/listeners/0/proxy_protocol_from/1: \"10.1.2.3/8\" is not an address block: " \
        "address bits are set past the prefix length" in err, err
    assert "/listeners/0/proxy_protocol_from/2: \"nope\" is not an address block" in err, err
    assert "/listeners/0/proxy_protocol_from/3: must be a string" in err, err
    assert "/listeners/1/proxy_protocol_from: proxy_protocol_from is only used with" in err, err
    assert "pp.json:" in err
