"""Per-route allow lists (routes[].allowed_subjects): after routing, the verified client
certificate is checked against the route's own list with the listener list's matching (DN in any
order and spacing, dns:/uri:/email:/spki: entries); a certificate not on it, or none, gets 403
with the reason client_cert_not_allowed_for_route, logged once and counted on the status page.
Clients are Python ssl with certificates from the openssl CLI (testenv.mtls)."""
import json

import pytest

import testenv
from testenv import Conn, tlsgate
from testenv.mtls import PKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(str(tmp_path_factory.mktemp("routeallow")))
    p.alice = p.client("alice", "/O=Org/CN=alice", sans=["DNS:alice.example"])
    p.bob = p.client("bob", "/O=Org/CN=bob")
    return p


def _config(certs, pki, tmp_path, port, origin_port, routes):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"clients": {"type": "pem", "file": pki.root.cert}},
        "listeners": [{"name": "mtls", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"], "min_version": "TLS1.2",
                               "client_auth": {"mode": "optional", "truststore": "clients"}},
                       "routes": routes}],
        "backends": {"app": {"targets": ["127.0.0.1:%d" % origin_port]},
                     "status": {"builtin": "status"}},
    }


def _get(port, client, path):
    ctx = testenv.tls_context()
    if client is not None:
        ctx.load_cert_chain(client.chain, client.key)
    with Conn(port, ctx=ctx) as c:
        return c.request("GET", path)


def test_route_allow_list(gateway, origin, certs, pki, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    routes = [{"path_prefix": "/_status", "backend": "status"},
              {"path_prefix": "/alice/", "backend": "app",
               "allowed_subjects": ["o = Org,  commonName=alice"]},
              {"path_prefix": "/dns/", "backend": "app", "allowed_subjects": ["dns:alice.example"]},
              {"path_prefix": "/", "backend": "app"}]
    gw = gateway(_config(certs, pki, tmp_path, port, o.port, routes), ready_ports=[(port, False)])
    assert _get(port, pki.alice, "/alice/x").status == 200
    assert _get(port, pki.alice, "/dns/x").status == 200
    assert _get(port, pki.bob, "/").status == 200  # the listener's (empty) list admits bob
    r = _get(port, pki.bob, "/alice/x")
    assert r.status == 403, r.status
    assert "not allowed for this path" in r.text, r.text
    r = _get(port, None, "/dns/y")
    assert r.status == 403, r.status
    assert not [q for q in o.requests if q[1] == "/dns/y"], o.requests
    assert [q[1] for q in o.requests].count("/alice/x") == 1, o.requests
    text = gw.wait_log(lambda s: s.count("reason=client_cert_not_allowed_for_route") >= 2,
                       timeout=3)
    assert text, gw.log_tail()
    lines = [l for l in gw.log_text().splitlines()
             if "reason=client_cert_not_allowed_for_route" in l]
    assert len(lines) == 2, lines
    assert "CN=bob" in lines[0] and "/listeners/0/routes/1/allowed_subjects" in lines[0], lines
    assert "no certificate" in lines[1] and "routes/2/allowed_subjects" in lines[1], lines
    st = json.loads(_get(port, pki.alice, "/_status").body)
    assert st["request_failures"]["client_cert_not_allowed_for_route"] == 2, st


def _check(cfg, tmp_path):
    path = str(tmp_path / "gw.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return tlsgate("check", "-c", path)


def test_route_allow_list_check(certs, pki, tmp_path):
    routes = [{"path_prefix": "/", "backend": "app", "allowed_subjects": ["CN=x,,bad"]}]
    cfg = _config(certs, pki, tmp_path, testenv.free_port(), 1, routes)
    r = _check(cfg, tmp_path)
    assert r.returncode == 2 and "/listeners/0/routes/0/allowed_subjects/0" in r.stderr, r.stderr
    routes[0]["allowed_subjects"] = ["CN=alice,O=Org"]
    cfg["listeners"][0]["tls"]["client_auth"] = {"mode": "none"}
    r = _check(cfg, tmp_path)
    assert r.returncode == 2, r.stderr
    assert "/listeners/0/routes/0/allowed_subjects" in r.stderr and "optional" in r.stderr, r.stderr
    cfg["listeners"][0]["tls"] = {"disabled": True}
    r = _check(cfg, tmp_path)
    assert r.returncode == 2 and "plaintext listener" in r.stderr, r.stderr
    cfg = _config(certs, pki, tmp_path, testenv.free_port(), 1, routes)
    r = _check(cfg, tmp_path)
    assert r.returncode == 0, r.stderr
