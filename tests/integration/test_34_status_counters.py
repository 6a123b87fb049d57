"""The status page's counters move with what happened, through the binary: connections accepted
and active, handshakes completed and resumed, requests by status class, backend connects,
reuses, errors and timeouts (each compared before and after a known set of exchanges)."""
import socket

import testenv
from testenv import Conn


def _status(port):
    r = testenv.get(port, "/_status")
    assert r.status == 200, (r.status, r.body[:200])
    return r.json()


def _delta(a, b, *path):
    for k in path:
        a, b = a[k], b[k]
    return b - a


def test_status_counters(gateway, origin, certs, tmp_path, dead_port):
    o = origin("app")
    port = testenv.free_port()
    dead = dead_port().port
    gw = gateway({
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": None},
        "keystores": {"ec": certs.ec.keystore()},
        "timeouts": {"backend_response": 1},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/_status", "backend": "status"},
                                  {"path_prefix": "/dead", "backend": "dead"},
                                  {"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]},
                     "dead": {"targets": ["127.0.0.1:%d" % dead]},
                     "status": {"builtin": "status"}}})
    s0 = _status(port)  # (its own request completes after it is counted)

    # connection a: four requests kept alive on one backend connection
    with Conn(port) as a:
        for path, want in (("/echo", 200), ("/status/404", 404), ("/status/302", 302),
                           ("/status/500", 500)):
            assert a.request("GET", path).status == want, path
    # connection b: the pooled backend connection again, a refused target, a response timeout
    with Conn(port) as b:
        assert b.request("GET", "/echo").status == 200
        assert b.request("GET", "/dead/x").status == 502
        assert b.request("GET", "/slow?seconds=3").status == 504
    # a full handshake, then a resumed one
    ctx = testenv.tls_context()
    with Conn(port, ctx=ctx) as c:
        assert c.request("GET", "/echo").status == 200
        session = c.sock.session
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=testenv.t(10)),
                        server_hostname="localhost", session=session)
    assert s.session_reused, "the client could not resume; the test proves nothing"
    s.close()
    # connections are counted as they end: ask until the worker has seen the last close (each
    # asking is one more connection and, once done, one more 2xx)
    polls = []

    def settled():
        polls.append(_status(port))
        return polls[-1]["connections"]["active"] == 1
    assert testenv.wait_until(settled, testenv.t(3)), polls[-1]["connections"]
    s1, n = polls[-1], len(polls)

    # since s0: connections a, b, c, the resumed one, and the n that asked for the status
    assert _delta(s0, s1, "connections", "accepted") == 4 + n, (s0["connections"], s1["connections"])
    assert _delta(s0, s1, "handshakes", "completed") == 4 + n, (s0["handshakes"], s1["handshakes"])
    assert _delta(s0, s1, "handshakes", "resumed") == 1, s1["handshakes"]

    req = {k: _delta(s0, s1, "requests", k) for k in ("total", "1xx", "2xx", "3xx", "4xx", "5xx")}
    # 2xx: three /echo, and the status requests before s1's own; 5xx: the 500, 502 and 504
    assert req["3xx"] == 1 and req["4xx"] == 1 and req["5xx"] == 3 and req["1xx"] == 0, req
    assert req["2xx"] == 3 + n, (req, n)
    assert req["total"] == req["2xx"] + req["3xx"] + req["4xx"] + req["5xx"], req

    be = {k: _delta(s0, s1, "backends", k) for k in ("connects", "reuses", "errors", "timeouts")}
    # 7 requests went to app and 1 connect attempt to the dead target: each is a connect or a
    # reuse; a's last three requests reused its backend connection
    assert be["connects"] + be["reuses"] == 8, be
    assert be["reuses"] >= 3 and be["connects"] >= 2, be
    fails = s1["backend_failures"]
    assert fails["connect_refused"] == 1 and fails["response_timeout"] == 1, fails
    assert be["errors"] == sum(fails.values()) == 2, (be, fails)
    assert be["timeouts"] == 1, be
    assert gw.running()


def test_rejected_max_connections_counted(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway({
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": None},
        "keystores": {"ec": certs.ec.keystore()},
        "limits": {"max_connections": 2},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/_status", "backend": "status"},
                                  {"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]}, "status": {"builtin": "status"}}})
    assert testenv.wait_until(lambda: _status(port)["connections"]["active"] <= 1, testenv.t(3))
    before = _status(port)["connections"]["rejected_max_connections"]
    a, b = Conn(port), Conn(port)
    try:
        assert a.request("GET", "/echo").status == 200
        assert b.request("GET", "/echo").status == 200

        def third():
            with Conn(port, timeout=2) as c:
                c.request("GET", "/echo")
        assert testenv.refused(third), "a third connection was served with 2 open"
    finally:
        a.close()
        b.close()
    refused_polls = []

    def rejected():
        try:  # itself refused (and counted) until the gateway has seen a and b close
            return _status(port)["connections"]["rejected_max_connections"]
        except OSError:
            refused_polls.append(1)
            return None
    # the third connection, and each poll refused on the way
    assert testenv.wait_until(lambda: rejected() == before + 1 + len(refused_polls),
                              testenv.t(3)), (rejected(), before, len(refused_polls))
