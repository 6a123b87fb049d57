"""tls.client_auth.from_header: behind a TLS-terminating balancer, the client certificate comes
in a header field (WSO2's X-WSO2-CLIENT-CERTIFICATE) and is believed only from the balancer's
addresses (trusted_from). From a trusted peer (127.0.0.1 here) the certificate is decoded
(URL-encoded PEM, PEM with spaces, base64 DER, RFC 9440 :b64:) and checked as in a handshake
(chain, allow list, CRL file), then routes' allowed_subjects and the identity headers to the
backend use it; a bad one gets 403 client_cert_header_refused, logged once and counted. From
any other peer (127.0.0.2) the field is ignored, removed and logged. The "balancer" is a Python
ssl client bound to either source address."""
import base64
import json
import socket
import ssl
import subprocess
import urllib.parse

import pytest

import testenv
from testenv.mtls import PKI

HDR = "X-WSO2-CLIENT-CERTIFICATE"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(str(tmp_path_factory.mktemp("certheader")))
    p.alice = p.client("alice", "/O=Org/CN=alice")
    p.bob = p.client("bob", "/O=Org/CN=bob")
    p.foreign = p.client("foreign", "/O=elsewhere/CN=foreign", issuer=p.other_root)
    p.revoked = p.client("revoked", "/O=Org/CN=revoked")
    p.revoke(p.inter, p.revoked.cert)
    p.crl_pem = p.crl(p.inter, p.path("inter.crl"))
    return p


def _pem(path):
    return open(path).read()


def _der_b64(path):
    der = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return base64.b64encode(der).decode()


