"""The versioned config resource (issue 13): GET hides secrets and has an ETag; PUT/PATCH with the
current version apply live (new handshakes see the change, a download started before finishes
byte-exact), a stale version gets 409, an invalid config 400 with JSON paths, and nothing changes
after either; "***" sent back keeps the stored secret; the state is durable (a restart runs what
the API wrote, an edited file wins, versions only go up, kill -9 during concurrent PUTs never
leaves a state that fails to load); 100 PUTs under keep-alive load lose no request."""
import hashlib
import json
import os
import random
import signal
import ssl
import subprocess
import threading
import time

import pytest

import testenv
from testenv import Conn
from testenv.admin import Admin, admin_section, password_hash

PW = "admin-secret-pw"
KEY_PW = "Key-Pa55-word"


@pytest.fixture(scope="module")
def pw_hash():
    return password_hash(PW)


@pytest.fixture(scope="module")
def enc_key(certs, tmp_path_factory):
    """certs.ec's key encrypted with KEY_PW, so the config carries a key_password."""
    d = tmp_path_factory.mktemp("enckey")
    out = str(d / "ec-enc.key")
    subprocess.run(["openssl", "pkey", "-in", certs.ec.key, "-aes256", "-passout",
                    "pass:" + KEY_PW, "-out", out], check=True, capture_output=True)
    return out


def _config(certs, enc_key, tmp_path, port, aport, pw_hash, target=None, min_version="TLS1.3"):
    backend = {"targets": [target]} if target else {"builtin": "status"}
    return {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"main": {"type": "pem", "cert": certs.ec.cert, "key": enc_key,
                               "key_password": KEY_PW}},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["main"], "min_version": min_version,
                               "max_version": "TLS1.3"},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": backend},
        "admin": admin_section(aport, pw_hash),
    }


def _start(gateway, certs, enc_key, tmp_path, pw_hash, name=None, **kw):
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = _config(certs, enc_key, tmp_path, port, aport, pw_hash, **kw)
    gw = gateway(cfg, name=name, ready_ports=[(port, True), (aport, True)])
    return gw, port, aport


def _tls12_ok(port):
    ctx = testenv.tls_context(verify=False, max_version=ssl.TLSVersion.TLSv1_2)
    try:
        with Conn(port, ctx=ctx):
            return True
    except (ssl.SSLError, OSError):
        return False


