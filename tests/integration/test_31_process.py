"""The process's promises, through the binary: SIGUSR1 reopens the access log, SIGINT drains and
exits 0, systemd Type=notify (a unix datagram socket standing in for systemd), `run` exits 1 on a
runtime failure, log.level filters, access_log "stderr"/"stdout"/off, every access-log field, and
the default certificate renewed at a reload."""
import datetime
import json
import os
import signal
import socket
import threading

import testenv
from testenv import Conn, fingerprint, tls_context


def _config(certs, tmp_path, port, target, level="info", access="stdout", fmt="text"):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": level, "format": fmt, "access_log": access},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/_status", "backend": "status"},
                                  {"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [target]}, "status": {"builtin": "status"}},
    }


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _has(path, needle):
    return needle in _read(path)


# ---------------------------------------------------------------------------------------------
# SIGUSR1: the access log file is reopened (log rotation)

def test_sigusr1_reopens_the_access_log(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    access = str(tmp_path / "access.log")
    gw = gateway(_config(certs, tmp_path, port, o.address, access=access))
    assert testenv.get(port, "/echo?marker=before").status == 200
    assert testenv.wait_until(lambda: _has(access, "marker=before"), testenv.t(3)), _read(access)
    os.rename(access, access + ".1")  # what logrotate does
    gw.signal(signal.SIGUSR1)
    assert gw.wait_log(lambda s: "SIGUSR1: access log reopened" in s), gw.log_tail()
    assert testenv.get(port, "/echo?marker=after").status == 200
    assert testenv.wait_until(lambda: _has(access, "marker=after"), testenv.t(3)), \
        "the request after SIGUSR1 is not in the new file:\n" + _read(access + ".1")
    assert "marker=before" not in _read(access)
    assert "marker=after" not in _read(access + ".1"), "written to the rotated file"
    assert gw.running()


def test_sigusr1_that_cannot_open_the_log_says_so_and_keeps_the_old_file(gateway, origin, certs,
                                                                         tmp_path):
    """The log's directory was moved away: SIGUSR1 cannot make the new file. One error line
    says so and that the file open before is still written; no line claims it was reopened."""
    o = origin("app")
    port = testenv.free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    access = str(logs / "access.log")
    gw = gateway(_config(certs, tmp_path, port, o.address, access=access))
    os.rename(str(logs), str(tmp_path / "logs.old"))
    gw.signal(signal.SIGUSR1)
    assert gw.wait_log(lambda s: "cannot open access log" in s), gw.log_tail()
    line = gw.log_lines("cannot open access log")[0]
    assert access in line and "still writing to the file open before" in line, line
    assert not gw.log_lines("access log reopened"), gw.log_tail()
    assert testenv.get(port, "/echo?marker=kept").status == 200
    old = str(tmp_path / "logs.old" / "access.log")
    assert testenv.wait_until(lambda: _has(old, "marker=kept"), testenv.t(3)), _read(old)
    assert gw.running()


# ---------------------------------------------------------------------------------------------
# SIGINT: like SIGTERM, the request in flight finishes, then exit 0

def test_sigint_drains_and_exits_0(gateway, origin, certs, tmp_path):
    o = origin("slow")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o.address))
    result = {}

    def slow():
        try:
            with Conn(port, timeout=testenv.t(20)) as c:
                result["r"] = c.request("GET", "/slow?seconds=1")
        except Exception as e:  # noqa: BLE001 - reported below
            result["e"] = e

    th = threading.Thread(target=slow)
    th.start()
    assert testenv.wait_until(lambda: any(p.startswith("/slow") for _, p, _ in o.requests),
                              testenv.t(5)), "the slow request never reached the origin"
    gw.signal(signal.SIGINT)
    assert testenv.wait_until(lambda: not testenv.can_connect(port, timeout=0.5),
                              testenv.t(2)), "new connections still accepted after SIGINT"
    th.join(testenv.t(15))
    assert "e" not in result, "in-flight request failed: %r" % result.get("e")
    assert result["r"].status == 200 and result["r"].body == b"slow done\n"
    assert gw.wait_exit(timeout=10) == 0, gw.log_tail()
    assert "stopped" in gw.log_text()


# ---------------------------------------------------------------------------------------------
# systemd Type=notify: READY=1 on $NOTIFY_SOCKET once the listeners are bound

