"""TLS to backends, through the real gateway to a real nginx (testenv.nginx): verification (CA,
name, dates, IP SANs, pins, system and directory truststores), client certificates per backend,
session resumption, version/cipher/ALPN settings, allow_insecure. A failed backend handshake
gives the client 502 and one warn/error line with `reason=TOKEN`, the backend and the target.

nginx finishes the handshake even when `ssl_verify_client on` finds no or a bad client
certificate (it answers 400 over HTTP instead), so the "certificate required" backend adds
`ssl_conf_command VerifyMode Require` and the "certificate refused" backend is a small Python
ssl server (TlsOrigin) that refuses in the handshake, like most mTLS servers."""
import socket
import ssl
import subprocess
import threading

import pytest

import testenv
from testenv import Conn
from testenv.backend_certs import make_backend_certs
from testenv.nginx import Nginx


@pytest.fixture(scope="module")
def bcerts(tmp_path_factory, certs):
    return make_backend_certs(str(tmp_path_factory.mktemp("bcerts")), certs)


@pytest.fixture
def nginx(tmp_path):
    """Factory: nginx(name, keypair=..., **Nginx options) -> a started Nginx, stopped after."""
    made = []

    def make(name, **kw):
        n = Nginx(str(tmp_path), name, **kw)
        made.append(n)
        return n.start()

    yield make
    for n in made:
        n.stop()


# ---------------------------------------------------------------------------------------------
# helpers

TEST_CA = "test-ca"  # truststore name for the main test CA


def _config(certs, tmp_path, port, backends, routes=None, keystores=None, truststores=None):
    """backends: name -> backend object, written out by each test."""
    ts = {TEST_CA: {"type": "pem", "file": certs.ca.cert}}
    ts.update(truststores or {})
    ks = {"ec": certs.ec.keystore()}
    ks.update(keystores or {})
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": str(tmp_path / "access.log")},
        "keystores": ks,
        "truststores": ts,
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": routes or [{"path_prefix": "/", "backend": "secure"}]}],
        "backends": backends,
    }


def _get(port, path="/"):
    with Conn(port) as c:
        return c.request("GET", path)


def _reason_line(gw, token, backend, target, *more):
    """The one warn/error log line with reason=TOKEN; it names the backend and the target (and
    every string in more)."""
    needle = "reason=" + token
    text = gw.wait_log(lambda s: needle in s, timeout=3)
    assert text, "no log line with %r:\n%s" % (needle, gw.log_tail())
    lines = [l for l in gw.log_text().splitlines() if needle in l]
    assert len(lines) == 1, "%d lines with %r (want one):\n%s" % (len(lines), needle,
                                                                   "\n".join(lines))
    line = lines[0]
    assert "[warn]" in line or "[error]" in line, line
    for s in (backend, target) + more:
        assert s in line, "%r missing from the log line:\n%s" % (s, line)
    return line


def _reason_lines(gw):
    return [l for l in gw.log_text().splitlines() if "reason=" in l]


# ---------------------------------------------------------------------------------------------
# verified backends

def test_verified_backend(gateway, nginx, certs, bcerts, tmp_path):
    n = nginx("secure", keypair=bcerts.server)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "verify": True, "server_name": "localhost"}}}))
    with Conn(port) as c:
        for i in range(3):
            r = c.request("GET", "/v%d" % i)
            assert r.status == 200, (r.status, r.body[:300], n.diagnostics())
            assert r.header("X-Origin") == "secure", r.headers
            assert r.text.startswith("nginx secure dn= reused="), r.text
    entries = n.wait_entries(3, "/v")
    assert [e["path"] for e in entries] == ["/v0", "/v1", "/v2"], n.diagnostics()
    for e in entries:
        assert e["protocol"] in ("TLSv1.2", "TLSv1.3"), e
        assert e["sni"] == "localhost", "server_name is the SNI: %s" % e
        assert e["dn"] == "" and e["verify"] == "NONE", e
    assert not _reason_lines(gw), gw.log_tail()


@pytest.mark.parametrize("cert,token,names", [
    ("foreign", "unknown_ca", ()),
    ("wrong_name", "name_mismatch", ("wrong.example", "www.wrong.example")),
    ("expired", "expired", ()),
    ("not_yet_valid", "not_yet_valid", ()),
])
def test_verification_failure(gateway, nginx, certs, bcerts, tmp_path, cert, token, names):
    n = nginx("bad", keypair=getattr(bcerts, cert))
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "server_name": "localhost"}}}))
    r = _get(port, "/must-not-arrive")
    assert r.status == 502, (r.status, r.body[:300])
    # the line for a name mismatch lists the names the certificate has
    _reason_line(gw, token, "secure", n.address, *names)
    assert not n.entries(), "the request reached an unverified backend:\n" + n.diagnostics()
    assert gw.running()


