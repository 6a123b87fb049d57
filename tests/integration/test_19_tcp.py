"""`mode: tcp` listeners: a byte tunnel to one backend. openssl s_client byte-exact both ways,
half-close in each direction, 100 MB both ways at once, bounded buffering, plain in / TLS out,
TLS in / TLS out (and a backend whose name does not verify), the PROXY v2 header with TLS TLVs,
the idle timeout, and a backend that is down.

The readiness probe (a TLS handshake, then close) is itself a tunnel, so backends may see an
extra, empty session: tests pick their own session by its contents or its source port."""
import hashlib
import socket
import ssl
import subprocess
import time

import pytest

import testenv
from testenv import pp2
from testenv.pp2 import TunnelClient


# ---------------------------------------------------------------------------------------------
# helpers

def _base(certs, tmp_path, workers=1):
    """The parts every config here shares; each test adds its listeners and backends."""
    return {
        "version": 1, "workers": workers, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
    }


def _client_ctx(max_version=None):
    """Verifies the gateway's certificate against the test CA."""
    return testenv.tls_context(max_version=max_version)


def _session_with(backend, pred, timeout=5):
    """The first backend session for which pred(session) holds, waiting up to timeout."""
    def find():
        for s in list(backend.sessions):
            if pred(s):
                return s
        return None
    return testenv.wait_until(find, testenv.t(timeout))


def _payload(n, seed=b"tlsgate"):
    """n reproducible pseudo-random bytes (every byte value occurs)."""
    out = bytearray()
    block = seed
    while len(out) < n:
        block = hashlib.sha512(block).digest()
        out += block
    return bytes(out[:n])


def _chunks(data, size=65536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
# openssl s_client through TLS in / plain out

def test_s_client_bytes_exact_both_ways(gateway, certs, tmp_path):
    """Every byte value, 256 KiB each way: what s_client sends is what the backend reads, and
    what the backend sends is what s_client prints."""
    b = pp2.BulkBackend(keep_bytes=True)
    port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "echo", "proxy_protocol_out": False,
                         "tls": {"certificates": ["ec"]}}]
    cfg["backends"] = {"echo": {"targets": [b.address]}}
    try:
        gateway(cfg)
        payload = bytes(range(256)) * 4 + _payload(256 * 1024 - 1024)
        command = b"ECHO %d\n" % len(payload)
        # -quiet implies -ign_eof: s_client keeps reading after its stdin ends, until the
        # backend (done echoing) closes and the gateway passes that on.
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-servername", "localhost", "-CAfile", certs.ca.cert,
                            "-verify_return_error", "-quiet"],
                           input=command + payload, capture_output=True, timeout=testenv.t(30))
        s = _session_with(b, lambda s: s.info.get("cmd") == "ECHO")
        assert s is not None, "the backend never got the ECHO command (s_client stderr: %s)" \
            % r.stderr.decode("utf-8", "replace")[-2000:]
        assert s.done.wait(testenv.t(5)), "backend session still open"
        assert s.info.get("done"), "backend session failed: %r" % s.error
        got_in = bytes(s.received)
        assert got_in == command + payload, \
            "backend read %d bytes, want %d; first difference at %d" % (
                len(got_in), len(command + payload), _first_diff(got_in, command + payload))
        assert r.stdout == payload, \
            "s_client printed %d bytes, want %d; first difference at %d (stderr: %s)" % (
                len(r.stdout), len(payload), _first_diff(r.stdout, payload),
                r.stderr.decode("utf-8", "replace")[-1000:])
    finally:
        b.close()


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# ---------------------------------------------------------------------------------------------
# half-close

