"""Every row of the failure tables, produced through the binary: for each backend failure the
client's 502/504 carries the reason token, the status page's backend_failures counts it once and
one log line names it; for each request the gateway refuses itself the status and sentence of
its row, request_failures counts it once and one log line names it."""
import os
import socket
import ssl
import struct
import threading

import pytest

import testenv
from testenv import Conn
from test_07_backend_failures import _BlackHole


def _config(certs, tmp_path, port, backend, timeouts=None, limits=None, http=None, tls=None,
            routes=None, truststores=None):
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": None},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": dict({"certificates": ["ec"]}, **(tls or {})),
                       "routes": [{"path_prefix": "/_status", "backend": "status"}]
                       + (routes or [{"path_prefix": "/", "backend": "app"}])}],
        "backends": {"app": backend, "status": {"builtin": "status"}},
    }
    for key, val in (("timeouts", timeouts), ("limits", limits), ("http", http),
                     ("truststores", truststores)):
        if val:
            cfg[key] = val
    return cfg


def _status(port):
    r = testenv.get(port, "/_status")
    assert r.status == 200, (r.status, r.body[:200])
    return r.json()


class _Backend:
    """A loopback backend that misbehaves as told, after reading a request head: "close" (no
    answer), "rst" (a reset), "garbage" (not HTTP), "bighead" (a 64 KiB head), "silent" (holds
    the connection); "mute" accepts and never reads or answers; "alert:N" answers the ClientHello with fatal alert N; "hangup" closes at once, before reading anything; "http400" answers whatever
    comes first with a plain HTTP 400 (a plain server meeting a ClientHello). tls: an SSLContext to
    speak TLS first (the handshake then decides)."""

    def __init__(self, action, tls=None):
        self.action, self.tls = action, tls
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.held, self.closing = [], False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        self.held.append(c)
        try:
            c.settimeout(testenv.t(10))
            if self.action == "hangup":
                c.close()
                return
            if self.action == "mute":  # accepts TCP, never reads nor answers the ClientHello
                return
            if self.action.startswith("alert:"):  # a fatal TLS alert answers the ClientHello
                c.recv(65536)
                c.sendall(b"\x15\x03\x03\x00\x02\x02" + bytes([int(self.action[6:])]))
                c.close()
                return
            if self.action == "http400":
                c.recv(65536)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                c.close()
                return
            if self.tls is not None:
                c = self.tls.wrap_socket(c, server_side=True)
                self.held.append(c)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            if self.action == "ok":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            elif self.action == "close":
                c.close()
            elif self.action == "rst":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
            elif self.action == "garbage":
                c.sendall(b"HELLO THERE, I AM NOT HTTP\r\n\r\n")
            elif self.action == "bighead":
                c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
            # "silent": keep it open
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self.closing = True
        self.sock.close()
        for c in self.held:
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(5)


def _server_ctx(pair, min_version=None, max_version=None, ciphers=None, client_ca=None,
                alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pair.cert, pair.key)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


# Each row: (token, make, status); make(certs, bcerts) -> (backend config, closer, keystores
# the config needs besides "ec").
def _plain(action):
    def make(certs, bcerts):
        b = _Backend(action)
        return {"targets": [b.address]}, b.close, {}
    return make


TLS12 = ssl.TLSVersion.TLSv1_2


def _tls(action, pair="ec", backend_tls=None, keystores=None, **server):
    """A TLS backend (the certificate `pair` of certs, or of bcerts as "b:name")."""
    def make(certs, bcerts):
        kp = getattr(bcerts, pair[2:]) if pair.startswith("b:") else getattr(certs, pair)
        if server.get("client_ca") == "b:client_ca":
            server["client_ca"] = bcerts.client_ca.cert
        raw = action in ("http400", "mute") or action.startswith("alert:")
        ctx = None if raw else _server_ctx(kp, **server)
        b = _Backend(action, tls=ctx)
        btls = {"truststore": "test-ca"}
        btls.update(backend_tls or {})
        ks = {name: getattr(bcerts, which).keystore() for name, which in (keystores or {}).items()}
        return {"targets": [b.address], "tls": btls}, b.close, ks
    return make


def _refused(certs, bcerts):
    d = testenv.DeadPort()
    return {"targets": [d.address]}, d.close, {}


def _blackhole(certs, bcerts):
    h = _BlackHole()
    return {"targets": [h.address]}, h.close, {}


def _unreachable(certs, bcerts):
    # connect() fails locally at once (no route for a broadcast address without SO_BROADCAST):
    # no packet leaves the machine
    return {"targets": ["255.255.255.255:9"]}, lambda: None, {}