def test_get_hides_secrets_put_applies_live(gateway, origin, certs, enc_key, tmp_path, pw_hash):
    o = origin("app")
    gw, port, aport = _start(gateway, certs, enc_key, tmp_path, pw_hash, target=o.address)
    with Admin(aport, password=PW) as a:
        r = a.get("/api/v1/config")
        assert r.status == 200 and r.getheader("ETag") == '"1"'
        raw = r.body.decode()
        assert KEY_PW not in raw and pw_hash not in raw
        doc = r.json
        assert doc["version"] == 1
        cfg = doc["config"]
        assert cfg["keystores"]["main"]["key_password"] == "***"
        assert cfg["admin"]["users"][0]["password_hash"] == "***"
        assert not _tls12_ok(port)

        # A large download started before the change finishes byte-exact after it.
        size = 8 << 20
        dl = Conn(port, ctx=testenv.tls_context(verify=False))
        dl.send(Conn.build("GET", "/download?size=%d" % size, "localhost"))
        head = dl.sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200")

        cfg["listeners"][0]["tls"]["min_version"] = "TLS1.2"
        t0 = time.monotonic()
        r = a.request("PUT", "/api/v1/config", body={"version": 1, "config": cfg})
        put_ms = (time.monotonic() - t0) * 1000
        assert r.status == 200, r.body
        assert r.json == {"version": 2} and r.getheader("ETag") == '"2"'
        # The answer comes once every worker has been handed the new snapshot.
        assert _tls12_ok(port)
        print("PUT applied in %.1f ms" % put_ms)

        rest = head[head.index(b"\r\n\r\n") + 4:]
        while len(rest) < size:
            chunk = dl.sock.recv(1 << 16)
            assert chunk, "download cut after %d bytes" % len(rest)
            rest += chunk
        assert hashlib.sha256(rest).hexdigest() == testenv.pattern_sha256(size)
        dl.close()

        # "***" was sent back for key_password and password_hash: the stored secrets are kept
        # (the new snapshot loaded the encrypted key, and the same password still logs in).
        stored = json.load(open(os.path.join(str(tmp_path / "state"), "config.json")))
        assert stored["version"] == 2
        assert stored["config"]["keystores"]["main"]["key_password"] == KEY_PW
        assert stored["config"]["admin"]["users"][0]["password_hash"] == pw_hash
        assert os.stat(os.path.join(str(tmp_path / "state"), "config.json")).st_mode & 0o077 == 0

        # Stale: 409, nothing changes.
        cfg["listeners"][0]["tls"]["min_version"] = "TLS1.3"
        r = a.request("PUT", "/api/v1/config", body={"version": 1, "config": cfg})
        assert r.status == 409 and r.json["version"] == 2
        assert _tls12_ok(port)
        assert a.get("/api/v1/config").json["version"] == 2

        # Invalid: 400 with JSON paths, nothing changes.
        bad = json.loads(json.dumps(cfg))
        bad["listeners"][0]["tls"]["min_version"] = "TLS1.9"
        bad["listeners"][0]["routes"][0]["backend"] = "nope"
        r = a.request("PUT", "/api/v1/config", body={"version": 2, "config": bad})
        assert r.status == 400
        paths = {e["path"] for e in r.json["errors"]}
        assert "/listeners/0/tls/min_version" in paths
        assert "/listeners/0/routes/0/backend" in paths
        assert all(e["message"] for e in r.json["errors"])
        assert a.get("/api/v1/config").json["version"] == 2
        assert _tls12_ok(port)

        # A "***" where nothing is stored is an error at its path.
        bad = json.loads(json.dumps(cfg))
        bad["keystores"]["main"]["alias"] = "***"
        r = a.request("PUT", "/api/v1/config", body={"version": 2, "config": bad})
        assert r.status == 400
        assert r.json["errors"][0]["path"] == "/keystores/main/alias"

        # Removing the admin section through the API would lock everyone out: refused.
        r = a.request("PATCH", "/api/v1/config", headers={"If-Match": '"2"'}, body={"admin": None})
        assert r.status == 400 and r.json["errors"][0]["path"] == "/admin"
        # PATCH (RFC 7396) with If-Match; then with the body form.
        r = a.request("PATCH", "/api/v1/config", headers={"If-Match": '"2"',
                      "Content-Type": "application/merge-patch+json"},
                      body={"listeners": None} and {"log": {"level": "debug"}})
        assert r.status == 200 and r.json == {"version": 3}
        got = a.get("/api/v1/config").json
        assert got["config"]["log"]["level"] == "debug"
        assert got["config"]["listeners"][0]["tls"]["min_version"] == "TLS1.2"
        r = a.request("PATCH", "/api/v1/config",
                      body={"version": 3, "config": {"log": {"level": None}}})
        assert r.status == 200 and r.json == {"version": 4}
        assert "level" not in a.get("/api/v1/config").json["config"]["log"]
        r = a.request("PATCH", "/api/v1/config", headers={"If-Match": '"3"'},
                      body={"log": {"level": "warn"}})
        assert r.status == 409
        # Without a version: 428.
        r = a.request("PATCH", "/api/v1/config", body={"log": {"level": "warn"}})
        assert r.status == 428
        # Malformed JSON: 400 with line and column.
        r = a.request("PUT", "/api/v1/config", body='{"version": 4,\n "config": {]}')
        assert r.status == 400 and r.json["line"] == 2 and r.json["column"] >= 12
        # 304 with If-None-Match.
        r = a.get("/api/v1/config", headers={"If-None-Match": '"4"'})
        assert r.status == 304
    assert KEY_PW not in gw.log_text()


def test_restart_runs_what_the_api_wrote_and_an_edited_file_wins(gateway, certs, enc_key,
                                                                 tmp_path, pw_hash):
    gw, port, aport = _start(gateway, certs, enc_key, tmp_path, pw_hash, name="first")
    assert "no stored state yet" in gw.log_text()
    with Admin(aport, password=PW) as a:
        cfg = a.get("/api/v1/config").json["config"]
        cfg["listeners"][0]["tls"]["min_version"] = "TLS1.2"
        assert a.request("PUT", "/api/v1/config",
                         body={"version": 1, "config": cfg}).status == 200
    gw.stop()
    # Same file, restarted: the stored state (version 2) runs.
    gw2 = testenv.Gateway(str(tmp_path), gw.config, name="second",
                          ready_ports=[(port, True), (aport, True)])
    gw2.start()
    try:
        assert "the stored state" in gw2.log_text() and "version 2" in gw2.log_text()
        assert _tls12_ok(port)
        with Admin(aport, password=PW) as a:
            assert a.get("/api/v1/config").json["version"] == 2
        # `check` says which one is used.
        r = subprocess.run([testenv.BIN, "check", "-c", gw.config_path], capture_output=True,
                           text=True)
        assert r.returncode == 0
        assert "stored state" in r.stdout + r.stderr
        # SIGHUP with the file unchanged: still the state, the same document: version 2 kept.
        gw2.signal(signal.SIGHUP)
        assert gw2.wait_log(lambda s: "generation 2 kept" in s, timeout=5)
        assert _tls12_ok(port)
        # The operator edits the file: it wins on SIGHUP, as the next version.
        edited = json.loads(json.dumps(gw.config))
        edited["timeouts"] = {"idle": 30}
        gw2.reload(edited)
        assert gw2.wait_log(lambda s: "generation 3)" in s, timeout=5)
        assert not _tls12_ok(port)
        with Admin(aport, password=PW) as a:
            got = a.get("/api/v1/config").json
        assert got["version"] == 3 and got["config"]["timeouts"] == {"idle": 30}
    finally:
        gw2.stop()


