"""Config promises of docs/config.md not covered elsewhere, through the binary: session_resumption
false, wildcard and case-insensitive route hosts, path_prefix segment boundaries, keys that are
"later" rejected as not supported yet, the error log as JSON lines, workers "auto", and very long
values cut so that a log line stays whole."""
import json
import os
import socket

import pytest

import testenv
from testenv import Conn


def _config(certs, tmp_path, port, backends, routes, tls=None, log=None, workers=1):
    return {
        "version": 1, "workers": workers, "state_dir": str(tmp_path / "state"),
        "log": dict({"level": "info", "access_log": "stdout"}, **(log or {})),
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": dict({"certificates": ["ec"]}, **(tls or {})),
                       "routes": routes}],
        "backends": {name: {"targets": [o.address]} for name, o in backends.items()},
    }


def _resumed(port):
    ctx = testenv.tls_context()
    with Conn(port, ctx=ctx) as c:
        assert c.request("GET", "/").status == 200  # the ticket arrives with the first read
        session = c.sock.session
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=testenv.t(10)),
                        server_hostname="localhost", session=session)
    try:
        return s.session_reused
    finally:
        s.close()


@pytest.mark.parametrize("on", [True, False])
def test_session_resumption_switch(gateway, origin, certs, tmp_path, on):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": o}, [{"path_prefix": "/", "backend": "app"}],
                    tls={"session_resumption": on}))
    assert _resumed(port) is on


def test_route_hosts_wildcard_and_case(gateway, origin, certs, tmp_path):
    a, b, c = origin("a"), origin("b"), origin("c")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"a": a, "b": b, "c": c}, [
        {"host": "*.example.test", "path_prefix": "/", "backend": "b"},
        {"host": "API.Exact.test", "path_prefix": "/", "backend": "c"},
        {"path_prefix": "/", "backend": "a"},
    ]))
    cases = [("x.example.test", "b"), ("a.b.example.test", "b"), ("X.EXAMPLE.TEST:443", "b"),
             ("example.test", "a"), ("xexample.test", "a"), ("api.exact.test", "c"),
             ("API.EXACT.TEST", "c"), ("other.exact.test", "a")]
    with Conn(port) as conn:
        for host, want in cases:
            r = conn.request("GET", "/", headers=[("Host", host)])
            assert r.status == 200 and r.header("X-Origin") == want, (host, r.header("X-Origin"))


def test_path_prefix_segment_boundaries(gateway, origin, certs, tmp_path):
    a, b, c = origin("a"), origin("b"), origin("c")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"a": a, "b": b, "c": c}, [
        {"path_prefix": "/api", "backend": "b"},
        {"path_prefix": "/dir/", "backend": "c"},
        {"path_prefix": "/", "backend": "a"},
    ]))
    cases = [("/api", "b"), ("/api/", "b"), ("/api/x", "b"), ("/api?q=1", "b"), ("/apix", "a"),
             ("/API/x", "a"), ("/dir/x", "c"), ("/dir/", "c"), ("/dir", "a"), ("/dirx", "a")]
    with Conn(port) as conn:
        for path, want in cases:
            r = conn.request("GET", path)
            assert r.status == 200 and r.header("X-Origin") == want, (path, r.header("X-Origin"))


FORMERLY_LATER = [
    ("store", lambda cfg: cfg.update(store={"type": "file"})),
    ("sandbox", lambda cfg: cfg.update(sandbox={"enabled": True})),
    ("max_connections_per_ip", lambda cfg: cfg.setdefault("limits", {}).update(
        max_connections_per_ip=10)),
    ("handshake_rate_per_ip", lambda cfg: cfg.setdefault("limits", {}).update(
        handshake_rate_per_ip=10)),
    ("early_data", lambda cfg: cfg["listeners"][0]["tls"].update(early_data=True)),
]


@pytest.mark.parametrize("what,edit", FORMERLY_LATER, ids=[w for w, _ in FORMERLY_LATER])
def test_contract_keys_once_not_supported_are_built(origin, certs, tmp_path, what, edit):
    """Every key README's "Not yet" once listed is accepted now: check passes, nothing says
    "not supported yet"."""
    o = origin("app")
    cfg = _config(certs, tmp_path, testenv.free_port(), {"app": o},
                  [{"path_prefix": "/", "backend": "app"}])
    edit(cfg)
    path = str(tmp_path / "built.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = testenv.tlsgate("check", "-c", path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "not supported yet" not in out and "unknown key" not in out, out


def test_error_log_json_lines(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": o}, [{"path_prefix": "/app/",
                                                               "backend": "app"}],
                         log={"format": "json", "access_log": None}))
    # an info line with client bytes in it (a refusal naming the path) and a TLS failure
    assert testenv.get(port, "/nowhere\"\\\x7f").status in (400, 404)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP to a TLS port
        s.settimeout(testenv.t(5))
        try:
            s.recv(100)
        except OSError:
            pass
    assert gw.wait_log(lambda t: "plain_http" in t), gw.log_tail()
    gw.stop()
    lines = gw.log_text().splitlines()
    assert len(lines) >= 4, lines
    for line in lines:
        doc = json.loads(line)  # every line of the error log is one JSON object
        assert {"time", "level", "msg"} <= set(doc), doc
    assert any("reason=plain_http" in json.loads(l)["msg"] for l in lines), lines