@pytest.mark.parametrize("tls_in", [True, False], ids=["tls-in", "plain-in"])
def test_half_close_from_client(gateway, certs, tmp_path, tls_in):
    """The client shuts its write side after 1 MiB: the backend reads all of it, sees EOF, and
    can still send (its echo, then a marker written after the EOF) before it closes."""
    b = pp2.HalfCloseBackend(keep_bytes=False)
    port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "hc", "proxy_protocol_out": False,
                         "tls": {"certificates": ["ec"]} if tls_in else {"disabled": True}}]
    cfg["backends"] = {"hc": {"targets": [b.address]}}
    try:
        gw = gateway(cfg)
        # the start line says what the listener is (issue 11: it said HTTPS / plaintext HTTP)
        start = gw.log_lines("listener raw on 127.0.0.1:%d: " % port)
        want = "tcp over TLS, TLS1.3 to TLS1.3" if tls_in else "tcp, plaintext (tls.disabled)"
        assert len(start) == 1 and start[0].endswith(want), start
        data = _payload(1 << 20)
        marker = pp2.EOF_MARKER % (1 + len(data))
        with TunnelClient(port, tls=tls_in, ctx=_client_ctx(), timeout=testenv.t(20)) as c:
            c.send(b"x")
            assert c.recv_exact(1) == b"x"
            got, kept = c.transfer(_chunks(data), half_close=True)  # reads until EOF
            assert c.write_shut
            eof = c.eof
        assert got == len(kept) and kept[:len(data)] == data, \
            "echo before the EOF: got %d bytes, want %d; first difference at %d" % (
                len(kept), len(data), _first_diff(kept, data))
        assert kept[len(data):] == marker, \
            "after the client's half-close the backend's last bytes did not arrive: got %r " \
            "(read side ended by %s)" % (kept[len(data):][:200], eof)
        s = _session_with(b, lambda s: "eof_marker" in s.info)
        assert s is not None and s.eof, "the backend never saw the client's EOF"
    finally:
        b.close()


@pytest.mark.parametrize("tls_in", [True, False], ids=["tls-in", "plain-in"])
def test_half_close_from_backend(gateway, certs, tmp_path, tls_in):
    """The backend sends a greeting and shuts its write side at once: the client reads the
    greeting and then EOF, and can still send; the backend reads those bytes and the client's
    own EOF afterwards."""
    greeting = b"220 greeting, and no more from me\r\n"
    b = pp2.TCPBackend(pp2.server_first_close_handler(greeting), proxy_header="none",
                       name="first-close")
    port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "fc", "proxy_protocol_out": False,
                         "tls": {"certificates": ["ec"]} if tls_in else {"disabled": True}}]
    cfg["backends"] = {"fc": {"targets": [b.address]}}
    try:
        gateway(cfg)
        late = _payload(256 * 1024, seed=b"late")
        with TunnelClient(port, tls=tls_in, ctx=_client_ctx(), timeout=testenv.t(10)) as c:
            got = c.recv_until_eof()
            assert got == greeting, got[:200]
            assert c.eof in ("close_notify", "fin"), \
                "the backend's half-close reached the client as %r" % c.eof
            try:
                c.send(late)
                c.shutdown_write()
            except OSError as e:
                pytest.fail("the client could not send after the backend's half-close: %r "
                            "(the gateway closed the whole tunnel)" % e)
            s = _session_with(b, lambda s: s.received_count >= len(late) or
                              (s.eof and s.received_count), timeout=10)
            assert s is not None, "the bytes sent after the backend's half-close never " \
                "arrived (sessions: %s)" % [(x.received_count, x.eof) for x in b.sessions]
            assert s.done.wait(testenv.t(5)) and s.eof, "the backend never saw the client's EOF"
            assert bytes(s.received) == late, \
                "backend got %d bytes, want %d" % (s.received_count, len(late))
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# bulk: 100 MB both ways at once; buffers bounded

def test_100mb_both_ways_intact(gateway, certs, tmp_path):
    n = 100 * 1000 * 1000
    b = pp2.BulkBackend()
    port = testenv.free_port()
    cfg = _base(certs, tmp_path, workers=2)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "bulk", "proxy_protocol_out": False,
                         "tls": {"certificates": ["ec"]}}]
    cfg["backends"] = {"bulk": {"targets": [b.address]}}
    try:
        gateway(cfg)
        block = _payload(1 << 20, seed=b"upstream")  # not the backend's pattern
        sent = hashlib.sha256()

        def upstream():
            yield b"BOTH %d\n" % n
            left = n
            while left:
                c = block[:min(left, len(block))]
                sent.update(c)
                left -= len(c)
                for i in range(0, len(c), 65536):
                    yield c[i:i + 65536]

        down = hashlib.sha256()
        tail = bytearray()
        count = [0]

        def on_data(d):
            cut = min(max(n - count[0], 0), len(d))
            down.update(d[:cut])
            tail.extend(d[cut:])
            count[0] += len(d)

        t0 = time.monotonic()
        with TunnelClient(port, ctx=_client_ctx(), timeout=testenv.t(90)) as c:
            got, _ = c.transfer(upstream(), expect=n + 65, on_data=on_data)
        took = time.monotonic() - t0
        assert got >= n + 65, "received %d of %d bytes" % (got, n + 65)
        assert down.hexdigest() == pp2.pattern_sha256(n), \
            "backend -> client: the 100 MB arrived changed"
        assert bytes(tail[:65]) == sent.hexdigest().encode() + b"\n", \
            "client -> backend: the backend's sha256 %r differs from what was sent" % tail[:65]
        print("100 MB each way in %.1f s" % took)
    finally:
        b.close()


