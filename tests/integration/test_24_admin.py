"""The admin API (issue 13, first part): its own listener on the data listeners' HTTP code, HTTP
Basic against `tlsgate secret hash` hashes, failures rate limited per peer, /api/v1/healthz,
/metrics in Prometheus text (parsed by prometheus_client), 404/405/413, and the embedded
default's first password."""
import os
import re
import signal
import ssl
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

import testenv
from testenv import Conn
from testenv.admin import Admin, admin_section, password_hash

PW = "correct horse battery staple"


@pytest.fixture(scope="module")
def pw_hash():
    return password_hash(PW)


def _config(certs, tmp_path, port, aport, pw_hash, **admin_extra):
    return {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": str(tmp_path / "access.log")},
        "keystores": {"main": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["main"]},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
        "admin": admin_section(aport, pw_hash, **admin_extra),
    }


def _start(gateway, certs, tmp_path, pw_hash, **admin_extra):
    port, aport = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, aport, pw_hash, **admin_extra),
                 ready_ports=[(port, True), (aport, True)])
    return gw, aport


def test_auth_required_and_wrong_password(gateway, certs, tmp_path, pw_hash):
    gw, aport = _start(gateway, certs, tmp_path, pw_hash)
    url = "https://127.0.0.1:%d/api/v1/healthz" % aport
    # the admin API is served by the same HTTP code as the data listeners: HTTP/1.1 and, by
    # ALPN, HTTP/2 alike
    for proto, status_line in (("--http1.1", "HTTP/1.1 401"), ("--http2", "HTTP/2 401")):
        r = testenv.curl("-k", "-i", proto, url)
        head = r.stdout.decode()
        assert head.startswith(status_line), head
        assert re.search(r"(?im)^WWW-Authenticate: Basic realm=\"tlsgate admin\"", head)
        r = testenv.curl("-k", "-i", proto, "-u", "admin:Wr0ngPassw0rd", url)
        assert r.stdout.decode().startswith(status_line)
    r = testenv.curl("-k", "-u", "admin:" + PW, "-w", "\n%{http_code}", url)
    body, code = r.stdout.decode().rsplit("\n", 1)
    assert code == "200"
    assert '"status": "ok"' in body
    # A user that does not exist is refused like a wrong password (and takes as long).
    with Admin(aport, user="nobody", password=PW) as a:
        assert a.get("/api/v1/healthz").status == 401
    # Kept alive: the second request is answered from the verified-credentials cache.
    with Admin(aport, password=PW) as a:
        for _ in range(3):
            r = a.get("/api/v1/healthz")
            assert r.status == 200 and r.json["status"] == "ok"
            assert r.getheader("Cache-Control") == "no-store"
    log = gw.log_text()
    assert "admin authentication refused: peer=127.0.0.1:" in log
    assert "reason=bad_credentials" in log
    assert PW not in log and "Wr0ngPassw0rd" not in log
    # The access log has the admin listener's requests like any other listener's.
    def access():
        return open(str(tmp_path / "access.log")).read()

    # access-log lines are written after the response: wait for them, do not race them
    assert testenv.wait_until(
        lambda: re.search(r'admin "GET /api/v1/healthz" 401 ', access())
        and re.search(r'admin "GET /api/v1/healthz" 200 ', access()), testenv.t(5)), access()


def test_failures_rate_limited_per_peer(gateway, certs, tmp_path, pw_hash):
    gw, aport = _start(gateway, certs, tmp_path, pw_hash)
    codes = []
    for _ in range(7):
        with Admin(aport, password="guess", source="127.0.0.2") as a:
            r = a.get("/api/v1/healthz")
            codes.append(r.status)
            if r.status == 429:
                assert int(r.getheader("Retry-After")) > 0
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes
    # While limited, even the right password from that peer is refused...
    with Admin(aport, password=PW, source="127.0.0.2") as a:
        assert a.get("/api/v1/healthz").status == 429
    # ...and another peer is not affected.
    with Admin(aport, password=PW, source="127.0.0.3") as a:
        assert a.get("/api/v1/healthz").status == 200
    with Admin(aport, password=PW) as a:
        fams = {f.name: f for f in text_string_to_metric_families(a.get("/metrics").body.decode())}
    fails = {s.labels["reason"]: s.value for s in fams["tlsgate_admin_auth_failures"].samples
             if s.name.endswith("_total")}
    assert fails["bad_credentials"] == 5 and fails["rate_limited"] == 3
    assert "reason=rate_limited" in gw.log_text()


