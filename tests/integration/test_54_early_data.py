"""TLS 1.3 early data (0-RTT, tls.early_data): openssl s_client -sess_out, then -sess_in
-early_data FILE. On a listener with it on, a GET in early data is served from it (the backend
sees Early-Data: 1); on a listener without it, early data is refused and the request goes in
1-RTT; a POST in early data waits for the handshake (no Early-Data, counted as held), and is
never forwarded when the handshake does not finish; a ticket that already carried early data,
and a replayed ClientHello (the same bytes sent again), get no early data; HTTP/2 in early data;
a backend's 425 reaches the client; the counters; config errors."""
import json
import socket
import subprocess
import threading
import time

import pytest

import testenv

GET = b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
STATUS = b"GET /tg-status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def _config(certs, tmp_path, origin, ports, early=(True, False), **extra):
    lst = []
    for i, port in enumerate(ports):
        tls = {"certificates": ["ec"]}
        if early[i]:
            tls["early_data"] = True
        lst.append({"name": "l%d" % i, "address": "127.0.0.1:%d" % port, "tls": tls,
                    "routes": [{"path_prefix": "/tg-status", "backend": "status"},
                               {"path_prefix": "/", "backend": "app"}]})
    cfg = {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "debug"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": lst,
        "backends": {"app": {"targets": [origin.address]}, "status": {"builtin": "status"}},
    }
    cfg.update(extra)
    return cfg


def _session(port, path):
    r = testenv.s_client(port, "-ign_eof", "-sess_out", str(path), input_=STATUS)
    assert "HTTP/1.1 200" in r.out, r.out + r.err
    # the ticket comes after the handshake; s_client wrote it once the request was answered
    return str(path)


def _early(port, sess, data_file, stdin=b"", *args):
    r = testenv.s_client(port, "-ign_eof", "-sess_in", sess, "-early_data", str(data_file),
                         *args, input_=stdin)
    return r


def _status(port):
    r = testenv.s_client(port, "-ign_eof", input_=STATUS)
    return json.JSONDecoder().raw_decode(r.out[r.out.index("{"):])[0]


def _wait(pred, timeout=5):
    end = time.monotonic() + testenv.t(timeout)
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def _early_header(req):
    return [v for k, v in req[2] if k.lower() == "early-data"]


def test_get_served_from_early_data_and_refused_where_off(gateway, origin, certs, tmp_path):
    o = origin("app")
    on, off = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, o, [on, off]))
    data = tmp_path / "get.txt"
    data.write_bytes(GET)

    sess = _session(on, tmp_path / "on.pem")
    r = _early(on, sess, data)
    assert "Early data was accepted" in r.out + r.err, r.out + r.err
    assert "HTTP/1.1 200" in r.out and '"origin": "app"' in r.out, r.out
    assert _wait(lambda: len(o.requests) == 1)
    assert _early_header(o.requests[0]) == ["1"], o.requests  # RFC 8470
    st = _status(on)["early_data"]
    assert st["accepted"] == 1 and st["requests_served"] == 1, st

    # A ticket that allows early data, on a listener without early_data: refused, the request
    # goes in 1-RTT (s_client sends it again after the handshake).
    o.reset_counts()
    sess = _session(on, tmp_path / "on2.pem")
    r = _early(off, sess, data, GET)
    assert "Early data was rejected" in r.out + r.err, r.out + r.err
    assert "HTTP/1.1 200" in r.out, r.out
    # A ticket of that listener says no early data: a client does not even try.
    sess = _session(off, tmp_path / "off.pem")
    assert "Max Early Data: 0" in testenv.s_client(off, "-ign_eof", "-sess_in", sess,
                                                   input_=STATUS).out
    assert _wait(lambda: len(o.requests) == 1)
    assert _early_header(o.requests[0]) == [], o.requests
    st = _status(off)["early_data"]
    assert st["rejected"] == 1 and st["accepted"] == 1, st
    assert gw.wait_log(lambda s: "TLS early data accepted" in s)


def test_post_in_early_data_waits_for_the_handshake(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, o, [port], early=(True,)))
    body = b"x" * 100
    data = tmp_path / "post.txt"
    data.write_bytes(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n"
                     b"Connection: close\r\n\r\n" + body)
    sess = _session(port, tmp_path / "s.pem")
    r = _early(port, sess, data)
    assert "Early data was accepted" in r.out + r.err, r.out + r.err
    assert "HTTP/1.1 200" in r.out and '"length": 100' in r.out, r.out
    assert _wait(lambda: len(o.requests) == 1)
    assert o.requests[0][0] == "POST" and _early_header(o.requests[0]) == [], o.requests
    st = _status(port)["early_data"]
    assert st["requests_held"] == 1 and st["requests_served"] == 0, st