def test_buffers_are_bounded(gateway, certs, tmp_path):
    """A client that sends but never reads: the tunnel stops taking its bytes once the socket
    buffers on the path are full (an unbounded gateway would read on until the test's cap),
    and nothing is lost when the client starts reading again."""
    cap = 256 << 20
    b = pp2.EchoBackend(keep_bytes=False)
    port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "echo", "proxy_protocol_out": False,
                         "tls": {"certificates": ["ec"]}}]
    cfg["backends"] = {"echo": {"targets": [b.address]}}
    try:
        gw = gateway(cfg)
        block = _payload(1 << 20, seed=b"stall")
        with TunnelClient(port, ctx=_client_ctx(), timeout=testenv.t(60)) as c:
            c.send(b"x")
            assert c.recv_exact(1) == b"x"
            rss0 = _vm_rss_kib(gw.proc.pid)
            # push without reading until no byte is taken for a while
            pushed, taken = c.push(block[:65536], cap, stall=testenv.t(1.0))
            rss1 = _vm_rss_kib(gw.proc.pid)
            assert pushed < cap, "the gateway took %d MB from a client that never reads" \
                % (taken >> 20)
            if not testenv.SANITIZED:  # ASan's quarantine keeps freed memory
                assert rss1 - rss0 < 64 * 1024, \
                    "gateway RSS grew by %d MiB while the client did not read" \
                    % ((rss1 - rss0) >> 10)
            # drain: everything pushed comes back, in order
            want = hashlib.sha256()
            for _ in range(pushed // 65536):
                want.update(block[:65536])
            got = hashlib.sha256()
            count, _ = c.transfer(iter(()), expect=pushed,
                                  on_data=lambda d: got.update(d))
            assert count == pushed, "got back %d of %d bytes" % (count, pushed)
            assert got.hexdigest() == want.hexdigest(), "echoed bytes changed"
        print("stalled after %.1f MB; RSS +%d KiB" % (taken / 1e6, rss1 - rss0))
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# TLS to the backend

def _tls_backend_config(certs, tmp_path, port, backend, listener_tls, server_name="localhost"):
    cfg = _base(certs, tmp_path)
    cfg["truststores"] = {"testca": {"type": "pem", "file": certs.ca.cert}}
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "secure", "proxy_protocol_out": False,
                         "tls": listener_tls}]
    cfg["backends"] = {"secure": {"targets": [backend.address],
                                  "tls": {"truststore": "testca",
                                          "server_name": server_name}}}
    return cfg


@pytest.mark.parametrize("tls_in", [False, True], ids=["plain-in", "tls-in"])
def test_tls_to_backend(gateway, certs, tmp_path, tls_in):
    """Plain in / TLS out and TLS in / TLS out: the backend (a Python TLS echo server) gets a
    TLS connection with SNI `localhost` and every byte."""
    b = pp2.EchoBackend(tls=certs.ec)
    port = testenv.free_port()
    gateway(_tls_backend_config(certs, tmp_path, port, b,
                                {"certificates": ["ec"]} if tls_in else {"disabled": True}))
    try:
        data = _payload(1 << 20, seed=b"tls-out")
        with TunnelClient(port, tls=tls_in, ctx=_client_ctx(), timeout=testenv.t(20)) as c:
            got, kept = c.transfer(_chunks(data), expect=len(data))
            assert kept == data, "echo differs (got %d bytes, first difference at %d)" % (
                len(kept), _first_diff(kept, data))
            s = _session_with(b, lambda s: s.received_count >= len(data))
            assert s is not None
            assert bytes(s.received) == data
            assert s.tls_version in ("TLSv1.2", "TLSv1.3"), s.tls_version
            assert s.sni == "localhost", "backend TLS SNI was %r" % s.sni
    finally:
        b.close()


