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