def test_systemd_notify_ready(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    path = str(tmp_path / "notify.sock")
    sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sd.bind(path)
    sd.settimeout(testenv.t(10))
    try:
        gw = gateway(_config(certs, tmp_path, port, o.address), wait=False,
                     env={"NOTIFY_SOCKET": path})
        try:
            msg = sd.recv(4096)
        except socket.timeout:
            raise AssertionError("no notification on NOTIFY_SOCKET within %.0f s:\n%s"
                                 % (testenv.t(10), gw.log_tail()))
        # Ready means serving: the listener takes a connection at once.
        assert testenv.can_connect(port), "READY=1 sent before the listener was bound"
        assert msg.split(b"\n")[0] == b"READY=1", msg
        gw.wait_ready()
        assert testenv.get(port, "/echo").status == 200
    finally:
        sd.close()


def test_no_notify_socket_no_problem(gateway, origin, certs, tmp_path):
    """A NOTIFY_SOCKET nobody listens on (systemd gone) does not stop the start."""
    o = origin("app")
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, o.address),
            env={"NOTIFY_SOCKET": str(tmp_path / "nobody.sock")})
    assert testenv.get(port, "/echo").status == 200


# ---------------------------------------------------------------------------------------------
# `run` exit codes: 1 for a runtime failure (2 for a bad config is test_04/test_11)

def test_run_exits_1_when_its_address_is_taken(gateway, origin, certs, tmp_path):
    o = origin("app")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        gw = gateway(_config(certs, tmp_path, port, o.address), wait=False)
        assert gw.wait_exit(timeout=10) == 1, gw.log_tail()
        assert "127.0.0.1:%d" % port in gw.log_text(), gw.log_tail()
    finally:
        taken.close()


def test_run_exits_1_when_the_access_log_cannot_be_opened(gateway, origin, certs, tmp_path):
    o = origin("app")
    port = testenv.free_port()
    access = str(tmp_path / "no-such-dir" / "access.log")
    gw = gateway(_config(certs, tmp_path, port, o.address, access=access), wait=False)
    assert gw.wait_exit(timeout=10) == 1, gw.log_tail()
    assert 'cannot open access log "%s"' % access in gw.log_text(), gw.log_tail()


# ---------------------------------------------------------------------------------------------
# log.level: lines below the level are not written

def _warn_and_info(gw, port):
    """Causes an info line (the start, a SIGHUP) and a warn line (a refused backend connect,
    backend-caused) and an error line (a failed reload)."""
    assert testenv.get(port, "/x").status == 502
    with open(gw.config_path, "w") as f:
        f.write("{")
    gw.signal(signal.SIGHUP)
    assert gw.wait_log(lambda s: "reload failed with" in s), gw.log_tail()


def test_log_level_filters(gateway, certs, tmp_path, dead_port):
    dead = dead_port().address
    seen = {}
    for level in ("debug", "info", "warn", "error"):
        port = testenv.free_port()
        gw = gateway(_config(certs, tmp_path, port, dead, level=level, access=None),
                     name="level-" + level)
        _warn_and_info(gw, port)
        text = gw.log_text()
        seen[level] = {lv for lv in ("debug", "info", "warn", "error") if "[%s]" % lv in text}
        gw.stop()
    assert {"info", "warn", "error"} <= seen["debug"], seen
    assert seen["info"] == {"info", "warn", "error"}, seen
    assert seen["warn"] == {"warn", "error"}, seen
    assert seen["error"] == {"error"}, seen


# ---------------------------------------------------------------------------------------------
# log.access_log: "stdout", "stderr", off

def test_access_log_destinations(gateway, origin, certs, tmp_path):
    o = origin("app")
    for access in ("stdout", "stderr", None):
        port = testenv.free_port()
        gw = gateway(_config(certs, tmp_path, port, o.address, access=access),
                     name="access-%s" % access, split_stdout=True)
        assert testenv.get(port, "/echo?marker=dest").status == 200
        gw.stop()  # flushes
        out, err = gw.out_text(), gw.log_text()
        lines_out = [l for l in out.splitlines() if "marker=dest" in l]
        lines_err = [l for l in err.splitlines() if "marker=dest" in l]
        if access == "stdout":
            assert len(lines_out) == 1 and not lines_err, (out, err)
        elif access == "stderr":
            assert len(lines_err) == 1 and not lines_out, (out, err)
            assert '"GET /echo?marker=dest" 200' in lines_err[0], lines_err
        else:
            assert not lines_out and not lines_err, (out, err)
            assert "started" in err  # the error log still works


# ---------------------------------------------------------------------------------------------
# access-log fields: bytes, backend, target, duration, host, ALPN (and the rest)

def _raw_exchange(port, request, alpn):
    ctx = tls_context()
    ctx.set_alpn_protocols(alpn)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=testenv.t(10)),
                        server_hostname="localhost")
    try:
        s.sendall(request)
        got = b""
        while True:
            d = s.recv(65536)
            if not d:
                return got, s.version(), s.cipher()[0]
            got += d
    finally:
        s.close()