def _all_out(certs, bcerts):
    d = testenv.DeadPort()
    return {"targets": [d.address], "health": {"interval": 0.2, "timeout": 0.2}}, d.close, {}


BACKEND_ROWS = [
    ("connect_refused", _refused, 502),
    ("connect_timeout", _blackhole, 504),
    ("connect_error", _unreachable, 502),
    ("closed_early", _plain("close"), 502),
    ("io_error", _plain("rst"), 502),
    ("bad_response", _plain("garbage"), 502),
    ("response_head_too_large", _plain("bighead"), 502),
    ("response_timeout", _plain("silent"), 504),
    ("no_target", _all_out, 502),
    # rows of the TLS table (backend handshakes)
    ("unknown_ca", _tls("ok", backend_tls={"truststore": "system"}), 502),
    ("name_mismatch", _tls("ok", backend_tls={"server_name": "wrong.example"}), 502),
    ("expired", _tls("ok", pair="expired", backend_tls={"server_name": "localhost"}), 502),
    ("not_yet_valid", _tls("ok", pair="b:not_yet_valid", backend_tls={"server_name": "localhost"}),
     502),
    ("pin_mismatch", _tls("ok", backend_tls={"pin": ["sha256/" + "A" * 43 + "="]}), 502),
    ("no_shared_version", _tls("ok", backend_tls={"max_version": "TLS1.2"},
                               min_version=ssl.TLSVersion.TLSv1_3), 502),
    ("no_shared_cipher", _tls("ok", backend_tls={"max_version": "TLS1.2", "cipher_suites": [
        "ECDHE-ECDSA-AES128-GCM-SHA256"]}, max_version=TLS12,
        ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"), 502),
    ("no_shared_alpn", _tls("alert:120", backend_tls={"alpn": ["x-none"]}), 502),
    ("protocol_error", _tls("alert:10"), 502),
    # a certificate for TLS clients only (extended key usage clientAuth) served by a backend
    ("bad_certificate", _tls("ok", pair="b:client_a", backend_tls={"truststore": "client-ca"}),
     502),
    ("client_cert_required", _tls("ok", backend_tls={"max_version": "TLS1.2"}, max_version=TLS12,
                                  client_ca="b:client_ca"), 502),
    ("client_cert_rejected", _tls("ok", backend_tls={"max_version": "TLS1.2",
                                                     "client_certificate": "to-backend"},
                                  keystores={"to-backend": "client_foreign"},
                                  max_version=TLS12, client_ca="b:client_ca"), 502),
    ("not_tls", _tls("http400"), 502),
    ("backend_hangup", _tls("hangup"), 502),
    # TCP accepted, the TLS handshake never answered: not a connect_timeout
    ("handshake_timeout", _tls("mute"), 504),
]


@pytest.fixture(scope="module")
def bcerts(tmp_path_factory, certs):
    from testenv.backend_certs import make_backend_certs
    return make_backend_certs(str(tmp_path_factory.mktemp("bcerts")), certs)


@pytest.mark.parametrize("token,make,status", BACKEND_ROWS, ids=[r[0] for r in BACKEND_ROWS])
def test_backend_failure_row(gateway, certs, bcerts, tmp_path, token, make, status):
    backend, close, keystores = make(certs, bcerts)
    try:
        port = testenv.free_port()
        cfg = _config(certs, tmp_path, port, backend,
                      timeouts={"backend_connect": 1, "backend_response": 1},
                      truststores={"test-ca": {"type": "pem", "file": certs.ca.cert},
                                   "client-ca": {"type": "pem", "file": bcerts.client_ca.cert}})
        cfg["keystores"].update(keystores)
        gw = gateway(cfg)
        if token == "no_target":
            assert gw.wait_log(lambda s: "health check failed" in s, timeout=5), gw.log_tail()
        with Conn(port, timeout=testenv.t(10)) as c:
            r = c.request("GET", "/x")
        assert r.status == status, (r.status, r.body[:300], gw.log_tail(20))
        assert token in r.text, "the %d body does not carry %r: %r" % (status, token, r.body[:300])
        st = _status(port)
        fails = st["backend_failures"]
        assert fails.get(token) == 1, fails
        assert sum(fails.values()) == 1, {k: v for k, v in fails.items() if v}
        assert st["backends"]["timeouts"] == (1 if status == 504 else 0), st["backends"]
        lines = gw.log_lines("backend error:", "reason=%s:" % token, "listener=public",
                             "backend=app")
        assert len(lines) == 1, gw.log_tail(20)
    finally:
        close()


# ---------------------------------------------------------------------------------------------
# requests refused by the gateway itself

def _many_names_client(certs, d):
    """A client certificate (signed by the test CA) with 80 long DNS names: forwarded whole
    (forward: both), it makes the backend's head overflow its buffer."""
    import subprocess
    key, csr, crt, ext = (os.path.join(d, n) for n in ("big.key", "big.csr", "big.crt", "big.ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join("DNS:name-%02d.%s.example" % (i, "x" * 40)
                                             for i in range(80)) + "\n")
    for cmd in (["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
                ["req", "-new", "-key", key, "-subj", "/CN=big/O=Org", "-out", csr],
                ["x509", "-req", "-in", csr, "-CA", certs.ca.cert, "-CAkey", certs.ca.key,
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt]):
        subprocess.run(["openssl"] + cmd, check=True, capture_output=True, cwd=d)
    ctx = testenv.tls_context()
    ctx.load_cert_chain(crt, key)
    return ctx


def _raw(port, data, timeout=5, ctx=None):
    """Sends raw bytes over TLS; returns (status, body, everything read) of the one answer (its
    Content-Length body, or what came until the gateway closed). A hang fails the test."""
    s = (ctx or testenv.tls_context()).wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=testenv.t(timeout)),
        server_hostname="localhost")
    got = b""
    try:
        s.sendall(data)
        while True:
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                n = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")
                     if l.lower().startswith(b"content-length:")]
                if n and len(body) >= n[0]:
                    break
            try:
                d = s.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            except socket.timeout:
                raise testenv.Hang("no complete answer within %.0f s: %r" % (testenv.t(timeout),
                                                                            got[:300]))
            if not d:
                break
            got += d
    finally:
        s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else None
    return status, body, got