def _request(port, host, source, value=None, client=None, path="/echo"):
    """One HTTPS request from source address `source`, with the header field when value is
    given; (status, body bytes)."""
    ctx = testenv.tls_context(verify=False)
    if client is not None:
        ctx.load_cert_chain(client.chain, client.key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=testenv.t(10),
                                   source_address=(source, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    head = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (path, host)
    if value is not None:
        head += "%s: %s\r\n" % (HDR, value)
    s.sendall((head + "\r\n").encode())
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except (ConnectionResetError, ssl.SSLError):
        pass
    s.close()
    h, _, body = got.partition(b"\r\n\r\n")
    return int(h.split(b" ", 2)[1]), body


def _headers(body):
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


@pytest.fixture
def gw(gateway, origin, certs, pki, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    trust = str(tmp_path / "trust.pem")
    with open(trust, "w") as f:
        f.write(_pem(pki.root.cert) + _pem(pki.inter.cert))
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"clients": {"type": "pem", "file": trust}},
        "listeners": [{"name": "mgw", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"], "alpn": ["h2", "http/1.1"],
                               "client_auth": {
                                   "mode": "optional", "truststore": "clients",
                                   "revocation": {"mode": "soft_fail", "crl": [pki.crl_pem],
                                                  "fetch": False},
                                   "from_header": {"name": HDR,
                                                   "trusted_from": ["127.0.0.1/32"]}}},
                       "routes": [{"host": "private.test", "backend": "app",
                                   "allowed_subjects": ["CN=alice,O=Org"]},
                                  {"path_prefix": "/_status", "backend": "status"},
                                  {"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": ["127.0.0.1:%d" % o.port]},
                     "status": {"builtin": "status"}},
    }
    g = gateway(cfg, ready_ports=[(port, False)])
    g.lport = port
    g.origin = o
    return g


def _refusals(g, token, n):
    text = g.wait_log(lambda s: s.count("reason=" + token) >= n, timeout=3)
    assert text, g.log_tail()
    return [l for l in g.log_text().splitlines() if "reason=" + token in l]


def test_trusted_balancer_header_forms(gw, pki):
    pem = _pem(pki.alice.chain)
    forms = [urllib.parse.quote(pem, safe=""),              # WSO2 / nginx escaped PEM
             pem.replace("\n", " ").strip(),                  # PEM with its line breaks as spaces
             _der_b64(pki.alice.cert),                        # HAProxy ssl_c_der,base64
             ":" + _der_b64(pki.alice.cert) + ":"]            # RFC 9440
    for v in forms:
        st, body = _request(gw.lport, "private.test", "127.0.0.1", v)
        assert st == 200, (v[:40], body)
        h = _headers(body)
        assert 'Subject="CN=alice,O=Org"' in h["x-forwarded-client-cert"], h
        assert HDR.lower() not in h, h
    # bob chains but is not on the route's list; elsewhere he is the client
    st, body = _request(gw.lport, "private.test", "127.0.0.1", _der_b64(pki.bob.cert))
    assert st == 403 and b"not allowed for this path" in body, body
    st, body = _request(gw.lport, "localhost", "127.0.0.1", _der_b64(pki.bob.cert))
    assert st == 200 and "CN=bob" in _headers(body)["x-forwarded-client-cert"]
    # the balancer's own certificate is never the client's identity
    st, body = _request(gw.lport, "localhost", "127.0.0.1", None, client=pki.bob)
    assert st == 200 and "x-forwarded-client-cert" not in _headers(body), body
    st, body = _request(gw.lport, "private.test", "127.0.0.1", None, client=pki.alice)
    assert st == 403, body


def test_http2_streams_carry_their_own_header_certificate(gw, pki, certs):
    """Over HTTP/2 each stream has its own identity: alice's header on one request does not
    carry over to the next one on the same connection."""
    v = urllib.parse.quote(_pem(pki.alice.chain), safe="")
    r = testenv.curl("--http2", "-k", "--resolve",
                     "private.test:%d:127.0.0.1" % gw.lport, "-s", "-o", "-", "-w",
                     "\n%{http_version} %{http_code}\n",
                     "-H", "%s: %s" % (HDR, v), "https://private.test:%d/echo" % gw.lport,
                     "--next", "--http2", "-k", "--resolve",
                     "private.test:%d:127.0.0.1" % gw.lport, "-s", "-o", "-", "-w",
                     "\n%{http_version} %{http_code}\n",
                     "https://private.test:%d/echo" % gw.lport)
    out = r.stdout.decode()
    assert out.count("\n2 200\n") == 1 and out.count("\n2 403\n") == 1, out
    assert "CN=alice,O=Org" in out, out


def test_trusted_balancer_bad_certificates(gw, pki):
    cases = [(_der_b64(pki.foreign.cert), "client_cert_missing_intermediate"),
             (_der_b64(pki.revoked.cert), "client_cert_revoked"),
             ("not a certificate!", "not base64"),
             (base64.b64encode(b"\x30\x03\x02\x01\x00").decode(), "not one DER certificate")]
    for v, why in cases:
        st, body = _request(gw.lport, "localhost", "127.0.0.1", v)
        assert st == 403 and b"front balancer is not accepted" in body, (why, body)
    lines = _refusals(gw, "client_cert_header_refused", len(cases))
    assert len(lines) == len(cases), lines
    for (v, why), line in zip(cases, lines):
        assert why in line and HDR in line, (why, line)
    assert not [q for q in gw.origin.requests if q[1] == "/echo"], gw.origin.requests
    st, body = _request(gw.lport, "localhost", "127.0.0.1", None, path="/_status")
    assert json.loads(body)["request_failures"]["client_cert_header_refused"] == len(cases)


def test_untrusted_peer_header_ignored(gw, pki):
    v = urllib.parse.quote(_pem(pki.alice.chain), safe="")
    st, body = _request(gw.lport, "localhost", "127.0.0.2", v)
    assert st == 200, body
    h = _headers(body)
    assert "x-forwarded-client-cert" not in h and HDR.lower() not in h, h
    st, body = _request(gw.lport, "private.test", "127.0.0.2", v)
    assert st == 403 and b"not allowed for this path" in body, body
    text = gw.wait_log(lambda s: "ignored and removed header field" in s, timeout=3)
    assert text, gw.log_tail()
    lines = [l for l in gw.log_text().splitlines() if "ignored and removed header field" in l]
    assert len(lines) == 2 and "127.0.0.2" in lines[0] and "trusted_from" in lines[0], lines
    # a client's own handshake certificate still counts from an untrusted address
    st, body = _request(gw.lport, "private.test", "127.0.0.2", None, client=pki.alice)
    assert st == 200, body


def test_from_header_check_errors(certs, pki, tmp_path):
    cfg = {"version": 1, "keystores": {"ec": certs.ec.keystore()},
           "truststores": {"clients": {"type": "pem", "file": pki.root.cert}},
           "listeners": [{"name": "l", "address": "127.0.0.1:%d" % testenv.free_port(),
                          "tls": {"certificates": ["ec"],
                                  "client_auth": {"mode": "none",
                                                  "from_header": {"name": "X Bad",
                                                                  "trusted_from": ["10.0.0/8"]}}},
                          "routes": [{"backend": "app"}]}],
           "backends": {"app": {"targets": ["127.0.0.1:1"]}}}
    path = str(tmp_path / "gw.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = testenv.tlsgate("check", "-c", path)
    assert r.returncode == 2, r.stderr
    for needle in ("from_header/name", "not a header field name", "from_header/trusted_from/0",
                   "from_header: a certificate from a header"):
        assert needle in r.stderr, (needle, r.stderr)
    l = cfg["listeners"][0]
    l["mode"] = "tcp"
    l["backend"] = "app"
    del l["routes"]
    l["tls"]["client_auth"] = {"mode": "optional", "truststore": "clients",
                               "from_header": {"name": HDR, "trusted_from": ["10.0.0.0/8"]}}
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = testenv.tlsgate("check", "-c", path)
    assert r.returncode == 2 and "a tcp listener reads no request header" in r.stderr, r.stderr