def test_access_log_fields(gateway, origin, certs, tmp_path):
    o = origin("app")
    for fmt in ("text", "json"):
        port = testenv.free_port()
        access = str(tmp_path / ("fields-%s.log" % fmt))
        gw = gateway(_config(certs, tmp_path, port, o.address, access=access, fmt=fmt),
                     name="fields-" + fmt)
        req = (b"GET /slow?seconds=0.3 HTTP/1.1\r\nHost: Fields.Example:443\r\n"
               b"Connection: close\r\n\r\n")
        wire, version, cipher = _raw_exchange(port, req, ["http/1.1"])
        assert wire.startswith(b"HTTP/1.1 200"), wire[:100]
        wire2, _, _ = _raw_exchange(port, b"GET /_status HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Connection: close\r\n\r\n", [])
        assert wire2.startswith(b"HTTP/1.1 200"), wire2[:100]
        gw.stop()
        lines = [l for l in _read(access).splitlines() if "/slow" in l]
        status_lines = [l for l in _read(access).splitlines() if "/_status" in l]
        assert len(lines) == 1 and len(status_lines) == 1, _read(access)
        if fmt == "json":
            d = json.loads(lines[0])
            assert d["method"] == "GET" and d["path"] == "/slow?seconds=0.3", d
            assert d["status"] == 200 and d["bytes"] == len(wire), (d, len(wire))
            assert d["backend"] == "app" and d["target"] == o.address, d
            assert 300 <= d["duration_ms"] < testenv.t(3000), d
            assert d["host"].lower() in ("fields.example", "fields.example:443"), d
            assert d["alpn"] == "http/1.1" and d["sni"] == "localhost", d
            assert d["tls_version"] == version and d["cipher"] == cipher, d
            assert d["listener"] == "public" and d["peer"].startswith("127.0.0.1:"), d
            s = json.loads(status_lines[0])
            assert s["backend"] == "status" and s["target"] == "" and s["alpn"] == "", s
            assert s["bytes"] == len(wire2), (s, len(wire2))
        else:
            f = lines[0]
            assert '"GET /slow?seconds=0.3" 200 %d ' % len(wire) in f, (f, len(wire))
            fields = dict(kv.split("=", 1) for kv in f.split('" ', 1)[1].split()[2:])
            assert fields["backend"] == "app" and fields["target"] == o.address, f
            assert 300 <= int(fields["ms"]) < testenv.t(3000), f
            assert fields["host"].lower() in ("fields.example", "fields.example:443"), f
            assert fields["alpn"] == "http/1.1" and fields["sni"] == "localhost", f
            assert fields["tls"] == version and fields["cipher"] == cipher, f
            sf = dict(kv.split("=", 1) for kv in status_lines[0].split('" ', 1)[1].split()[2:])
            assert sf["backend"] == "status" and sf["target"] == "-" and sf["alpn"] == "-", sf
            assert ' 200 %d ' % len(wire2) in status_lines[0], (status_lines[0], len(wire2))


# ---------------------------------------------------------------------------------------------
# the default certificate is renewed at a reload too (at start: test_01)

def test_default_cert_renewed_at_reload(port_8443, gateway, tmp_path):
    from test_01_default import _dates, _seed, _served_fingerprint
    state = str(tmp_path / "state")
    _seed(state, 100)
    crt = os.path.join(state, "default.crt")
    gw = gateway(None, name="default-reload", env={"TLSGATE_STATE_DIR": state})
    fp_old = _served_fingerprint()
    assert fp_old == fingerprint(crt)
    # The certificate now has 10 days left (as if 87 days had passed): a reload renews it.
    os.remove(crt)
    os.remove(os.path.join(state, "default.key"))
    seeded = _seed(state, 10)  # the admin listener's files stay
    gw.signal(signal.SIGHUP)
    assert gw.wait_log(lambda s: "config reloaded (generation 1 kept" in s or "reload failed" in s), \
        gw.log_tail()
    assert "reload failed" not in gw.log_text(), gw.log_tail()
    with open(crt, "rb") as f:
        assert f.read() != seeded[0], "the reload kept the certificate with 10 days left"
    not_before, not_after = _dates(crt)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert not_after - now > datetime.timedelta(days=300), not_after
    until = not_after.strftime("%Y-%m-%d %H:%M:%S")
    assert len(gw.log_lines("default.crt", "renewed", until)) == 1, gw.log_tail()
    assert testenv.wait_until(lambda: _served_fingerprint() == fingerprint(crt), testenv.t(3)), \
        "the renewed certificate is not served after the reload"
    assert _served_fingerprint() != fp_old
    gw.stop()
