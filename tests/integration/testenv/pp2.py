"""Raw TCP test peers for `mode: tcp` listeners: a PROXY protocol v2 parser and builder, loopback
backends that record an optional PROXY v2 header and then echo (plain or TLS), a half-close
aware echo backend, a bulk sink/source backend, and a full-duplex client (plain or TLS) that can
half-close its write side.

PROXY v2 (haproxy's doc/proxy-protocol.txt, section 2.2): a 16-byte head (12-byte signature,
version/command, family/transport, big-endian length of the rest), the addresses, then TLVs
(type, 2-byte length, value). PP2_TYPE_SSL (0x20) carries `client` (1 byte), `verify` (4 bytes)
and nested sub-TLVs (version 0x21, CN 0x22, cipher 0x23, sig_alg 0x24, key_alg 0x25).

Backends accept a header only as the first bytes of a connection (`proxy_header`: "optional",
"require" or "none"); what they parsed is in `sessions[i].header`. Self-contained on purpose
(no imports from the rest of testenv) so the bench scripts can reuse it with `python3 pp2.py`.
"""
import hashlib
import ipaddress
import selectors
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
HEAD_LEN = 16

CMD_LOCAL, CMD_PROXY = 0x0, 0x1
AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX = 0x0, 0x1, 0x2, 0x3
T_UNSPEC, T_STREAM, T_DGRAM = 0x0, 0x1, 0x2
_ADDR_LEN = {AF_UNSPEC: 0, AF_INET: 12, AF_INET6: 36, AF_UNIX: 216}

PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_SUBTYPE_SSL_SIG_ALG = 0x24
PP2_SUBTYPE_SSL_KEY_ALG = 0x25
PP2_TYPE_NETNS = 0x30

PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04

# bulk data: the same 64 KiB block as testenv.origin.pattern_bytes
PATTERN_BLOCK = bytes(range(256)) * 256