def test_ip_target_verified_against_ip_san(gateway, nginx, certs, bcerts, tmp_path):
    """No server_name: the name to verify is the target's host, an IP address, which must match
    an IP SAN (ip_only has no DNS name; dns_only has no IP address)."""
    good = nginx("ip", keypair=bcerts.ip_only)
    bad = nginx("dns", keypair=bcerts.dns_only)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {
        "secure": {"targets": [good.address], "tls": {"truststore": TEST_CA}},
        "dnsonly": {"targets": [bad.address], "tls": {"truststore": TEST_CA}},
    }, routes=[{"path_prefix": "/dns/", "backend": "dnsonly"},
               {"path_prefix": "/", "backend": "secure"}]))
    r = _get(port, "/ip")
    assert r.status == 200 and r.text.startswith("nginx ip "), (r.status, r.body[:300],
                                                                good.diagnostics())
    # an IP address is never sent as SNI (RFC 6066 section 3)
    assert [e["sni"] for e in good.wait_entries(1, "/ip")] == [""], good.diagnostics()
    assert not _reason_lines(gw), gw.log_tail()
    r = _get(port, "/dns/x")
    assert r.status == 502, (r.status, r.body[:300])
    _reason_line(gw, "name_mismatch", "dnsonly", bad.address, "localhost")
    assert not bad.entries(), bad.diagnostics()


@pytest.mark.parametrize("truststore", ["system", "default"])
def test_system_truststore_does_not_know_the_test_ca(gateway, nginx, certs, bcerts, tmp_path,
                                                     truststore):
    n = nginx("secure", keypair=bcerts.server)
    port = testenv.free_port()
    tls = {"server_name": "localhost"}
    if truststore == "system":
        tls["truststore"] = "sys"
    gw = gateway(_config(certs, tmp_path, port, {"secure": {"targets": [n.address], "tls": tls}},
                         truststores={"sys": {"type": "system"}}))
    r = _get(port)
    assert r.status == 502, (r.status, r.body[:300])
    _reason_line(gw, "unknown_ca", "secure", n.address)
    assert not n.entries(), n.diagnostics()


def test_directory_truststore(gateway, nginx, certs, bcerts, tmp_path):
    """A truststore "file" that is a directory: every CA in it is trusted (the directory also
    has OpenSSL's hash links, so a hashed-lookup implementation finds them too)."""
    d = tmp_path / "cas"
    d.mkdir()
    for src, name in ((bcerts.other_ca.cert, "other.crt"), (certs.ca.cert, "main.crt")):
        with open(src) as f, open(str(d / name), "w") as out:
            out.write(f.read())
    subprocess.run(["openssl", "rehash", str(d)], check=True, capture_output=True)
    a = nginx("main", keypair=bcerts.server)
    b = nginx("other", keypair=bcerts.foreign)
    port = testenv.free_port()
    tls = {"truststore": "dir", "server_name": "localhost"}
    gw = gateway(_config(certs, tmp_path, port, {
        "secure": {"targets": [a.address], "tls": tls},
        "other": {"targets": [b.address], "tls": tls},
    }, routes=[{"path_prefix": "/other/", "backend": "other"},
               {"path_prefix": "/", "backend": "secure"}],
        truststores={"dir": {"type": "pem", "file": str(d)}}))
    r = _get(port, "/main")
    assert r.status == 200 and r.text.startswith("nginx main "), (r.status, r.body[:300])
    r = _get(port, "/other/x")
    assert r.status == 200 and r.text.startswith("nginx other "), (r.status, r.body[:300])
    assert not _reason_lines(gw), gw.log_tail()


# ---------------------------------------------------------------------------------------------
# pins

@pytest.mark.parametrize("pins,ok", [
    (["server"], True),
    (["foreign", "server"], True),  # any listed pin may match
    (["foreign"], False),
])
def test_pin(gateway, nginx, certs, bcerts, tmp_path, pins, ok):
    n = nginx("secure", keypair=bcerts.server)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "server_name": "localhost",
                "pin": [bcerts.pin(getattr(bcerts, p)) for p in pins]}}}))
    r = _get(port, "/pinned")
    if ok:
        assert r.status == 200 and r.text.startswith("nginx secure "), (r.status, r.body[:300])
        assert not _reason_lines(gw), gw.log_tail()
    else:
        assert r.status == 502, (r.status, r.body[:300])
        _reason_line(gw, "pin_mismatch", "secure", n.address)
        assert not n.entries(), n.diagnostics()


