"""`tlsgate check`: policy print-out for a valid config; located, complete errors for bad ones."""
import json
import os
import re

import testenv


def _config(certs, tmp_path, tls=None, keystore=None):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": keystore or certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % testenv.free_port(),
                       "tls": dict({"certificates": ["ec"]}, **(tls or {})),
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
    }


def check(tmp_path, cfg, name="gw.json"):
    path = os.path.join(str(tmp_path), name)
    text = json.dumps(cfg, indent=2) + "\n"
    with open(path, "w") as f:
        f.write(text)
    r = testenv.tlsgate("check", "-c", path)
    return r, path, text


def _line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i, line.index(needle) + 1
    raise AssertionError(needle + " not in config")


def test_valid_config_prints_policy(certs, tmp_path):
    r, _, _ = check(tmp_path, _config(certs, tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "TLS1.3" in out or "TLSv1.3" in out, out
    for suite in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"):
        assert suite in out, out
    assert "localhost" in out, "certificate subject/SANs missing:\n" + out
    assert re.search(r"EC|ECDSA|P-256|prime256v1", out), "key type missing:\n" + out
    assert re.search(r"20\d\d", out), "certificate expiry missing:\n" + out
    # routes and backends are part of the effective policy too
    assert re.search(r'route 0: host any, path prefix / -> backend "status"', out), out
    assert 'backend "status": built-in status page' in out, out


def test_check_prints_backends(certs, tmp_path):
    cfg = _config(certs, tmp_path)
    cfg["backends"]["app"] = {"targets": ["127.0.0.1:8081", "127.0.0.1:8082"]}
    cfg["listeners"][0]["routes"].insert(0, {"host": "api.test", "path_prefix": "/v1/",
                                             "backend": "app"})
    r, _, _ = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert 'route 0: host api.test, path prefix /v1/ -> backend "app"' in out, out
    assert re.search(r'backend "app": plaintext HTTP/1.1 \(no TLS\).*'
                     r'127\.0\.0\.1:8081 127\.0\.0\.1:8082', out), out


def test_unknown_suite_is_located(certs, tmp_path):
    bad = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA999"
    r, path, text = check(tmp_path, _config(certs, tmp_path, {
        "min_version": "TLS1.2", "cipher_suites": ["TLS_AES_128_GCM_SHA256", bad]}))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    line, col = _line_of(text, '"%s"' % bad)
    m = re.search(re.escape(path) + r":(\d+):(\d+): /listeners/0/tls/cipher_suites/1\b.*", out)
    assert m, "no file:line:col: /listeners/0/tls/cipher_suites/1 message:\n" + out
    assert int(m.group(1)) == line, "wrong line (want %d):\n%s" % (line, out)
    assert int(m.group(2)) in (col, col + 1), "wrong column (want %d):\n%s" % (col, out)
    assert bad in m.group(0), "the message does not name the suite:\n" + out


def test_bad_min_version(certs, tmp_path):
    r, path, _ = check(tmp_path, _config(certs, tmp_path, {"min_version": "TLS1.4"}))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert re.search(re.escape(path) + r":\d+:\d+: /listeners/0/tls/min_version\b.*TLS1\.4", out), out


def test_unknown_key_did_you_mean(certs, tmp_path):
    r, path, _ = check(tmp_path, _config(certs, tmp_path, {"min_versoin": "TLS1.2"}))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    m = re.search(re.escape(path) + r":\d+:\d+: /listeners/0/tls\S*.*", out)
    assert m and "min_versoin" in out, out
    assert "did you mean" in out.lower() and "min_version" in out, out


def test_every_error_reported(certs, tmp_path):
    cfg = _config(certs, tmp_path, {"min_version": "TLS1.4", "cipher_suites": ["NOPE_SUITE"],
                                    "max_versoin": "TLS1.3"})
    cfg["timeouts"] = {"handshake": "soon"}
    r, _, _ = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    for p in ("/listeners/0/tls/min_version", "/listeners/0/tls/cipher_suites/0",
              "max_versoin", "/timeouts/handshake"):
        assert p in out, "%s not reported:\n%s" % (p, out)


def test_missing_key_file(certs, tmp_path):
    missing = os.path.join(str(tmp_path), "nope.key")
    r, _, _ = check(tmp_path, _config(certs, tmp_path, keystore={
        "type": "pem", "cert": certs.ec.cert, "key": missing}))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "nope.key" in out and "/keystores/ec" in out, out


def test_key_does_not_match_cert(certs, tmp_path):
    r, _, _ = check(tmp_path, _config(certs, tmp_path, keystore={
        "type": "pem", "cert": certs.ec.cert, "key": certs.other.key}))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "match" in out.lower() and "/keystores/ec" in out, out


def test_not_json(tmp_path):
    path = os.path.join(str(tmp_path), "broken.json")
    with open(path, "w") as f:
        f.write('{"version": 1,\n  "workers": 2,,\n}\n')
    r = testenv.tlsgate("check", "-c", path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert re.search(re.escape(path) + r":2:\d+", out), "no line number for the syntax error:\n" + out


def test_expired_certificate(certs, tmp_path):
    cfg = _config(certs, tmp_path, keystore=certs.expired.keystore())
    r, _, _ = check(tmp_path, cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "/keystores/ec" in out and "expired" in out.lower(), out
    # `run` refuses the same config with exit code 2 and the same reason
    path = os.path.join(str(tmp_path), "gw.json")
    run = testenv.tlsgate("run", "-c", path, timeout=30)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "expired" in (run.stdout + run.stderr).lower()