def test_tls_to_backend_verifies_its_name(gateway, certs, tmp_path):
    """server_name other.test does not match the backend's certificate (localhost): no byte
    reaches the backend and the client's stream is closed."""
    b = pp2.EchoBackend(tls=certs.ec)
    port = testenv.free_port()
    gw = gateway(_tls_backend_config(certs, tmp_path, port, b, {"certificates": ["ec"]},
                                     server_name="other.test"), wait=False)
    try:
        assert testenv.wait_until(lambda: testenv.can_connect(port), testenv.t(10)), \
            gw.log_tail()
        try:
            with TunnelClient(port, ctx=_client_ctx(), timeout=testenv.t(10)) as c:
                c.send(b"secret\n")
                got = c.recv_until_eof(timeout=testenv.t(5))
        except socket.timeout:
            pytest.fail("the tunnel to a backend with the wrong certificate stayed open %.0f s"
                        % testenv.t(5))
        except (ssl.SSLError, OSError):
            got = b""  # closed in or right after the handshake
        assert got == b"", got[:200]
        assert all(s.received_count == 0 for s in b.sessions), \
            "bytes reached a backend whose certificate does not match server_name"
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# PROXY protocol v2

@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_proxy_protocol_v2_header(gateway, certs, tmp_path, version):
    b = pp2.EchoBackend(proxy_header="require")
    port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "pp", "proxy_protocol_out": True,
                         "tls": {"certificates": ["ec"], "min_version": "TLS1.2"}}]
    cfg["backends"] = {"pp": {"targets": [b.address]}}
    try:
        gateway(cfg)
        maxv = ssl.TLSVersion.TLSv1_2 if version == "TLSv1.2" else None
        with TunnelClient(port, ctx=_client_ctx(max_version=maxv), sni="localhost") as c:
            assert c.tls_version == version
            cport = c.local[1]
            # the header comes when the tunnel opens, before any client byte
            s = _session_with(b, lambda s: s.header is not None and s.header.src_port == cport)
            assert s is not None, "no PROXY v2 header with source port %d; got %s" % (
                cport, [(x.header, x.header_error, x.error) for x in b.sessions])
            c.send(b"hello, backend")
            assert c.recv_exact(14) == b"hello, backend"
            h = s.header
            assert (h.version, h.command) == (2, pp2.CMD_PROXY), h
            assert (h.family, h.transport) == (pp2.AF_INET, pp2.T_STREAM), h
            assert h.src == ("127.0.0.1", cport), h.src
            assert h.dst == ("127.0.0.1", port), h.dst
            assert h.ssl is not None, "no PP2_TYPE_SSL TLV: %s" % h.tlv_types()
            assert h.ssl.client & pp2.PP2_CLIENT_SSL, h.ssl
            assert h.ssl.version == version, h.ssl.subtlvs
            assert h.ssl.cipher == c.cipher, (h.ssl.cipher, c.cipher)
            assert h.authority == "localhost", h.tlvs
        assert s.done.wait(testenv.t(5))
        assert bytes(s.received) == b"hello, backend", "payload after the header: %r" \
            % bytes(s.received)[:200]
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# idle timeout

def test_idle_timeout_closes_silent_tunnel(gateway, certs, tmp_path):
    b = pp2.EchoBackend()
    port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "echo", "proxy_protocol_out": False,
                         "tls": {"certificates": ["ec"]}}]
    cfg["backends"] = {"echo": {"targets": [b.address]}}
    cfg["timeouts"] = {"idle": 1}
    try:
        gateway(cfg)
        with TunnelClient(port, ctx=_client_ctx(), timeout=testenv.t(10)) as c:
            # traffic every 0.3 s keeps it open well past 1 s
            t0 = time.monotonic()
            i = 0
            while True:
                c.send(b"%d;" % i)
                assert c.recv_exact(len(b"%d;" % i)) == b"%d;" % i, "tunnel closed while busy"
                last = time.monotonic()
                if last - t0 > 2.5:
                    break
                time.sleep(0.3)
                i += 1
            s = _session_with(b, lambda s: s.received_count > 0)
            assert s is not None and not s.done.is_set(), "backend connection closed while busy"
            # then silence
            try:
                rest = c.recv_until_eof(timeout=testenv.t(5))
            except socket.timeout:
                pytest.fail("silent tunnel still open after %.0f s (timeouts.idle 1)"
                            % testenv.t(5))
            took = time.monotonic() - last
            assert rest == b"", rest[:100]
            assert 0.7 <= took <= testenv.t(4), \
                "closed %.2f s after the last byte (timeouts.idle 1)" % took
        assert s.done.wait(testenv.t(3)), "the backend side of the idle tunnel stayed open"
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# backend down

