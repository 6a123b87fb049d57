"""Per-address limits: limits.max_connections_per_ip and limits.handshake_rate_per_ip refuse a
connection at accept, counted by the real client address (after a PROXY header; IPv6 per /64),
each refusal counted (status page, metrics) and logged at most once per address per 10 s."""
import re
import socket
import ssl
import time

import testenv
from testenv.admin import Admin, admin_section, password_hash

STATUS_SRC = "127.0.0.9"  # status queries come from their own address: they are not limited


def _config(certs, tmp_path, port, sport, limits, workers=2, **listener):
    lst = {"name": "public", "address": "127.0.0.1:%d" % port,
           "tls": {"certificates": ["ec"]},
           "routes": [{"path_prefix": "/", "backend": "status"}]}
    lst.update(listener)
    return {
        "version": 1, "workers": workers, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [lst,
                      {"name": "status", "address": "127.0.0.1:%d" % sport,
                       "tls": {"disabled": True},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
        "limits": limits,
    }


def _start(gateway, certs, tmp_path, limits, admin=None, **kw):
    port, sport = testenv.free_port(), testenv.free_port()
    cfg = _config(certs, tmp_path, port, sport, limits, **kw)
    if admin:
        cfg["admin"] = admin
    # Readiness over the status listener only: a probe of the limited one would count.
    gw = gateway(cfg, ready_ports=[(sport, False)])
    return gw, port, sport


def _connect(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(testenv.t(10))
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def _plain_get(sock):
    """GET / on a connected plaintext socket (keep-alive); the status code."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        b = sock.recv(65536)
        if not b:
            raise ConnectionError("closed")
        data += b
    head, rest = data.split(b"\r\n\r\n", 1)
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < n:
        b = sock.recv(65536)
        if not b:
            raise ConnectionError("closed")
        rest += b
    return int(head.split()[1]), rest


def _status(sport):
    s = _connect(sport, STATUS_SRC)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    import json
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def _tls_open(port, source="127.0.0.1"):
    """A TLS connection from source with one request answered; the socket (kept open)."""
    s = testenv.tls_context().wrap_socket(_connect(port, source), server_hostname="localhost")
    status, _ = _plain_get(s)
    assert status == 200, status
    return s


def _tls_refused(port, source="127.0.0.1"):
    def exchange():
        s = _tls_open(port, source)
        s.close()
    return testenv.refused(exchange)


def _refusals(sport):
    return _status(sport)["connection_refusals"]


def _lines(gw, reason):
    return gw.log_lines("connection refused", "reason=" + reason)


def test_per_ip_connection_limit_refused_counted_logged_once(gateway, certs, tmp_path):
    gw, port, sport = _start(gateway, certs, tmp_path, {"max_connections_per_ip": 3})
    held = [_tls_open(port) for _ in range(3)]
    try:
        # 11 more from the same address: each refused, counted, one log line.
        for _ in range(11):
            assert _tls_refused(port), "a 4th connection from 127.0.0.1 was served"
        assert _refusals(sport)["per_ip_connection_limit"] == 11
        lines = _lines(gw, "per_ip_connection_limit")
        assert len(lines) == 1, lines
        assert "peer=127.0.0.1:" in lines[0] and "listener=public" in lines[0], lines
        assert "limits.max_connections_per_ip" in lines[0] and "3 open" in lines[0], lines
        first_logged = time.monotonic()
        # Another address is not affected.
        other = _tls_open(port, "127.0.0.2")
        other.close()
        # A freed place is taken again (the close reaches the gateway asynchronously).
        held.pop().close()
        deadline = time.monotonic() + testenv.t(5)
        while True:
            try:
                held.append(_tls_open(port))
                break
            except (ssl.SSLError, OSError):
                assert time.monotonic() < deadline, "no connection admitted after one closed"
                time.sleep(0.05)
        before = _refusals(sport)["per_ip_connection_limit"]
        assert _tls_refused(port)
        # The next line comes only 10 s after the first, and says how many were not logged.
        while time.monotonic() < first_logged + 10.5:
            time.sleep(0.2)
        assert _tls_refused(port)
        lines = _lines(gw, "per_ip_connection_limit")
        assert len(lines) == 2, lines
        quiet = before  # every refusal after the first logged one, this one included
        assert "%d more refused since the last such line" % quiet in lines[1], (quiet, lines)
    finally:
        for s in held:
            s.close()
    text = _status(sport)
    assert text["connection_refusals"]["per_ip_handshake_rate"] == 0
    assert text["connection_refusals"]["max_connections"] == 0


def test_handshake_rate_per_ip_token_bucket(gateway, certs, tmp_path):
    # A burst of 3, then one handshake every 2 s.
    aport = testenv.free_port()
    gw, port, sport = _start(gateway, certs, tmp_path,
                             {"handshake_rate_per_ip": {"rate": 0.5, "burst": 3}},
                             admin=admin_section(aport, password_hash("pw"),
                                                 tls={"certificates": ["ec"]}))
    for _ in range(3):
        _tls_open(port).close()
    for _ in range(5):
        assert _tls_refused(port), "a 4th handshake within the burst was served"
    assert _refusals(sport)["per_ip_handshake_rate"] == 5
    lines = _lines(gw, "per_ip_handshake_rate")
    assert len(lines) == 1 and "limits.handshake_rate_per_ip" in lines[0], lines
    assert "more than 0.5 per second, bursts of 3" in lines[0], lines
    with Admin(aport, password="pw", source=STATUS_SRC) as a:
        metrics = a.get("/metrics").body.decode()
    assert 'tlsgate_connections_rejected_total{reason="per_ip_handshake_rate"} 5\n' in metrics
    assert 'tlsgate_connections_rejected_total{reason="per_ip_connection_limit"} 0\n' in metrics
    # Another address has its own bucket; the plaintext listener has no handshakes to limit.
    _tls_open(port, "127.0.0.2").close()
    for _ in range(5):
        _status(sport)
    # The bucket refills: a handshake is admitted again within a few seconds.
    deadline = time.monotonic() + testenv.t(5)
    while True:
        try:
            _tls_open(port).close()
            break
        except (ssl.SSLError, OSError):
            assert time.monotonic() < deadline, "the bucket never refilled"
            time.sleep(0.25)
    # A bare number is the rate with a burst of the same size.
    cfg = gw.config
    cfg["limits"] = {"handshake_rate_per_ip": 2}
    gw.reload(cfg)
    assert testenv.wait_until(lambda: _status(sport)["config_generation"] >= 2, testenv.t(5))
    # (from an address whose bucket the old rate never touched)
    _tls_open(port, "127.0.0.3").close()
    _tls_open(port, "127.0.0.3").close()
    assert _tls_refused(port, "127.0.0.3")


def test_each_refusal_reason_of_an_address_gets_its_line(gateway, certs, tmp_path):
    """An address refused for its open connections, then within 10 s for its handshake rate:
    both reasons are logged (one line each), both counted."""
    gw, port, sport = _start(gateway, certs, tmp_path,
                             {"max_connections_per_ip": 2,
                              "handshake_rate_per_ip": {"rate": 0.01, "burst": 3}})
    held = [_tls_open(port), _tls_open(port)]
    assert _tls_refused(port)  # a third open connection
    for s in held:
        s.close()
    assert testenv.wait_until(lambda: _status(sport)["connections"]["active"] == 1,
                              testenv.t(5)), _status(sport)
    _tls_open(port).close()  # the burst's last token
    assert _tls_refused(port)  # no token left
    refusals = _refusals(sport)
    assert refusals["per_ip_connection_limit"] == 1, refusals
    assert refusals["per_ip_handshake_rate"] == 1, refusals
    assert len(_lines(gw, "per_ip_connection_limit")) == 1, gw.log_tail()
    lines = _lines(gw, "per_ip_handshake_rate")
    assert len(lines) == 1 and "peer=127.0.0.1:" in lines[0], gw.log_tail()
    assert "for this reason" in lines[0], lines


def _pp_get(port, src, family="TCP4", dst="127.0.0.1"):
    """A plaintext connection announcing src in a PROXY v1 header, one request; the socket."""
    s = _connect(port)
    s.sendall(("PROXY %s %s %s 40000 %d\r\n" % (family, src, dst, port)).encode())
    status, _ = _plain_get(s)
    assert status == 200
    return s


def _pp_refused(port, src, family="TCP4", dst="127.0.0.1"):
    return testenv.refused(lambda: _pp_get(port, src, family, dst).close())


def test_per_ip_counts_the_proxy_protocol_address_and_ipv6_per_64(gateway, certs, tmp_path):
    gw, port, sport = _start(gateway, certs, tmp_path, {"max_connections_per_ip": 2},
                             proxy_protocol=True, tls={"disabled": True})
    held = [_pp_get(port, "203.0.113.5"), _pp_get(port, "203.0.113.5")]
    try:
        # Every connection comes from 127.0.0.1: only the PROXY header's address counts.
        assert _pp_refused(port, "203.0.113.5")
        held.append(_pp_get(port, "203.0.113.6"))
        # IPv6: one /64 is one client.
        held.append(_pp_get(port, "2001:db8:0:7::1", "TCP6", "::1"))
        held.append(_pp_get(port, "2001:db8:0:7::2", "TCP6", "::1"))
        assert _pp_refused(port, "2001:db8:0:7:ffff::3", "TCP6", "::1")
        held.append(_pp_get(port, "2001:db8:0:8::1", "TCP6", "::1"))
        # IPv4-mapped IPv6 is the IPv4 address.
        assert _pp_refused(port, "::ffff:203.0.113.5", "TCP6", "::1")
        assert _refusals(sport)["per_ip_connection_limit"] == 3
        lines = _lines(gw, "per_ip_connection_limit")
        assert len(lines) == 2, lines  # 203.0.113.5 once (the mapped one shares its line)
        assert any("peer=203.0.113.5:40000" in l for l in lines), lines
        v6 = [l for l in lines if "2001:db8" in l]
        assert len(v6) == 1 and "counted per /64" in v6[0], lines
    finally:
        for s in held:
            s.close()


def test_per_ip_behind_listed_balancers_counts_direct_peers_by_their_own_address(
        gateway, certs, tmp_path):
    """With proxy_protocol_from, only the listed balancer's header names the client: another
    peer is a direct client counted by its own address, and a header naming that address shares
    its count."""
    gw, port, sport = _start(gateway, certs, tmp_path, {"max_connections_per_ip": 2},
                             proxy_protocol=True, proxy_protocol_from=["127.0.0.2"],
                             tls={"disabled": True})
    held = []
    try:
        for _ in range(2):  # direct clients from 127.0.0.3 (no header)
            s = _connect(port, "127.0.0.3")
            assert _plain_get(s)[0] == 200
            held.append(s)
        assert testenv.refused(lambda: _plain_get(_connect(port, "127.0.0.3")))

        def via_balancer(src):
            s = _connect(port, "127.0.0.2")
            s.sendall(("PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (src, port)).encode())
            assert _plain_get(s)[0] == 200
            return s
        held += [via_balancer("203.0.113.9"), via_balancer("203.0.113.9")]
        assert testenv.refused(lambda: via_balancer("203.0.113.9").close())
        # The balancer naming 127.0.0.3: the same client as the direct one, at its limit.
        assert testenv.refused(lambda: via_balancer("127.0.0.3").close())
        assert _refusals(sport)["per_ip_connection_limit"] == 3
    finally:
        for s in held:
            s.close()
    assert not gw.log_lines("PROXY headers are taken from every peer"), gw.log_tail()


def test_per_ip_limit_config_errors(tmp_path, certs):
    port, sport = testenv.free_port(), testenv.free_port()
    import json
    for limits, needle in (
            ({"max_connections_per_ip": -1}, "/limits/max_connections_per_ip: -1 is out of range"),
            ({"handshake_rate_per_ip": -2}, "/limits/handshake_rate_per_ip: -2 is out of range"),
            ({"handshake_rate_per_ip": {"burst": 3}}, "/limits/handshake_rate_per_ip"),
            ({"handshake_rate_per_ip": {"rate": 0}}, "/limits/handshake_rate_per_ip/rate: 0 is"),
            # Under one per 1000 s the bucket's arithmetic would overflow (1e-300 never refused).
            ({"handshake_rate_per_ip": 1e-300},
             "/limits/handshake_rate_per_ip: 1e-300 is out of range (allowed: rate 0.001"),
            ({"handshake_rate_per_ip": {"rate": 0.0001, "burst": 1}},
             "/limits/handshake_rate_per_ip/rate: 0.0001 is out of range (allowed: 0.001 to"),
            ({"handshake_rate_per_ip": {"rate": 5, "burst": 0}},
             "/limits/handshake_rate_per_ip/burst: 0 is out of range"),
            ({"handshake_rate_per_ip": {"rate": 5, "brust": 9}}, "brust"),
            ({"handshake_rate_per_ip": "fast"}, "/limits/handshake_rate_per_ip")):
        path = tmp_path / "c.json"
        path.write_text(json.dumps(_config(certs, tmp_path, port, sport, limits)))
        r = testenv.tlsgate("check", "-c", str(path))
        assert r.returncode == 2, (limits, r.stdout, r.stderr)
        assert needle in r.stderr + r.stdout, (limits, r.stderr)
    path.write_text(json.dumps(_config(certs, tmp_path, port, sport,
                                       {"max_connections_per_ip": 10,
                                        "handshake_rate_per_ip": {"rate": 20, "burst": 40}})))
    r = testenv.tlsgate("check", "-c", str(path))
    assert r.returncode == 0, (r.stdout, r.stderr)
    # Per-address limits on a listener that takes PROXY headers from every peer: a warning at
    # the listener's proxy_protocol (anyone can name any address), none with proxy_protocol_from.
    cfg = _config(certs, tmp_path, port, sport, {"max_connections_per_ip": 10},
                  proxy_protocol=True)
    path.write_text(json.dumps(cfg, indent=2))
    r = testenv.tlsgate("check", "-c", str(path))
    assert r.returncode == 0, (r.stdout, r.stderr)
    warned = [ln for ln in r.stderr.splitlines() if "/listeners/0/proxy_protocol:" in ln]
    assert warned and warned[0].startswith(str(path) + ":"), r.stderr
    assert "proxy_protocol_from" in warned[0] and "warning" in warned[0], warned
    cfg["listeners"][0]["proxy_protocol_from"] = ["10.0.0.0/8"]
    path.write_text(json.dumps(cfg, indent=2))
    r = testenv.tlsgate("check", "-c", str(path))
    assert r.returncode == 0 and "PROXY headers are taken" not in r.stderr, r.stderr
    path.write_text(json.dumps(_config(certs, tmp_path, port, sport,
                                       {"handshake_rate_per_ip": {"rate": 0.001,
                                                                  "burst": 1000000}})))
    r = testenv.tlsgate("check", "-c", str(path))
    assert r.returncode == 0, (r.stdout, r.stderr)