# ---------------------------------------------------------------------------------------------
# client certificates

def test_client_certificate_per_backend(gateway, nginx, certs, bcerts, tmp_path):
    a = nginx("a", keypair=bcerts.server, client_ca=bcerts.client_ca.cert, verify_client="on",
              require_client_cert=True)
    b = nginx("b", keypair=bcerts.server, client_ca=bcerts.client_ca.cert, verify_client="on",
              require_client_cert=True)
    port = testenv.free_port()
    tls = {"truststore": TEST_CA, "server_name": "localhost"}
    gw = gateway(_config(certs, tmp_path, port, {
        "a": {"targets": [a.address], "tls": dict(tls, client_certificate="client-a")},
        "b": {"targets": [b.address], "tls": dict(tls, client_certificate="client-b")},
    }, routes=[{"path_prefix": "/a/", "backend": "a"}, {"path_prefix": "/b/", "backend": "b"}],
        keystores={"client-a": bcerts.client_a.keystore(),
                   "client-b": bcerts.client_b.keystore()}))
    for i in range(2):
        for name, n in (("a", a), ("b", b)):
            r = _get(port, "/%s/%d" % (name, i))
            assert r.status == 200, (name, r.status, r.body[:300], n.diagnostics())
            assert r.text.startswith("nginx %s dn=CN=client-%s,O=Test " % (name, name)), r.text
    for name, n in (("a", a), ("b", b)):
        entries = n.wait_entries(2, "/%s/" % name)
        assert len(entries) == 2, n.diagnostics()
        for e in entries:
            assert e["dn"] == "CN=client-%s,O=Test" % name, e
            assert e["verify"] == "SUCCESS", e
    assert not gw.log_lines("never asked"), gw.log_tail()
    assert not _reason_lines(gw), gw.log_tail()


def test_pooled_connections_keep_their_backend(gateway, nginx, certs, bcerts, tmp_path):
    """Two backends with different client certificates on the same target address: a kept-alive
    connection made for one is never reused for the other (the pool is not keyed by address
    alone)."""
    n = nginx("shared", keypair=bcerts.server, client_ca=bcerts.client_ca.cert,
              verify_client="on", require_client_cert=True)
    port = testenv.free_port()
    tls = {"truststore": TEST_CA, "server_name": "localhost"}
    gateway(_config(certs, tmp_path, port, {
        "a": {"targets": [n.address], "tls": dict(tls, client_certificate="client-a")},
        "b": {"targets": [n.address], "tls": dict(tls, client_certificate="client-b")},
    }, routes=[{"path_prefix": "/a/", "backend": "a"}, {"path_prefix": "/b/", "backend": "b"}],
        keystores={"client-a": bcerts.client_a.keystore(),
                   "client-b": bcerts.client_b.keystore()}))
    with Conn(port) as c:
        for i in range(3):
            for name in ("a", "b"):
                r = c.request("GET", "/%s/%d" % (name, i))
                assert r.status == 200, (name, r.status, r.body[:300], n.diagnostics())
                assert "dn=CN=client-%s,O=Test " % name in r.text, (name, i, r.text)
    entries = n.wait_entries(6, "/")
    assert len(entries) == 6, n.diagnostics()
    for e in entries:
        assert e["dn"] == "CN=client-%s,O=Test" % e["path"][1], e
    # keep-alive did pool: fewer backend connections than requests
    assert len({e["connection"] for e in entries}) < 6, n.diagnostics()


@pytest.mark.parametrize("version", ["TLS1.2", "TLS1.3"])
def test_client_certificate_required(gateway, nginx, certs, bcerts, tmp_path, version):
    """The backend demands a certificate and the backend config has none."""
    n = nginx("mtls", keypair=bcerts.server, client_ca=bcerts.client_ca.cert, verify_client="on",
              require_client_cert=True)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "server_name": "localhost", "min_version": version,
                "max_version": version}}}))
    r = _get(port, "/no-cert")
    assert r.status == 502, (r.status, r.body[:300])
    _reason_line(gw, "client_cert_required", "secure", n.address)
    assert not n.entries(), n.diagnostics()


