"""A backend that answers a POST early, before it has read the body, and keeps the connection
open: the gateway must not put that connection back in the pool while bytes of the request body
are still waiting to be written to it (the next request would be written after a cut body, and
the backend would read it as the rest of that body)."""
import socket
import threading
import time

import pytest

import testenv
from testenv import Conn


class EarlyAnswer:
    """Per connection: reads a request head, answers 200 `early` at once-ish (0.3 s) with
    keep-alive, stops reading for `pause` s (a 4 KiB receive buffer), then reads the body it was
    announced and checks every byte is the client's ('x'); then serves further requests on the
    connection by echoing their path. desync lists what it read that was not the body."""

    def __init__(self, pause=1.0):
        self.pause = pause
        self.desync = []
        self.bodies = []
        self.cut = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # A small segment size keeps the gateway's send buffer toward us small (Linux sizes it
        # from the peer's MSS: on loopback it would otherwise take megabytes at once).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _head(c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, buf
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def _serve(self, c):
        c.settimeout(20)
        buf = b""
        try:
            while True:
                head, buf = self._head(c, buf)
                if head is None:
                    return
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1]
                n = 0
                for ln in lines[1:]:
                    k, _, v = ln.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v)
                if n:
                    time.sleep(testenv.t(0.3))
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
                    time.sleep(testenv.t(self.pause))
                    while len(buf) < n:
                        d = c.recv(65536)
                        if not d:
                            self.cut.append(n)  # the gateway closed: the backend knows
                            return
                        buf += d
                    body, buf = buf[:n], buf[n:]
                    self.bodies.append(n)
                    if body.strip(b"x"):
                        self.desync.append(body.strip(b"x")[:200])
                        return
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(path) + path)
        except OSError:
            self.cut.append(-1)
        finally:
            c.close()

    def close(self):
        self.closing = True
        self.sock.close()


@pytest.fixture
def early():
    b = EarlyAnswer()
    yield b
    b.close()


# With limits.max_header_bytes at 1 MiB the gateway's buffer for the request toward the backend
# holds about 1 MiB, the kernel about 140 KiB toward this backend (its 4 KiB receive buffer and
# 536-byte segments): 64 KiB go out whole at once, 300 and 600 KiB leave most of the body in the
# gateway's buffer when the answer comes (the two large ones first, each on a new backend
# connection).
SIZES = [300 << 10, 600 << 10, 64 << 10]


def test_connection_with_request_body_unsent_is_not_pooled(gateway, certs, tmp_path, early):
    port = testenv.free_port()
    gw = gateway({
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "debug", "access_log": None},
        # over the backend's pause (t(1.0)) before it reads on, which a pooled connection's next
        # request waits out; the old code's 504 still comes, after this
        "timeouts": {"backend_response": int(testenv.t(5))},
        "limits": {"max_header_bytes": 1048576},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [early.address]}},
    })
    for n in SIZES:
        with Conn(port, timeout=testenv.t(15)) as c:
            c.send(b"POST /post HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % n
                   + b"x" * n)
            r = c.read_response()
            assert (r.status, r.body) == (200, b"early"), (n, r.status, r.body[:200])
            assert (r.header("Connection") or "").lower() != "close", n
            # Before the fix the pooled connection took this request after a cut body: the
            # backend read it as body bytes and never answered (504).
            nxt = c.request("GET", "/next-%d" % n)
            assert (nxt.status, nxt.body) == (200, b"/next-%d" % n), (n, nxt.status,
                                                                      nxt.body[:200])
    # Every POST's connection has been read to its end by the backend: whole, or cut by the
    # gateway's close; never another request taken for body bytes.
    deadline = time.monotonic() + testenv.t(10)
    while len(early.bodies) + len(early.cut) < len(SIZES) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert early.desync == [], early.desync
    assert len(early.bodies) + len(early.cut) == len(SIZES), (early.bodies, early.cut)
    assert 64 << 10 in early.bodies  # sent whole before the answer: pooled as before
    assert sorted(early.cut) == [300 << 10, 600 << 10], early.cut
    assert gw.log_lines("connection not kept (request not fully sent)")
