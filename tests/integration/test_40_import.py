"""`tlsgate import`: each source gateway's config written as its documentation writes it, with
keystores made by keytool and openssl, imported, checked by `tlsgate check`, served, and probed
with real clients (openssl s_client per version and suite, curl, Python ssl): the versions and
suites the source allows, client certificates required/optional/refused as the source says,
backends verified when the source verifies them, the source's JKS/JCEKS/PKCS#12 stores serving
the handshake. Malformed sources exit 2 with a located message and write nothing."""
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading

import pytest

import testenv
from testenv.backend_certs import make_backend_certs
from testenv.env import t

STOREPASS = "st0re-secret"
SECRETS = [STOREPASS, "k3y-secret", "trust-secret"]


@pytest.fixture(scope="module")
def bcerts(tmp_path_factory, certs):
    return make_backend_certs(str(tmp_path_factory.mktemp("bcerts")), certs)


# ---------------------------------------------------------------------------------------------
# helpers


def _run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("%s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def _p12_from_pem(d, name, kp, password, alias):
    """A PKCS#12 store (keytool's default format) of a PEM key pair, via openssl."""
    path = os.path.join(d, name)
    _run(["openssl", "pkcs12", "-export", "-in", kp.cert, "-inkey", kp.key, "-name", alias,
          "-out", path, "-passout", "pass:" + password])
    return path


def _need_keytool():
    if shutil.which("keytool") is None:
        pytest.skip("keytool (openjdk-17-jre-headless) is not installed")


def _java_store(d, name, kind, kp, password, alias, keypass=None):
    """A keytool-made JKS/JCEKS/PKCS12 holding the PEM key pair kp under alias."""
    _need_keytool()
    p12 = _p12_from_pem(d, name + ".src.p12", kp, "tmp-pass", alias)
    path = os.path.join(d, name)
    _run(["keytool", "-importkeystore", "-noprompt", "-srckeystore", p12, "-srcstoretype",
          "PKCS12", "-srcstorepass", "tmp-pass", "-destkeystore", path, "-deststoretype", kind,
          "-deststorepass", password, "-destkeypass", keypass or password, "-srcalias", alias,
          "-destalias", alias])
    os.unlink(p12)
    return path


def _trust_store(d, name, kind, password, certs_by_alias):
    _need_keytool()
    path = os.path.join(d, name)
    for alias, cert in certs_by_alias.items():
        _run(["keytool", "-importcert", "-noprompt", "-storetype", kind, "-keystore", path,
              "-storepass", password, "-alias", alias, "-file", cert])
    return path


def imp(kind, src, *args, out=True):
    """Runs tlsgate import; returns (exit code, stderr, config dict or None)."""
    d = os.path.dirname(src)
    outp = os.path.join(d, "imported.json")
    if os.path.exists(outp):
        os.unlink(outp)
    r = testenv.tlsgate("import", kind, src, *(["-o", outp] if out else []), *args)
    for s in SECRETS:
        assert s not in r.stderr, "a secret in the import report:\n" + r.stderr
    cfg = None
    if os.path.exists(outp):
        with open(outp) as f:
            cfg = json.load(f)
    return r.returncode, r.stderr, cfg


def check_ok(cfg, tmp_path, env=None):
    p = os.path.join(str(tmp_path), "check.json")
    with open(p, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([testenv.BIN, "check", "-c", p], capture_output=True, text=True,
                       timeout=t(60), env=dict(os.environ, **(env or {})))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def report_line(err, *needles):
    lines = [ln for ln in err.splitlines() if all(n in ln for n in needles)]
    assert lines, "no report line with %s in:\n%s" % (needles, err)
    return lines[0]


def serve(gateway, cfg, tmp_path, env=None):
    cfg = dict(cfg)
    cfg["workers"] = 1
    cfg["state_dir"] = str(tmp_path / "state")
    return gateway(cfg, env=env)


class TlsBackend:
    """An HTTPS origin (Python ssl, threaded): answers every GET with 200 "backend NAME PATH"."""

    def __init__(self, name, keypair, client_ca=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(keypair.cert, keypair.key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        outer = self
        self.name = name
        self.client_subjects = []

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                peer = self.connection.getpeercert()
                if peer:
                    outer.client_subjects.append(dict(x[0] for x in peer["subject"]))
                body = ("backend %s %s\n" % (outer.name, self.path)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def backend():
    made = []

    def make(*a, **kw):
        b = TlsBackend(*a, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def curl_get(port, path, certs, client=None, extra=()):
    args = ["--cacert", certs.ca.cert, "https://localhost:%d%s" % (port, path), "--resolve",
            "localhost:%d:127.0.0.1" % port, "-o", "-", "-w", "\n%{http_code}"] + list(extra)
    if client:
        args += ["--cert", client.cert, "--key", client.key]
    r = testenv.curl(*args)
    out = r.stdout.decode("utf-8", "replace")
    return r.returncode, out


def sclient(port, *args, client=None):
    extra = list(args)
    if client:
        extra += ["-cert", client.cert, "-key", client.key]
    return testenv.s_client(port, *extra, input_=b"Q\n")


# ---------------------------------------------------------------------------------------------
# KrakenD


def _krakend(d, port, tls, client_tls=None, endpoints=None, **top):
    cfg = {"$schema": "https://www.krakend.io/schema/v2.5/krakend.json", "version": 3,
           "port": port, "listen_ip": "127.0.0.1", "timeout": "3s", "tls": tls,
           "endpoints": endpoints or []}
    if client_tls is not None:
        cfg["client_tls"] = client_tls
    cfg.update(top)
    p = os.path.join(d, "krakend.json")
    with open(p, "w") as f:
        json.dump(cfg, f, indent=2)
    return p


def test_krakend_mtls_suites_and_backend_verification(gateway, certs, bcerts, backend, tmp_path):
    good = backend("good", bcerts.server)
    wrong = backend("wrong", bcerts.wrong_name)
    port = testenv.free_port()
    src = _krakend(str(tmp_path), port, {
        "public_key": certs.ec.cert, "private_key": certs.ec.key,
        "min_version": "TLS12", "max_version": "TLS13",
        "curve_preferences": [23],
        "prefer_server_cipher_suites": True,
        "cipher_suites": [49195, 49199],
        "enable_mtls": True, "ca_certs": [bcerts.client_ca.cert],
        "disable_system_ca_pool": True,
    }, client_tls={"ca_certs": [certs.ca.cert], "disable_system_ca_pool": True},
        endpoints=[
            {"endpoint": "/api/{id}", "backend": [
                {"host": ["https://localhost:%d" % good.port], "url_pattern": "/api/{id}"}]},
            {"endpoint": "/wrong", "backend": [
                {"host": ["https://localhost:%d" % wrong.port], "url_pattern": "/wrong"}]},
        ])
    rc, err, cfg = imp("krakend", src)
    assert rc == 0, err
    assert "mapped fully" in err
    assert "ignored by KrakenD itself" in report_line(err, "tls.prefer_server_cipher_suites")
    n = [i for i, ln in enumerate(open(src).read().splitlines(), 1) if "min_version" in ln][0]
    assert "krakend.json:%d: tls.min_version -> " % n in report_line(err, "tls.min_version")
    check_ok(cfg, tmp_path)
    gw = serve(gateway, cfg, tmp_path)
    # TLS 1.2 with the listed ECDSA suite, and 1.3; not 1.1; only P-256
    r = sclient(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                client=bcerts.client_a)
    assert r.connected and r.protocol == "TLSv1.2", r.out + r.err
    assert r.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"
    r = sclient(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384",
                client=bcerts.client_a)
    assert not r.connected
    r = sclient(port, "-tls1_3", client=bcerts.client_a)
    assert r.connected and r.protocol == "TLSv1.3"
    r = sclient(port, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0", client=bcerts.client_a)
    assert not r.connected
    r = sclient(port, "-tls1_3", "-groups", "X25519", client=bcerts.client_a)
    assert not r.connected
    # client certificates: required, and only from the client CA
    rc_, out = curl_get(port, "/api/7", certs, client=bcerts.client_a)
    assert rc_ == 0 and out.endswith("200") and "backend good /api/7" in out, out
    rc_, out = curl_get(port, "/api/7", certs)
    assert rc_ != 0 or not out.endswith("200")
    rc_, out = curl_get(port, "/api/7", certs, client=bcerts.client_foreign)
    assert rc_ != 0 or not out.endswith("200")
    # the backend whose certificate names another host is refused
    rc_, out = curl_get(port, "/wrong", certs, client=bcerts.client_a)
    assert out.endswith("502"), out
    assert gw.wait_log(lambda s: "name_mismatch" in s)


def test_krakend_traps(certs, tmp_path):
    src = _krakend(str(tmp_path), testenv.free_port(), {
        "public_key": certs.ec.cert, "private_key": certs.ec.key,
        "min_version": "TLSv1.2", "enable_mtls": True, "ca_certs": [certs.ca.cert],
    })
    rc, err, cfg = imp("krakend", src)
    assert rc == 1, err
    # KrakenD's unknown min_version means TLS 1.3; kept so, and said
    line = report_line(err, "tls.min_version", "warning")
    assert "TLS 1.3" in line and "krakend.json:" in line
    assert cfg["listeners"][0]["tls"]["min_version"] == "TLS1.3"
    # the system pool KrakenD trusts for client certificates is named
    assert "system pool" in report_line(err, "tls.enable_mtls", "warning")
    # no endpoints: routed to the status page, with a warning
    assert report_line(err, "endpoints", "--backend")
    check_ok(cfg, tmp_path)


def test_krakend_disable_system_ca_pool(certs, tmp_path):
    """lura's ParseTLSConfig: client CAs = system pool (unless disable_system_ca_pool) + ca_certs
    + the tls public_key files; backends: system pool (unless disabled) + client_tls.ca_certs."""
    both = str(tmp_path / "server-and-ca.pem")
    with open(both, "w") as f:
        f.write(open(certs.ec.cert).read() + open(certs.ca.cert).read())
    # disabled, no ca_certs: the pool is the public_key file alone
    src = _krakend(str(tmp_path), testenv.free_port(), {
        "public_key": certs.ec.cert, "private_key": certs.ec.key, "min_version": "TLS13",
        "enable_mtls": True, "disable_system_ca_pool": True},
        client_tls={"disable_system_ca_pool": True})
    rc, err, cfg = imp("krakend", src)
    ca = cfg["listeners"][0]["tls"]["client_auth"]
    assert ca["truststore"] == "krakend-own", ca
    assert cfg["truststores"]["krakend-own"] == {"type": "pem", "file": certs.ec.cert}
    assert "public_key" in report_line(err, "tls.disable_system_ca_pool", "->")
    # backends: KrakenD would trust nothing at all
    assert "trusts no CA" in report_line(err, "client_tls.disable_system_ca_pool", "warning")
    assert rc == 1, err
    check_ok(cfg, tmp_path)
    # a public_key file that carries its issuer: KrakenD admits what that issuer signed
    src = _krakend(str(tmp_path), testenv.free_port(), {
        "public_key": both, "private_key": certs.ec.key, "min_version": "TLS13",
        "enable_mtls": True, "ca_certs": [certs.ca.cert], "disable_system_ca_pool": True})
    rc, err, cfg = imp("krakend", src)
    assert rc == 1, err
    assert "2 certificates of public_key" in report_line(err, "tls.enable_mtls", "warning")
    assert "exact" in report_line(err, "tls.disable_system_ca_pool", "->")


def test_krakend_endpoint_path_too_long_is_not_mapped(certs, tmp_path):
    """An endpoint path over 255 bytes before its first {placeholder} is not mapped (cut short,
    its prefix would route more paths than KrakenD's endpoint; a 300-byte one overran the
    prefix buffer, found by fuzz_import); the other endpoints still are."""
    long_path = "/" + "a" * 299 + "/{id}"
    eps = [{"endpoint": long_path, "backend": [{"host": ["http://127.0.0.1:9"],
                                                "url_pattern": long_path}]},
           {"endpoint": "/users/{id}", "backend": [{"host": ["http://127.0.0.1:9"],
                                                    "url_pattern": "/users/{id}"}]}]
    src = _krakend(str(tmp_path), testenv.free_port(),
                   {"public_key": certs.ec.cert, "private_key": certs.ec.key}, endpoints=eps)
    rc, err, cfg = imp("krakend", src)
    assert rc == 1, err
    assert "over 255 bytes; not mapped" in report_line(err, "endpoints[0]", "warning")
    prefixes = [r["path_prefix"] for r in cfg["listeners"][0]["routes"]]
    assert "/users/" in prefixes and not any(p.startswith("/aaa") for p in prefixes), prefixes
    check_ok(cfg, tmp_path)


def test_krakend_malformed(certs, tmp_path):
    p = os.path.join(str(tmp_path), "krakend.json")
    with open(p, "w") as f:
        f.write('{\n  "port": 8443,\n  "tls": {"public_key": "a.pem",\n')
    rc, err, cfg = imp("krakend", p)
    assert rc == 2 and cfg is None, err
    assert "krakend.json:4:" in err and "error" in err
    src = _krakend(str(tmp_path), 8443, {"public_key": certs.ec.cert,
                                         "private_key": str(tmp_path / "missing.key")})
    rc, err, cfg = imp("krakend", src)
    assert rc == 2 and cfg is None, err
    assert "missing.key" in err and "No such file" in err
    assert not os.path.exists(os.path.join(str(tmp_path), "imported.json"))


# ---------------------------------------------------------------------------------------------
# Corda 5 (corda.p2p.gateway)


def _corda_section(port, tls_type="MUTUAL", rev="SOFT_FAIL"):
    return {
        "serversConfiguration": [{"hostAddress": "127.0.0.1", "hostPort": port, "urlPath": "/"}],
        "maxRequestSize": 500000000,
        "connectionConfig": {"maxClientConnections": 100, "acquireTimeout": 10,
                             "connectionIdleTimeout": 60, "responseTimeout": 1000,
                             "retryDelay": 1000},
        "sslConfig": {"tlsType": tls_type, "revocationCheck": {"mode": rev}},
    }


def test_corda_mutual_keeps_the_empty_allow_list(gateway, certs, bcerts, tmp_path):
    d = str(tmp_path)
    port = testenv.free_port()
    # the operator supplies what Corda pushes at run time
    shutil.copy(certs.ec.cert, os.path.join(d, "corda-p2p-tls.crt"))
    shutil.copy(certs.ec.key, os.path.join(d, "corda-p2p-tls.key"))
    shutil.copy(bcerts.client_ca.cert, os.path.join(d, "corda-p2p-trust.pem"))
    src = os.path.join(d, "gateway-config.json")
    with open(src, "w") as f:  # the body of PUT /api/v5_1/config, as the REST API takes it
        json.dump({"section": "corda.p2p.gateway", "version": 0, "schemaVersion":
                   {"major": 1, "minor": 0}, "config": json.dumps(_corda_section(port))}, f,
                  indent=2)
    rc, err, cfg = imp("corda", src)
    assert rc == 1, err
    assert "allowed_subjects" in report_line(err, "sslConfig.tlsType", "warning", "nobody")
    assert report_line(err, "maxRequestSize", "warning")
    assert "soft_fail" in report_line(err, "revocationCheck.mode")
    assert cfg["timeouts"]["handshake"] == 10
    check_ok(cfg, tmp_path)
    gw = serve(gateway, cfg, tmp_path)
    # TLS 1.3 only, AES-GCM only
    r = sclient(port, "-tls1_2", client=bcerts.client_a)
    assert not r.connected
    r = sclient(port, "-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256",
                client=bcerts.client_a)
    assert not r.connected
    for suite in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"):
        r = sclient(port, "-tls1_3", "-ciphersuites", suite, client=bcerts.client_a)
        assert r.connected and r.cipher == suite, r.out + r.err
    # Corda's fixed 10 s for a handshake: a client that never starts one is closed then
    import socket
    import time
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(t(30))
    t0 = time.monotonic()
    try:
        assert s.recv(1) == b""
    except ConnectionResetError:
        pass
    waited = time.monotonic() - t0
    s.close()
    assert 9.0 <= waited <= t(14), waited
    # a certificate from the trust roots is still refused: the MGM's list is empty
    rc_, out = curl_get(port, "/", certs, client=bcerts.client_a)
    assert not out.endswith("200"), out
    assert gw.wait_log(lambda s: "client_cert_not_allowed" in s)
    # once the operator names the allowed subject, it is admitted
    cfg["listeners"][0]["tls"]["client_auth"]["allowed_subjects"] = ["CN=client-a,O=Test"]
    gw.reload(dict(cfg, workers=1, state_dir=str(tmp_path / "state")))

    def admitted():
        return curl_get(port, "/", certs, client=bcerts.client_a)[1].endswith("200")
    assert testenv.wait_until(admitted, t(5))
    rc_, out = curl_get(port, "/", certs)
    assert not out.endswith("200")


def test_corda_malformed(tmp_path):
    d = str(tmp_path)
    src = os.path.join(d, "gateway.conf")
    with open(src, "w") as f:
        f.write("sslConfig {\n  tlsType = MUTUAL\n}\n")
    rc, err, cfg = imp("corda", src)
    assert rc == 2 and cfg is None
    assert "gateway.conf:1:" in err and "HOCON" in err, err
    sec = _corda_section(8443, tls_type="TWO_WAY")
    with open(src, "w") as f:
        json.dump(sec, f, indent=2)
    rc, err, cfg = imp("corda", src)
    assert rc == 2 and cfg is None
    line = report_line(err, "error", "tlsType")
    assert "TWO_WAY" in line and "ONE_WAY" in line
    n = [i for i, ln in enumerate(open(src).read().splitlines(), 1) if "tlsType" in ln][0]
    assert "gateway.conf:%d:" % n in line, line
    # broken JSON is not called HOCON
    with open(src, "w") as f:
        f.write('{"serversConfiguration": [{"hostAddress": "https://x", "hostPort": 1}],\n')
    rc, err, cfg = imp("corda", src)
    assert rc == 2 and "gateway.conf:2:" in err and "HOCON" not in err, err


def test_import_usage(tmp_path):
    r = testenv.tlsgate("import")
    assert r.returncode == 2 and "usage: tlsgate import" in r.stderr
    r = testenv.tlsgate("import", "--help")
    assert r.returncode == 0 and "krakend|mgw|kaazing|corda|apim" in r.stdout
    p = tmp_path / "x.json"
    p.write_text("{}")
    r = testenv.tlsgate("import", "nginx", str(p))
    assert r.returncode == 2 and "unknown source kind \"nginx\"" in r.stderr
    r = testenv.tlsgate("import", "krakend", str(tmp_path / "absent.json"))
    assert r.returncode == 2 and "absent.json: error: cannot read" in r.stderr


# ---------------------------------------------------------------------------------------------
# WSO2 API Microgateway 3.x (micro-gw.conf)

MGW_CONF = """# micro-gw.conf, as the Microgateway 3.2 docs write it
[listenerConfig]
host = "127.0.0.1"
httpsPort = %(port)d
keyStorePath = "${mgw-runtime.home}/runtime/bre/security/ballerinaKeystore.p12"
keyStorePassword = "%(storepass)s"
trustStorePath = "${mgw-runtime.home}/runtime/bre/security/ballerinaTruststore.p12"
trustStorePassword = "trust-secret"

[mutualSSLConfig]
protocolName = "TLS"
ciphers = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 , SSL_RSA_WITH_3DES_EDE_CBC_SHA"
sslVerifyClient = "optional"

[[mutualSSLConfig.api.certificates]]
  apiName = "PizzaShackAPI"
  apiVersion = "1.0.0"
  aliasList = ["client1"]

[httpClients]
  verifyHostname = true
  [httpClients.sslConfig]
    trustStorePath = "${mgw-runtime.home}/runtime/bre/security/backendTruststore.jks"
    trustStorePassword = "k3y-secret"
    protocolVersions = ["TLSv1.2"]
"""


def test_mgw_defaults_optional_clients_and_backend_trust(gateway, certs, bcerts, backend,
                                                         tmp_path):
    home = tmp_path / "mgw"
    sec = home / "runtime" / "bre" / "security"
    sec.mkdir(parents=True)
    (home / "conf").mkdir()
    _java_store(str(sec), "ballerinaKeystore.p12", "PKCS12", certs.ec, STOREPASS, "ballerina")
    _trust_store(str(sec), "ballerinaTruststore.p12", "PKCS12", "trust-secret",
                 {"client1": bcerts.client_ca.cert})
    # MGW opens the clients' truststore with [listenerConfig]'s password
    _trust_store(str(sec), "backendTruststore.jks", "JKS", "trust-secret",
                 {"ca": certs.ca.cert})
    port = testenv.free_port()
    src = str(home / "conf" / "micro-gw.conf")
    with open(src, "w") as f:
        f.write(MGW_CONF % {"port": port, "storepass": STOREPASS})
    good = backend("good", bcerts.server)
    rc, err, cfg = imp("mgw", src, "--backend", "https://localhost:%d" % good.port)
    assert rc == 1, err
    assert "TLS 1.1" in report_line(err, "protocolVersions", "warning")
    assert "trimmed" in report_line(err, "mutualSSLConfig.ciphers", "padded")
    assert report_line(err, "mutualSSLConfig.ciphers", "listed twice")
    assert report_line(err, "SSL_RSA_WITH_3DES_EDE_CBC_SHA", "left out")
    assert "[listenerConfig]" in report_line(err, "httpClients.sslConfig.trustStorePassword",
                                             "warning")
    assert report_line(err, "mutualSSLConfig.api.certificates", "PizzaShackAPI")
    assert ":12:" in report_line(err, "mutualSSLConfig.ciphers", "->")
    tls = cfg["listeners"][0]["tls"]
    assert (tls["min_version"], tls["max_version"]) == ("TLS1.1", "TLS1.2")
    assert cfg["keystores"]["mgw"]["type"] == "pkcs12"
    check_ok(cfg, tmp_path)
    serve(gateway, cfg, tmp_path)
    # the source's TLS 1.1 default stays on, with its CBC suite; no TLS 1.3
    r = sclient(port, "-tls1_1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    assert r.connected and r.protocol == "TLSv1.1", r.out + r.err
    r = sclient(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert r.connected and r.protocol == "TLSv1.2"
    r = sclient(port, "-tls1_3")
    assert not r.connected
    # optional: without a certificate admitted, with one from the truststore admitted, with an
    # unknown one refused; requests reach the backend verified by the JKS truststore
    for client in (None, bcerts.client_a):
        rc_, out = curl_get(port, "/pizza", certs, client=client)
        assert rc_ == 0 and out.endswith("200") and "backend good /pizza" in out, out
    rc_, out = curl_get(port, "/pizza", certs, client=bcerts.client_foreign)
    assert not out.endswith("200")


MGW_API_CONF = """# micro-gw.conf with per-API client certificates (Microgateway 3.2 docs)
[listenerConfig]
host = "127.0.0.1"
httpsPort = %(port)d
keyStorePath = "${mgw-runtime.home}/runtime/bre/security/ballerinaKeystore.p12"
keyStorePassword = "%(storepass)s"
trustStorePath = "${mgw-runtime.home}/runtime/bre/security/ballerinaTruststore.p12"
trustStorePassword = "trust-secret"

[mutualSSLConfig]
protocolName = "TLS"
protocolVersions = ["TLSv1.2"]
ciphers = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
sslVerifyClient = "optional"
certificateHeader = "X-WSO2-CLIENT-CERTIFICATE"
isClientCertificateValidationEnabled = true

[[mutualSSLConfig.api.certificates]]
  apiName = "PizzaShackAPI"
  apiVersion = "1.0.0"
  aliasList = ["client1"]
"""


def test_mgw_per_api_certificates_become_route_allow_lists(gateway, origin, certs, bcerts,
                                                           tmp_path):
    home = tmp_path / "mgw"
    sec = home / "runtime" / "bre" / "security"
    sec.mkdir(parents=True)
    (home / "conf").mkdir()
    _java_store(str(sec), "ballerinaKeystore.p12", "PKCS12", certs.ec, STOREPASS, "ballerina")
    # the CA the clients chain to, and client1's own certificate under its alias
    _trust_store(str(sec), "ballerinaTruststore.p12", "PKCS12", "trust-secret",
                 {"clientca": bcerts.client_ca.cert, "client1": bcerts.client_a.cert})
    port = testenv.free_port()
    src = str(home / "conf" / "micro-gw.conf")
    with open(src, "w") as f:
        f.write(MGW_API_CONF % {"port": port, "storepass": STOREPASS})
    good = origin("app")
    # without the API's base path the list cannot be placed: a warning, exit 1
    rc, err, cfg = imp("mgw", src, "--backend", "http://127.0.0.1:%d" % good.port)
    assert rc == 1, err
    assert "--api PizzaShackAPI:1.0.0=/BASEPATH" in report_line(
        err, "mutualSSLConfig.api.certificates", "warning")
    assert "--header-from" in report_line(err, "mutualSSLConfig.certificateHeader", "warning")
    # with the base path and the balancer's address, every key maps: exit 0
    rc, err, cfg = imp("mgw", src, "--backend", "http://127.0.0.1:%d" % good.port,
                       "--api", "PizzaShackAPI:1.0.0=/pizzashack/1.0.0",
                       "--header-from", "127.0.0.2/32")
    assert rc == 0, err
    assert cfg["listeners"][0]["tls"]["client_auth"]["from_header"] == {
        "name": "X-WSO2-CLIENT-CERTIFICATE", "trusted_from": ["127.0.0.2/32"]}
    assert "CN=client-a" in report_line(err, "mutualSSLConfig.api.certificates", "client1")
    routes = cfg["listeners"][0]["routes"]
    assert routes[0]["path_prefix"] == "/pizzashack/1.0.0", routes
    assert routes[0]["allowed_subjects"] == ["CN=client-a,O=Test"], routes
    assert routes[-1]["path_prefix"] == "/" and "allowed_subjects" not in routes[-1], routes
    check_ok(cfg, tmp_path)
    serve(gateway, cfg, tmp_path)
    # client-a (alias client1) reaches the API; client-b, chained to the same trusted CA, only
    # the rest; without a certificate the API is refused too
    rc_, out = curl_get(port, "/pizzashack/1.0.0/menu", certs, client=bcerts.client_a)
    assert out.endswith("200"), out
    rc_, out = curl_get(port, "/pizzashack/1.0.0/menu", certs, client=bcerts.client_b)
    assert out.endswith("403") and "not allowed for this path" in out, out
    rc_, out = curl_get(port, "/pizzashack/1.0.0/menu", certs)
    assert out.endswith("403"), out
    rc_, out = curl_get(port, "/other", certs, client=bcerts.client_b)
    assert out.endswith("200"), out
    # the balancer (127.0.0.2) passes client-a's certificate URL-encoded, as WSO2 does; from
    # 127.0.0.1 the same header is ignored
    import urllib.parse
    hdr = "X-WSO2-CLIENT-CERTIFICATE: " + urllib.parse.quote(open(bcerts.client_a.cert).read(),
                                                             safe="")
    rc_, out = curl_get(port, "/pizzashack/1.0.0/menu", certs,
                        extra=("--interface", "127.0.0.2", "-H", hdr))
    assert out.endswith("200"), out
    rc_, out = curl_get(port, "/pizzashack/1.0.0/menu", certs, extra=("-H", hdr))
    assert out.endswith("403"), out


def test_mgw_malformed(tmp_path):
    d = tmp_path / "conf"
    d.mkdir()
    src = str(d / "micro-gw.conf")
    with open(src, "w") as f:
        f.write('[listenerConfig]\nhost = "0.0.0.0"\nhost = "127.0.0.1"\n')
    rc, err, cfg = imp("mgw", src)
    assert rc == 2 and cfg is None
    assert "micro-gw.conf:3:1: error: duplicate key \"host\"" in err, err
    with open(src, "w") as f:
        f.write('[listenerConfig]\nkeyStorePath = "${mgw-runtime.home}/missing.p12"\n'
                'keyStorePassword = "x"\n')
    rc, err, cfg = imp("mgw", src)
    assert rc == 2 and cfg is None
    assert "micro-gw.conf:2:" in err and "missing.p12" in err, err


# ---------------------------------------------------------------------------------------------
# WSO2 API Manager 4.x (repository/conf/deployment.toml)

APIM_TOML = """[server]
hostname = "localhost"
offset = 0

[keystore.primary]
file_name = "wso2carbon.jks"
type = "JKS"
password = "$secret{keystore_password}"
alias = "wso2carbon"
key_password = "$ref{keystore.primary.password}"

[truststore]
file_name = "client-truststore.jks"
type = "JKS"
password = "$env{TRUST_PASS}"

[transport.https.properties]
port = %(servlet)d

[transport.https.sslHostConfig.properties]
protocols = "TLSv1.3"
ciphers = "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384"

[transport.passthru_https.listener]
enable = true
port = %(gateway)d

[transport.passthru_https.listener.parameters]
HttpsProtocols = "TLSv1.2"
PreferredCiphers = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
SSLVerifyClient = "require"

[transport.passthru_https.sender.parameters]
HostnameVerifier = "AllowAll"

[secrets]
keystore_password = "[%(storepass)s]"
"""


def _apim_home(tmp_path, certs, bcerts, servlet, gw_port, text=APIM_TOML):
    home = tmp_path / "wso2am-4.2.0"
    sec = home / "repository" / "resources" / "security"
    conf = home / "repository" / "conf"
    sec.mkdir(parents=True)
    conf.mkdir(parents=True)
    _java_store(str(sec), "wso2carbon.jks", "JKS", certs.ec, STOREPASS, "wso2carbon")
    _trust_store(str(sec), "client-truststore.jks", "JKS", "trust-secret",
                 {"wso2carbon-ca": certs.ca.cert, "partner-ca": bcerts.client_ca.cert})
    src = str(conf / "deployment.toml")
    with open(src, "w") as f:
        f.write(text % {"servlet": servlet, "gateway": gw_port, "storepass": STOREPASS})
    return src


def test_apim_transports_secrets_and_client_certificates(gateway, certs, bcerts, backend,
                                                         tmp_path):
    servlet, gw_port = testenv.free_port(), testenv.free_port()
    src = _apim_home(tmp_path, certs, bcerts, servlet, gw_port)
    good = backend("good", bcerts.server)
    rc, err, cfg = imp("apim", src, "--backend", "https://localhost:%d" % good.port)
    assert rc == 1, err
    assert "AllowAll" in report_line(err, "HostnameVerifier", "warning")
    assert report_line(err, "secrets.keystore_password", "plain-text")
    assert report_line(err, "keystore.tls", "keystore.primary.password")
    ks = cfg["keystores"]["tls"]
    assert ks["type"] == "jks" and ks["alias"] == "wso2carbon"
    assert cfg["truststores"]["apim-trust"]["password"] == {"env": "TRUST_PASS"}
    env = {"TRUST_PASS": "trust-secret"}
    check_ok(cfg, tmp_path, env=env)
    serve(gateway, cfg, tmp_path, env=env)
    # the servlet transport: TLS 1.3 only, no client certificates
    r = sclient(servlet, "-tls1_2")
    assert not r.connected
    rc_, out = curl_get(servlet, "/publisher", certs)
    assert rc_ == 0 and out.endswith("200"), out
    # the gateway transport: TLS 1.2 with the listed suites; a client certificate required
    r = sclient(gw_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384",
                client=bcerts.client_a)
    assert r.connected and r.cipher == "ECDHE-ECDSA-AES256-GCM-SHA384", r.out + r.err
    r = sclient(gw_port, "-tls1_3", client=bcerts.client_a)
    assert not r.connected
    rc_, out = curl_get(gw_port, "/pizzashack/1.0.0/menu", certs, client=bcerts.client_a)
    assert rc_ == 0 and out.endswith("200") and "backend good" in out, out
    rc_, out = curl_get(gw_port, "/pizzashack/1.0.0/menu", certs)
    assert not out.endswith("200")
    rc_, out = curl_get(gw_port, "/pizzashack/1.0.0/menu", certs, client=bcerts.client_foreign)
    assert not out.endswith("200")


def test_apim_key_password_trap_and_malformed(certs, bcerts, tmp_path):
    text = APIM_TOML.replace('key_password = "$ref{keystore.primary.password}"',
                             'key_password = "other-key-pass"')
    src = _apim_home(tmp_path, certs, bcerts, 9443, 8243, text)
    rc, err, cfg = imp("apim", src)
    assert rc == 1, err
    line = report_line(err, "keystore.primary.key_password", "warning")
    assert "store password" in line and "other-key-pass" not in err
    assert "key_password" not in cfg["keystores"]["tls"]
    with open(src, "w") as f:
        f.write((text % {"servlet": 9443, "gateway": 8243, "storepass": STOREPASS}).replace(
            "$secret{keystore_password}", "$ref{keystore.nothing.password}"))
    rc, err, cfg = imp("apim", src)
    assert rc == 2 and cfg is None
    assert "deployment.toml:8:" in report_line(err, "error", "keystore.nothing.password"), err
    with open(src, "w") as f:
        f.write("[truststore]\nfile_name = \"client-truststore.jks\"\n[truststore]\n")
    rc, err, cfg = imp("apim", src)
    assert rc == 2 and "deployment.toml:3:1: error: table [truststore] is defined twice" in err


# ---------------------------------------------------------------------------------------------
# Kaazing Gateway 5 (conf/gateway-config.xml)

KAAZING_XML = """<?xml version="1.0" encoding="UTF-8" ?>
<gateway-config xmlns="http://xmlns.kaazing.org/2016/06/gateway">
  <properties>
    <property>
      <name>gateway.hostname</name>
      <value>localhost</value>
    </property>
  </properties>

  <service>
    <name>app-proxy</name>
    <accept>https://${gateway.hostname}:%(port)d/app/</accept>
    <connect>https://localhost:%(backend)d/</connect>
    <type>http.proxy</type>
    <accept-options>
      <ssl.protocols>TLSv1.2</ssl.protocols>
      <ssl.ciphers>HIGH, !aNULL, !MD5</ssl.ciphers>
      <tls.verify-client>optional</tls.verify-client>
      <https.bind>127.0.0.1:%(port)d</https.bind>
    </accept-options>
    <connect-options>
      <ssl.protocols>TLSv1.2</ssl.protocols>
    </connect-options>
  </service>

  <service>
    <name>partner</name>
    <accept>https://localhost:%(port)d/partner/</accept>
    <connect>https://localhost:%(foreign)d/</connect>
    <type>http.proxy</type>
  </service>

  <service>
    <name>echo</name>
    <accept>wss://localhost:%(echo)d/echo</accept>
    <type>echo</type>
  </service>

  <security>
    <keystore>
      <type>JCEKS</type>
      <file>keystore.db</file>
      <password-file>keystore.pw</password-file>
    </keystore>
    <truststore>
      <file>truststore.db</file>
      <password-file>truststore.pw</password-file>
    </truststore>
  </security>
</gateway-config>
"""


def test_kaazing_jceks_optional_clients_and_proxy(gateway, certs, bcerts, backend, tmp_path):
    conf = tmp_path / "kaazing" / "conf"
    conf.mkdir(parents=True)
    _java_store(str(conf), "keystore.db", "JCEKS", certs.ec, STOREPASS, "localhost")
    (conf / "keystore.pw").write_text(STOREPASS + "\n")
    _trust_store(str(conf), "truststore.db", "JKS", "trust-secret",
                 {"client-ca": bcerts.client_ca.cert, "test-ca": certs.ca.cert})
    (conf / "truststore.pw").write_text("trust-secret\n")
    good = backend("good", bcerts.server)
    foreign = backend("foreign", bcerts.foreign)  # a CA the truststore does not hold
    port, echo = testenv.free_port(), testenv.free_port()
    src = str(conf / "gateway-config.xml")
    with open(src, "w") as f:
        f.write(KAAZING_XML % {"port": port, "backend": good.port, "echo": echo,
                               "foreign": foreign.port})
    rc, err, cfg = imp("kaazing", src)
    assert rc == 1, err
    assert "echo" in report_line(err, "type", "warning")
    assert "still refuses a bad one" in report_line(err, "tls.verify-client", "note")
    assert ":17:" in report_line(err, "ssl.ciphers", "HIGH:!aNULL:!MD5")
    ks = cfg["keystores"]["kaazing-localhost"]
    assert ks["type"] == "jceks" and ks["alias"] == "localhost"
    assert ks["password"] == {"file": str(conf / "keystore.pw")}
    check_ok(cfg, tmp_path)
    gw = serve(gateway, cfg, tmp_path)
    r = sclient(port, "-tls1_3")
    assert not r.connected
    r = sclient(port, "-tls1_2")
    assert r.connected and r.protocol == "TLSv1.2"
    for client in (None, bcerts.client_a):
        rc_, out = curl_get(port, "/app/x", certs, client=client)
        assert rc_ == 0 and out.endswith("200") and "backend good /app/x" in out, out
    rc_, out = curl_get(port, "/app/x", certs, client=bcerts.client_foreign)
    assert not out.endswith("200")
    # the second service shares the listener; its backend's CA is unknown: refused
    assert report_line(err, "accept", "shares the listener")
    rc_, out = curl_get(port, "/partner/x", certs)
    assert out.endswith("502"), out
    assert gw.wait_log(lambda s: "unknown_ca" in s)


def test_kaazing_malformed(tmp_path):
    src = str(tmp_path / "gateway-config.xml")
    good = KAAZING_XML % {"port": 9443, "backend": 8443, "echo": 9000, "foreign": 8444}
    with open(src, "w") as f:
        f.write(good[:good.index("<connect>")])
    rc, err, cfg = imp("kaazing", src)
    assert rc == 2 and cfg is None
    assert "gateway-config.xml:13:5: error: Premature end of data" in err, err
    with open(src, "w") as f:
        f.write('<?xml version="1.0"?>\n<!DOCTYPE g [<!ENTITY a "aaaaaaaaaa">]>\n'
                '<gateway-config><service><name>&a;</name></service></gateway-config>\n')
    rc, err, cfg = imp("kaazing", src)
    assert rc == 2 and "DOCTYPE" in err, err
    with open(src, "w") as f:
        f.write(good.replace("keystore.db", "missing.db"))
    rc, err, cfg = imp("kaazing", src)
    assert rc == 2 and "missing.db" in err, err