def test_workers_auto(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"app": o}, [{"path_prefix": "/",
                                                               "backend": "app"}],
                         workers="auto"))
    want = min(len(os.sched_getaffinity(0)), os.cpu_count() or 1, 256)
    started = gw.log_lines("started:")
    assert len(started) == 1, gw.log_tail()
    n = int(started[0].split("started: ", 1)[1].split(" worker", 1)[0])
    assert n in (want, os.cpu_count()), (n, want, started[0])
    assert testenv.get(port, "/").status == 200


def test_very_long_values_are_cut_whole(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    access = str(tmp_path / "access.json")
    gw = gateway(_config(certs, tmp_path, port, {"app": o}, [{"path_prefix": "/",
                                                               "backend": "app"}],
                         log={"format": "json", "access_log": access}))
    # 20000 bytes of path, ending in multi-byte UTF-8 and bytes that need escaping
    path = "/long-" + "\u00e9" * 6000 + "\\\"" * 2000 + "-end"
    with Conn(port) as c:
        r = c.request("GET", path.encode("utf-8").decode("latin-1"))
        assert r.status in (200, 414, 431, 400), r.status
    gw.stop()
    with open(access, "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) == 1, lines[:3]
    doc = json.loads(lines[0].decode("utf-8"))  # whole: valid UTF-8 and valid JSON
    assert doc["path"].startswith("/long-\u00e9"), doc["path"][:40]
    assert len(doc["path"]) < len(path), "a 20000-byte path was not cut"


# ---------------------------------------------------------------------------------------------
# password forms, stores without a password, warnings that do not fail the load

def _check(tmp_path, cfg, env=None, name="c.json"):
    import subprocess
    path = str(tmp_path / name)
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([testenv.BIN, "check", "-c", path], capture_output=True, text=True,
                       timeout=testenv.t(60), env=dict(os.environ, **(env or {})))
    out = r.stdout + r.stderr
    assert not testenv.gateway.sanitizer_lines(out), out
    return r.returncode, out


def _p12(certs, d, password):
    import subprocess
    path = os.path.join(d, "web-%d.p12" % len(password))
    subprocess.run(["openssl", "pkcs12", "-export", "-in", certs.ec.cert, "-inkey", certs.ec.key,
                    "-out", path, "-passout", "pass:" + password], check=True, capture_output=True)
    return path


def _store_cfg(certs, tmp_path, keystore, truststores=None):
    cfg = {"version": 1, "keystores": {"web": keystore},
           "listeners": [{"name": "p", "address": "127.0.0.1:%d" % testenv.free_port(),
                          "tls": {"certificates": ["web"]},
                          "routes": [{"path_prefix": "/", "backend": "s"}]}],
           "backends": {"s": {"builtin": "status"}}}
    if truststores:
        cfg["truststores"] = truststores
        cfg["backends"]["b"] = {"targets": ["127.0.0.1:9"], "tls": {"truststore": "t"}}
    return cfg


def test_password_from_file_and_env(certs, tmp_path):
    p12 = _p12(certs, str(tmp_path), "s3cret-pw")
    pwfile = str(tmp_path / "keystore.pw")
    with open(pwfile, "w") as f:
        f.write("s3cret-pw\n")  # one trailing newline removed
    code, out = _check(tmp_path, _store_cfg(certs, tmp_path, {
        "type": "pkcs12", "file": p12, "password": {"file": pwfile}}))
    assert code == 0, out
    code, out = _check(tmp_path, _store_cfg(certs, tmp_path, {
        "type": "pkcs12", "file": p12, "password": {"env": "TG_TEST_STORE_PW"}}),
        env={"TG_TEST_STORE_PW": "s3cret-pw"})
    assert code == 0, out
    assert "s3cret-pw" not in out
    env = dict(os.environ)
    env.pop("TG_TEST_STORE_PW", None)
    code, out = _check(tmp_path, _store_cfg(certs, tmp_path, {
        "type": "pkcs12", "file": p12, "password": {"env": "TG_TEST_STORE_PW"}}))
    assert code == 2 and "TG_TEST_STORE_PW" in out, out
    big = str(tmp_path / "big.pw")
    with open(big, "w") as f:
        f.write("x" * 9000)
    code, out = _check(tmp_path, _store_cfg(certs, tmp_path, {
        "type": "pkcs12", "file": p12, "password": {"file": big}}))
    assert code == 2 and "/keystores/web/password" in out, out


def test_store_truststores_without_password(certs, tmp_path):
    import subprocess
    # PKCS#12 without a password in the config: the empty password is tried
    p12 = str(tmp_path / "trust-empty.p12")
    subprocess.run(["openssl", "pkcs12", "-export", "-nokeys", "-in", certs.ca.cert, "-out", p12,
                    "-passout", "pass:"], check=True, capture_output=True)
    code, out = _check(tmp_path, _store_cfg(certs, tmp_path, certs.ec.keystore(),
                                            {"t": {"type": "pkcs12", "file": p12}}))
    assert code == 0 and 'truststore "t" (1 CA' in out, out
    # JKS without a password: read, with a warning that its digest was not checked
    testenv.need_tool("keytool", "openjdk-17-jre-headless")
    jks = str(tmp_path / "trust.jks")
    subprocess.run(["keytool", "-importcert", "-noprompt", "-storetype", "JKS", "-keystore", jks,
                    "-storepass", "changeit", "-alias", "ca", "-file", certs.ca.cert],
                   check=True, capture_output=True, timeout=120)
    code, out = _check(tmp_path, _store_cfg(certs, tmp_path, certs.ec.keystore(),
                                            {"t": {"type": "jks", "file": jks}}))
    assert code == 0 and 'truststore "t" (1 CA' in out, out
    assert "warning:" in out and "truststores/t" in out, out


def test_unusable_suite_is_a_warning(certs, tmp_path):
    cfg = _store_cfg(certs, tmp_path, certs.ec.keystore())
    cfg["listeners"][0]["tls"]["cipher_suites"] = ["TLS_AES_128_GCM_SHA256",
                                                   "ECDHE-ECDSA-AES128-GCM-SHA256"]
    code, out = _check(tmp_path, cfg)  # TLS 1.3 only: the TLS 1.2 suite can never be used
    assert code == 0, out
    assert "warning:" in out and "ECDHE-ECDSA-AES128-GCM-SHA256" in out.split("warning:", 1)[1], out


def test_fragment_in_target_is_400(gateway, origin, certs, tmp_path):
    from test_32_failure_tables import _raw
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"app": o}, [{"path_prefix": "/", "backend": "app"}]))
    status, body, raw = _raw(port, b"GET /x#frag HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status == 400, raw[:200]
    assert o.requests == []


def test_relative_paths_and_encrypted_pem_key(gateway, certs, tmp_path):
    """Relative paths are resolved against the config file's directory (not the working
    directory); a PEM key encrypted with key_password is served."""
    import shutil
    import subprocess
    d = tmp_path / "conf"
    (d / "keys").mkdir(parents=True)
    shutil.copy(certs.ec.cert, str(d / "keys" / "web.crt"))
    subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", certs.ec.key,
                    "-out", str(d / "keys" / "web.key"), "-passout", "pass:key-pw"],
                   check=True, capture_output=True)
    with open(str(d / "keys" / "web.key")) as f:
        assert "ENCRYPTED PRIVATE KEY" in f.read()
    port = testenv.free_port()
    cfg = {"version": 1, "workers": 1, "state_dir": "state",
           "log": {"level": "info", "access_log": None},
           "keystores": {"web": {"type": "pem", "cert": "keys/web.crt", "key": "keys/web.key",
                                 "key_password": "key-pw"}},
           "listeners": [{"name": "p", "address": "127.0.0.1:%d" % port,
                          "tls": {"certificates": ["web"]},
                          "routes": [{"path_prefix": "/", "backend": "s"}]}],
           "backends": {"s": {"builtin": "status"}}}
    gw = testenv.Gateway(str(d), cfg, name="rel")  # written to conf/rel.json
    gw.write_config(cfg)
    other = tmp_path / "elsewhere"
    other.mkdir()
    r = testenv.tlsgate("check", "-c", gw.config_path, cwd=str(other))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "key-pw" not in r.stdout + r.stderr
    bad = dict(cfg, keystores={"web": dict(cfg["keystores"]["web"], key_password="wrong")})
    gw.write_config(bad)
    r = testenv.tlsgate("check", "-c", gw.config_path, cwd=str(other))
    assert r.returncode == 2 and "/keystores/web" in r.stdout + r.stderr, r.stdout + r.stderr
    # the same config written elsewhere does not find keys/ (resolution is by the file's
    # directory); with absolute paths the encrypted key is served
    run = json.loads(json.dumps(cfg))
    for k in ("cert", "key"):
        run["keystores"]["web"][k] = str(d / run["keystores"]["web"][k])
    run["state_dir"] = str(tmp_path / "state")
    gateway(run, name="rel-run")
    with Conn(port) as c:
        assert testenv.fingerprint(c.peer_cert_der()) == testenv.fingerprint(certs.ec.cert)


def test_round_robin_spreads_requests(gateway, origin, certs, tmp_path):
    a, b = origin("a"), origin("b")
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port, {}, [{"path_prefix": "/", "backend": "app"}])
    cfg["backends"] = {"app": {"targets": [a.address, b.address], "balance": "round_robin"}}
    gateway(cfg)
    seen = []
    for i in range(10):
        with Conn(port) as c:  # a new connection each time: no pooled-connection affinity
            seen.append(c.request("GET", "/rr%d" % i).header("X-Origin"))
    assert seen.count("a") == 5 and seen.count("b") == 5, seen
