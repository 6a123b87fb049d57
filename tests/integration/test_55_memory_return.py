"""Memory after a burst of closes: once 1,300 idle TLS connections on a worker have closed, the
gateway gives the freed memory back to the system (malloc_trim on the thread pool, net/trim.c),
so its RSS falls back near where it was, rather than staying at its peak (glibc keeps a worker
arena's freed chunks otherwise). One log line says so. Under the sanitizers (whose allocator is
not glibc's) only the line is checked."""
import resource
import socket
import ssl

import testenv

N = 1300  # more than the 1,024 closes from the peak that start a trim


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_rss_falls_back_after_a_burst_of_idle_connections_closes(gateway, certs, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < N + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, N + 500), hard))
    port, sport = testenv.free_port(), testenv.free_port()
    gw = gateway({
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "status"}]},
                      {"name": "status", "address": "127.0.0.1:%d" % sport,
                       "tls": {"disabled": True},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
        "timeouts": {"idle": 300, "request_headers": 300},
    }, fd_limit=N + 500)
    pid = gw.proc.pid
    ctx = ssl.create_default_context(cafile=certs.ca.cert)
    ctx.check_hostname = False
    held = []
    try:
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                             server_hostname="localhost"):
            pass  # first use: OpenSSL's and our caches
        rss0 = _rss_kib(pid)
        for _ in range(N):
            held.append(ctx.wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                                 timeout=testenv.t(10)),
                                        server_hostname="localhost"))
        assert testenv.wait_until(lambda: _status(sport) == N + 1, testenv.t(10))
        rss1 = _rss_kib(pid)
        grew = rss1 - rss0
        assert grew > N * 10, (rss0, rss1)  # ~14 KiB per idle TLS connection
    finally:
        for s in held:
            s.close()
    assert testenv.wait_until(lambda: _status(sport) == 1, testenv.t(10))
    # Once, a second after the burst: one line (both builds).
    assert gw.wait_log(lambda t: "freed memory given back to the system after" in t,
                       timeout=testenv.t(10)), gw.log_tail()
    lines = gw.log_lines("freed memory given back to the system")
    assert len(lines) == 1 and "worker 0" in lines[0], lines
    if testenv.SANITIZED:
        return  # the sanitizers' allocator is not glibc's: malloc_trim has nothing to give back
    # Back within a third of the growth (glibc alone keeps nearly all of it: 87-97 MiB of RSS for
    # 24 MiB live after 5,000 such connections closed, docs/robustness.md).
    assert testenv.wait_until(lambda: _rss_kib(pid) - rss0 < grew / 3, testenv.t(10)), \
        (rss0, rss1, _rss_kib(pid))


def _status(sport):
    with testenv.Conn(sport, tls=False) as c:
        return c.request("GET", "/").json()["connections"]["active"]
