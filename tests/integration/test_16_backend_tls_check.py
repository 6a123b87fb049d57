"""`tlsgate check` on backend TLS, truststores, balance, health and tcp listeners: the effective
policy it prints, and every problem located (file:line:col JSON pointer)."""
import base64
import hashlib
import json
import os
import re
import subprocess

import testenv


def _config(certs, tmp_path, tls=None, **backend):
    app = {"targets": ["127.0.0.1:8081", "localhost:8082"]}
    if tls is not None:
        app["tls"] = tls
    app.update(backend)
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"corp": {"type": "pem", "file": certs.ca.cert}},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % testenv.free_port(),
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": app, "status": {"builtin": "status"}},
    }


def check(tmp_path, cfg, name="gw.json"):
    path = os.path.join(str(tmp_path), name)
    text = json.dumps(cfg, indent=2) + "\n"
    with open(path, "w") as f:
        f.write(text)
    r = testenv.tlsgate("check", "-c", path)
    return r, path, text


def _line_of(text, needle, last=False):
    """1-based line and column of the first (or last) line holding needle."""
    found = [(i, line.index(needle) + 1) for i, line in enumerate(text.splitlines(), 1)
             if needle in line]
    assert found, needle + " not in config"
    return found[-1] if last else found[0]


def _value(text, key, last=False):
    """Line and column of the value of "key" (json.dumps writes `"key": value`)."""
    line, col = _line_of(text, '"%s": ' % key, last)
    return line, col + len('"%s": ' % key)


def _located(out, path, text, pointer, where):
    """The message at pointer, checked to be at where, a (line, col) pair of the config text."""
    line, col = where
    m = re.search(re.escape(path) + r":(\d+):(\d+): (?:warning: )?" + re.escape(pointer) + r": (.*)",
                  out)
    assert m, "no located message for %s:\n%s" % (pointer, out)
    assert int(m.group(1)) == line, "wrong line for %s (want %d):\n%s" % (pointer, line, out)
    assert int(m.group(2)) in (col, col + 1), "wrong column for %s (want %d):\n%s" % (pointer, col, out)
    return m.group(3)


