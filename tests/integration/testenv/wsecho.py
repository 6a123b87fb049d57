"""WebSocket test peers on loopback, with Debian 12's python3-websockets (10.4: the asyncio API
in websockets.legacy; there is no websockets.sync before 11.0).

WSServer      an echo server (ws://, or wss:// with tls=KeyPair) in a background thread with its
              own event loop; refuse=403 makes it answer every upgrade with that status instead.
              It records each upgrade request (path, headers) and, for wss, the SNI it was sent.
WSClient      a blocking client (its own event loop, run in the calling thread) for
              wss://localhost:PORT/path through the gateway, trusting the test CA.
raw_ws_handler  a hand-written backend (for pp2.TCPBackend) that sends its 101 and a first
              frame in one write.
"""
import asyncio
import base64
import hashlib
import http
import ssl
import threading

import websockets
import websockets.exceptions
import websockets.legacy.client
import websockets.legacy.server

from . import client as _client
from .env import t

REFUSAL_BODY = b"upgrade refused by the test backend\n"


class WSServer:
    def __init__(self, tls=None, refuse=None, name="ws", max_size=1 << 20, compression=None):
        self.name = name
        self.refuse = refuse
        self.requests = []      # [(path, [(name, value)])] of every upgrade request, in order
        self.upgrades = 0       # handshakes completed
        self.messages = 0       # messages echoed
        self.tls_versions = []  # per completed handshake (wss only)
        self.sni_seen = []
        self.errors = []
        self.lock = threading.Lock()
        self.ctx = None
        if tls is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(tls.cert, tls.key)
            self.ctx.sni_callback = self._sni
        self._max_size = max_size
        self._compression = compression
        self._ready = threading.Event()
        self._start_error = None
        self._loop = asyncio.new_event_loop()
        self._stop = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="ws-" + name)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("WebSocket server %s did not start" % name)
        if self._start_error:
            raise self._start_error
        self.address = "127.0.0.1:%d" % self.port
        self.url = "%s://localhost:%d" % ("wss" if tls else "ws", self.port)

    def _sni(self, sslobj, server_name, ctx):
        with self.lock:
            self.sni_seen.append(server_name)

    async def _process_request(self, path, headers):
        with self.lock:
            self.requests.append((path, list(headers.raw_items())))
        if self.refuse:
            return (http.HTTPStatus(self.refuse),
                    [("Content-Type", "text/plain"), ("X-Refused-By", self.name),
                     ("Content-Length", str(len(REFUSAL_BODY)))],
                    REFUSAL_BODY)
        return None

    async def _handler(self, ws):
        sslobj = ws.transport.get_extra_info("ssl_object")
        with self.lock:
            self.upgrades += 1
            if sslobj is not None:
                self.tls_versions.append(sslobj.version())
        try:
            async for msg in ws:
                await ws.send(msg)
                self.messages += 1
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as e:  # recorded for the test
            self.errors.append(e)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._start_error = None
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as e:
            self._start_error = e
            self._ready.set()

    async def _serve(self):
        self._stop = asyncio.Event()
        async with websockets.legacy.server.serve(
                self._handler, "127.0.0.1", 0, ssl=self.ctx,
                process_request=self._process_request, max_size=self._max_size,
                compression=self._compression, ping_interval=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def close(self):
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def ws_context():
    """Client SSLContext trusting the test CA (set by the certs fixture), host name checked."""
    return _client.tls_context()


class WSClient:
    """A blocking WebSocket client: WSClient(port, "/path") connects to wss://localhost:PORT/path
    (tls=False: ws://). Raises websockets.exceptions.InvalidStatusCode (.status_code) when the
    upgrade is refused."""

    def __init__(self, port, path="/", host="localhost", tls=True, ctx=None, timeout=10,
                 max_size=1 << 20, compression=None, extra_headers=None):
        self.timeout = t(timeout)
        self.url = "%s://%s:%d%s" % ("wss" if tls else "ws", host, port, path)
        self._loop = asyncio.new_event_loop()
        # TCP to 127.0.0.1 (the gateway listens there only); Host header and SNI say `host`
        kw = {"host": "127.0.0.1"}
        if tls:
            kw["ssl"] = ctx or ws_context()
            kw["server_hostname"] = host

        async def connect():  # built inside the loop: connect() binds the running loop
            return await websockets.legacy.client.connect(
                self.url, max_size=max_size, compression=compression, ping_interval=None,
                open_timeout=self.timeout, close_timeout=self.timeout,
                extra_headers=extra_headers, **kw)
        try:
            self.ws = self._run(connect())
        except BaseException:
            self._loop.close()
            raise

    def _run(self, coro, timeout=None):
        return self._loop.run_until_complete(
            asyncio.wait_for(coro, self.timeout if timeout is None else timeout))

    @property
    def response_headers(self):
        return list(self.ws.response_headers.raw_items())

    @property
    def tls_version(self):
        o = self.ws.transport.get_extra_info("ssl_object")
        return o.version() if o else None

    def send(self, msg):
        self._run(self.ws.send(msg))

    def recv(self, timeout=None):
        return self._run(self.ws.recv(), timeout)

    def echo_many(self, messages, window=32, timeout=None):
        """Sends every message with up to `window` unanswered, and checks each echo against
        what was sent (type and bytes). Returns the number echoed; raises AssertionError at the
        first mismatch."""
        async def go():
            pending = []
            done = 0
            it = iter(messages)
            more = True
            while more or pending:
                while more and len(pending) < window:
                    m = next(it, None)
                    if m is None:
                        more = False
                        break
                    await self.ws.send(m)
                    pending.append(m)
                if pending:
                    got = await self.ws.recv()
                    want = pending.pop(0)
                    if type(got) is not type(want) or got != want:
                        raise AssertionError(
                            "message %d: sent %s of %d, got %s of %d%s"
                            % (done, type(want).__name__, len(want), type(got).__name__,
                               len(got), "" if type(got) is not type(want) else
                               " (first difference at %d)" % _first_diff(got, want)))
                    done += 1
            return done
        return self._run(go(), timeout if timeout is not None else self.timeout * 10)

    def close(self):
        try:
            if not self._loop.is_closed():
                self._run(self.ws.close())
        except Exception:
            pass
        finally:
            if not self._loop.is_closed():
                self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# ------------------------------------------------------------------------------------------------
# A hand-written WebSocket backend that sends its 101 and its first frame in one write, for
# proxies that might drop bytes read together with the response head.

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode()


def ws_frame(opcode, payload):
    """An unmasked (server) frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def raw_ws_handler(greeting, accept=None):
    """A pp2.TCPBackend handler: reads the upgrade request, answers 101 and a text frame
    `greeting` in a single send, then echoes text/binary frames until a close frame. accept
    replaces the Sec-WebSocket-Accept field line ("" leaves it out)."""
    def handler(s):
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                return
            head += d
        head, _, rest = head.partition(b"\r\n\r\n")
        s.info["request_head"] = head
        key = upgrade = None
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            if k.strip().lower() == "sec-websocket-key":
                key = v.strip()
            if k.strip().lower() == "upgrade":
                upgrade = v.strip().lower()
        if upgrade != "websocket" or not key:
            body = b"not a WebSocket upgrade\n"
            s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n%s" % (len(body), body))
            return
        acc = (b"Sec-WebSocket-Accept: " + ws_accept(key).encode() + b"\r\n"
               if accept is None else accept.encode())
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\n" + acc + b"\r\n"
                  + ws_frame(0x1, greeting))
        buf = bytearray(rest)

        def need(n):
            while len(buf) < n:
                d = s.recv(65536)
                if not d:
                    raise EOFError("EOF inside a frame")
                buf.extend(d)
        while True:
            need(2)
            opcode, n, masked = buf[0] & 0x0F, buf[1] & 0x7F, buf[1] & 0x80
            off = 2
            if n == 126:
                need(4)
                n, off = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                need(10)
                n, off = int.from_bytes(buf[2:10], "big"), 10
            mask = b""
            if masked:
                need(off + 4)
                mask, off = bytes(buf[off:off + 4]), off + 4
            need(off + n)
            payload = bytes(buf[off:off + n])
            del buf[:off + n]
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                s.sendall(ws_frame(0x8, payload[:2]))
                return
            if opcode in (0x1, 0x2):
                s.sendall(ws_frame(opcode, payload))
    return handler