def test_metrics_parse_as_prometheus_text(gateway, certs, tmp_path, pw_hash):
    gw, aport = _start(gateway, certs, tmp_path, pw_hash)
    port = gw.config["listeners"][0]["address"].rsplit(":", 1)[1]
    for _ in range(3):
        assert testenv.get(int(port), "/").status == 200
    # A refused handshake: TLS 1.2 only against a TLS 1.3 listener.
    with pytest.raises(Exception):
        testenv.Conn(int(port), ctx=testenv.tls_context(verify=False, max_version=ssl.TLSVersion.TLSv1_2))

    def scrape():
        with Admin(aport, password=PW) as a:
            return a.get("/metrics")

    testenv.wait_until(lambda: 'unsupported_version"} 1' in scrape().body.decode(), testenv.t(5),
                       what="the refused handshake counted")
    r = scrape()
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    for name in ("tlsgate_connections_open", "tlsgate_connections_accepted", "tlsgate_handshakes",
                 "tlsgate_handshake_failures", "tlsgate_resumptions", "tlsgate_requests",
                 "tlsgate_request_refusals", "tlsgate_backend_failures", "tlsgate_config_version"):
        assert name in fams, name

    def value(fam, **labels):
        for s in fams[fam].samples:
            if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith(
                    "_created"):
                return s.value
        raise KeyError((fam, labels))

    assert fams["tlsgate_requests"].type == "counter"
    assert value("tlsgate_requests", code="2xx") >= 3
    assert value("tlsgate_handshake_failures", reason="unsupported_version") == 1
    assert value("tlsgate_handshakes", result="failed") == 1
    assert value("tlsgate_config_version") == 1
    assert value("tlsgate_config_snapshots_live") == 1  # no reload: the one config
    assert fams["tlsgate_backend_pool_idle"].type == "gauge"
    # Per listener (by name): the data listener's requests, the admin listener's own connection.
    assert value("tlsgate_listener_requests", listener="public", code="2xx") == 3
    # the readiness probe, three requests, the refused handshake
    assert value("tlsgate_listener_connections_accepted", listener="public") == 5
    assert value("tlsgate_listener_connections_open", listener="admin") >= 1
    assert value("tlsgate_listener_requests", listener="admin", code="2xx") >= 1
    assert value("tlsgate_tls_versions", version="TLSv1.3") >= 3
    assert value("tlsgate_tls_versions", version="TLSv1.2") == 0
    suites = {s.labels["suite"]: s.value for s in fams["tlsgate_tls_suites"].samples
              if s.name.endswith("_total")}
    assert sum(suites.values()) == value("tlsgate_handshakes", result="ok")
    assert all(k.startswith("TLS_") for k in suites), suites
    assert value("tlsgate_connections_accepted") >= 5
    # Every request-refusal token of the proxy's table is a label value.
    assert len(fams["tlsgate_request_refusals"].samples) >= 10


def test_unknown_path_wrong_method_and_large_body(gateway, certs, tmp_path, pw_hash):
    gw, aport = _start(gateway, certs, tmp_path, pw_hash, max_body=4096)
    with Admin(aport, password=PW) as a:
        r = a.get("/api/v1/nothing-here")
        assert r.status == 404 and "error" in r.json
        r = a.request("DELETE", "/metrics")
        assert r.status == 405 and r.getheader("Allow") == "GET, HEAD"
        r = a.request("HEAD", "/api/v1/healthz")
        assert r.status == 200 and r.body == b""
    with Admin(aport, password=PW) as a:
        r = a.request("POST", "/api/v1/healthz", body=b"x" * 5000)
        assert r.status == 413
        assert "4096" in r.json["error"]
    # Chunked, so the size is only known while reading.
    r = testenv.curl("-k", "-u", "admin:" + PW, "-H", "Transfer-Encoding: chunked",
                     "--data-binary", "@-", "-w", "%{http_code}",
                     "https://127.0.0.1:%d/api/v1/healthz" % aport, "-o", "/dev/null")
    assert r.stdout.decode() in ("405", "413")