H = b"Host: localhost\r\n"
REQUEST_ROWS = [
    # token, request bytes, status, sentence, config overrides
    ("malformed_request", b"GET / HTTP/1.1\r\n" + H + b"Bad Header Line\r\n\r\n", 400,
     "malformed request", {}),
    ("request_head_too_large", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 40000 + b"\r\n\r\n",
     431, "request header fields too large", {}),
    ("forwarded_head_too_large", b"GET / HTTP/1.1\r\n" + H + b"X-Fill: " + b"a" * 900 + b"\r\n\r\n",
     431, "request head too large",
     {"limits": {"max_header_bytes": 1024},
      "tls": {"client_auth": {"mode": "optional", "truststore": "test-ca", "forward": "both"}}}),
    ("request_headers_timeout", b"GET / HTTP/1.1\r\n" + H, 408,
     "request headers not received in time", {"timeouts": {"request_headers": 1}}),
    ("request_body_timeout", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\nxx", 408,
     "request body not received in time", {"timeouts": {"request_body": 1}}),
    ("unsupported_http_version", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505,
     "only HTTP/1.0 and HTTP/1.1 are supported on this port", {}),
    ("unsupported_transfer_coding",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
     "transfer codings other than chunked are not implemented", {}),
    ("transfer_encoding_in_http10",
     b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "Transfer-Encoding is not allowed in an HTTP/1.0 request", {}),
    ("connect_method", b"CONNECT localhost:443 HTTP/1.1\r\n" + H + b"\r\n", 405,
     "CONNECT is not supported", {}),
    ("host_repeated", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400, "more than one Host header", {}),
    ("bad_target_form", b"GET ftp://localhost/x HTTP/1.1\r\n" + H + b"\r\n", 400,
     "request target is neither a path nor an http(s) URI", {}),
    ("userinfo_in_target", b"GET http://user@localhost/x HTTP/1.1\r\n" + H + b"\r\n", 400,
     "user information in the request target is not accepted", {}),
    ("host_missing", b"GET / HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 request without Host header", {}),
    ("host_invalid", b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", 400, "invalid Host", {}),
    ("malformed_target", b"GET /%zz HTTP/1.1\r\n" + H + b"\r\n", 400, "malformed request target",
     {}),
    ("star_target", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400,
     'request target "*" is only for OPTIONS', {}),
    ("underscore_in_field_name", b"GET / HTTP/1.1\r\n" + H + b"X_Forwarded_For: 1.2.3.4\r\n\r\n",
     400, "header field names with underscores are not accepted",
     {"http": {"underscores_in_headers": "reject"}}),
    ("no_route", b"GET /elsewhere HTTP/1.1\r\n" + H + b"\r\n", 404,
     "no route matches this host and path",
     {"routes": [{"path_prefix": "/app/", "backend": "app"}]}),
    ("client_cert_required_for_route", b"GET /private/x HTTP/1.1\r\n" + H + b"\r\n", 403,
     "a client certificate is required for this path",
     {"tls": {"client_auth": {"mode": "optional", "truststore": "test-ca"}},
      "routes": [{"path_prefix": "/private/", "backend": "app", "client_auth": "require"},
                 {"path_prefix": "/", "backend": "app"}]}),
    ("client_cert_not_allowed_for_route", b"GET /private/x HTTP/1.1\r\n" + H + b"\r\n", 403,
     "this client certificate is not allowed for this path",
     {"tls": {"client_auth": {"mode": "optional", "truststore": "test-ca"}},
      "routes": [{"path_prefix": "/private/", "backend": "app",
                  "allowed_subjects": ["CN=nobody"]},
                 {"path_prefix": "/", "backend": "app"}]}),
    ("client_cert_header_refused",
     b"GET / HTTP/1.1\r\n" + H + b"X-Client-Cert: not-a-certificate\r\n\r\n", 403,
     "the client certificate passed by the front balancer is not accepted",
     {"tls": {"client_auth": {"mode": "optional", "truststore": "test-ca",
                              "from_header": {"name": "X-Client-Cert",
                                              "trusted_from": ["127.0.0.1"]}}}}),
]


@pytest.mark.parametrize("token,data,status,sentence,over", REQUEST_ROWS,
                         ids=[r[0] for r in REQUEST_ROWS])
def test_request_refusal_row(gateway, origin, certs, tmp_path, token, data, status, sentence,
                             over):
    o = origin("app")
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port, {"targets": [o.address]},
                  truststores={"test-ca": {"type": "pem", "file": certs.ca.cert}}, **over)
    gw = gateway(cfg)
    ctx = _many_names_client(certs, str(tmp_path)) if token == "forwarded_head_too_large" else None
    got_status, body, raw = _raw(port, data, ctx=ctx)
    assert got_status == status, (token, raw[:300], gw.log_tail(10))
    assert sentence.encode() in body, (token, body[:300])
    if token != "request_body_timeout":  # (its head went on before the body stalled)
        assert o.requests == [], "a refused request reached the backend: %r" % o.requests
    fails = _status(port)["request_failures"]
    assert fails.get(token) == 1, fails
    assert sum(fails.values()) == 1, {k: v for k, v in fails.items() if v}
    lines = gw.log_lines("client 127.0.0.1:", "listener=public", "reason=%s:" % token)
    assert len(lines) == 1, gw.log_tail(20)


