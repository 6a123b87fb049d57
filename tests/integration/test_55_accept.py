"""Accepting: one accept4 per readable event for a lone connection (the listener is
level-triggered, so the loop reports it again while more are queued), a batch until EAGAIN when
connections queue up. A burst of connections opened at once is accepted and served promptly,
none refused or reset, each counted once."""
import time

import testenv
from test_52_limits import _config, _connect, _plain_get, _status

BURST = 300


def test_burst_of_connections_accepted_promptly(gateway, certs, tmp_path):
    port, sport = testenv.free_port(), testenv.free_port()
    cfg = _config(certs, tmp_path, port, sport, {}, workers=1, tls={"disabled": True})
    gateway(cfg, ready_ports=[(sport, False)])
    before = _status(sport)["connections"]["accepted"]
    t0 = time.monotonic()
    socks = [_connect(port) for _ in range(BURST)]  # all queued before the gateway takes any
    try:
        for s in socks:
            status, _ = _plain_get(s)
            assert status == 200, status
        took = time.monotonic() - t0
        st = _status(sport)
    finally:
        for s in socks:
            s.close()
    # every one accepted and still open (the status query is the one more)
    assert st["connections"]["accepted"] - before == BURST + 1, st["connections"]
    assert st["connections"]["active"] >= BURST, st["connections"]
    assert sum(st["connection_refusals"].values()) == 0, st["connection_refusals"]
    assert took < testenv.t(10), "%d connections took %.1f s" % (BURST, took)


def test_system_calls_per_connection_and_reused_request(gateway, origin, certs, tmp_path):
    """strace attached to a one-worker gateway while N connections come one after the other, each
    with 3 kept-alive requests through a pooled backend connection: one accept4 per connection
    (no failing second one), no ioctl(FIONBIO) and at most 3 epoll_ctl per connection (a poll
    handle kept by descriptor number: the numbers come back), no recv(MSG_PEEK) for a reused
    pooled connection. The main branch of 2026-12-07 made N more accept4, N ioctl, 5N epoll_ctl
    and 3N peeks."""
    import signal
    import subprocess
    strace = testenv.need_tool("strace", "strace")
    o = origin("app")
    port = testenv.free_port()
    gw = gateway({
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": None},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]}}})
    from testenv import Conn
    with Conn(port) as c:  # warm-up: the pooled backend connection, a first handle kept
        assert c.request("GET", "/echo").status == 200
    out = tmp_path / "strace.out"
    calls = "trace=accept4,epoll_ctl,ioctl,recvfrom,epoll_wait"
    tracer = subprocess.Popen([strace, "-f", "-qq", "-e", calls, "-o", str(out),
                               "-p", str(gw.proc.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # attached once a system call shows (the worker polls at least every 100 ms)
        assert testenv.wait_until(lambda: out.exists() and out.stat().st_size > 0 or
                                  tracer.poll() is not None, testenv.t(10))
        assert tracer.poll() is None, tracer.stderr.read().decode(errors="replace")
        n = 20
        for _ in range(n):
            with Conn(port) as c:
                for _ in range(3):
                    assert c.request("GET", "/echo").status == 200
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=testenv.t(10))
    lines = out.read_text().splitlines()
    accepted = [ln for ln in lines if "accept4(" in ln and "= -1" not in ln]
    failed = [ln for ln in lines if "accept4(" in ln and "EAGAIN" in ln]
    assert len(accepted) >= n, "\n".join(lines[-40:])
    assert len(failed) <= n // 4, "%d accept4 EAGAIN for %d connections" % (len(failed), n)
    assert sum("FIONBIO" in ln for ln in lines) <= 2, [ln for ln in lines if "FIONBIO" in ln]
    ctl = sum("epoll_ctl(" in ln for ln in lines)
    assert ctl <= 3 * n + 4, "%d epoll_ctl for %d connections" % (ctl, n)
    peeks = [ln for ln in lines if "MSG_PEEK" in ln]
    assert not peeks, peeks[:5]
