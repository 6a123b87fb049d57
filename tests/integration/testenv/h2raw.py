"""A raw HTTP/2 client for tests: frames built and parsed with Debian's python3-hyperframe, header
blocks with python3-hpack (python3-h2's dependencies)."""
import socket
import ssl

import hpack
from hyperframe.frame import (DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame,
                              SettingsFrame)

from .env import t

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 11


class H2:
    """A raw HTTP/2 client over TLS (ALPN h2): frames out as given, frames in as parsed."""

    def __init__(self, certs, port, settings=None):
        ctx = ssl.create_default_context(cafile=certs.ca.cert)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=t(10))
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        assert self.s.selected_alpn_protocol() == "h2"
        self.port = port
        self.enc = hpack.Encoder()
        self.buf = b""
        f = SettingsFrame(0)
        f.settings = settings or {}
        self.s.sendall(PREFACE + f.serialize())

    def head(self, sid, path="/small", end_stream=True, end_headers=True, extra=(), method=None):
        block = self.enc.encode([(":method", method or ("GET" if end_stream else "POST")),
                                 (":scheme", "https"), (":path", path),
                                 (":authority", "localhost:%d" % self.port)] + list(extra))
        f = HeadersFrame(sid, block)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f.serialize()

    def send(self, data):
        self.s.sendall(data)

    def frame(self):
        """The next frame, or None once the gateway closed the connection."""
        while True:
            if len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) >= 9 + length:
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    return f
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return None
            if not d:
                return None
            self.buf += d

    def goaway(self):
        """Reads until GOAWAY; returns its error code (None if the connection just closed)."""
        while True:
            f = self.frame()
            if f is None:
                return None
            if isinstance(f, GoAwayFrame):
                return f.error_code

    def goaway_frame(self):
        """Reads until GOAWAY and returns the frame (None if the connection just closed)."""
        while True:
            f = self.frame()
            if f is None or isinstance(f, GoAwayFrame):
                return f

    def close(self):
        self.s.close()


def collect_streams(c, dec, sids, goaway_ok=False):
    """Reads frames from c (anything with frame(): an H2) until every stream in sids ended or was
    reset, decoding header blocks with dec: ({sid: (status, data, 'end'|'rst')}, the last stream
    id of a GOAWAY or None). A GOAWAY fails the read unless goaway_ok (its error code 0); streams
    above its last stream id are then not waited for."""
    out = {s: [None, b"", None] for s in sids}
    last = None
    while any(v[2] is None for s, v in out.items() if last is None or s <= last):
        f = c.frame()
        if f is None:
            raise ConnectionError("the gateway closed the connection (last stream %s)" % last)
        if isinstance(f, GoAwayFrame):
            assert goaway_ok, "GOAWAY"
            assert f.error_code == 0, f
            last = f.last_stream_id
            continue
        h = dict(dec.decode(f.data)) if isinstance(f, HeadersFrame) else {}
        v = out.get(getattr(f, "stream_id", 0))
        if v is None:
            continue
        if ":status" in h:
            v[0] = int(h[":status"])
        if isinstance(f, DataFrame):
            v[1] += f.data
        if isinstance(f, RstStreamFrame):
            v[2] = "rst"
        elif "END_STREAM" in f.flags:
            v[2] = "end"
    return {k: tuple(v) for k, v in out.items()}, last
