"""SIGHUP reloads (a bad file changes nothing); SIGTERM drains in-flight requests and exits 0."""
import signal
import threading
import time

import testenv
from testenv import Conn


def _config(certs, tmp_path, port, backend_target, extra_routes=(), tls=None):
    return {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": dict({"certificates": ["ec"]}, **(tls or {})),
                       "routes": list(extra_routes) + [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [backend_target]}, "status": {"builtin": "status"}},
        "timeouts": {"shutdown": 10},
    }


def _origin_of(port, path="/"):
    return testenv.get(port, path).header("X-Origin")


def test_sighup_reload(gateway, origin, certs, tmp_path):
    a, b = origin("a"), origin("b")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, a.address))
    old = Conn(port)
    assert old.request("GET", "/").header("X-Origin") == "a"

    gw.reload(_config(certs, tmp_path, port, b.address,
                      extra_routes=[{"path_prefix": "/_status", "backend": "status"}]))
    assert testenv.wait_until(lambda: _origin_of(port) == "b", testenv.t(5)), \
        "new connections still go to the old backend after SIGHUP"
    assert testenv.get(port, "/_status").status == 200  # the new route exists
    # the already-open keep-alive connection keeps working (on the snapshot it was accepted with)
    r = old.request("GET", "/")
    assert r.status == 200 and r.header("X-Origin") == "a"
    old.close()
    assert gw.running()


def test_sighup_with_bad_config_changes_nothing(gateway, origin, certs, tmp_path):
    a, b = origin("a"), origin("b")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, a.address))

    def failed(n):
        """Waits for the n-th "reload failed" line (the reload is over; nothing changed)."""
        return gw.wait_log(lambda s: s.count("reload failed with") >= n, timeout=5)

    bad = _config(certs, tmp_path, port, b.address, tls={"min_version": "TLS1.9"})
    gw.reload(bad)
    assert failed(1), "no 'reload failed' line:\n" + gw.log_tail()
    assert "/listeners/0/tls/min_version" in gw.log_text(), \
        "the log does not say why the reload failed:\n" + gw.log_tail()
    for _ in range(5):
        assert _origin_of(port) == "a"
    assert gw.running()

    # valid JSON, but the key material fails to load: nothing changes either
    bad = _config(certs, tmp_path, port, b.address)
    bad["keystores"]["ec"] = certs.expired.keystore()
    gw.reload(bad)
    assert failed(2), "no second 'reload failed' line:\n" + gw.log_tail()
    assert "expired" in gw.log_text().lower(), gw.log_tail()
    with Conn(port) as c:
        assert testenv.fingerprint(c.peer_cert_der()) == testenv.fingerprint(certs.ec.cert)
        assert c.request("GET", "/").header("X-Origin") == "a"

    with open(gw.config_path, "w") as f:
        f.write('{"version": 1, "listeners": [')  # not JSON at all
    gw.signal(signal.SIGHUP)
    assert failed(3), "no third 'reload failed' line:\n" + gw.log_tail()
    assert gw.running() and _origin_of(port) == "a"
    assert "generation 1)" in gw.log_lines("reload failed with")[-1], gw.log_tail()


def test_sigterm_drains(gateway, origin, certs, tmp_path):
    o = origin("slow")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o.address))
    result = {}

    def slow():
        try:
            with Conn(port, timeout=20) as c:
                result["r"] = c.request("GET", "/slow?seconds=3")
        except Exception as e:  # noqa: BLE001 - reported below
            result["e"] = e

    th = threading.Thread(target=slow)
    th.start()
    assert testenv.wait_until(lambda: any(p.startswith("/slow") for _, p, _ in o.requests),
                              testenv.t(5)), "the slow request never reached the origin"
    t_sig = time.monotonic()
    gw.signal(signal.SIGTERM)

    refused = testenv.wait_until(lambda: not testenv.can_connect(port, timeout=0.5), testenv.t(1.5))
    refused_at = time.monotonic() - t_sig
    th.join(timeout=testenv.t(15))
    assert "e" not in result, "in-flight request failed: %r" % result.get("e")
    r = result["r"]
    assert r.status == 200 and r.body == b"slow done\n"
    assert refused, "new connections were still accepted after SIGTERM"
    assert refused_at < testenv.t(2.5), "listener closed only %.1f s after SIGTERM" % refused_at
    assert gw.wait_exit(timeout=15) == 0, gw.log_tail()