# ---------------------------------------------------------------------------------------------
# handshake failures not produced by test_08 (versions, suites, groups, SSLv2, plain HTTP,
# hang-ups, timeouts) or test_21 (client certificates)

def _hs_alpn(port, certs):
    ctx = testenv.tls_context()
    ctx.set_alpn_protocols(["spdy/3.1"])  # the listener offers h2 and http/1.1 only
    with socket.create_connection(("127.0.0.1", port), timeout=testenv.t(5)) as s:
        ctx.wrap_socket(s, server_hostname="localhost")


def _hs_bytes(data):
    def run(port, certs):
        with socket.create_connection(("127.0.0.1", port), timeout=testenv.t(5)) as s:
            s.sendall(data)
            while s.recv(4096):
                pass
    return run


def _hs_client_alert(port, certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing: aborts with unknown_ca
    ctx.load_verify_locations(certs.other.cert)
    with socket.create_connection(("127.0.0.1", port), timeout=testenv.t(5)) as s:
        ctx.wrap_socket(s, server_hostname="localhost")


def _hs_sigalg(port, certs):
    # the listener has only an ECDSA key; the client accepts only RSA-PSS signatures
    r = testenv.s_client(port, "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256")
    assert not r.connected, r


HANDSHAKE_ROWS = [
    ("no_shared_alpn", _hs_alpn),
    ("not_tls", _hs_bytes(b"\x00\x01\x02\x03 not a TLS record at all\r\n\r\n")),
    # a handshake record whose ClientHello is cut short inside
    ("protocol_error", _hs_bytes(b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03")),
    ("client_alert", _hs_client_alert),
    ("no_shared_sigalg", _hs_sigalg),
]


@pytest.mark.parametrize("token,client", HANDSHAKE_ROWS, ids=[r[0] for r in HANDSHAKE_ROWS])
def test_handshake_failure_row(gateway, origin, certs, tmp_path, token, client):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"targets": [o.address]}))
    before = _status(port)["handshake_failures"]
    try:
        client(port, certs)
    except (ssl.SSLError, ConnectionError):
        pass  # refused, as it should be
    assert gw.wait_log(lambda s: "reason=%s:" % token in s), gw.log_tail(20)
    after = _status(port)["handshake_failures"]
    changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert changed == {token: 1}, changed
    lines = gw.log_lines("TLS handshake failed: peer=127.0.0.1:", "listener=public",
                         "reason=%s:" % token)
    assert len(lines) == 1, gw.log_tail(20)
