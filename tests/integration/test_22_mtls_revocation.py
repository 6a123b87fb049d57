"""Client-certificate revocation fetched over http (tls.client_auth.revocation.fetch): a CRL
served by a local http.server at the certificates' CRL Distribution Point, an `openssl ocsp`
responder at their AIA URL, soft_fail / hard_fail when the responder is down, one fetch shared by
concurrent handshakes, and one log line per failing URL (not per handshake)."""
import http.server
import math
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import testenv
from testenv import Conn
from testenv.mtls import PKI
from testenv.ocsp import OcspResponder


class CrlServer:
    """A threaded http.server for directory d on loopback; counts requests per path."""

    def __init__(self, d, delay=0.0):
        self.hits = {}
        self.delay = delay
        outer = self

        class H(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=d, **kw)

            def do_GET(self):
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                time.sleep(outer.delay)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def crl_pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("crlpki"))
    srv_dir = os.path.join(d, "www")
    os.makedirs(srv_dir)
    srv = CrlServer(srv_dir, delay=0.3)
    p = PKI(os.path.join(d, "pki"), cdp="http://127.0.0.1:%d" % srv.port)
    p.good = p.client("good", "/O=Org/CN=good")
    p.bad = p.client("bad", "/O=Org/CN=bad")
    p.revoke(p.inter, p.bad.cert)
    p.crl(p.inter, os.path.join(srv_dir, "inter.crl"), der=True)
    p.crl(p.root, os.path.join(srv_dir, "root.crl"), der=True)
    p.srv = srv
    yield p
    srv.close()


@pytest.fixture(scope="module")
def ocsp_pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ocsppki"))
    port = testenv.free_port()
    p = PKI(d, ocsp="http://127.0.0.1:%d" % port)
    p.good = p.client("good", "/O=Org/CN=good")
    p.bad = p.client("bad", "/O=Org/CN=bad")
    p.valid(p.inter, p.good.cert)
    p.revoke(p.inter, p.bad.cert)
    p.ocsp_port = port
    return p


@pytest.fixture
def responder(ocsp_pki, tmp_path):
    r = OcspResponder(ocsp_pki, ocsp_pki.ocsp_port, str(tmp_path))
    yield r
    r.close()


def _start(gateway, origin, certs, pki, tmp_path, revocation, handshake_timeout=None):
    o = origin("app")
    port = testenv.free_port()
    trust = str(tmp_path / "trust.pem")
    with open(trust, "w") as f:
        f.write(open(pki.root.cert).read())
    cfg = {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"clients": {"type": "pem", "file": trust}},
        "listeners": [{"name": "mtls", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"], "min_version": "TLS1.2",
                               "client_auth": {"mode": "require", "truststore": "clients",
                                               "revocation": revocation}},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": ["127.0.0.1:%d" % o.port]}},
    }
    if handshake_timeout:
        cfg["timeouts"] = {"handshake": handshake_timeout}
    return gateway(cfg, ready_ports=[(port, False)]), port


def _get(port, client):
    ctx = testenv.tls_context()
    ctx.load_cert_chain(client.chain, client.key)
    try:
        with Conn(port, ctx=ctx) as c:
            return c.request("GET", "/x").status
    except socket.timeout as e:
        raise testenv.Hang("no answer and no refusal before the client's timeout") from e
    except (ssl.SSLError, ConnectionError, OSError):
        return None


def _lines(gw, needle):
    return [l for l in gw.log_text().splitlines() if needle in l]


