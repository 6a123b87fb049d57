"""ACME (issue 19): certificates obtained from Pebble, Let's Encrypt's test server, on loopback.
A name is issued through HTTP-01 (answered by the gateway's plaintext listener before routing),
reaches the TLS listener live (a reload from the main loop) and is served to `openssl s_client`
with a chain that verifies against Pebble's root; Pebble's default 5% of rejected nonces is
retried; the state directory's keys are 0600; a failing validation is logged with Pebble's
problem detail; config errors point at the key."""
import os
import re
import stat
import time

import pytest

import testenv


@pytest.fixture
def pebble(tmp_path, certs):
    made = []

    def start(http_port, tls_port, **kw):
        p = testenv.Pebble(str(tmp_path), certs, http_port, tls_port, **kw)
        made.append(p)
        return p.start()

    yield start
    for p in made:
        p.stop()


def acme_config(certs, state_dir, directory, http_port, tls_port, names, challenges=None,
                **acme):
    a = {"directory": directory, "email": "ops@example.org", "truststore": "testca"}
    if challenges:
        a["challenges"] = challenges
    a.update(acme)
    return {
        "version": 1, "state_dir": state_dir, "workers": 2,
        "acme": a,
        "truststores": {"testca": {"type": "pem", "file": certs.ca.cert}},
        "keystores": {"site": {"type": "acme", "names": names}},
        "backends": {"status": {"builtin": "status"}},
        "listeners": [
            {"name": "plain", "address": "127.0.0.1:%d" % http_port, "tls": {"disabled": True},
             "routes": [{"backend": "status"}]},
            {"name": "tls", "address": "127.0.0.1:%d" % tls_port,
             "tls": {"certificates": ["site"]}, "routes": [{"backend": "status"}]},
        ],
    }


def wait_log(gw, text, timeout=60):
    deadline = time.monotonic() + testenv.t(timeout)
    while text not in gw.log_text():
        assert gw.running(), gw.log_text()
        assert time.monotonic() < deadline, "no %r in:\n%s" % (text, gw.log_text())
        time.sleep(0.2)


def verified(port, name, root):
    r = testenv.s_client(port, "-CAfile", root, "-verify_return_error", "-verify_hostname", name,
                         "-showcerts", sni=name)
    return r


def test_http01_issues_and_serves(gateway, pebble, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    p = pebble(http_port, tls_port)
    cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["web.test"],
                      challenges=["http-01"])
    gw = gateway(cfg)
    # Before issuance: the self-signed placeholder, logged as such.
    assert "serving a self-signed placeholder" in gw.log_text()
    wait_log(gw, "certificate obtained for web.test")
    wait_log(gw, "config reloaded (generation 1 kept")
    root = p.root_pem(str(tmp_path / "pebble-root.pem"))
    r = verified(tls_port, "web.test", root)
    assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.out, r.out + r.err
    assert "ACME http-01 challenge answered for web.test" in gw.log_text()
    for f in ("account.key", "site.key", "site.crt"):
        mode = stat.S_IMODE(os.stat(os.path.join(state_dir, "acme", f)).st_mode)
        assert mode == 0o600, (f, oct(mode))
    # `tlsgate check` shows the name's state, and never the key.
    out = testenv.tlsgate("check", "-c", gw.config_path).stdout
    assert 'keystore "site" (acme, names web.test): valid until ' in out, out
    assert "renewal from " in out and "last attempt succeeded" in out, out
    # The key material never reaches the log.
    with open(os.path.join(state_dir, "acme", "site.key")) as f:
        body = f.read().splitlines()[1]
    assert body not in gw.log_text() and body not in out


def test_tlsalpn01_issues_and_serves(gateway, pebble, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    # HTTP-01 would fail (nothing listens on Pebble's http port): only TLS-ALPN-01 can pass.
    p = pebble(testenv.free_port(), tls_port)
    cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["alpn.test",
                                                                            "www.alpn.test"])
    gw = gateway(cfg)
    wait_log(gw, "certificate obtained for alpn.test and more")
    wait_log(gw, "config reloaded (generation 1 kept")
    log = gw.log_text()
    assert "ACME tls-alpn-01 challenge answered for alpn.test" in log, log
    assert "ACME tls-alpn-01 challenge answered for www.alpn.test" in log, log
    assert "http-01" not in log.replace("tls-alpn-01", ""), log
    root = p.root_pem(str(tmp_path / "pebble-root.pem"))
    for name in ("alpn.test", "www.alpn.test"):
        r = verified(tls_port, name, root)
        assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.out, r.out + r.err
    # Once validated, a client offering acme-tls/1 gets the real certificate, no validation one.
    r = testenv.s_client(tls_port, "-alpn", "acme-tls/1", "-CAfile", root, sni="alpn.test")
    assert "Verify return code: 0 (ok)" in r.out, r.out + r.err
    assert "acmeIdentifier" not in r.out and "1.3.6.1.5.5.7.1.31" not in r.out


