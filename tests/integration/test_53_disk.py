"""A full disk under the state directory and under the access log (a small tmpfs filled up):
an admin write that cannot be stored answers 500 naming the reason, and the running config, the
stored state and the version stay as they were (a restart loads them); access-log lines that
cannot be written are dropped and counted, the failure is logged once per episode, and requests
are served all along."""
import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import urllib.parse

import pytest
from prometheus_client.parser import text_string_to_metric_families

import testenv
from testenv import Conn, fingerprint
from testenv.admin import Admin, admin_section, password_hash

PW = "disk-full-pw"


@pytest.fixture(scope="module")
def pw_hash():
    return password_hash(PW)


@pytest.fixture
def tmpfs(tmp_path):
    """tmpfs(name, size) -> a directory on a fresh tmpfs of that size (unmounted after)."""
    testenv.need(os.geteuid() == 0, "root, to mount a small tmpfs (mount -t tmpfs); the full-disk "
                 "tests run as root in make test")
    mounted = []

    def make(name, size="256k"):
        d = tmp_path / name
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs",
                        str(d)], check=True, capture_output=True)
        mounted.append(str(d))
        return str(d)

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", d], capture_output=True)


def fill(directory):
    """Fills the file system of directory up to the last byte (remove with free())."""
    for name, block in (("filler", 65536), ("filler2", 1)):
        fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * block)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        finally:
            os.close(fd)


def free(directory):
    for n in ("filler", "filler2"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, n))


CORDA = "CN=Operator,O=Org"


