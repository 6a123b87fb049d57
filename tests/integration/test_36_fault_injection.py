"""Rows only a fault can produce: internal_error on the client hop and on the backend hop.

A test build (TG_FAULT_INJECTION, on in the ASan build `make test` runs, TLSGATE_SANITIZED=1)
honours TLSGATE_TEST_FAULT=site,...: "tls_accept" makes a client's TLS handshake step fail as
OpenSSL fails an internal error, "tls_connect" a backend's. Against that build the rows are
produced, logged once and counted; against the normal build the variable must be ignored (said
in the log, handshakes and requests unaffected), so a release binary cannot be made to fail."""
import socket
import ssl

import testenv
from test_32_failure_tables import _Backend, _server_ctx


def _config(certs, tmp_path, tls_port, plain_port, backend_address):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": None},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"test-ca": {"type": "pem", "file": certs.ca.cert}},
        "listeners": [
            {"name": "public", "address": "127.0.0.1:%d" % tls_port,
             "tls": {"certificates": ["ec"]},
             "routes": [{"path_prefix": "/", "backend": "app"}]},
            {"name": "plain", "address": "127.0.0.1:%d" % plain_port, "tls": {"disabled": True},
             "routes": [{"path_prefix": "/_status", "backend": "status"},
                        {"path_prefix": "/", "backend": "app"}]},
        ],
        "backends": {"app": {"targets": [backend_address], "tls": {"truststore": "test-ca"}},
                     "status": {"builtin": "status"}},
    }


def _handshake(port):
    """True when a TLS handshake with the listener completes; False when the gateway ends it."""
    ctx = testenv.tls_context(verify=False)
    with socket.create_connection(("127.0.0.1", port), timeout=testenv.t(10)) as s:
        try:
            with ctx.wrap_socket(s, server_hostname="localhost"):
                return True
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            assert not isinstance(e, socket.timeout), "the handshake hung"
            return False


def _plain_get(port, path):
    with testenv.Conn(port, tls=False, timeout=testenv.t(10)) as c:
        return c.request("GET", path)


def test_internal_error_rows_by_fault_injection(gateway, certs, tmp_path):
    backend = _Backend("ok", tls=_server_ctx(certs.ec))
    try:
        tls_port, plain_port = testenv.free_port(), testenv.free_port()
        gw = gateway(_config(certs, tmp_path, tls_port, plain_port, backend.address),
                     env={"TLSGATE_TEST_FAULT": "tls_accept,tls_connect"},
                     ready_ports=[(tls_port, False), (plain_port, False)])
        ok = _handshake(tls_port)
        r = _plain_get(plain_port, "/x")
        st = _plain_get(plain_port, "/_status").json()
        hs, bf = st["handshake_failures"], st["backend_failures"]
        version = testenv.tlsgate("version").stdout
        assert ("fault injection" in version) == testenv.SANITIZED, version
        if not testenv.SANITIZED:
            # the normal build: the variable is refused, nothing fails
            assert gw.log_lines("TLSGATE_TEST_FAULT is set but this build has no fault "
                                "injection", "ignored"), (
                "a normal build must ignore TLSGATE_TEST_FAULT (a TG_FAULT_INJECTION build is "
                "tested with TLSGATE_SANITIZED=1):\n" + gw.log_tail())
            assert not gw.log_lines("fault injection armed"), gw.log_tail()
            assert ok, gw.log_tail()
            assert r.status == 200 and r.body == b"ok\n", (r.status, r.body[:200])
            assert hs.get("internal_error") == 0 and bf.get("internal_error") == 0, (hs, bf)
            return
        assert gw.log_lines("fault injection armed", "tls_accept,tls_connect"), gw.log_tail()
        # the client hop: the handshake ends, logged once and counted as internal_error
        assert not ok, "the injected fault did not end the client's handshake"
        assert hs.get("internal_error") == 1, hs
        lines = gw.log_lines("TLS handshake failed", "listener=public", "reason=internal_error")
        assert len(lines) == 1, gw.log_tail(20)
        # the backend hop: 502 naming internal_error, counted under backend_failures
        assert r.status == 502, (r.status, r.body[:300], gw.log_tail(20))
        assert "internal_error" in r.text, r.text
        assert bf.get("internal_error") == 1, bf
        assert sum(bf.values()) == 1, {k: v for k, v in bf.items() if v}
        lines = gw.log_lines("backend error:", "reason=internal_error:", "listener=plain",
                             "backend=app")
        assert len(lines) == 1, gw.log_tail(20)
    finally:
        backend.close()