def test_failing_validation_logged_with_detail(gateway, pebble, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    # Pebble validates HTTP-01 on a port where nothing listens.
    p = pebble(testenv.free_port(), tls_port)
    cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["bad.test"],
                      challenges=["http-01"])
    gw = gateway(cfg)
    wait_log(gw, "reason=acme_failed")
    log = gw.log_text()
    assert "validation of bad.test failed (invalid): urn:ietf:params:acme:error:connection" in log, log
    assert "next attempt in" in log
    # Counted: the status page's acme.failures.
    with testenv.Conn(http_port, tls=False) as c:
        assert c.request("GET", "/").json()["acme"]["failures"] >= 1
    out = testenv.tlsgate("check", "-c", gw.config_path).stdout
    assert 'keystore "site" (acme, names bad.test): no certificate yet' in out, out
    assert re.search(r"last attempt failed \(\d+ in a row\): validation of bad.test failed", out), out
    # Still serving the placeholder.
    r = testenv.s_client(tls_port, sni="bad.test")
    assert r.connected, r.out + r.err


@pytest.mark.parametrize("acme,ptr,words", [
    ({"directory": "http://x/dir"}, "/acme/directory", "is not an https:// URL"),
    ({"directory": "https://x/dir", "challenges": ["dns-01"]}, "/acme/challenges/0",
     "is not a challenge type"),
    ({"directory": "https://x/dir", "key_type": "ed25519"}, "/acme/key_type", "is not a key type"),
    ({"directory": "https://x/dir", "truststore": "nope"}, "/acme/truststore",
     "is not a truststore"),
])
def test_config_errors(tmp_path, acme, ptr, words):
    import json
    cfg = {"version": 1, "state_dir": str(tmp_path / "s"), "acme": acme,
           "keystores": {"site": {"type": "acme", "names": ["a.test"]}},
           "backends": {"status": {"builtin": "status"}},
           "listeners": [{"name": "l", "address": "127.0.0.1:1", "tls": {"certificates": ["site"]},
                          "routes": [{"backend": "status"}]}]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg, indent=1))
    r = testenv.tlsgate("check", "-c", str(path))
    assert r.returncode != 0
    assert words in r.stderr + r.stdout, r.stderr + r.stdout
    assert str(path) + ":" in r.stderr + r.stdout


def test_acme_keystore_needs_section(tmp_path):
    import json
    cfg = {"version": 1, "keystores": {"site": {"type": "acme", "names": ["A_B"]}},
           "listeners": [{"name": "l", "address": "127.0.0.1:1", "tls": {"certificates": ["site"]},
                          "routes": [{"backend": "x"}]}], "backends": {"x": {"builtin": "status"}}}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg, indent=1))
    r = testenv.tlsgate("check", "-c", str(path))
    out = r.stderr + r.stdout
    assert r.returncode != 0
    assert "there is no top-level \"acme\" section" in out, out
    assert "\"A_B\" is not a DNS name" in out, out


def serial(port, name):
    r = testenv.s_client(port, sni=name)
    pem = r.peer_cert_pem
    assert pem, r.out + r.err
    import subprocess
    return subprocess.run(["openssl", "x509", "-noout", "-serial", "-issuer"], input=pem,
                          capture_output=True, text=True).stdout


def test_placeholder_while_acme_down_then_real(gateway, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    p = testenv.Pebble(str(tmp_path), certs, http_port, tls_port)
    try:
        cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["late.test"],
                          challenges=["http-01"])
        gw = gateway(cfg)
        wait_log(gw, "reason=acme_failed")
        assert "cannot connect" in gw.log_text()
        # The gateway serves the self-signed placeholder for the name meanwhile.
        before = serial(tls_port, "late.test")
        assert "CN = late.test" in before and "Pebble" not in before, before
        p.start()
        wait_log(gw, "certificate obtained for late.test")
        wait_log(gw, "config reloaded (generation 1 kept")
        root = p.root_pem(str(tmp_path / "pebble-root.pem"))
        r = verified(tls_port, "late.test", root)
        assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.out, r.out + r.err
    finally:
        p.stop()