def _config(certs, state_dir, port, aport, pw_hash):
    return {
        "version": 1, "workers": 2, "state_dir": state_dir,
        "log": {"level": "info"},
        "keystores": {"main": certs.ec.keystore()},
        "truststores": {"clients": {"type": "pem", "file": certs.ca.cert}},
        "listeners": [
            {"name": "public", "address": "127.0.0.1:%d" % port,
             "tls": {"certificates": ["main"],
                     "client_auth": {"mode": "optional", "truststore": "clients",
                                     "allowed_subjects": ["CN=bob,O=Org"]}},
             "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
        "admin": admin_section(aport, pw_hash),
    }


def test_full_state_directory(gateway, certs, tmp_path, pw_hash, tmpfs):
    state = tmpfs("state", "256k")
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = _config(certs, state, port, aport, pw_hash)
    gw = gateway(cfg, ready_ports=[(port, True), (aport, True)])
    stored_path = os.path.join(state, "config.json")
    before = open(stored_path, "rb").read()
    assert json.loads(before)["version"] == 1
    allow = "/api/v1/listeners/public/allowed-client-certificate-subjects"
    fill(state)
    with Admin(aport, password=PW) as a:
        doc = a.get("/api/v1/config").json
        assert doc["version"] == 1
        new = json.loads(json.dumps(doc["config"]))
        new["log"]["level"] = "debug"
        r = a.request("PUT", "/api/v1/config", body={"version": 1, "config": new})
        assert r.status == 500, (r.status, r.body)
        assert "No space left on device" in r.body.decode(), r.body
        # an allow-list change is a config change too: the same refusal
        r = a.request("PUT", allow + "/" + urllib.parse.quote(CORDA))
        assert r.status == 500, (r.status, r.body)
        assert "No space left on device" in r.body.decode(), r.body
        # nothing changed: the version, the running allow list, the stored file
        assert a.get("/api/v1/config").json["version"] == 1
        assert a.get(allow).json["allowed_subjects"] == ["CN=bob,O=Org"]
        assert open(stored_path, "rb").read() == before
        assert not [n for n in os.listdir(state) if n.startswith("config.json.tmp")]
        # the data path is served
        assert testenv.get(port, "/").status == 200
        # a SIGHUP with a changed file stores its version first: it fails the same way
        changed = json.loads(json.dumps(cfg))
        changed["log"]["level"] = "debug"
        gw.reload(changed)
        assert gw.wait_log(lambda s: "reload failed" in s), gw.log_tail(10)
        assert gw.log_lines("cannot write the state", "No space left on device"), gw.log_tail(10)
        assert a.get("/api/v1/config").json["version"] == 1
        assert open(stored_path, "rb").read() == before
        gw.write_config(cfg)
        # space again: the same change goes through
        free(state)
        r = a.request("PUT", allow + "/" + urllib.parse.quote(CORDA))
        assert r.status == 201, (r.status, r.body)
        assert r.json["version"] == 2
    assert json.load(open(stored_path))["version"] == 2
    # a restart loads what was stored
    gw.stop()
    gw2 = gateway(cfg, name="again", ready_ports=[(port, True), (aport, True)])
    with Admin(aport, password=PW) as a:
        assert a.get("/api/v1/config").json["version"] == 2
        assert a.get(allow).json["allowed_subjects"] == ["CN=bob,O=Org", CORDA]
    assert gw2.running()


def _served(port):
    with Conn(port, ctx=testenv.tls_context(verify=False)) as c:
        return fingerprint(c.peer_cert_der())


def _renewable(certs, tmp_path, state, port, aport, pw_hash):
    """_config with the listener's key pair in files of its own (web.crt, web.key) to renew."""
    d = str(tmp_path)
    shutil.copy(certs.ec.cert, os.path.join(d, "web.crt"))
    shutil.copy(certs.ec.key, os.path.join(d, "web.key"))
    cfg = _config(certs, state, port, aport, pw_hash)
    cfg["keystores"]["main"] = {"type": "pem", "cert": os.path.join(d, "web.crt"),
                                "key": os.path.join(d, "web.key")}
    return cfg


def _renew(certs, tmp_path):
    """The renewed pair in the same files (replaced by rename, as tools renewing keys do)."""
    for src, name in ((certs.rsa.key, "web.key"), (certs.rsa.cert, "web.crt")):
        shutil.copy(src, str(tmp_path / (name + ".new")))
        os.replace(str(tmp_path / (name + ".new")), str(tmp_path / name))


def _reloads(aport):
    with Admin(aport, password=PW) as a:
        fams = {f.name: f for f in text_string_to_metric_families(a.get("/metrics").body.decode())}
    got = {s.name: s.value for s in fams["tlsgate_config_version"].samples}
    return ({s.labels["result"]: s.value for s in fams["tlsgate_reloads"].samples
             if s.name.endswith("_total")}, got["tlsgate_config_version"])


def test_full_state_directory_key_renewal(gateway, certs, tmp_path, pw_hash, tmpfs):
    """A SIGHUP after renewing the key pair (the config file unchanged) is not a new version:
    nothing is written, so it works on a full state disk: the new certificate is served, the
    version stays, nothing failed."""
    state = tmpfs("state", "256k")
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = _renewable(certs, tmp_path, state, port, aport, pw_hash)
    gw = gateway(cfg, ready_ports=[(port, True), (aport, True)])
    stored_path = os.path.join(state, "config.json")
    before = open(stored_path, "rb").read()
    assert _served(port) == fingerprint(certs.ec.cert)
    fill(state)
    _renew(certs, tmp_path)
    gw.signal(signal.SIGHUP)
    assert gw.wait_log(lambda s: "config reloaded (generation 1 kept: the same document" in s or
                       "reload failed" in s), gw.log_tail(10)
    assert not gw.log_lines("reload failed"), gw.log_tail(10)
    assert not gw.log_lines("No space left on device"), gw.log_tail(10)
    assert _served(port) == fingerprint(certs.rsa.cert)
    assert _reloads(aport) == ({"ok": 1, "failed": 0}, 1)
    with Admin(aport, password=PW) as a:
        assert a.get("/api/v1/config").json["version"] == 1
        # POST /api/v1/reload reads them again the same way
        r = a.request("POST", "/api/v1/reload")
        assert r.status == 200 and r.json["version"] == 1, (r.status, r.body)
    assert open(stored_path, "rb").read() == before
    assert testenv.get(port, "/").status == 200
    # a changed file is a new version, stored first: on the full disk it fails, nothing changes
    changed = json.loads(json.dumps(cfg))
    changed["log"]["level"] = "debug"
    gw.reload(changed)
    assert gw.wait_log(lambda s: "reload failed" in s), gw.log_tail(10)
    assert _reloads(aport) == ({"ok": 2, "failed": 1}, 1)
    assert _served(port) == fingerprint(certs.rsa.cert)
    free(state)


def test_same_document_reload_keeps_the_version(gateway, certs, tmp_path, pw_hash):
    """A reload whose document equals the running one (the file untouched, or rewritten with
    other spacing and key order) keeps the version and leaves the stored state as it was; an
    edit is the next version, stored."""
    state = str(tmp_path / "state")
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = _renewable(certs, tmp_path, state, port, aport, pw_hash)
    gw = gateway(cfg, ready_ports=[(port, True), (aport, True)])
    stored_path = os.path.join(state, "config.json")
    before = open(stored_path, "rb").read()
    _renew(certs, tmp_path)
    gw.signal(signal.SIGHUP)
    assert gw.wait_log(lambda s: "generation 1 kept" in s or "reload failed" in s), \
        gw.log_tail(10)
    assert testenv.wait_until(lambda: _served(port) == fingerprint(certs.rsa.cert), testenv.t(5))
    # the same document in other spacing and key order
    with open(gw.config_path, "w") as f:
        json.dump(dict(reversed(list(cfg.items()))), f)
    gw.signal(signal.SIGHUP)
    assert gw.wait_log(lambda s: s.count("generation 1 kept") == 2 or "reload failed" in s), \
        gw.log_tail(10)
    assert _reloads(aport) == ({"ok": 2, "failed": 0}, 1)
    assert open(stored_path, "rb").read() == before
    changed = json.loads(json.dumps(cfg))
    changed["log"]["level"] = "debug"
    gw.reload(changed)
    assert gw.wait_log(lambda s: "config reloaded (generation 2)" in s or "reload failed" in s), \
        gw.log_tail(10)
    assert _reloads(aport) == ({"ok": 3, "failed": 0}, 2)
    assert json.load(open(stored_path))["version"] == 2


ADMIN_CALLS = [0]


def _dropped(aport):
    """tlsgate_access_log_dropped_lines_total from the admin API's /metrics (each call is an
    access-log line itself, counted in ADMIN_CALLS)."""
    ADMIN_CALLS[0] += 1
    with Admin(aport, password=PW) as a:
        m = a.get("/metrics")
    assert m.status == 200
    line = [ln for ln in m.body.decode().splitlines()
            if ln.startswith("tlsgate_access_log_dropped_lines_total ")]
    assert line, m.body[:2000]
    return int(line[0].split()[1])


def test_full_access_log_disk(gateway, certs, tmp_path, tmpfs, pw_hash):
    logs = tmpfs("logs", "128k")
    access = os.path.join(logs, "access.log")
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": access},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
        "admin": admin_section(aport, pw_hash, tls={"certificates": ["ec"]}),
    }
    gw = gateway(cfg, ready_ports=[(port, True), (aport, True)])
    assert testenv.get(port, "/before").status == 200
    assert testenv.wait_until(lambda: "/before" in open(access).read(), testenv.t(5))
    fill(logs)
    dropped_before = 0
    for episode in (1, 2):
        calls_before = ADMIN_CALLS[0]
        with Conn(port) as c:
            for i in range(50):  # keep-alive requests, all served
                r = c.request("GET", "/full-%d-%d" % (episode, i))
                assert r.status == 200, r.status
        assert testenv.wait_until(
            lambda: _dropped(aport) > dropped_before, testenv.t(5)), gw.log_tail(20)
        failed = gw.log_lines("access log: write failed", "No space left on device")
        assert len(failed) == episode, gw.log_tail(30)  # once per episode, not once per line
        free(logs)
        assert testenv.get(port, "/after-%d" % episode).status == 200
        assert testenv.wait_until(lambda: "/after-%d" % episode in open(access).read(),
                                  testenv.t(5)), gw.log_tail(20)
        assert len(gw.log_lines("access log: writes work again")) == episode, gw.log_tail(30)
        # what was written (a page's slack) plus what was dropped is every request; a line a
        # failed write cut is ended there, the next one starts on its own line
        lines = open(access).read().splitlines()
        written = [ln for ln in lines if '"GET /full-%d-' % episode in ln]
        whole = [ln for ln in written if ln.endswith("proto=HTTP/1.1")]
        dropped = _dropped(aport)
        # (the admin API's /metrics calls while the disk was full are lines too, and a line the
        # failed write cut is counted as dropped: cut just before its newline it reads whole)
        calls = ADMIN_CALLS[0] - calls_before
        assert 50 <= len(whole) + dropped - dropped_before <= 51 + calls, (
            len(whole), dropped, dropped_before, calls)
        glued = [ln for ln in lines if ln.count("127.0.0.1:") > 1]
        assert not glued, glued  # at most a cut line, ended, never two lines run together
        dropped_before = dropped
        fill(logs)
    # the status page says it too
    assert testenv.get(port, "/_status").json()["access_log"]["dropped_lines"] >= dropped
    free(logs)


def test_full_error_log_disk(certs, tmp_path, tmpfs):
    """The error log (the gateway's stderr) on a full disk: requests are served, the lost lines
    are counted (status page error_log.lost_lines), and the first line that makes it after the
    disk has room again is followed by one saying how many are missing."""
    logs = tmpfs("errlog", "128k")
    port = testenv.free_port()
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "debug", "access_log": None},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
    }
    gw = testenv.Gateway(logs, cfg, name="errlog")  # config and output on the small disk
    gw.start()
    try:
        fill(logs)
        for i in range(20):  # each connection writes debug lines (TLS established ...)
            assert testenv.get(port, "/x%d" % i).status == 200
        lost = testenv.get(port, "/_status").json()["error_log"]["lost_lines"]
        assert lost > 0, lost  # (some fit in the last page of the file)
        free(logs)
        assert testenv.get(port, "/after").status == 200
        assert gw.wait_log(lambda s: "earlier line(s) could not be written (No space left on "
                                     "device)" in s), gw.log_tail(10)
        assert len(gw.log_lines("earlier line(s) could not be written")) == 1, gw.log_tail(10)
        gw.stop()
    finally:
        gw.kill()


