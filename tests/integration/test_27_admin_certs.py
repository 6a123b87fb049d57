"""Certificates and reload through the admin API (issue 13): GET /api/v1/certificates lists every
served certificate and loaded CRL with where it is used; POST /api/v1/reload reads key material
again (a broken file changes nothing and says why); auto_reload serves a renewed certificate
without a signal; the not-after times are metrics."""
import os
import shutil
import ssl
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import testenv
from testenv import Conn, fingerprint
from testenv.admin import Admin, admin_section, password_hash
from testenv.mtls import PKI

PW = "certs-admin-pw"


@pytest.fixture(scope="module")
def pw_hash():
    return password_hash(PW)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(str(tmp_path_factory.mktemp("certspki")))
    p.revoked = p.client("revoked", "/O=Org/CN=revoked")
    p.revoke(p.inter, p.revoked.cert)
    p.crl_pem = p.crl(p.inter, p.path("inter.crl"))
    return p


def _served(port):
    with Conn(port, ctx=testenv.tls_context(verify=False)) as c:
        return fingerprint(c.peer_cert_der())


def _config(certs, pki, tmp_path, port, aport, pw_hash, auto=False):
    d = str(tmp_path)
    shutil.copy(certs.ec.cert, os.path.join(d, "web.crt"))
    shutil.copy(certs.ec.key, os.path.join(d, "web.key"))
    cfg = {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"web": {"type": "pem", "cert": os.path.join(d, "web.crt"),
                              "key": os.path.join(d, "web.key")},
                      "rsa": certs.rsa.keystore()},
        "truststores": {"clients": {"type": "pem", "file": pki.root.cert}},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["web"], "min_version": "TLS1.2",
                               "client_auth": {"mode": "optional", "truststore": "clients",
                                               "revocation": {"mode": "soft_fail",
                                                              "crl": [pki.crl_pem],
                                                              "fetch": False}}},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
        "admin": admin_section(aport, pw_hash, tls={"certificates": ["rsa"]}),
    }
    if auto:
        cfg["auto_reload"] = True
    return cfg


def _start(gateway, certs, pki, tmp_path, pw_hash, **kw):
    port, aport = testenv.free_port(), testenv.free_port()
    gw = gateway(_config(certs, pki, tmp_path, port, aport, pw_hash, **kw),
                 ready_ports=[(port, False), (aport, True)])
    return gw, port, aport


def test_certificates_and_reload(gateway, certs, pki, tmp_path, pw_hash):
    gw, port, aport = _start(gateway, certs, pki, tmp_path, pw_hash)
    with Admin(aport, password=PW) as a:
        inv = a.get("/api/v1/certificates").json
        by_ks = {u["keystore"]: c for c in inv["certificates"] for u in c["used_by"]}
        ec, rsa = by_ks["web"], by_ks["rsa"]
        assert ec["key_type"] == "EC" and ec["key_bits"] == 256
        assert rsa["key_type"] == "RSA" and rsa["key_bits"] == 2048
        assert "DNS:localhost" in ec["sans"] and "IP:127.0.0.1" in ec["sans"]
        assert ec["subject"] and ec["issuer"] and ec["not_after"].endswith("Z")
        assert 0 < ec["days_left"] <= 400
        assert {"listener": "public", "keystore": "web"} in ec["used_by"]
        assert {"listener": "admin", "keystore": "rsa"} in rsa["used_by"]
        assert len(inv["crls"]) == 1
        crl = inv["crls"][0]
        assert crl["file"] == pki.crl_pem and crl["revoked"] == 1 and crl["used_by"] == ["public"]
        assert "Intermediate" in crl["issuer"] and crl["days_left"] >= 0

        fams = {f.name: f for f in text_string_to_metric_families(a.get("/metrics").body.decode())}
        na = {s.labels["keystore"]: s.value
              for s in fams["tlsgate_certificate_not_after_timestamp_seconds"].samples}
        assert na["web"] == ec["not_after_epoch"] and na["rsa"] == rsa["not_after_epoch"]
        assert len(fams["tlsgate_crl_next_update_timestamp_seconds"].samples) == 1

        before = _served(port)
        assert before == fingerprint(certs.ec.cert)
        # A broken key file: the reload fails, says why, and nothing changes.
        with open(str(tmp_path / "web.key"), "w") as f:
            f.write("not a key\n")
        v = a.get("/api/v1/config").json["version"]
        r = a.request("POST", "/api/v1/reload")
        assert r.status == 400, r.body
        assert any("web.key" in e["message"] for e in r.json["errors"]), r.json
        assert _served(port) == before
        assert a.get("/api/v1/config").json["version"] == v
        # The renewed pair: served after POST /reload.
        shutil.copy(certs.rsa.key, str(tmp_path / "web.key"))
        shutil.copy(certs.rsa.cert, str(tmp_path / "web.crt"))
        r = a.request("POST", "/api/v1/reload")
        assert r.status == 200 and r.json["version"] == v  # the same document: version kept
        assert _served(port) == fingerprint(certs.rsa.cert)
        assert a.request("GET", "/api/v1/reload").status == 405
        fams = {f.name: f for f in text_string_to_metric_families(a.get("/metrics").body.decode())}
        rel = {s.labels["result"]: s.value for s in fams["tlsgate_reloads"].samples
               if s.name.endswith("_total")}
        assert rel == {"ok": 1, "failed": 1}
    assert "POST /api/v1/reload failed" in gw.log_text()


def test_auto_reload_serves_a_renewed_certificate(gateway, certs, pki, tmp_path, pw_hash):
    gw, port, aport = _start(gateway, certs, pki, tmp_path, pw_hash, auto=True)
    assert gw.wait_log(lambda s: "auto_reload: watching" in s, timeout=5)
    assert _served(port) == fingerprint(certs.ec.cert)
    time.sleep(1.1)  # mtimes in whole seconds on some file systems
    # A renewal as certbot does it: new files moved into place.
    d = str(tmp_path)
    shutil.copy(certs.rsa.key, os.path.join(d, "web.key.new"))
    shutil.copy(certs.rsa.cert, os.path.join(d, "web.crt.new"))
    os.replace(os.path.join(d, "web.key.new"), os.path.join(d, "web.key"))
    os.replace(os.path.join(d, "web.crt.new"), os.path.join(d, "web.crt"))
    testenv.wait_until(lambda: _served(port) == fingerprint(certs.rsa.cert), testenv.t(8),
                       what="the renewed certificate served")
    assert "auto_reload:" in gw.log_text() and "web." in gw.log_text()
    with Admin(aport, password=PW) as a:
        inv = a.get("/api/v1/certificates").json
    ks = {u["keystore"]: c for c in inv["certificates"] for u in c["used_by"]}
    assert ks["web"]["key_type"] == "RSA"
