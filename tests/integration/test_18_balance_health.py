"""Target selection and health: a dead target is skipped and taken out of rotation, the health
check (TCP connect, or GET of a path with a 2xx answer) takes targets out and brings them back,
least_connections prefers the target with fewer requests in flight."""
import threading
import time

import pytest

import testenv
from testenv import Conn, Origin, ScriptedOrigin


def _config(certs, tmp_path, port, backend):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": str(tmp_path / "access.log")},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": backend},
    }


def _get(port, path):
    with Conn(port) as c:
        return c.request("GET", path)


def _origin_of(port, path):
    r = _get(port, path)
    assert r.status == 200, (path, r.status, r.body[:300])
    return r.header("X-Origin")


def _answer(name, body=b"ok\n", status=b"200 OK"):
    return (b"HTTP/1.1 %s\r\nContent-Length: %d\r\nX-Origin: %s\r\nConnection: close\r\n\r\n"
            % (status, len(body), name.encode()) + body)


@pytest.fixture
def scripted():
    made = []

    def make(respond):
        o = ScriptedOrigin(respond)
        made.append(o)
        return o

    yield make
    for o in made:
        o.close()


def _paths(heads):
    return [h.split(b"\r\n", 1)[0].decode("latin-1") for h in heads]


# ---------------------------------------------------------------------------------------------
# dead target: failover, out of rotation, back through the health check

def test_dead_target_out_of_rotation_and_back(gateway, origin, dead_port, certs, tmp_path):
    live = origin("live")
    # bound and never listening until revived: a port merely free a moment ago can be taken by
    # another run's listener under load, and the dead target would then answer health checks
    holder = dead_port()
    dead_port = holder.port
    dead = holder.address
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {
        "targets": [dead, live.address],
        "health": {"interval": 0.5, "timeout": 0.5}}))

    def connect_failures():
        """Request-path failures on the dead target (health check lines say "health")."""
        return [l for l in gw.log_text().splitlines()
                if dead in l and "refused" in l.lower() and "health" not in l.lower()]

    for i in range(10):  # every request succeeds: a refused connect moves on to the live target
        assert _origin_of(port, "/a%d" % i) == "live"
    time.sleep(testenv.t(2))  # four health intervals: out of rotation by now in any case
    before = len(connect_failures())
    for i in range(20):
        assert _origin_of(port, "/b%d" % i) == "live"
    after = connect_failures()
    assert len(after) == before, "the dead target is still tried (%d -> %d failures):\n%s" % (
        before, len(after), "\n".join(after))

    holder.close()
    revived = Origin("revived", port=dead_port)
    try:
        seen = testenv.wait_until(lambda: _origin_of(port, "/c") == "revived", testenv.t(5),
                                  interval=0.1)
        assert seen, "the revived target gets no requests %.0f s after it answers:\n%s" % (
            testenv.t(5), gw.log_tail())
        names = {_origin_of(port, "/d%d" % i) for i in range(6)}
        assert names == {"live", "revived"}, names
    finally:
        revived.close()


def test_idempotent_request_retried_on_next_target(gateway, origin, scripted, certs, tmp_path):
    """A target that accepts and closes without answering: GETs go on to the next target."""
    live = origin("live")
    closer = scripted(lambda method, target, head: ([], False))
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"targets": [closer.address, live.address]}))
    for i in range(6):
        assert _origin_of(port, "/g%d" % i) == "live"
    assert closer.heads, "the closing target was never tried"


# ---------------------------------------------------------------------------------------------
# least_connections

def test_least_connections_avoids_busy_target(gateway, scripted, certs, tmp_path):
    """One target holds a slow request; new requests go to the other. Both origins close every
    connection after its response, so no idle pooled connection counts for either."""
    slow_s = testenv.t(2)

    def make(name):
        def respond(method, target, head):
            if target.startswith("/slow"):
                time.sleep(slow_s)
            return [_answer(name, ("%s %s\n" % (name, target)).encode())], False
        return respond

    a, b = scripted(make("a")), scripted(make("b"))
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"targets": [a.address, b.address],
                                            "balance": "least_connections"}))
    slow = {}

    def run_slow():
        try:
            slow["r"] = _get(port, "/slow")
        except Exception as e:  # reported below
            slow["error"] = e

    th = threading.Thread(target=run_slow)
    th.start()
    try:
        holder = testenv.wait_until(
            lambda: next((o for o in (a, b) if any(p.startswith("GET /slow")
                                                   for p in _paths(o.heads))), None),
            testenv.t(3))
        assert holder, "the slow request reached no target"
        busy, other = ("a", "b") if holder is a else ("b", "a")
        t0 = time.monotonic()
        got = [_origin_of(port, "/q%d" % i) for i in range(6)]
        took = time.monotonic() - t0
        assert took < slow_s, "quick requests took %.1f s (slow one: %.0f s)" % (took, slow_s)
        assert got == [other] * 6, "with %s busy, quick requests went to %s" % (busy, got)
    finally:
        th.join(slow_s + testenv.t(10))
    assert "r" in slow, slow
    assert slow["r"].status == 200 and slow["r"].header("X-Origin") == busy, slow["r"]