def pattern_chunks(size, chunk=len(PATTERN_BLOCK)):
    """size deterministic bytes (PATTERN_BLOCK repeated), as chunks of at most `chunk` bytes."""
    block = PATTERN_BLOCK * max(1, chunk // len(PATTERN_BLOCK))
    left = size
    while left > 0:
        n = min(left, len(block))
        yield block[:n]
        left -= n


def pattern_sha256(size):
    h = hashlib.sha256()
    for c in pattern_chunks(size, 1 << 20):
        h.update(c)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# PROXY v2: parse and build


class PP2Error(ValueError):
    """A malformed PROXY v2 header (the message says what and where)."""


@dataclass
class SSLInfo:
    client: int                  # PP2_CLIENT_* bits
    verify: int                  # 0 = client certificate verified (or none presented)
    subtlvs: list = field(default_factory=list)   # [(type, bytes)] in order

    def sub(self, t):
        for k, v in self.subtlvs:
            if k == t:
                return v
        return None

    @property
    def version(self):
        v = self.sub(PP2_SUBTYPE_SSL_VERSION)
        return None if v is None else v.decode("ascii")

    @property
    def cipher(self):
        v = self.sub(PP2_SUBTYPE_SSL_CIPHER)
        return None if v is None else v.decode("ascii")

    @property
    def cn(self):
        v = self.sub(PP2_SUBTYPE_SSL_CN)
        return None if v is None else v.decode("utf-8")


@dataclass
class ProxyHeader:
    version: int
    command: int                 # CMD_LOCAL | CMD_PROXY
    family: int                  # AF_*
    transport: int               # T_*
    src_addr: str = None
    dst_addr: str = None
    src_port: int = None
    dst_port: int = None
    tlvs: list = field(default_factory=list)      # [(type, bytes)] in order, top level
    ssl: SSLInfo = None          # the parsed PP2_TYPE_SSL, if present
    raw: bytes = b""

    def tlv(self, t):
        for k, v in self.tlvs:
            if k == t:
                return v
        return None

    def tlv_types(self):
        return [k for k, _ in self.tlvs]

    @property
    def authority(self):
        v = self.tlv(PP2_TYPE_AUTHORITY)
        return None if v is None else v.decode("utf-8")

    @property
    def alpn(self):
        return self.tlv(PP2_TYPE_ALPN)

    @property
    def src(self):
        return (self.src_addr, self.src_port)

    @property
    def dst(self):
        return (self.dst_addr, self.dst_port)


def _crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _parse_tlvs(buf, where):
    out, i = [], 0
    while i < len(buf):
        if len(buf) - i < 3:
            raise PP2Error("%s: %d stray byte(s) at offset %d, too short for a TLV head"
                           % (where, len(buf) - i, i))
        t, n = buf[i], struct.unpack_from("!H", buf, i + 1)[0]
        if i + 3 + n > len(buf):
            raise PP2Error("%s: TLV 0x%02x at offset %d says %d bytes, only %d left"
                           % (where, t, i, n, len(buf) - i - 3))
        out.append((t, bytes(buf[i + 3:i + 3 + n])))
        i += 3 + n
    return out


def parse_pp2(buf):
    """Parses a PROXY v2 header at the start of buf. Returns (header, consumed) once it is
    complete, (None, 0) if more bytes are needed; raises PP2Error if buf does not start with a
    valid header (bad signature, version, command, family, lengths, TLVs or CRC32C)."""
    buf = bytes(buf)
    n = min(len(buf), len(SIGNATURE))
    if buf[:n] != SIGNATURE[:n]:
        raise PP2Error("no PROXY v2 signature: %r" % buf[:16])
    if len(buf) < HEAD_LEN:
        return None, 0
    ver_cmd, fam, length = buf[12], buf[13], struct.unpack_from("!H", buf, 14)[0]
    version, command = ver_cmd >> 4, ver_cmd & 0xF
    family, transport = fam >> 4, fam & 0xF
    if version != 2:
        raise PP2Error("version %d, want 2 (byte 13 = 0x%02x)" % (version, ver_cmd))
    if command not in (CMD_LOCAL, CMD_PROXY):
        raise PP2Error("unknown command 0x%x" % command)
    if family not in _ADDR_LEN or transport not in (T_UNSPEC, T_STREAM, T_DGRAM):
        raise PP2Error("unknown family/transport byte 0x%02x" % fam)
    if len(buf) < HEAD_LEN + length:
        return None, 0
    body = buf[HEAD_LEN:HEAD_LEN + length]
    alen = _ADDR_LEN[family]
    if command == CMD_PROXY and len(body) < alen:
        raise PP2Error("family %d needs %d address bytes, the header has %d"
                       % (family, alen, len(body)))
    h = ProxyHeader(version, command, family, transport, raw=buf[:HEAD_LEN + length])
    if family == AF_INET and len(body) >= alen:
        h.src_addr = str(ipaddress.IPv4Address(body[0:4]))
        h.dst_addr = str(ipaddress.IPv4Address(body[4:8]))
        h.src_port, h.dst_port = struct.unpack_from("!HH", body, 8)
    elif family == AF_INET6 and len(body) >= alen:
        h.src_addr = str(ipaddress.IPv6Address(body[0:16]))
        h.dst_addr = str(ipaddress.IPv6Address(body[16:32]))
        h.src_port, h.dst_port = struct.unpack_from("!HH", body, 32)
    elif family == AF_UNIX and len(body) >= alen:
        h.src_addr = body[0:108].split(b"\0", 1)[0].decode("utf-8", "replace")
        h.dst_addr = body[108:216].split(b"\0", 1)[0].decode("utf-8", "replace")
    # A LOCAL command or an UNSPEC family may carry anything; TLVs follow the address block.
    tlv_start = alen if len(body) >= alen else len(body)
    h.tlvs = _parse_tlvs(body[tlv_start:], "TLVs")
    for t, v in h.tlvs:
        if t == PP2_TYPE_SSL:
            if h.ssl is not None:
                raise PP2Error("PP2_TYPE_SSL twice")
            if len(v) < 5:
                raise PP2Error("PP2_TYPE_SSL value is %d bytes, needs at least 5" % len(v))
            h.ssl = SSLInfo(v[0], struct.unpack_from("!I", v, 1)[0],
                            _parse_tlvs(v[5:], "PP2_TYPE_SSL sub-TLVs"))
        elif t == PP2_TYPE_CRC32C:
            if len(v) != 4:
                raise PP2Error("PP2_TYPE_CRC32C value is %d bytes, want 4" % len(v))
            # the checksum is computed with its own value field set to zero
            off = h.raw.index(bytes([PP2_TYPE_CRC32C, 0, 4]) + v, HEAD_LEN + tlv_start) + 3
            zeroed = h.raw[:off] + b"\0\0\0\0" + h.raw[off + 4:]
            if crc32c(zeroed) != struct.unpack("!I", v)[0]:
                raise PP2Error("PP2_TYPE_CRC32C mismatch")
    return h, HEAD_LEN + length


def _tlv(t, v):
    return struct.pack("!BH", t, len(v)) + v


def build_pp2(src=None, dst=None, command=CMD_PROXY, tlvs=(), ssl_client=None, ssl_verify=0,
              ssl_subtlvs=(), crc=False, family=None):
    """A PROXY v2 header. src/dst: (addr, port) of the same IP family (None: AF_UNSPEC);
    tlvs: [(type, bytes)]; ssl_client (an int of PP2_CLIENT_* bits) adds PP2_TYPE_SSL with
    ssl_subtlvs; crc adds a correct PP2_TYPE_CRC32C."""
    if src is None:
        fam, addrs = AF_UNSPEC, b""
    else:
        a, b = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
        fam = AF_INET if a.version == 4 else AF_INET6
        addrs = a.packed + b.packed + struct.pack("!HH", src[1], dst[1])
    if family is not None:
        fam = family
    body = addrs + b"".join(_tlv(t, v) for t, v in tlvs)
    if ssl_client is not None:
        body += _tlv(PP2_TYPE_SSL, struct.pack("!BI", ssl_client, ssl_verify)
                     + b"".join(_tlv(t, v) for t, v in ssl_subtlvs))
    if crc:
        body += _tlv(PP2_TYPE_CRC32C, b"\0\0\0\0")
    head = SIGNATURE + bytes([0x20 | command, (fam << 4) | (T_STREAM if src else T_UNSPEC)])
    out = head + struct.pack("!H", len(body)) + body
    if crc:
        out = out[:-4] + struct.pack("!I", crc32c(out))
    return out


# ------------------------------------------------------------------------------------------------
# Backends

def server_context(keypair_or_paths):
    """A server SSLContext from a KeyPair (cert, key) or a (cert, key) tuple."""
    cert, key = (keypair_or_paths.cert, keypair_or_paths.key) \
        if hasattr(keypair_or_paths, "cert") else keypair_or_paths
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class Session:
    """One accepted backend connection. The handler talks through recv/sendall/shutdown_write;
    everything of interest is recorded here for the test to inspect afterwards."""

    def __init__(self, backend, sock, peer):
        self.backend = backend
        self.sock = sock              # the plain socket, or the SSLSocket after the handshake
        self.peer = peer              # (addr, port) of the TCP peer (the gateway)
        self.header = None            # ProxyHeader, if one was sent
        self.header_error = None      # PP2Error text, if what came was not a valid header
        self.sni = None               # TLS backends: the server name the client sent
        self.tls_version = None
        self.cipher = None
        self.received = bytearray()   # every payload byte read by the handler (see keep_bytes)
        self.received_count = 0
        self.eof = False              # the peer shut its write side (we read EOF)
        self.eof_at = None            # time.monotonic() of that EOF
        self.write_shut = False
        self.closed_at = None
        self.error = None             # exception that ended the handler, if any
        self.info = {}                # handler-specific results (e.g. bulk sha256)
        self.done = threading.Event()

    # handler API
    def recv(self, n=65536):
        try:
            d = self.sock.recv(n)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            d = b""
        if d:
            self.received_count += len(d)
            if self.backend.keep_bytes:
                self.received += d
        elif not self.eof:
            self.eof, self.eof_at = True, time.monotonic()
        return d

    def recv_exact(self, n):
        out = bytearray()
        while len(out) < n:
            d = self.recv(min(n - len(out), 1 << 20))
            if not d:
                raise EOFError("EOF after %d of %d bytes" % (len(out), n))
            out += d
        return bytes(out)

    def recv_line(self, limit=4096):
        out = bytearray()
        while not out.endswith(b"\n"):
            if len(out) >= limit:
                raise ValueError("line longer than %d bytes" % limit)
            d = self.recv(1)
            if not d:
                raise EOFError("EOF in a line: %r" % bytes(out))
            out += d
        return bytes(out)

    def sendall(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        """FIN on a plain backend connection (TLS backends: not supported)."""
        if isinstance(self.sock, ssl.SSLSocket):
            raise NotImplementedError("half-close of a TLS backend session")
        self.sock.shutdown(socket.SHUT_WR)
        self.write_shut = True


class TCPBackend:
    """A threaded loopback TCP server: each connection gets an optional PROXY v2 header read
    (proxy_header "optional" | "require" | "none"), then an optional TLS handshake (tls: a
    KeyPair or (cert, key)), then handler(session). port=0 picks a free port. sessions lists
    every connection in accept order; keep_bytes=False keeps only counts (bulk transfers).
    Looking for a header waits for the first bytes, so server-first handlers take "none"."""

    def __init__(self, handler, tls=None, port=0, proxy_header="optional", keep_bytes=True,
                 name="tcp-backend", timeout=60):
        self.handler = handler
        self.proxy_header = proxy_header
        self.keep_bytes = keep_bytes
        self.name = name
        self.timeout = timeout
        self.ctx = None
        self.sni_seen = []
        if tls is not None:
            self.ctx = server_context(tls)
            self.ctx.sni_callback = self._sni
        self.sessions = []
        self.accepts = 0
        self.lock = threading.Lock()
        self.closing = False
        self.conns = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self._accept_loop, daemon=True, name=name)
        self.thread.start()

    def _sni(self, sslsock, name, ctx):
        sess = getattr(sslsock, "_tg_session", None)
        if sess is not None:
            sess.sni = name
        with self.lock:
            self.sni_seen.append(name)
        return None

    def _accept_loop(self):
        while not self.closing:
            try:
                c, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = Session(self, c, peer)
            with self.lock:
                self.accepts += 1
                self.sessions.append(s)
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _read_header(self, s):
        """Peeks at the first bytes: a PROXY v2 header is consumed and parsed, anything else is
        left for the handler."""
        c = s.sock
        while True:
            peek = c.recv(HEAD_LEN, socket.MSG_PEEK)
            if not peek:
                break
            n = min(len(peek), len(SIGNATURE))
            if peek[:n] != SIGNATURE[:n]:
                break
            if len(peek) < HEAD_LEN:
                time.sleep(0.005)  # a header split across segments; wait for the rest
                continue
            length = struct.unpack_from("!H", peek, 14)[0]
            raw = bytearray()
            while len(raw) < HEAD_LEN + length:
                d = c.recv(HEAD_LEN + length - len(raw))
                if not d:
                    raise EOFError("EOF inside the PROXY v2 header")
                raw += d
            try:
                s.header, _ = parse_pp2(raw)
            except PP2Error as e:
                s.header_error = str(e)
                raise
            return
        if self.proxy_header == "require":
            s.header_error = "no PROXY v2 header"
            raise PP2Error("no PROXY v2 header")

    def _serve(self, s):
        c = s.sock
        c.settimeout(self.timeout)
        try:
            if self.proxy_header != "none":
                self._read_header(s)
            if self.ctx is not None:
                tls = self.ctx.wrap_socket(c, server_side=True, do_handshake_on_connect=False)
                tls._tg_session = s
                tls.do_handshake()
                s.sock = tls
                s.tls_version, s.cipher = tls.version(), tls.cipher()[0]
            self.handler(s)
        except Exception as e:  # recorded for the test; the connection just ends
            s.error = e
        finally:
            s.closed_at = time.monotonic()
            with self.lock:
                self.conns.discard(c)
            try:
                s.sock.close()
            except OSError:
                pass
            s.done.set()

    # test helpers
    def wait_sessions(self, n=1, timeout=5):
        """Waits until n sessions were accepted; returns the list (maybe shorter on timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.sessions) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.sessions)

    def close(self):
        self.closing = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# -- handlers ---------------------------------------------------------------------------------

def echo_handler(s):
    """Echoes until EOF, then closes."""
    while True:
        d = s.recv(65536)
        if not d:
            return
        s.sendall(d)


def EchoBackend(tls=None, **kw):
    """Records the PROXY v2 header (if any), then echoes every byte (plain, or TLS with tls=)."""
    kw.setdefault("name", "echo-backend")
    return TCPBackend(echo_handler, tls=tls, **kw)


EOF_MARKER = b"<backend saw EOF after %d bytes>"


def halfclose_handler(s):
    """Echoes; when the client shuts its write side, sends EOF_MARKER % bytes_received, then
    shuts its own write side (and waits briefly for the gateway to close)."""
    while True:
        d = s.recv(65536)
        if not d:
            break
        s.sendall(d)
    s.info["eof_marker"] = EOF_MARKER % s.received_count
    s.sendall(s.info["eof_marker"])
    s.shutdown_write()
    s.sock.settimeout(5)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def HalfCloseBackend(**kw):
    kw.setdefault("name", "halfclose-backend")
    return TCPBackend(halfclose_handler, **kw)


def server_first_close_handler(greeting):
    """Sends greeting, shuts its write side at once, then reads until EOF (all recorded).
    Server-first: use it with proxy_header="none" (an optional header read would wait for the
    client's first bytes)."""
    def handler(s):
        s.sendall(greeting)
        s.shutdown_write()
        while s.recv(65536):
            pass
    return handler


def bulk_handler(s):
    """A line-command backend for bulk transfers (all sizes in bytes):
      SINK n    reads n bytes, answers "<sha256 hex>\\n"
      SOURCE n  sends n pattern bytes (PATTERN_BLOCK repeated)
      ECHO n    echoes exactly n bytes
      BOTH n    sends n pattern bytes while reading n bytes; then "<sha256 of what it read>\\n"
    then shuts its write side and reads to EOF. info: cmd, n, sha256 (of what it read)."""
    cmd, n = s.recv_line().decode("ascii").split()
    n = int(n)
    s.info.update(cmd=cmd, n=n)
    if cmd == "SINK":
        s.info["sha256"] = _sink(s, n)
        s.sendall(s.info["sha256"].encode() + b"\n")
    elif cmd == "SOURCE":
        for c in pattern_chunks(n, 1 << 20):
            s.sendall(c)
    elif cmd == "ECHO":
        left = n
        while left:
            d = s.recv(min(left, 1 << 20))
            if not d:
                raise EOFError("EOF with %d bytes left to echo" % left)
            s.sendall(d)
            left -= len(d)
    elif cmd == "BOTH":
        errs = []

        def writer():
            try:
                for c in pattern_chunks(n, 1 << 20):
                    s.sendall(c)
            except Exception as e:  # reported through info
                errs.append(e)
        th = threading.Thread(target=writer, daemon=True)
        th.start()
        s.info["sha256"] = _sink(s, n)
        th.join()
        if errs:
            raise errs[0]
        s.sendall(s.info["sha256"].encode() + b"\n")
    else:
        raise ValueError("unknown command %r" % cmd)
    s.info["done"] = True
    s.shutdown_write()
    while s.recv(65536):
        pass


def _sink(s, n):
    h = hashlib.sha256()
    left = n
    while left:
        d = s.recv(min(left, 1 << 20))
        if not d:
            raise EOFError("EOF with %d of %d bytes to go" % (left, n))
        h.update(d)
        left -= len(d)
    return h.hexdigest()


def BulkBackend(**kw):
    kw.setdefault("keep_bytes", False)
    kw.setdefault("name", "bulk-backend")
    return TCPBackend(bulk_handler, **kw)


# ------------------------------------------------------------------------------------------------
# Client


class TunnelClient:
    """A client for tcp listeners, plain or TLS (tls=True: an SSLObject over memory BIOs, so the
    write side can be half-closed with close_notify + FIN while reading goes on, and both
    directions can run at once without threads). eof tells how the read side ended:
    "close_notify", "fin" (TCP EOF without close_notify), "reset", or None while open."""

    def __init__(self, port, host="127.0.0.1", tls=True, sni="localhost", ctx=None, timeout=10,
                 bind_port=None):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if bind_port:
            self.sock.bind(("127.0.0.1", bind_port))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.local = self.sock.getsockname()
        self.sock.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.out = bytearray()        # bytes for the socket (ciphertext with TLS)
        self.plain_in = bytearray()   # received payload not yet handed out
        self.eof = None
        self.tcp_eof = False
        self.tcp_reset = False
        self.write_shut = False
        self.tls = None
        if tls:
            if ctx is None:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = ctx.wrap_bio(self.inc, self.outg, server_side=False,
                                    server_hostname=sni or None)
            self._handshake()

    # info
    @property
    def tls_version(self):
        return self.tls.version() if self.tls else None

    @property
    def cipher(self):
        return self.tls.cipher()[0] if self.tls else None

    # -- low level --
    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _wait(self, deadline, want_write):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out (received %d bytes so far, eof=%s)"
                                 % (len(self.plain_in), self.eof))
        mask = (0 if self.tcp_eof else selectors.EVENT_READ) \
            | (selectors.EVENT_WRITE if want_write else 0)
        if not mask:
            time.sleep(min(left, 0.05))
            return set()
        self.sel.modify(self.sock, mask)
        evs = 0
        for _, ev in self.sel.select(min(left, 0.5)):
            evs |= ev
        return evs

    def _take_out(self):
        if self.tls is not None:
            d = self.outg.read()
            if d:
                self.out += d

    def _write_some(self):
        try:
            n = self.sock.send(self.out[:1 << 18])
        except BlockingIOError:
            return
        del self.out[:n]

    def _read_some(self):
        """One socket read; returns False once nothing more will ever come."""
        if self.tcp_eof:
            return False
        try:
            d = self.sock.recv(1 << 18)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            self.tcp_eof = self.tcp_reset = True
            if self.tls is None:
                self.eof = self.eof or "reset"
            else:
                self.inc.write_eof()
            return False
        if not d:
            self.tcp_eof = True
            if self.tls is None:
                self.eof = self.eof or "fin"
            else:
                self.inc.write_eof()
            return False
        if self.tls is None:
            self.plain_in += d
        else:
            self.inc.write(d)
        return True

    def _decrypt(self):
        if self.tls is None or self.eof:
            return
        while True:
            try:
                d = self.tls.read(1 << 18)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.eof = "close_notify"
                break
            except ssl.SSLEOFError:
                self.eof = "reset" if self.tcp_reset else "fin"
                break
            except ssl.SSLError as e:
                self.eof = "tls-error: %s" % e
                break
            if not d:
                self.eof = "close_notify"
                break
            self.plain_in += d
        self._take_out()

    def _handshake(self):
        deadline = self._deadline(None)
        while True:
            try:
                self.tls.do_handshake()
                self._take_out()
                break
            except ssl.SSLWantReadError:
                self._take_out()
            while self.out:
                self._wait(deadline, True)
                self._write_some()
            evs = self._wait(deadline, False)
            if evs & selectors.EVENT_READ and not self._read_some():
                # let OpenSSL see the EOF (raises SSLEOFError / SSLError)
                try:
                    self.tls.do_handshake()
                except ssl.SSLWantReadError:
                    raise ssl.SSLEOFError("EOF during the TLS handshake")
        while self.out:
            self._wait(deadline, True)
            self._write_some()

    def _flush(self, deadline):
        while self.out:
            evs = self._wait(deadline, True)
            if evs & selectors.EVENT_WRITE:
                self._write_some()
            if evs & selectors.EVENT_READ:
                self._read_some()  # keep reading: the peer may be echoing
                self._decrypt()

    # -- high level --
    def send(self, data, timeout=None):
        """Sends all of data (reading whatever arrives meanwhile into the receive buffer)."""
        if self.tls is not None:
            for i in range(0, len(data), 1 << 16):
                self.tls.write(data[i:i + (1 << 16)])
            self._take_out()
        else:
            self.out += data
        self._flush(self._deadline(timeout))

    def recv(self, n=1 << 20, timeout=None):
        """Up to n received bytes; b"" at EOF (see .eof); raises socket.timeout."""
        deadline = self._deadline(timeout)
        while not self.plain_in and not self.eof:
            self._decrypt()
            if self.plain_in or self.eof:
                break
            evs = self._wait(deadline, bool(self.out))
            if evs & selectors.EVENT_WRITE:
                self._write_some()
            if evs & selectors.EVENT_READ:
                self._read_some()
            self._decrypt()
        d = bytes(self.plain_in[:n])
        del self.plain_in[:n]
        return d

    def recv_exact(self, n, timeout=None):
        deadline = self._deadline(timeout)
        out = bytearray()
        while len(out) < n:
            d = self.recv(n - len(out), timeout=max(0.001, deadline - time.monotonic()))
            if not d:
                raise EOFError("EOF (%s) after %d of %d bytes" % (self.eof, len(out), n))
            out += d
        return bytes(out)

    def recv_until_eof(self, timeout=None, limit=1 << 30):
        deadline = self._deadline(timeout)
        out = bytearray()
        while len(out) < limit:
            d = self.recv(1 << 20, timeout=max(0.001, deadline - time.monotonic()))
            if not d:
                break
            out += d
        return bytes(out)

    def shutdown_write(self, timeout=None):
        """Half-close: TLS close_notify (then FIN), or just FIN on a plain connection."""
        deadline = self._deadline(timeout)
        if self.tls is not None:
            try:
                self.tls.unwrap()
            except ssl.SSLWantReadError:
                pass  # close_notify sent; the peer's comes later (or never)
            except ssl.SSLError:
                pass
            self._take_out()
            self._flush(deadline)
        self.sock.shutdown(socket.SHUT_WR)
        self.write_shut = True

    def transfer(self, chunks, expect=None, on_data=None, half_close=False, timeout=None):
        """Full duplex: sends every chunk of the iterable while receiving. Received bytes go to
        on_data(bytes) (else they are kept and returned). Stops once `expect` bytes arrived
        (None: at EOF). half_close=True shuts the write side after the last chunk. Returns
        (bytes_received, kept_bytes)."""
        deadline = self._deadline(timeout)
        it = iter(chunks)
        sending = True
        got = 0
        kept = bytearray()

        def deliver():
            nonlocal got
            if self.plain_in:
                d = bytes(self.plain_in)
                self.plain_in.clear()
                got += len(d)
                if on_data:
                    on_data(d)
                else:
                    kept.extend(d)

        while True:
            while sending and len(self.out) < (1 << 19):
                c = next(it, None)
                if c is None:
                    sending = False
                    break
                if self.tls is not None:
                    self.tls.write(c)
                    self._take_out()
                else:
                    self.out += c
            if not sending and not self.out and half_close and not self.write_shut:
                self.shutdown_write(timeout=max(0.001, deadline - time.monotonic()))
            deliver()
            if (expect is not None and got >= expect) or self.eof:
                if not sending and not self.out:
                    break
                if self.eof:
                    raise EOFError("EOF (%s) while %d bytes were still to send"
                                   % (self.eof, len(self.out)))
            evs = self._wait(deadline, bool(self.out))
            if evs & selectors.EVENT_WRITE:
                self._write_some()
            if evs & selectors.EVENT_READ:
                self._read_some()
            self._decrypt()
        deliver()
        return got, bytes(kept)

    def push(self, block, cap, stall):
        """Sends copies of block without reading anything, until the socket has taken no byte
        for `stall` seconds or cap bytes were queued. Returns (queued, taken): payload bytes
        handed to the connection, and about how many of them the socket accepted (the rest
        wait in .out and go out with the next send/transfer)."""
        queued = 0
        last = time.monotonic()
        while queued < cap and time.monotonic() - last < stall:
            if len(self.out) < (1 << 20):
                if self.tls is not None:
                    self.tls.write(block)
                    self._take_out()
                else:
                    self.out += block
                queued += len(block)
            before = len(self.out)
            if self._wait(time.monotonic() + 0.1, True) & selectors.EVENT_WRITE:
                self._write_some()
            if len(self.out) < before:
                last = time.monotonic()
        return queued, max(0, queued - len(self.out))

    def close(self):
        try:
            self.sel.close()
        except Exception:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


if __name__ == "__main__":
    # `python3 pp2.py bulk PORT`: a bulk backend for manual runs and benchmarks.
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "bulk":
        b = BulkBackend(port=int(sys.argv[2]), proxy_header="optional")
        print("bulk backend on %s" % b.address, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            b.close()
    else:
        print("usage: pp2.py bulk PORT", file=sys.stderr)
        sys.exit(2)