def test_crl_from_distribution_point(gateway, origin, certs, crl_pki, tmp_path):
    gw, port = _start(gateway, origin, certs, crl_pki, tmp_path,
                      {"mode": "hard_fail", "scope": "chain"})
    crl_pki.srv.hits.clear()
    # concurrent handshakes share one fetch per URL
    results = [None] * 6
    def one(i):
        results[i] = _get(port, crl_pki.good)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert results == [200] * 6, (results, gw.log_tail())
    # at most one fetch per URL and worker (2 workers), and the workers share the cache
    assert 1 <= crl_pki.srv.hits.get("/inter.crl", 0) <= 2, crl_pki.srv.hits
    assert 1 <= crl_pki.srv.hits.get("/root.crl", 0) <= 2, crl_pki.srv.hits
    assert _get(port, crl_pki.bad) is None
    gw.wait_log(lambda s: "reason=client_cert_revoked" in s)
    line = _lines(gw, "reason=client_cert_revoked")
    assert len(line) == 1 and "source: CRL http://127.0.0.1:%d/inter.crl" % crl_pki.srv.port \
        in line[0], gw.log_tail()
    hits = dict(crl_pki.srv.hits)
    assert _get(port, crl_pki.good) == 200
    assert crl_pki.srv.hits == hits, "cached until nextUpdate"


def test_crl_fetch_off_means_unknown(gateway, origin, certs, crl_pki, tmp_path):
    gw, port = _start(gateway, origin, certs, crl_pki, tmp_path,
                      {"mode": "soft_fail", "fetch": False})
    crl_pki.srv.hits.clear()
    assert _get(port, crl_pki.bad) == 200, "soft_fail without data admits"
    assert not crl_pki.srv.hits


def test_ocsp_good_and_revoked(gateway, origin, certs, ocsp_pki, responder, tmp_path):
    gw, port = _start(gateway, origin, certs, ocsp_pki, tmp_path, {"mode": "hard_fail"})
    assert _get(port, ocsp_pki.good) == 200, gw.log_tail()
    assert _get(port, ocsp_pki.bad) is None
    gw.wait_log(lambda s: "reason=client_cert_revoked" in s)
    line = _lines(gw, "reason=client_cert_revoked")
    assert len(line) == 1 and "source: OCSP http://127.0.0.1:%d" % ocsp_pki.ocsp_port in line[0], \
        gw.log_tail()


@pytest.mark.parametrize("mode,admitted", [("soft_fail", True), ("hard_fail", False)])
def test_responder_down(gateway, origin, certs, ocsp_pki, tmp_path, mode, admitted):
    gw, port = _start(gateway, origin, certs, ocsp_pki, tmp_path, {"mode": mode})
    for _ in range(3):
        assert (_get(port, ocsp_pki.good) == 200) == admitted, gw.log_tail()
    failed = _lines(gw, "revocation: fetching the OCSP response from http://127.0.0.1:%d"
                    % ocsp_pki.ocsp_port)
    assert len(failed) == 1, "one line per URL per interval:\n" + gw.log_tail()
    if not admitted:
        assert gw.wait_log(lambda s: s.count("reason=client_cert_status_unknown") == 3), \
            gw.log_tail()
        # each refusal names the fetch that failed
        for line in _lines(gw, "reason=client_cert_status_unknown"):
            assert "fetching the OCSP response from http://127.0.0.1:%d failed: " \
                % ocsp_pki.ocsp_port in line, line