def _pin(cert_path):
    """HPKP-style pin of a certificate: base64 of the SHA-256 of its SubjectPublicKeyInfo."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    return "sha256/" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def _client_cert(certs, tmp_path):
    prefix = str(tmp_path / "gateway")
    r = testenv.tlsgate("cert", "client", "--out", prefix, "--ca", os.path.join(certs.dir, "ca"),
                        "--subject", "CN=gateway,O=tlsgate tests")
    assert r.returncode == 0, r.stdout + r.stderr
    return {"type": "pem", "cert": prefix + ".crt", "key": prefix + ".key"}


def test_backend_tls_policy_printed(certs, tmp_path):
    pin = _pin(certs.ec.cert)
    cfg = _config(certs, tmp_path, tls={
        "truststore": "corp", "client_certificate": "gateway", "pin": [pin],
        "alpn": ["http/1.1"], "curves": ["X25519", "P-256"]},
        balance="least_connections", health={"path": "/healthz", "interval": 2.5, "timeout": 1})
    cfg["keystores"]["gateway"] = _client_cert(certs, tmp_path)
    r, _, _ = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r'backend "app": TLS HTTP/1\.1, targets by least connections with failover: '
                     r'127\.0\.0\.1:8081 localhost:8082', out), out
    assert "versions: TLS1.2 to TLS1.3" in out, out
    assert re.search(r"TLS 1\.3 suites \(offered order\): TLS_AES_128_GCM_SHA256, "
                     r"TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256", out), out
    assert ("TLS 1.2 and older suites (offered order): TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 "
            "(ECDHE-ECDSA-AES128-GCM-SHA256)") in out, out
    assert "groups: X25519, P-256\n" in out, out
    # defaulted server name: per target, an IP gets no SNI
    assert "server name: each target's host" in out, out
    assert "127.0.0.1:8081: no SNI, IP 127.0.0.1 verified against IP SANs" in out, out
    assert 'localhost:8082: SNI "localhost", name verified' in out, out
    assert re.search(r'trust: truststore "corp" \(1 CA from .*ca\.crt\)', out), out
    m = re.search(r'client certificate: keystore "gateway": subject (.*), ECDSA P-256, not after '
                  r'20\d\d-\d\d-\d\d [0-9:]+Z \((\d+) days left\)', out)
    assert m and "CN=gateway" in m.group(1), out
    assert "pins: " + pin in out, out
    assert "alpn: http/1.1" in out, out
    assert "balance: least_connections; health: HTTP GET /healthz expecting 2xx/3xx every 2.5 s, " \
           "timeout 1 s" in out, out
    assert "WARNING" not in out, out


def test_server_name_system_trust_and_plaintext(certs, tmp_path):
    cfg = _config(certs, tmp_path, tls={"server_name": "api.internal", "min_version": "TLS1.3"})
    cfg["backends"]["plain"] = {"targets": ["127.0.0.1:8083"], "health": {}}
    cfg["listeners"][0]["routes"].append({"path_prefix": "/p/", "backend": "plain"})
    r, _, _ = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert 'server name (every target): SNI "api.internal", name verified' in out, out
    assert "trust: system (OpenSSL default paths" in out, out
    assert "client certificate: none" in out, out
    assert "pins: none" in out and "alpn: none" in out, out
    assert "TLS 1.2 and older suites" not in out.split('backend "app"')[1].split("backend")[0], out
    assert re.search(r'backend "plain": plaintext HTTP/1\.1 \(no TLS\), targets round-robin with '
                     r'failover: 127\.0\.0\.1:8083', out), out
    assert "balance: round_robin; health: TCP connect every 5 s, timeout 2 s" in out, out


def test_allow_insecure_warns(certs, tmp_path):
    cfg = _config(certs, tmp_path, tls={"verify": False, "allow_insecure": True})
    r, path, text = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    msg = _located(out, path, text, "/backends/app/tls/allow_insecure",
                   _value(text, "allow_insecure"))
    assert 'backend "app": allow_insecure skips certificate chain and name verification' in msg, out
    assert "warning: /backends/app/tls/allow_insecure" in out, out
    assert "trust: none (verification is off)" in out, out
    assert "WARNING: allow_insecure: the backend's certificate chain and name are not verified" in out


def test_tcp_listener_printed(certs, tmp_path):
    cfg = _config(certs, tmp_path, tls={"truststore": "corp"})
    cfg["listeners"].append({"name": "raw", "address": "127.0.0.1:%d" % testenv.free_port(),
                             "mode": "tcp", "backend": "app", "proxy_protocol_out": True,
                             "tls": {"certificates": ["ec"]}})
    r, _, _ = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r'listener "raw" 127\.0\.0\.1:\d+ \(tcp\)', out), out
    assert 'forwards to backend "app"; proxy_protocol_out: on (PROXY v2 with TLS details)' in out
    tcp = out.split('listener "raw"')[1].split("backend \"app\":")[0]
    assert "alpn: off" in tcp, out
    # used by an http route and a tcp listener
    assert 'backend "app": TLS HTTP/1.1 and TCP, targets round-robin' in out, out


def test_bad_pin_located(certs, tmp_path):
    cfg = _config(certs, tmp_path, tls={"pin": [_pin(certs.ec.cert), "sha256/not-a-pin"]})
    r, path, text = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    msg = _located(out, path, text, "/backends/app/tls/pin/1", _line_of(text, '"sha256/not-a-pin"'))
    assert '"sha256/not-a-pin" is not an SPKI SHA-256 pin' in msg, out
    assert "/tls/pin/0" not in out, out


def test_unknown_truststore_and_keystore(certs, tmp_path):
    cfg = _config(certs, tmp_path, tls={"truststore": "crop", "client_certificate": "nope"})
    r, path, text = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    msg = _located(out, path, text, "/backends/app/tls/truststore", _value(text, "truststore"))
    assert 'truststore "crop" is not defined (did you mean "corp"?)' in msg, out
    msg = _located(out, path, text, "/backends/app/tls/client_certificate",
                   _value(text, "client_certificate"))
    assert 'keystore "nope" is not defined' in msg, out
    assert "2 errors" in out, out


def test_verify_false_needs_allow_insecure(certs, tmp_path):
    r, path, text = check(tmp_path, _config(certs, tmp_path, tls={"verify": False}))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    msg = _located(out, path, text, "/backends/app/tls/verify", _value(text, "verify"))
    assert "set allow_insecure: true to skip verification" in msg, out


def test_tcp_listener_without_backend(certs, tmp_path):
    cfg = _config(certs, tmp_path)
    cfg["listeners"].append({"name": "raw", "address": "127.0.0.1:%d" % testenv.free_port(),
                             "mode": "tcp", "tls": {"certificates": ["ec"]}})
    r, path, text = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    # the listener object opens on the line before its name
    line = _line_of(text, '"name": "raw"')[0] - 1
    where = (line, text.splitlines()[line - 1].index("{") + 1)
    msg = _located(out, path, text, "/listeners/1", where)
    assert 'missing required key "backend"' in msg, out


def test_http_listener_with_backend(certs, tmp_path):
    cfg = _config(certs, tmp_path)
    cfg["listeners"][0]["backend"] = "app"
    r, path, text = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    msg = _located(out, path, text, "/listeners/0/backend", _value(text, "backend", last=True))
    assert '"backend" is for tcp listeners' in msg and '"mode": "tcp"' in msg, out


def test_unknown_balance(certs, tmp_path):
    r, path, text = check(tmp_path, _config(certs, tmp_path, balance="random"))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    msg = _located(out, path, text, "/backends/app/balance", _value(text, "balance"))
    assert '"random" is not a balance method (allowed: round_robin, least_connections)' in msg, out


def test_truststore_problems(certs, tmp_path):
    cfg = _config(certs, tmp_path)
    cfg["truststores"]["p12"] = {"type": "pkcs12", "file": "x.p12", "password": "secret"}
    r, path, text = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    # pkcs12 truststores are read now (test_22_keystores): the missing file is the problem
    msg = _located(out, path, text, "/truststores/p12/file", _value(text, "file", last=True))
    assert 'cannot read "x.p12": No such file or directory' in msg, out
    assert "secret" not in out, out

    # found when the truststore is loaded, at its own location
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = _config(certs, tmp_path, tls={"truststore": "empty"})
    cfg["truststores"]["empty"] = {"type": "pem", "file": str(empty)}
    r, path, text = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    msg = _located(out, path, text, "/truststores/empty", _value(text, "empty"))
    assert 'truststore "empty": no certificate found in' in msg, out