def test_pipelined_requests_in_early_data(gateway, origin, certs, tmp_path):
    """A GET and a POST pipelined in early data: the GET is served from it; the POST, read while
    the GET's response is out (the engine keeps early data the session does not take yet, so the
    handshake finishes meanwhile), goes after the handshake, without Early-Data."""
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, o, [port], early=(True,)))
    data = tmp_path / "two.txt"
    data.write_bytes(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n"
                     b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000\r\n"
                     b"Connection: close\r\n\r\n" + b"p" * 3000)
    sess = _session(port, tmp_path / "s.pem")
    r = _early(port, sess, data)
    assert "Early data was accepted" in r.out + r.err, r.out + r.err
    assert r.out.count("HTTP/1.1 200") == 2 and '"length": 3000' in r.out, r.out
    assert _wait(lambda: len(o.requests) == 2)
    assert [(q[0], _early_header(q)) for q in o.requests] == [("GET", ["1"]), ("POST", [])]


def test_ticket_carries_early_data_once(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, o, [port], early=(True,)))
    data = tmp_path / "get.txt"
    data.write_bytes(GET)
    sess = _session(port, tmp_path / "s.pem")
    r = _early(port, sess, data)
    assert "Early data was accepted" in r.out + r.err, r.out + r.err
    # s_client -sess_in with the same file again: the same ticket, the same resumption secret.
    r = _early(port, sess, data, GET)
    assert "Early data was rejected" in r.out + r.err, r.out + r.err
    assert "HTTP/1.1 200" in r.out, r.out  # sent again after the handshake
    assert gw.wait_log(lambda s: "TLS early data refused: reason=replay" in s), gw.log_tail()
    assert _status(port)["early_data"]["replay"] == 1
    assert [len(_early_header(q)) for q in o.requests] == [1, 0], o.requests


class _Recorder:
    """A TCP relay that records what the client sends on one connection."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.sent = b""
        self.answered = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        c, _ = self.sock.accept()
        u = socket.create_connection(("127.0.0.1", self.target))
        for s in (c, u):
            s.settimeout(testenv.t(10))

        def back():
            try:
                while True:
                    d = u.recv(65536)
                    if not d:
                        break
                    self.answered = True
                    c.sendall(d)
            except OSError:
                pass
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=back, daemon=True)
        t.start()
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                if not self.answered:  # the first flight: ClientHello and early data
                    self.sent += d
                u.sendall(d)
        except OSError:
            pass
        u.close()
        t.join(testenv.t(10))
        c.close()


def _first_flight(rec):
    """The recorded first flight, once it holds the early data records (after the hello)."""
    assert _wait(lambda: len(rec.sent) > 0)
    return rec.sent


def _replay(port, flight, wait=1.0):
    """Sends a recorded first flight to port and reads what comes back for wait seconds."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(flight)
    s.settimeout(0.2)
    got = b""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            d = s.recv(65536)
            if not d:
                break
            got += d
        except socket.timeout:
            continue
        except OSError:
            break
    s.close()
    return got


def test_replayed_client_hello_gets_no_early_data(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, o, [port], early=(True,)))
    data = tmp_path / "get.txt"
    data.write_bytes(GET)
    sess = _session(port, tmp_path / "s.pem")
    rec = _Recorder(port)
    r = _early(rec.port, sess, data)
    assert "Early data was accepted" in r.out + r.err, r.out + r.err
    flight = _first_flight(rec)
    assert _wait(lambda: len(o.requests) == 1)
    # The attacker's copy: the same ClientHello with the same early data, a moment later.
    _replay(port, flight)
    assert gw.wait_log(lambda s: "TLS early data refused: reason=replay" in s), gw.log_tail()
    time.sleep(0.3)
    assert len(o.requests) == 1, o.requests  # the replayed GET never reached the backend
    assert _status(port)["early_data"]["replay"] == 1


