"""Configured TLS policies: TLS 1.2 with chosen suites, legacy TLS 1.0 + 3DES, name spellings."""
import json
import subprocess

import testenv
from testenv import s_client


def _listener(name, port, tls, certs=("ec",)):
    return {"name": name, "address": "127.0.0.1:%d" % port,
            "tls": dict({"certificates": list(certs)}, **tls),
            "routes": [{"path_prefix": "/", "backend": "status"}]}


def _config(certs, tmp_path, listeners):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore(), "rsa": certs.rsa.keystore()},
        "listeners": listeners,
        "backends": {"status": {"builtin": "status"}},
    }


def test_tls12_two_suites(gateway, certs, tmp_path):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, [_listener("tls12", port, {
        "min_version": "TLS1.2", "max_version": "TLS1.2",
        "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 49196]})]))
    for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"):
        r = s_client(port, "-tls1_2", "-cipher", suite)
        assert r.connected and r.cipher == suite, r.out + r.err
        assert r.protocol == "TLSv1.2", r.out
    # a client offering everything still lands on one of the two
    r = s_client(port, "-tls1_2")
    assert r.cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"), r.out
    for suite in ("ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-SHA256"):
        r = s_client(port, "-tls1_2", "-cipher", suite)
        assert not r.connected, "%s was accepted:\n%s" % (suite, r.out)
    r = s_client(port, "-tls1_3")
    assert not r.connected, "TLS 1.3 was accepted:\n" + r.out


def _openssl_has_3des():
    r = subprocess.run(["openssl", "ciphers", "DES-CBC3-SHA@SECLEVEL=0"], capture_output=True,
                       timeout=30)
    return r.returncode == 0


def test_legacy_tls10(gateway, certs, tmp_path):
    """TLS 1.0 with an RSA-key-exchange CBC suite (security level 0). Debian 12's OpenSSL is
    built without 3DES suites, so SSL_RSA_WITH_3DES_EDE_CBC_SHA is used only where it exists."""
    has_3des = _openssl_has_3des()
    suite = "SSL_RSA_WITH_3DES_EDE_CBC_SHA" if has_3des else "TLS_RSA_WITH_AES_128_CBC_SHA"
    client_cipher = "DES-CBC3-SHA" if has_3des else "AES128-SHA"
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, [_listener("legacy", port, {
        "min_version": "TLS1.0", "max_version": "TLS1.0",
        "cipher_suites": [suite]}, certs=("rsa",))])
    gw = gateway(cfg)
    r = s_client(port, "-tls1", "-cipher", client_cipher + "@SECLEVEL=0", "-ign_eof",
                 input_=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert r.connected and r.cipher == client_cipher, r.out + r.err
    assert r.protocol == "TLSv1", r.out
    assert "HTTP/1.1 200" in r.out, r.out
    r = s_client(port, "-tls1_2", "-cipher", "ALL:@SECLEVEL=0")
    assert not r.connected, r.out

    chk = testenv.tlsgate("check", "-c", gw.config_path)
    out = chk.stdout + chk.stderr
    assert chk.returncode == 0, out
    assert "warn" in out.lower(), "no warning about the legacy policy:\n" + out
    assert "TLS1.0" in out or "TLSv1.0" in out or "TLSv1 " in out, out


def test_3des_name_is_known(certs, tmp_path):
    """The Java spelling SSL_RSA_WITH_3DES_EDE_CBC_SHA is a known suite: never "unknown"; where
    the linked OpenSSL lacks 3DES the gateway must say so (warning or error) by name."""
    cfg = _config(certs, tmp_path, [_listener("legacy", testenv.free_port(), {
        "min_version": "TLS1.0", "max_version": "TLS1.2",
        "cipher_suites": ["SSL_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"]},
        certs=("rsa",))])
    path = str(tmp_path / "3des.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    chk = testenv.tlsgate("check", "-c", path)
    out = chk.stdout + chk.stderr
    assert chk.returncode in (0, 2), out
    assert "unknown" not in out.lower() and "did you mean" not in out.lower(), out
    assert "3DES" in out or "DES-CBC3" in out, out
    if _openssl_has_3des():
        assert chk.returncode == 0, out
    assert "warn" in out.lower() or chk.returncode == 2, out


def test_suite_spellings_and_cipher_string(gateway, certs, tmp_path):
    openssl_names, number_only, cstring = (testenv.free_port() for _ in range(3))
    gateway(_config(certs, tmp_path, [
        _listener("openssl-names", openssl_names, {
            "min_version": "TLSv1.2", "max_version": "TLSv1.2",
            "cipher_suites": ["ECDHE-ECDSA-AES256-GCM-SHA384"]}),
        _listener("iana-number", number_only, {
            "min_version": "TLS1.2", "max_version": "TLS1.3",
            "cipher_suites": [4865, 49195]}),  # TLS_AES_128_GCM_SHA256, ECDHE-ECDSA-AES128-GCM
        _listener("cipher-string", cstring, {
            "min_version": "TLS1.2", "max_version": "TLS1.2",
            "cipher_suites": "ECDSA+AESGCM:!AES128"}),
    ]))
    assert s_client(openssl_names, "-tls1_2").cipher == "ECDHE-ECDSA-AES256-GCM-SHA384"
    assert not s_client(openssl_names, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256").connected

    r = s_client(number_only, "-tls1_3")
    assert r.cipher == "TLS_AES_128_GCM_SHA256", r.out
    assert not s_client(number_only, "-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384").connected
    assert s_client(number_only, "-tls1_2").cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"

    r = s_client(cstring, "-tls1_2")
    assert r.cipher == "ECDHE-ECDSA-AES256-GCM-SHA384", r.out
    assert not s_client(cstring, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256").connected
    assert not s_client(cstring, "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305").connected