def test_restart_serves_stored_cert_without_acme(gateway, pebble, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    p = pebble(http_port, tls_port)
    cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["keep.test"],
                      challenges=["http-01"])
    gw = gateway(cfg, name="first")
    wait_log(gw, "config reloaded (generation 1 kept")
    root = p.root_pem(str(tmp_path / "pebble-root.pem"))
    issued = serial(tls_port, "keep.test")
    gw.stop()
    p.stop()
    gw2 = gateway(cfg, name="second")
    time.sleep(testenv.t(2))
    log = gw2.log_text()
    assert "placeholder" not in log and "obtaining" not in log and "acme_failed" not in log, log
    r = verified(tls_port, "keep.test", root)
    assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.out, r.out + r.err
    assert serial(tls_port, "keep.test") == issued


def test_forced_renewal_replaces_live_once(gateway, pebble, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    p = pebble(http_port, tls_port)
    cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["renew.test"],
                      challenges=["http-01"])
    gw = gateway(cfg)
    wait_log(gw, "config reloaded (generation 1 kept")
    first = serial(tls_port, "renew.test")
    # Renewal window longer than Pebble's certificate lifetime: renewed at once, and only once.
    cfg["acme"]["renew_before_days"] = 3650
    with testenv.Conn(tls_port, sni="renew.test", ctx=testenv.tls_context(verify=False)) as c:
        gw.reload(cfg)
        wait_log(gw, "renewing the certificate for renew.test")
        wait_log(gw, "config reloaded (generation 2 kept")
        # The connection opened before still works (no connection dropped).
        assert c.request("GET", "/").status == 200
    second = serial(tls_port, "renew.test")
    assert second != first, (first, second)
    root = p.root_pem(str(tmp_path / "pebble-root.pem"))
    r = verified(tls_port, "renew.test", root)
    assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.out, r.out + r.err
    time.sleep(testenv.t(4))
    log = gw.log_text()
    assert log.count("renewing the certificate for renew.test") == 1, log
    assert "is renewed at every check" in log


def test_external_account_binding(gateway, pebble, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    p = pebble(http_port, tls_port, eab={"kid-1": key})
    cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["eab.test"],
                      challenges=["http-01"], eab={"kid": "kid-1", "hmac_key": key})
    gw = gateway(cfg)
    wait_log(gw, "certificate obtained for eab.test")
    assert key not in gw.log_text()
    out = testenv.tlsgate("check", "-c", gw.config_path)
    assert key not in out.stdout + out.stderr


def test_external_account_binding_refused(gateway, pebble, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    p = pebble(http_port, tls_port, eab={"kid-1": key})
    cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["eab.test"],
                      challenges=["http-01"])
    gw = gateway(cfg)
    wait_log(gw, "reason=acme_failed: newAccount: HTTP ")
    assert "externalAccountRequired" in gw.log_text() or "external account" in gw.log_text()


def test_silent_acme_server_refused_in_time(gateway, tmp_path, certs, state_dir):
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP (the backlog), never says a word
    try:
        http_port, tls_port = testenv.free_port(), testenv.free_port()
        d = "https://localhost:%d/dir" % silent.getsockname()[1]
        cfg = acme_config(certs, state_dir, d, http_port, tls_port, ["slow.test"])
        gw = gateway(cfg)
        wait_log(gw, "reason=acme_failed", timeout=40)
        assert "TLS handshake failed: no answer within the time limit" in gw.log_text()
        # Traffic is served meanwhile (the placeholder).
        assert testenv.s_client(tls_port, sni="slow.test").connected
    finally:
        silent.close()


def test_acme_server_not_trusted(gateway, pebble, tmp_path, certs, state_dir):
    http_port, tls_port = testenv.free_port(), testenv.free_port()
    p = pebble(http_port, tls_port)
    cfg = acme_config(certs, state_dir, p.directory, http_port, tls_port, ["trust.test"])
    del cfg["acme"]["truststore"]  # the system trust does not know the test CA
    gw = gateway(cfg)
    wait_log(gw, "reason=acme_failed")
    assert "certificate not verified: unable to get local issuer certificate" in gw.log_text()