def test_other_instance_and_unfinished_handshake(gateway, origin, certs, tmp_path):
    """The register is per process (docs/config.md): another instance sharing the ticket keys
    accepts a replay once, and then serves only a safe request from it; a POST in early data is
    never forwarded while the handshake does not finish, and the handshake deadline ends it."""
    o = origin("app")
    keys = tmp_path / "ticket.key"
    import os
    keys.write_bytes(os.urandom(80))
    os.chmod(str(keys), 0o600)
    p1, p2 = testenv.free_port(), testenv.free_port()
    t1, t2 = tmp_path / "one", tmp_path / "two"
    t1.mkdir()
    t2.mkdir()
    tk = {"key_file": str(keys)}
    gateway(_config(certs, t1, o, [p1], early=(True,), session_tickets=tk))
    cfg2 = _config(certs, t2, o, [p2], early=(True,), session_tickets=tk)
    cfg2["timeouts"] = {"handshake": 2}
    gw2 = gateway(cfg2, name="second")
    data = tmp_path / "post.txt"
    data.write_bytes(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                     b"Connection: close\r\n\r\nhello")
    sess = _session(p1, tmp_path / "s.pem")
    rec = _Recorder(p1)
    r = _early(rec.port, sess, data)
    assert "Early data was accepted" in r.out + r.err, r.out + r.err
    flight = _first_flight(rec)
    assert _wait(lambda: len(o.requests) == 1)
    # SNI and ALPN match, the ticket decrypts there and is fresh: early data is accepted, but
    # the POST waits for a Finished the replayer cannot make, so it never reaches the backend.
    _replay(p2, flight, wait=testenv.t(3))
    assert gw2.wait_log(lambda s: "reason=handshake_timeout" in s, timeout=5), gw2.log_tail()
    assert len(o.requests) == 1, o.requests
    st = _status(p2)["early_data"]
    assert st["accepted"] == 1 and st["requests_held"] == 1 and st["requests_served"] == 0, st


def test_http2_request_in_early_data(gateway, origin, certs, tmp_path):
    h2 = pytest.importorskip("h2.connection", reason="python3-h2")
    import h2.config
    o = origin("app")
    port = testenv.free_port()
    # timeouts.idle ends the HTTP/2 connections (GOAWAY), so s_client -ign_eof exits.
    gateway(_config(certs, tmp_path, o, [port], early=(True,), timeouts={"idle": 1}))
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":path", "/echo"), (":scheme", "https"),
                       (":authority", "localhost")], end_stream=True)
    data = tmp_path / "h2.bin"
    data.write_bytes(c.data_to_send())
    sess = tmp_path / "s.pem"
    r = testenv.s_client(port, "-ign_eof", "-alpn", "h2", "-sess_out", str(sess),
                         input_=b"")
    assert sess.exists(), r.out + r.err
    r = _early(port, str(sess), data, b"", "-alpn", "h2")
    assert "Early data was accepted" in r.out + r.err, r.out + r.err
    assert _wait(lambda: len(o.requests) == 1)
    assert _early_header(o.requests[0]) == ["1"], o.requests


def test_backend_425_reaches_the_client(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, o, [port], early=(True,)))
    data = tmp_path / "get.txt"
    data.write_bytes(b"GET /status/425 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    sess = _session(port, tmp_path / "s.pem")
    r = _early(port, sess, data)
    assert "Early data was accepted" in r.out + r.err, r.out + r.err
    assert "HTTP/1.1 425" in r.out, r.out  # RFC 8470: the client retries after the handshake
    assert _status(port)["early_data"]["backend_too_early"] == 1


@pytest.mark.parametrize("tls,message", [
    ({"max_version": "TLS1.2", "min_version": "TLS1.2"}, "early data (0-RTT) is TLS 1.3 only"),
    ({"session_resumption": False}, "early data (0-RTT) needs session_resumption"),
    ({"client_auth": {"mode": "require", "truststore": "ca"}},
     "early data (0-RTT) is refused with client_auth"),
], ids=["tls12", "no-resumption", "client-auth"])
def test_config_errors(certs, tmp_path, tls, message):
    o = testenv.Origin("x")
    try:
        cfg = _config(certs, tmp_path, o, [testenv.free_port()], early=(True,))
        cfg["listeners"][0]["tls"].update(tls)
        cfg["truststores"] = {"ca": {"type": "pem", "file": certs.ca.cert}}
        path = tmp_path / "c.json"
        path.write_text(json.dumps(cfg, indent=2))
        r = testenv.tlsgate("check", "-c", str(path))
        out = r.stdout + r.stderr
        assert r.returncode == 2, out
        assert "/listeners/0/tls/early_data: " + message in out, out
        assert "c.json:" in out
    finally:
        o.close()


def test_check_shows_early_data(certs, tmp_path):
    o = testenv.Origin("x")
    try:
        cfg = _config(certs, tmp_path, o, [testenv.free_port()], early=(True,))
        path = tmp_path / "c.json"
        path.write_text(json.dumps(cfg, indent=2))
        r = testenv.tlsgate("check", "-c", str(path))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "early data (0-RTT): up to 16384 bytes" in r.stdout, r.stdout
    finally:
        o.close()