class TlsOrigin:
    """A loopback HTTPS origin (Python's ssl) that requires a client certificate issued by
    client_ca and, unlike nginx, refuses any other one in the handshake. Answers every request
    with 200 "tls NAME cn=<client CN>\\n" and closes. handshake_errors lists refused handshakes."""

    def __init__(self, name, keypair, client_ca):
        self.name = name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(keypair.cert, keypair.key)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(client_ca)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.handshake_errors = []
        self.served = []  # client CNs of answered requests
        self.lock = threading.Lock()
        self.closing = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True, name="tls-origin")
        self.thread.start()

    def _accept_loop(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, raw):
        raw.settimeout(testenv.t(10))
        s = self.ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        try:
            s.do_handshake()
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.handshake_errors.append(str(e))
            self._linger(s)
            return
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            cn = ""
            for rdn in (s.getpeercert() or {}).get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
            with self.lock:
                self.served.append(cn)
            body = ("tls %s cn=%s\n" % (self.name, cn)).encode()
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n"
                      b"X-Origin: %s\r\n\r\n" % (len(body), self.name.encode()) + body)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    @staticmethod
    def _linger(s):
        """After the alert: half-close and drain until the peer closes, so the client's
        in-flight bytes (its request, sent right after its side of a TLS 1.3 handshake) cannot
        make our kernel reset the connection before the client has read the alert."""
        try:
            s.shutdown(socket.SHUT_WR)
            s.settimeout(testenv.t(2))
            while s.recv(65536):
                pass
        except OSError:
            pass
        finally:
            s.close()

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def tls_origin():
    made = []

    def make(*a):
        o = TlsOrigin(*a)
        made.append(o)
        return o

    yield make
    for o in made:
        o.close()


@pytest.mark.parametrize("version", ["TLS1.2", "TLS1.3"])
def test_client_certificate_rejected(gateway, tls_origin, certs, bcerts, tmp_path, version):
    """The backend refuses our certificate (issued by a CA it does not trust). In TLS 1.3 the
    refusal arrives after our side of the handshake is done: it is still a handshake failure."""
    o = tls_origin("mtls", bcerts.server, bcerts.client_ca.cert)
    port = testenv.free_port()
    tls = {"truststore": TEST_CA, "server_name": "localhost", "min_version": version,
           "max_version": version}
    gw = gateway(_config(certs, tmp_path, port, {
        "good": {"targets": [o.address], "tls": dict(tls, client_certificate="client-a")},
        "secure": {"targets": [o.address], "tls": dict(tls, client_certificate="foreign")},
    }, routes=[{"path_prefix": "/good/", "backend": "good"},
               {"path_prefix": "/", "backend": "secure"}],
        keystores={"client-a": bcerts.client_a.keystore(),
                   "foreign": bcerts.client_foreign.keystore()}))
    r = _get(port, "/good/x")  # the origin itself works, with a certificate it trusts
    assert r.status == 200 and r.text == "tls mtls cn=client-a\n", (r.status, r.body[:300])
    r = _get(port, "/refused")
    assert r.status == 502, (r.status, r.body[:300])
    _reason_line(gw, "client_cert_rejected", "secure", o.address)
    # The origin's thread records the refusal after sending its alert: wait for it.
    assert testenv.wait_until(lambda: o.handshake_errors, testenv.t(5)), \
        "the origin refused no handshake"
    with o.lock:
        assert o.served == ["client-a"], o.served


def test_client_certificate_never_requested(gateway, nginx, certs, bcerts, tmp_path):
    """A client certificate for a backend that never sends a CertificateRequest works and is
    logged once per target, however many connections are made (keepalive_requests 1)."""
    n = nginx("plain", keypair=bcerts.server, keepalive_requests=1)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "server_name": "localhost",
                "client_certificate": "client-a"}}},
        keystores={"client-a": bcerts.client_a.keystore()}))
    for i in range(4):
        r = _get(port, "/n%d" % i)
        assert r.status == 200 and r.text.startswith("nginx plain dn= "), (r.status, r.body[:300])
    entries = n.wait_entries(4, "/n")
    assert len({e["connection"] for e in entries}) == 4, "want 4 backend connections:\n" + \
        n.diagnostics()
    lines = gw.log_lines("never asked for our client certificate")
    assert len(lines) == 1, "want exactly one 'never asked' line:\n" + gw.log_tail()
    assert n.address in lines[0] and "secure" in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------
# allow_insecure

def test_allow_insecure(gateway, nginx, certs, bcerts, tmp_path):
    n = nginx("foreign", keypair=bcerts.foreign)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"server_name": "localhost", "allow_insecure": True}}}))
    # logged at start, before any request
    warn = [l for l in gw.log_lines("allow_insecure") if "[warn]" in l or "[error]" in l]
    assert warn, "no start-up warning naming allow_insecure:\n" + gw.log_tail()
    assert "secure" in warn[0], warn[0]
    r = _get(port, "/insecure")
    assert r.status == 200 and r.text.startswith("nginx foreign "), (r.status, r.body[:300])
    assert not _reason_lines(gw), gw.log_tail()