class Hang:
    """A revocation responder that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(c)

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.mark.parametrize("mode", ["soft_fail", "hard_fail"])
def test_hanging_responder_bounded_by_the_handshake(gateway, origin, certs, tmp_path, mode):
    """OCSP and CRL sources that accept and never answer: the handshake stops waiting for them in
    time to decide (soft_fail admits, hard_fail refuses naming the fetch), never a handshake
    timeout, and the wait is logged as what it was (issue 11)."""
    hang = Hang()
    try:
        url = "http://127.0.0.1:%d" % hang.port
        p = PKI(str(tmp_path / "pki"), cdp=url, ocsp=url + "/ocsp")
        good = p.client("good", "/O=Org/CN=good")
        gw, port = _start(gateway, origin, certs, p, tmp_path, {"mode": mode},
                          handshake_timeout=2)
        t0 = time.monotonic()
        status = _get(port, good)
        took = time.monotonic() - t0
        assert took < testenv.t(2.5), took
        waited = gw.wait_log(lambda s: "stopped waiting for the OCSP response from %s/ocsp"
                             % url in s)
        assert waited, gw.log_tail()
        if mode == "soft_fail":
            assert status == 200, gw.log_tail()
        else:
            assert status is None
            assert gw.wait_log(lambda s: "reason=client_cert_status_unknown" in s), gw.log_tail()
            line = _lines(gw, "reason=client_cert_status_unknown")
            assert len(line) == 1 and "the OCSP response from %s/ocsp did not come in time" \
                % url in line[0], gw.log_tail()
        assert "handshake_timeout" not in gw.log_text(), gw.log_tail()
    finally:
        hang.close()


class BadCrlServer:
    """An http server for CRL fetches that answers by the path's first segment: /404/ a 404,
    /garbage/ a 200 that is no CRL, /big/ a 200 over the 8 MiB cap, /drip/ a 200 sent a byte
    every half second."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    return
                head += d
            kind = head.split(b" ")[1].split(b"/")[1]
            if kind == b"404":
                c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n")
            elif kind == b"garbage":
                body = b"this is not a CRL at all"
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                time.sleep(1)  # the answer is whole: the fetch must fail on its bytes, not an EOF
            elif kind == b"big":
                n = 9 << 20
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                c.sendall(b"\x30\x84" + n.to_bytes(4, "big") + bytes(65536))
            elif kind == b"drip":
                # a DER SEQUENCE header that promises 996 more bytes, which come slowly
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\x30\x82\x03\xe4")
                for _ in range(40):
                    if self.closing:
                        break
                    time.sleep(0.5)
                    c.sendall(b"\x30")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.closing = True
        self.sock.close()


def test_fetch_failures_are_named(gateway, origin, certs, tmp_path):
    """A CRL distribution point answering 404, garbage, more than the size cap, or too slowly:
    each failure is logged (and a hard_fail refusal says) what it was, not "error receiving"
    (issue 11)."""
    srv = BadCrlServer()
    try:
        p = PKI(str(tmp_path / "pki"))
        clients = {}
        for kind in ("404", "garbage", "big", "drip"):
            p.cdp = "http://127.0.0.1:%d/%s" % (srv.port, kind)
            clients[kind] = p.client("c" + kind, "/O=Org/CN=c%s" % kind)
        gw, port = _start(gateway, origin, certs, p, tmp_path, {"mode": "hard_fail"},
                          handshake_timeout=8)
        results = {}
        ts = [threading.Thread(target=lambda k=k: results.__setitem__(k, _get(port, clients[k])))
              for k in clients]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert results == {k: None for k in clients}, results
        want = {"404": "the server answered HTTP status 404 Not Found",
                "garbage": "the answer cannot be parsed",
                "big": "the answer is larger than the 8388608-byte cap",
                "drip": "no complete answer within 5 s (deadline)"}
        for kind, text in want.items():
            url = "http://127.0.0.1:%d/%s/inter.crl" % (srv.port, kind)
            warn = "revocation: fetching the CRL from %s failed: %s" % (url, text)
            assert gw.wait_log(lambda s: warn in s, timeout=8), (kind, gw.log_tail())
            # the refusal line may follow the alert the client already read
            assert gw.wait_log(lambda s: any("reason=client_cert_status_unknown" in l
                                             and "CN=c%s," % kind in l
                                             for l in s.splitlines()), timeout=8), \
                (kind, gw.log_tail())
            refused = [l for l in _lines(gw, "reason=client_cert_status_unknown")
                       if "CN=c%s," % kind in l]
            assert len(refused) == 1 and "fetching the CRL from %s failed: %s" % (url, text) \
                in refused[0], (kind, gw.log_tail())
        assert "error receiving" not in gw.log_text(), gw.log_tail()
    finally:
        srv.close()