def test_admin_config_errors(tmp_path, pw_hash):
    bad = {
        "version": 1, "state_dir": str(tmp_path / "st"),
        "keystores": {}, "backends": {"status": {"builtin": "status"}},
        "listeners": [{"name": "admin", "address": "127.0.0.1:1",
                       "tls": {"disabled": True},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "admin": {"address": "127.0.0.1:1", "tls": {"disabled": True},
                  "users": [{"name": "a:b", "password_hash": "plain"}]},
    }
    path = tmp_path / "bad.json"
    path.write_text(__import__("json").dumps(bad, indent=1))
    r = subprocess.run([testenv.BIN, "check", "-c", str(path)], capture_output=True, text=True)
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "/listeners/0/name" in out and "kept for the admin listener" in out
    assert "/admin/address" in out and "already used" in out
    assert "/admin/users/0/name" in out
    assert "/admin/users/0/password_hash" in out and "tlsgate secret hash" in out
    assert "plain" not in out.replace("plaintext", "")


def test_embedded_default_admin_password_once(tmp_path):
    if not (testenv.port_is_free(8443) and testenv.port_is_free(9443)):
        pytest.skip("ports 8443/9443 (fixed by the spec for the embedded default) are in use")
    state = str(tmp_path / "st")
    gw = testenv.Gateway(str(tmp_path), None, env={"TLSGATE_STATE_DIR": state},
                         ready_ports=[(8443, True), (9443, True)])
    try:
        gw.start()
        m = re.search(r'admin API user "admin", password (\S+)', gw.log_text())
        assert m, gw.log_text()
        pw = m.group(1)
        assert len(pw) >= 20
        stored = open(os.path.join(state, "admin.hash")).read()
        assert stored.startswith("$scrypt$") and pw not in stored
        assert os.stat(os.path.join(state, "admin.hash")).st_mode & 0o077 == 0
        assert os.path.exists(os.path.join(state, "admin.crt"))
        with Admin(9443, password=pw) as a:
            assert a.get("/api/v1/healthz").status == 200
        # A default certificate close to expiry is renewed on SIGHUP, as at start.
        crt, key = os.path.join(state, "default.crt"), os.path.join(state, "default.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-days", "5", "-nodes", "-subj", "/CN=localhost",
                        "-keyout", key, "-out", crt], check=True, capture_output=True)
        old = open(crt).read()
        gw.signal(signal.SIGHUP)
        assert gw.wait_log(lambda s: "renewed with a new key" in s, timeout=5), gw.log_tail()
        assert open(crt).read() != old
        gw.stop()
        gw2 = testenv.Gateway(str(tmp_path), None, name="second",
                              env={"TLSGATE_STATE_DIR": state},
                              ready_ports=[(8443, True), (9443, True)])
        gw2.start()
        try:
            assert "password" not in gw2.log_text()
            with Admin(9443, password=pw) as a:
                assert a.get("/api/v1/healthz").status == 200
        finally:
            gw2.stop()
    finally:
        gw.kill()


def test_client_certificate_instead_of_a_password(gateway, certs, tmp_path, tmp_path_factory):
    """Admin by client certificate: the admin listener's own client_auth and allow list."""
    from testenv.mtls import PKI
    pki = PKI(str(tmp_path_factory.mktemp("adminmtls")))
    ops = pki.client("ops", "/O=Org/CN=gateway-ops")
    other = pki.client("other", "/O=Org/CN=someone-else")
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = _config(certs, tmp_path, port, aport, "unused")
    cfg["truststores"] = {"ops": {"type": "pem", "file": pki.root.cert}}
    cfg["admin"] = {"address": "127.0.0.1:%d" % aport,
                    "tls": {"certificates": ["main"],
                            "client_auth": {"mode": "optional", "truststore": "ops",
                                            "allowed_subjects": ["CN=gateway-ops,O=Org"]}}}
    gw = gateway(cfg, ready_ports=[(port, True), (aport, False)])

    def get(client):
        ctx = testenv.tls_context(verify=False)
        if client is not None:
            ctx.load_cert_chain(client.chain, client.key)
        try:
            with Conn(aport, ctx=ctx) as c:
                return c.request("GET", "/api/v1/healthz").status
        except (ssl.SSLError, OSError):
            return "refused"

    assert get(ops) == 200
    assert get(None) == 401  # optional: no certificate, no password
    assert get(other) == "refused"  # not on the admin listener's allow list
    assert gw.wait_log(lambda s: "reason=client_cert_not_allowed" in s, timeout=5)