# ---------------------------------------------------------------------------------------------
# resumption

@pytest.mark.parametrize("version", ["TLS1.2", "TLS1.3"])
def test_session_resumption(gateway, nginx, certs, bcerts, tmp_path, version):
    """nginx closes every connection after one response, so each request needs a new backend
    connection: all but the first resume the session."""
    n = nginx("secure", keypair=bcerts.server, keepalive_requests=1)
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "server_name": "localhost", "max_version": version}}}))
    bodies = []
    with Conn(port) as c:
        for i in range(5):
            r = c.request("GET", "/r%d" % i)
            assert r.status == 200, (i, r.status, r.body[:300], n.diagnostics())
            bodies.append(r.text)
    entries = n.wait_entries(5, "/r")
    assert len(entries) == 5, n.diagnostics()
    assert len({e["connection"] for e in entries}) == 5, "want 5 backend connections:\n" + \
        n.diagnostics()
    want = "TLSv1.2" if version == "TLS1.2" else "TLSv1.3"
    assert all(e["protocol"] == want for e in entries), n.diagnostics()
    reused = [e["reused"] for e in entries]
    assert reused == [".", "r", "r", "r", "r"], "ssl_session_reused per connection: %s\n%s" % (
        reused, n.diagnostics())
    assert "reused=r" in bodies[-1], bodies


# ---------------------------------------------------------------------------------------------
# versions, cipher suites, ALPN

def test_no_shared_version(gateway, nginx, certs, bcerts, tmp_path):
    n = nginx("tls12", keypair=bcerts.server, protocols="TLSv1.2")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "server_name": "localhost", "min_version": "TLS1.3"}}}))
    r = _get(port)
    assert r.status == 502, (r.status, r.body[:300])
    _reason_line(gw, "no_shared_version", "secure", n.address)
    assert not n.entries(), n.diagnostics()


def test_max_version(gateway, nginx, certs, bcerts, tmp_path):
    n = nginx("secure", keypair=bcerts.server)  # TLSv1.2 and TLSv1.3
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "server_name": "localhost", "min_version": "TLS1.2",
                "max_version": "TLS1.2"}}}))
    r = _get(port, "/v12")
    assert r.status == 200 and "proto=TLSv1.2" in r.text, (r.status, r.body[:300])
    assert [e["protocol"] for e in n.wait_entries(1, "/v12")] == ["TLSv1.2"], n.diagnostics()


def test_cipher_suites(gateway, nginx, certs, bcerts, tmp_path):
    """Our cipher_suites are what we offer: a TLS 1.2 backend picks from them, and one that
    shares none refuses the handshake."""
    ok = nginx("chacha", keypair=bcerts.server, protocols="TLSv1.2")
    none = nginx("aes256", keypair=bcerts.server, protocols="TLSv1.2",
                 ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    port = testenv.free_port()
    tls = {"truststore": TEST_CA, "server_name": "localhost", "max_version": "TLS1.2"}
    gw = gateway(_config(certs, tmp_path, port, {
        "chacha": {"targets": [ok.address], "tls": dict(
            tls, cipher_suites=["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"])},
        "secure": {"targets": [none.address], "tls": dict(
            tls, cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])},
    }, routes=[{"path_prefix": "/chacha/", "backend": "chacha"},
               {"path_prefix": "/", "backend": "secure"}]))
    r = _get(port, "/chacha/x")
    assert r.status == 200, (r.status, r.body[:300], ok.diagnostics())
    assert [e["cipher"] for e in ok.wait_entries(1, "/chacha/")] == \
        ["ECDHE-ECDSA-CHACHA20-POLY1305"], ok.diagnostics()
    r = _get(port, "/aes")
    assert r.status == 502, (r.status, r.body[:300])
    _reason_line(gw, "no_shared_cipher", "secure", none.address)
    assert not none.entries(), none.diagnostics()


def test_alpn(gateway, nginx, certs, bcerts, tmp_path):
    n = nginx("secure", keypair=bcerts.server)
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"secure": {
        "targets": [n.address],
        "tls": {"truststore": TEST_CA, "server_name": "localhost", "alpn": ["http/1.1"]}}}))
    r = _get(port, "/alpn")
    assert r.status == 200, (r.status, r.body[:300])
    assert [e["alpn"] for e in n.wait_entries(1, "/alpn")] == ["http/1.1"], n.diagnostics()