def test_etcd_store_same_document_reload_writes_no_local_copy(tmp_path, certs):
    """With an etcd store, a reload (the config lives in etcd: key material read again) keeps the
    version and, as with the file store, writes nothing: the local copy cluster.json is not
    rewritten (on a full state disk that write failed and was logged at every reload), nor at a
    restart that finds it up to date. A new version from the store is still written."""
    from testenv.etcd import Etcd
    d = str(tmp_path)
    etcd = Etcd(d, members=1).start()
    gw = None
    try:
        port, aport = testenv.free_port(), testenv.free_port()
        shared = {"version": 1, "log": {"level": "info"},
                  "keystores": {"main": certs.ec.keystore()},
                  "listeners": [{"name": "web", "address": "127.0.0.1:%d" % port,
                                 "tls": {"certificates": ["main"]},
                                 "routes": [{"path_prefix": "/", "backend": "status"}]}],
                  "backends": {"status": {"builtin": "status"}},
                  "admin": admin_section(aport, password_hash(PW))}
        store = {"type": "etcd", "endpoints": etcd.endpoints, "prefix": "/tlsgate/t53/",
                 "timeout_ms": 3000}
        with open(os.path.join(d, "shared.json"), "w") as f:
            json.dump(dict(shared, store=store), f)
        out = testenv.tlsgate("store", "push", "-c", os.path.join(d, "shared.json"))
        assert out.returncode == 0, out.stderr
        state = os.path.join(d, "state")
        inst = {"store": store, "state_dir": state, "workers": 1,
                "admin": {"address": "127.0.0.1:%d" % aport},
                "listeners": [{"name": "web", "address": "127.0.0.1:%d" % port}]}
        gw = testenv.Gateway(d, inst, ready_ports=[(port, True), (aport, True)])
        gw.start(timeout=testenv.t(20))
        local = os.path.join(state, "cluster.json")
        st = os.stat(local)
        before = open(local, "rb").read()
        for n in (1, 2):
            gw.signal(signal.SIGHUP)
            assert gw.wait_log(lambda s: s.count("generation 1 kept") == n or "reload failed" in s
                               or "local copy" in s), gw.log_tail(10)
        assert testenv.get(port, "/").status == 200
        after = os.stat(local)
        assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), \
            "cluster.json rewritten by a reload of the same document"
        assert open(local, "rb").read() == before
        # a restart that finds the copy up to date leaves it too
        gw.stop(expect=0, timeout=testenv.t(20))
        gw.start(timeout=testenv.t(20))
        after = os.stat(local)
        assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
        # a new version from the store (a write through the admin API) is written
        with Admin(aport, password=PW) as a:
            r = a.get("/api/v1/config")
            doc = r.json["config"]
            doc["log"]["level"] = "debug"
            r = a.request("PUT", "/api/v1/config", body={"version": 1, "config": doc})
            assert r.status in (200, 201), r.body
        assert testenv.wait_until(lambda: json.load(open(local))["version"] == 2, testenv.t(5))
        gw.stop(expect=0, timeout=testenv.t(20))
        gw = None
    finally:
        if gw is not None and gw.running():
            gw.stop(expect=None, timeout=testenv.t(20))
        etcd.close()