def test_client_gone_while_its_handshake_waits(gateway, origin, certs, tmp_path):
    """A client that gives up while its handshake waits for a slow CRL: the paused handshake is
    ended (no leak, no crash under ASan), its wait is cut before timeouts.handshake, and a later
    client gets the fetched CRL."""
    d = str(tmp_path / "pki")
    www = str(tmp_path / "www")
    os.makedirs(www)
    srv = CrlServer(www, delay=2.5)
    try:
        p = PKI(d, cdp="http://127.0.0.1:%d" % srv.port)
        good = p.client("good", "/O=Org/CN=good")
        p.crl(p.inter, os.path.join(www, "inter.crl"), der=True)
        gw, port = _start(gateway, origin, certs, p, tmp_path, {"mode": "hard_fail"},
                          handshake_timeout=1)
        ctx = testenv.tls_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the handshake ends on our side
        ctx.load_cert_chain(good.chain, good.key)
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(0.5)  # the client leaves before the gateway decides: that is the case here
        try:
            ctx.wrap_socket(s, server_hostname="localhost")
        except (socket.timeout, ssl.SSLError, OSError):
            pass
        s.close()
        # the wait is cut within timeouts.handshake; the client is gone by then
        assert gw.wait_log(lambda t: "stopped waiting for the CRL" in t, timeout=5), \
            gw.log_tail()
        assert gw.wait_log(lambda t: "reason=client_hangup" in t
                           or "reason=client_cert_status_unknown" in t, timeout=5), gw.log_tail()
        assert "reason=handshake_timeout" not in gw.log_text(), gw.log_tail()
        assert gw.running()
        srv.delay = 0.0
        assert testenv.wait_until(lambda: _get(port, good) == 200, 10), gw.log_tail()
    finally:
        srv.close()


def test_crl_file_reread_on_reload(gateway, origin, certs, tmp_path):
    d = str(tmp_path / "pki")
    p = PKI(d)
    alice = p.client("alice", "/O=Org/CN=alice")
    crl = os.path.join(d, "current.crl")
    p.crl(p.inter, crl)
    gw, port = _start(gateway, origin, certs, p, tmp_path,
                      {"mode": "soft_fail", "fetch": False, "crl": [crl]})
    ctx = testenv.tls_context()
    ctx.load_cert_chain(alice.chain, alice.key)
    c = Conn(port, ctx=ctx)
    assert c.request("GET", "/x").status == 200
    p.revoke(p.inter, alice.cert)
    p.crl(p.inter, crl)
    gw.reload(gw.config)
    assert gw.wait_log(lambda s: "closed after reload" in s, timeout=5), gw.log_tail()
    assert "reason=client_cert_revoked" in gw.log_text()
    assert c.is_closed(timeout=3)
    assert _get(port, alice) is None
    c.close()


def test_crl_file_reread_when_next_update_passes(gateway, origin, certs, tmp_path):
    """A CRL file past its nextUpdate is read again; a session resumed after that is checked
    against the new CRL too."""
    d = str(tmp_path / "pki")
    p = PKI(d)
    alice = p.client("alice", "/O=Org/CN=alice")
    crl = os.path.join(d, "short.crl")
    # Long enough for the gateway to start and serve once before it goes stale, in any build.
    seconds = int(math.ceil(testenv.t(2)))
    p.crl(p.inter, crl, seconds=seconds)
    stale_at = time.time() + seconds
    gw, port = _start(gateway, origin, certs, p, tmp_path,
                      {"mode": "hard_fail", "fetch": False, "crl": [crl]})
    ctx = testenv.tls_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(alice.chain, alice.key)
    with Conn(port, ctx=ctx) as c:
        assert c.request("GET", "/x").status == 200
        session = c.sock.session
    p.revoke(p.inter, alice.cert)
    assert time.time() < stale_at, "the gateway started too late for this test's short CRL"
    p.crl(p.inter, crl)  # nextUpdate in 30 days
    time.sleep(max(0.0, stale_at - time.time()) + 1.0)  # the old one's nextUpdate has passed
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    ss = ctx.wrap_socket(s, server_hostname="localhost", session=session)
    assert ss.session_reused
    ss.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        assert ss.recv(100) == b"", "a resumed session of a revoked certificate got an answer"
    except socket.timeout:
        pytest.fail("a resumed session of a revoked certificate was neither answered nor closed")
    except (ssl.SSLError, OSError):
        pass
    ss.close()
    assert gw.wait_log(lambda t: "resumed session" in t and "client_cert_revoked" in t), \
        gw.log_tail()
    assert _get(port, alice) is None