def test_kill_9_during_concurrent_puts_never_tears_the_state(certs, enc_key, tmp_path, pw_hash):
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = _config(certs, enc_key, tmp_path, port, aport, pw_hash)
    acked = 0
    rng = random.Random(13)
    for round_ in range(6):
        gw = testenv.Gateway(str(tmp_path), cfg, name="kill-%d" % round_,
                             ready_ports=[(port, True), (aport, True)])
        gw.start()
        try:
            with Admin(aport, password=PW) as a:
                v = a.get("/api/v1/config").json["version"]
            # Versions only go up across restarts: at least every acknowledged write is there.
            assert v >= acked, (v, acked)
            stop = threading.Event()
            seen = []

            def writer(level):
                with Admin(aport, password=PW) as a:
                    while not stop.is_set():
                        try:
                            cur = a.get("/api/v1/config").json
                            c = cur["config"]
                            c["log"]["level"] = level
                            r = a.request("PUT", "/api/v1/config",
                                          body={"version": cur["version"], "config": c})
                            if r.status == 200:
                                seen.append(r.json["version"])
                        except (OSError, ValueError, TypeError, AttributeError,
                                __import__("http.client").client.HTTPException):
                            return

            ts = [threading.Thread(target=writer, args=(lv,)) for lv in ("info", "debug")]
            for t_ in ts:
                t_.start()
            time.sleep(rng.uniform(0.2, 0.6))
            gw.kill()  # SIGKILL to the process group, mid-write
            stop.set()
            for t_ in ts:
                t_.join(10)
            if seen:
                acked = max(acked, max(seen))
        finally:
            gw.kill()
        state = os.path.join(str(tmp_path / "state"), "config.json")
        doc = json.load(open(state))  # never torn
        assert doc["version"] >= acked
        leftovers = [f for f in os.listdir(str(tmp_path / "state")) if ".tmp." in f]
        # A temp file may be left by the kill; it is never what is loaded.
        assert len(leftovers) <= 1
        r = subprocess.run([testenv.BIN, "check", "-c", gw.config_path], capture_output=True)
        assert r.returncode == 0, r.stdout + r.stderr
    assert acked >= 2


def test_100_puts_under_keepalive_load_lose_no_request(gateway, origin, certs, enc_key, tmp_path,
                                                       pw_hash):
    o = origin("app")
    gw, port, aport = _start(gateway, certs, enc_key, tmp_path, pw_hash, target=o.address)
    stop = threading.Event()
    results = {"ok": 0, "bad": []}

    def load():
        conn = Conn(port, ctx=testenv.tls_context(verify=False))
        while not stop.is_set():
            try:
                r = conn.request("GET", "/hello")
                if r.status == 200:
                    results["ok"] += 1
                else:
                    results["bad"].append(r.status)
            except Exception as e:  # noqa: BLE001 - any failure is a lost request
                results["bad"].append(repr(e))
                conn = Conn(port, ctx=testenv.tls_context(verify=False))
        conn.close()

    ts = [threading.Thread(target=load) for _ in range(2)]
    for t_ in ts:
        t_.start()
    times = []
    with Admin(aport, password=PW) as a:
        cur = a.get("/api/v1/config").json
        for i in range(100):
            c = cur["config"]
            c["log"]["level"] = "info" if i % 2 else "warn"
            t0 = time.monotonic()
            r = a.request("PUT", "/api/v1/config", body={"version": cur["version"], "config": c})
            times.append((time.monotonic() - t0) * 1000)
            assert r.status == 200, r.body
            cur = {"version": r.json["version"], "config": c}
    stop.set()
    for t_ in ts:
        t_.join(30)
    assert results["bad"] == [] and results["ok"] > 100, results
    times.sort()
    print("100 PUTs: median %.1f ms, p90 %.1f ms, max %.1f ms; %d requests served meanwhile"
          % (times[50], times[90], times[-1], results["ok"]))
    assert cur["version"] == 101