def test_backend_down_closes_client_and_logs(gateway, certs, tmp_path):
    dead = testenv.free_port()
    port = testenv.free_port()
    while port == dead:
        port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "vanished", "proxy_protocol_out": False,
                         "tls": {"certificates": ["ec"]}}]
    cfg["backends"] = {"vanished": {"targets": ["127.0.0.1:%d" % dead]}}
    # The readiness probe needs a completed handshake; the gateway may close before that.
    gw = gateway(cfg, ready_ports=[])
    assert testenv.wait_until(lambda: testenv.can_connect(port), testenv.t(10)), gw.log_tail()
    t0 = time.monotonic()
    try:
        with TunnelClient(port, ctx=_client_ctx(), timeout=testenv.t(10)) as c:
            try:
                c.send(b"anyone there?\n")
            except OSError:
                pass
            got = c.recv_until_eof(timeout=testenv.t(5))
    except socket.timeout:
        pytest.fail("the client of a dead backend was still connected after %.0f s"
                    % testenv.t(5))
    except (ssl.SSLError, OSError):
        got = b""  # closed during the handshake
    took = time.monotonic() - t0
    assert got == b"", got[:200]
    assert took < testenv.t(5), "client stream closed only after %.1f s" % took
    text = gw.wait_log(lambda s: any("vanished" in l for l in s.splitlines()))
    assert text, "no log line naming the backend 'vanished':\n" + gw.log_tail()
    assert gw.running()


def test_proxy_protocol_v2_carries_client_certificate(gateway, certs, tmp_path):
    """With mutual TLS on the tcp listener, the PROXY v2 header names the client certificate
    (PP2_CLIENT_CERT_CONN, verify 0, PP2_SUBTYPE_SSL_CN) as haproxy's send-proxy-v2-ssl-cn does."""
    from testenv.mtls import PKI
    pki = PKI(str(tmp_path / "pki"))
    alice = pki.client("alice", "/O=Org/CN=alice")
    b = pp2.EchoBackend(proxy_header="require")
    port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["truststores"] = {"clients": {"type": "pem", "file": pki.root.cert}}
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "pp", "proxy_protocol_out": True,
                         "tls": {"certificates": ["ec"], "client_auth": {
                             "mode": "require", "truststore": "clients"}}}]
    cfg["backends"] = {"pp": {"targets": [b.address]}}
    try:
        gateway(cfg, ready_ports=[])
        assert testenv.wait_until(lambda: testenv.can_connect(port), testenv.t(10))
        ctx = _client_ctx()
        ctx.load_cert_chain(alice.chain, alice.key)
        with TunnelClient(port, ctx=ctx, sni="localhost") as c:
            cport = c.local[1]
            s = _session_with(b, lambda s: s.header is not None and s.header.src_port == cport)
            assert s is not None, [(x.header, x.header_error) for x in b.sessions]
            h = s.header
            assert h.ssl is not None and h.ssl.client & pp2.PP2_CLIENT_CERT_CONN, h.ssl
            assert h.ssl.verify == 0, h.ssl
            assert h.ssl.cn == "alice", h.ssl.subtlvs
    finally:
        b.close()


def test_proxy_protocol_in_carries_to_proxy_protocol_out(gateway, certs, tmp_path):
    """A tcp listener that accepts PROXY protocol from a balancer and sends PROXY v2 to its
    backend names the client the balancer named, not the balancer."""
    b = pp2.EchoBackend(proxy_header="require")
    port = testenv.free_port()
    cfg = _base(certs, tmp_path)
    cfg["listeners"] = [{"name": "raw", "address": "127.0.0.1:%d" % port, "mode": "tcp",
                         "backend": "pp", "proxy_protocol": True, "proxy_protocol_out": True,
                         "tls": {"disabled": True}}]
    cfg["backends"] = {"pp": {"targets": [b.address]}}
    try:
        gateway(cfg)
        with socket.create_connection(("127.0.0.1", port), timeout=testenv.t(5)) as s:
            s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 %d\r\n" % port)
            s.sendall(b"hello")
            got = b""
            while len(got) < 5:
                chunk = s.recv(5 - len(got))
                assert chunk, "the tunnel closed before the echo"
                got += chunk
            assert got == b"hello"
        sess = _session_with(b, lambda x: x.header is not None)
        assert sess is not None, [(x.header, x.header_error) for x in b.sessions]
        assert sess.header.src == ("203.0.113.7", 4242), sess.header.src
    finally:
        b.close()
