"""The etcd store over TLS (issue 14): etcd's certificate verified against store.tls.truststore,
a client certificate presented, etcd's own authentication with username and password; the
instance file's errors at file:line:column; `check` and `store` verbs with their exit codes."""
import json
import os
import subprocess

import pytest

import testenv
from testenv.admin import Admin, admin_section, password_hash
from testenv.etcd import Etcd
from testenv.mtls import PKI

PW = "tls-cluster-admin"
ETCD_PW = "etcd-root-secret"


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    etcdctl = testenv.need_tool("etcdctl", "etcd-client")
    d = str(tmp_path_factory.mktemp("etcdtls"))
    pki = PKI(os.path.join(d, "pki"))
    server = pki.client("etcd", "/O=tlsgate tests/CN=localhost", issuer=pki.root,
                        sans=["IP:127.0.0.1", "DNS:localhost"], eku="serverAuth,clientAuth")
    # etcd 3.4's JSON gateway refuses a client certificate with a CommonName once its own
    # authentication is on (the name would be ignored): the gateway's has none
    client = pki.client("gw", "/O=tlsgate tests/OU=gateway", issuer=pki.root)
    e = Etcd(d, members=1, tls={"ca": pki.root.cert, "cert": server.cert, "key": server.key})
    e.client_tls = {"ca": pki.root.cert, "cert": client.cert, "key": client.key}
    e.start()
    ctl = [etcdctl, "--endpoints", e.endpoints[0], "--cacert", pki.root.cert, "--cert",
           client.cert, "--key", client.key]
    env = dict(os.environ, ETCDCTL_API="3")
    try:
        for args in (["role", "add", "root"],
                     ["user", "add", "root:" + ETCD_PW, "--interactive=false"],
                     ["user", "grant-role", "root", "root"], ["auth", "enable"]):
            r = subprocess.run(ctl + args, env=env, capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
    except BaseException:
        e.close()
        raise
    e.ctl, e.ctl_env, e.pki, e.client, e.dir = ctl, env, pki, client, d
    yield e
    e.close()


def _instance_file(e, d, name, password=ETCD_PW, truststore=None, endpoints=None):
    admin, web = testenv.free_port(), testenv.free_port()
    doc = {"store": {"type": "etcd", "endpoints": endpoints or e.endpoints,
                     "prefix": "/tlsgate/tls50/",
                     "tls": {"truststore": truststore or e.pki.root.cert,
                             "client_certificate": {"cert": e.client.cert, "key": e.client.key},
                             "server_name": "localhost"},
                     "username": "root", "password": password},
           "state_dir": os.path.join(d, name + "-state"),
           "admin": {"address": "127.0.0.1:%d" % admin},
           "listeners": [{"name": "web", "address": "127.0.0.1:%d" % web}]}
    path = os.path.join(d, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    return path, admin, web


def _shared(certs, hash_):
    return {"version": 1, "keystores": {"main": certs.ec.keystore()},
            "listeners": [{"name": "web", "address": "127.0.0.1:%d" % testenv.free_port(),
                           "tls": {"certificates": ["main"]},
                           "routes": [{"path_prefix": "/", "backend": "status"}]}],
            "backends": {"status": {"builtin": "status"}},
            "admin": admin_section(testenv.free_port(), hash_)}


def _etcd_get(e, key):
    r = subprocess.run(e.ctl + ["--user", "root:" + ETCD_PW, "get", "--print-value-only", key],
                       env=e.ctl_env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_tls_store_push_run_put(tls_etcd, certs, tmp_path):
    e = tls_etcd
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps(_shared(certs, password_hash(PW))))
    inst, admin, web = _instance_file(e, str(tmp_path), "gw")
    out = testenv.tlsgate("store", "push", "-c", str(shared), "-s", inst)
    assert out.returncode == 0, out.stderr
    assert "version 1" in out.stdout
    gw = testenv.Gateway(str(tmp_path), None, name="gw", args=["-c", inst],
                         ready_ports=[(web, True), (admin, True)])
    gw.start(timeout=testenv.t(20))
    try:
        assert "the shared config from etcd /tlsgate/tls50/config, version 1" in gw.log_text()
        with Admin(admin, password=PW) as a:
            r = a.get("/api/v1/config")
            doc = r.json["config"]
            doc["log"] = {"level": "debug"}
            r = a.request("PUT", "/api/v1/config", body={"version": 1, "config": doc})
            assert r.status == 200, r.body
        assert json.loads(_etcd_get(e, "/tlsgate/tls50/config"))["version"] == 2
        assert ETCD_PW not in gw.log_text()
    finally:
        gw.stop(expect=0, timeout=testenv.t(20))


def test_wrong_password_untrusted_and_unreachable_etcd(tls_etcd, certs, tmp_path):
    e = tls_etcd
    bad, _, _ = _instance_file(e, str(tmp_path), "badpw", password="not-the-password")
    out = testenv.tlsgate("store", "pull", "-c", bad)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "not-the-password" not in out.stdout + out.stderr
    assert "auth" in out.stderr, out.stderr
    untrusted, _, _ = _instance_file(e, str(tmp_path), "untrusted", truststore=certs.ca.cert)
    out = testenv.tlsgate("store", "status", "-c", untrusted)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "certificate verify failed" in out.stdout or "unable to get" in out.stdout, out.stdout
    dead = testenv.DeadPort()
    try:
        gone, _, _ = _instance_file(e, str(tmp_path), "gone",
                                    endpoints=["https://127.0.0.1:%d" % dead.port])
        out = testenv.tlsgate("store", "status", "-c", gone)
    finally:
        dead.close()
    assert out.returncode == 1, out.stdout + out.stderr
    assert "members reached: 0 of 1" in out.stdout, out.stdout
    out = testenv.tlsgate("store", "frobnicate", "-c", gone)
    assert out.returncode == 2


def test_instance_file_errors_and_check(tls_etcd, certs, tmp_path):
    e = tls_etcd
    path = tmp_path / "inst.json"
    path.write_text('{\n  "store": {"type": "etcd", "endpoints": ["ftp://x"], "prefix": "nope"},\n'
                    '  "keystores": {},\n  "listeners": [{"name": "web", "port": 1}]\n}\n')
    out = testenv.tlsgate("check", "-c", str(path))
    assert out.returncode == 2
    err = out.stderr
    assert "%s:2:43: /store/endpoints/0: \"ftp://x\" is not an etcd endpoint" % path in err, err
    assert "/store/prefix: \"nope\" is not a key prefix" in err, err
    assert "%s:3:3: /keystores: \"keystores\" is shared by every instance" % path in err, err
    assert "/listeners/0/port: unknown key" in err, err
    lines = [l for l in err.splitlines() if l.startswith(str(path) + ":")]
    where = [tuple(int(x) for x in l[len(str(path)) + 1:].split(":")[:2]) for l in lines]
    assert where == sorted(where), err  # in source order, as a person fixes them
    inst, _, _ = _instance_file(e, str(tmp_path), "checked")
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps(_shared(certs, password_hash(PW))))
    assert testenv.tlsgate("store", "push", "-c", str(shared), "-s", inst).returncode == 0
    out = testenv.tlsgate("check", "-c", inst)
    assert out.returncode == 0, out.stderr
    assert "config used by run: the shared config from etcd /tlsgate/tls50/config" in out.stdout
    assert "per-instance keys from %s: store, state_dir, admin.address, " \
           "listeners[web].address" % inst in out.stdout, out.stdout
