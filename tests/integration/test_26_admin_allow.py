"""Allow lists through the admin API (issue 13, Corda's allowed-client-certificate-subjects): GET
lists, PUT adds (raw or percent-encoded; 201 new, 200 present compared normalised; 400 for an
unparsable name or a listener without client_auth), DELETE removes (204, 404 absent); effective
at the next handshake, open connections re-checked (reauthorize_live), version advanced, still
there after a restart."""
import ssl
import urllib.parse

import pytest

import testenv
from testenv import Conn
from testenv.admin import Admin, admin_section, password_hash
from testenv.mtls import PKI

PW = "allow-list-admin"
CORDA = "CN=CordaOperator,C=GB,L=London,O=Org"
BASE = "/api/v1/listeners/%s/allowed-client-certificate-subjects"


@pytest.fixture(scope="module")
def pw_hash():
    return password_hash(PW)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(str(tmp_path_factory.mktemp("adminpki")))
    p.alice = p.client("alice", "/C=GB/L=London/O=Org/CN=CordaOperator")
    p.bob = p.client("bob", "/O=Org/CN=bob")
    return p


def _config(certs, pki, tmp_path, port, plain_port, aport, pw_hash, origin_port):
    return {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"main": certs.ec.keystore()},
        "truststores": {"clients": {"type": "pem", "file": pki.root.cert}},
        "listeners": [
            {"name": "p2p", "address": "127.0.0.1:%d" % port,
             "tls": {"certificates": ["main"], "min_version": "TLS1.2",
                     "client_auth": {"mode": "require", "truststore": "clients",
                                     "allowed_subjects": ["CN=bob,O=Org"]}},
             "routes": [{"path_prefix": "/", "backend": "app"}]},
            {"name": "plain", "address": "127.0.0.1:%d" % plain_port,
             "tls": {"certificates": ["main"]},
             "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": ["127.0.0.1:%d" % origin_port]}},
        "admin": admin_section(aport, pw_hash),
    }


def _ctx(client):
    ctx = testenv.tls_context()
    ctx.load_cert_chain(client.chain, client.key)
    return ctx


def _admitted(port, client):
    try:
        with Conn(port, ctx=_ctx(client)) as c:
            return c.request("GET", "/echo").status == 200
    except (ssl.SSLError, ConnectionError, OSError):
        return False


def test_allow_list_resource(gateway, origin, certs, pki, tmp_path, pw_hash):
    o = origin("app")
    port, plain, aport = testenv.free_port(), testenv.free_port(), testenv.free_port()
    cfg = _config(certs, pki, tmp_path, port, plain, aport, pw_hash, o.port)
    gw = gateway(cfg, ready_ports=[(port, False), (aport, True)])
    assert not _admitted(port, pki.alice)
    # bob keeps a connection open; it is re-checked when the list changes
    bob_conn = Conn(port, ctx=_ctx(pki.bob))
    assert bob_conn.request("GET", "/echo").status == 200
    with Admin(aport, password=PW) as a:
        r = a.get(BASE % "p2p")
        assert r.status == 200 and r.json["allowed_subjects"] == ["CN=bob,O=Org"]
        v0 = r.json["version"]
        # Corda's example, raw in the path
        r = a.request("PUT", BASE % "p2p" + "/" + CORDA)
        assert r.status == 201, r.body
        assert r.json["version"] == v0 + 1
        assert _admitted(port, pki.alice)  # the next handshake
        # percent-encoded and in another order: the same subject
        enc = urllib.parse.quote("O=Org, L=London, C=GB, CN=CordaOperator", safe="")
        r = a.request("PUT", BASE % "p2p" + "/" + enc)
        assert r.status == 200 and r.json["version"] == v0 + 1
        assert a.get(BASE % "p2p").json["allowed_subjects"] == ["CN=bob,O=Org", CORDA]
        # errors
        assert a.request("PUT", BASE % "p2p" + "/" + "not-a-name").status == 400
        r = a.request("PUT", BASE % "plain" + "/" + urllib.parse.quote(CORDA))
        assert r.status == 400 and "client_auth" in r.json["error"]
        assert a.request("PUT", BASE % "nope" + "/" + CORDA).status == 404
        assert a.request("POST", BASE % "p2p").status == 405
        # DELETE bob: 204; the open connection of bob is closed (reauthorize_live)
        r = a.request("DELETE", BASE % "p2p" + "/" + urllib.parse.quote("CN=bob, O=Org"))
        assert r.status == 204
        assert a.request("DELETE", BASE % "p2p" + "/CN=bob,O=Org").status == 404
        assert not _admitted(port, pki.bob)
        assert bob_conn.is_closed(timeout=testenv.t(3))
        # the last subject is not removed silently (an empty list admits every chaining cert)
        assert a.request("DELETE", BASE % "p2p" + "/" + CORDA).status == 409
        v = a.get("/api/v1/config").json["version"]
        assert v == v0 + 2
    gw.stop()
    gw2 = testenv.Gateway(str(tmp_path), gw.config, name="again",
                          ready_ports=[(port, False), (aport, True)])
    gw2.start()
    try:
        assert _admitted(port, pki.alice) and not _admitted(port, pki.bob)
        with Admin(aport, password=PW) as a:
            r = a.get(BASE % "p2p")
            assert r.json["allowed_subjects"] == [CORDA] and r.json["version"] == v0 + 2
    finally:
        gw2.stop()