# ---------------------------------------------------------------------------------------------
# HTTP health checks

def test_health_path_is_fetched(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {
        "targets": [o.address],
        "health": {"path": "/health", "interval": 0.5, "timeout": 0.5}}))

    def health_requests():
        with o.lock:
            return [(m, p) for m, p, _ in o.requests]
    got = testenv.wait_until(lambda: len(health_requests()) >= 2 and health_requests(),
                             testenv.t(3))
    assert got, "fewer than 2 requests in %.0f s with interval 0.5: %s" % (testenv.t(3),
                                                                        health_requests())
    assert set(got) == {("GET", "/health")}, got
    time.sleep(testenv.t(1))
    assert len(health_requests()) <= 3 + 4 * testenv.SCALE, "interval 0.5 not kept: %d checks" \
        % len(health_requests())


def test_failing_health_check_takes_target_out_and_back(gateway, origin, scripted, certs,
                                                        tmp_path):
    """`sick` answers requests but 500 on /health: it gets no requests until /health says 200."""
    good = origin("good")
    state = {"healthy": False}

    def respond(method, target, head):
        if target == "/health":
            return [_answer("sick", status=b"200 OK" if state["healthy"]
                            else b"500 Internal Server Error")], False
        return [_answer("sick")], False

    sick = scripted(respond)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {
        "targets": [sick.address, good.address],
        "health": {"path": "/health", "interval": 0.5, "timeout": 0.5}}))

    def only_good():
        return all(_origin_of(port, "/w") == "good" for _ in range(4))
    assert testenv.wait_until(only_good, testenv.t(5), interval=0.1), \
        "the target answering 500 on /health still gets requests:\n" + gw.log_tail()
    got = [_origin_of(port, "/x%d" % i) for i in range(10)]
    assert got == ["good"] * 10, got
    assert "GET /health HTTP/1.1" in _paths(sick.heads) or \
        "GET /health HTTP/1.0" in _paths(sick.heads), _paths(sick.heads)[:5]

    state["healthy"] = True
    assert testenv.wait_until(lambda: _origin_of(port, "/y") == "sick", testenv.t(5),
                              interval=0.1), \
        "the target is not back after /health answers 200:\n" + gw.log_tail()


def test_health_timeout_takes_target_out(gateway, origin, scripted, certs, tmp_path):
    """`mute` answers requests but never answers /health within the 0.5 s timeout."""
    good = origin("good")

    def respond(method, target, head):
        if target == "/health":
            time.sleep(testenv.t(3))
        return [_answer("mute")], False

    mute = scripted(respond)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {
        "targets": [mute.address, good.address],
        "health": {"path": "/health", "interval": 0.5, "timeout": 0.5}}))

    def only_good():
        return all(_origin_of(port, "/w") == "good" for _ in range(4))
    assert testenv.wait_until(only_good, testenv.t(5), interval=0.1), \
        "the target that never answers /health still gets requests:\n" + gw.log_tail()
    got = [_origin_of(port, "/x%d" % i) for i in range(10)]
    assert got == ["good"] * 10, got


def test_reload_keeps_dead_target_out_for_open_connections(gateway, origin, certs, tmp_path):
    """A reload must not put a dead target back into rotation, neither for new connections nor
    for kept-alive ones accepted under the old config (found under load with SIGHUPs: every
    reload made old connections try the dead target again)."""
    live = origin("live")
    dead = "127.0.0.1:%d" % testenv.free_port()
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port, {"targets": [dead, live.address],
                                           "health": {"interval": 30, "timeout": 1}})
    gw = gateway(cfg)

    def failures():
        return [l for l in gw.log_text().splitlines()
                if dead in l and "refused" in l.lower() and "health" not in l.lower()]

    with Conn(port) as c:  # accepted under the first config, kept alive across the reloads
        for i in range(4):
            assert c.request("GET", "/a%d" % i).header("X-Origin") == "live"
        assert testenv.wait_until(lambda: len(failures()) >= 1 or
                                  gw.log_lines(dead, "health check failed"), testenv.t(5))
        before = len(failures())
        for n in range(3):
            cfg["log"]["level"] = ["info", "debug", "info"][n]  # a real change each time
            gw.reload(cfg)
            assert gw.wait_log(lambda t: t.count("generation %d" % (n + 2)) >= 1 or
                               t.count("reloaded") >= n + 1, timeout=5)
            for i in range(4):
                assert c.request("GET", "/b%d%d" % (n, i)).header("X-Origin") == "live"
            assert _origin_of(port, "/new%d" % n) == "live"
    after = failures()
    assert len(after) == before, "reloads put the dead target back (%d -> %d):\n%s" % (
        before, len(after), "\n".join(after))
