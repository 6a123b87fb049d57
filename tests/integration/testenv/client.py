"""TLS/HTTP clients for the tests: a raw HTTP/1.1-over-TLS connection, openssl s_client, curl."""
import json
import socket
import ssl
import subprocess
from dataclasses import dataclass, field

from .env import t

_CA = None  # set by conftest (path of the test CA), for verifying contexts


def set_ca(path):
    global _CA
    _CA = path


def tls_context(verify=True, min_version=None, max_version=None, ciphers=None, legacy=False):
    """A client SSLContext; verify=True trusts the test CA and checks the host name."""
    if verify:
        ctx = ssl.create_default_context(cafile=_CA)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if legacy:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    if ciphers:
        ctx.set_ciphers(ciphers)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    return ctx


@dataclass
class Response:
    status: int
    reason: str
    headers: list = field(default_factory=list)  # [(name, value)]
    body: bytes = b""
    version: str = "HTTP/1.1"
    interim: list = field(default_factory=list)  # 1xx statuses seen before this one

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


class Conn:
    """One client connection (TLS unless tls=False) with HTTP/1.1 request/response helpers."""

    def __init__(self, port, host="127.0.0.1", sni="localhost", ctx=None, tls=True, timeout=10,
                 bind_port=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(t(timeout))
        if bind_port:
            self.sock.bind(("127.0.0.1", bind_port))
        self.sock.connect((host, port))
        self.local_port = self.sock.getsockname()[1]
        if tls:
            ctx = ctx or tls_context()
            self.sock = ctx.wrap_socket(self.sock, server_hostname=sni)
        self.f = self.sock.makefile("rb")
        self.host = sni if sni else host

    # info
    @property
    def tls_version(self):
        return self.sock.version()

    @property
    def cipher(self):
        return self.sock.cipher()[0]

    def peer_cert_der(self):
        return self.sock.getpeercert(binary_form=True)

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # raw
    def send(self, data):
        self.sock.sendall(data)

    def recv_all(self, limit=1 << 20):
        """Reads until EOF (or limit bytes)."""
        out = b""
        while len(out) < limit:
            try:
                d = self.f.read1(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not d:
                break
            out += d
        return out

    # HTTP
    @staticmethod
    def build(method, path, host, headers=None, body=None, chunked=False):
        hs = list(headers or [])
        names = {k.lower() for k, _ in hs}
        if "host" not in names and host is not None:
            hs.insert(0, ("Host", host))
        if body is not None and not chunked and "content-length" not in names:
            hs.append(("Content-Length", str(len(body))))
        if chunked:
            hs.append(("Transfer-Encoding", "chunked"))
        head = "%s %s HTTP/1.1\r\n" % (method, path)
        head += "".join("%s: %s\r\n" % kv for kv in hs) + "\r\n"
        return head.encode("latin-1")

    def request(self, method, path, headers=None, body=None, chunked=False, chunk_size=65536):
        """Sends one request and reads its response. body: bytes or an iterable of bytes
        (chunked=True sends it with chunked transfer coding)."""
        if chunked:
            self.send(self.build(method, path, self.host, headers, None, chunked=True))
            chunks = [body] if isinstance(body, (bytes, bytearray)) else body
            for c in chunks or []:
                for i in range(0, len(c), chunk_size):
                    part = c[i:i + chunk_size]
                    self.send(b"%x\r\n" % len(part) + part + b"\r\n")
            self.send(b"0\r\n\r\n")
        else:
            self.send(self.build(method, path, self.host, headers, body) + (body or b""))
        return self.read_response(method)

    def read_response(self, method="GET"):
        interim = []
        while True:
            line = self.f.readline(65536)
            if not line:
                raise ConnectionError("connection closed before a response")
            parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            version, status = parts[0], int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = self._read_headers()
            if 100 <= status < 200 and status != 101:
                interim.append(status)
                continue
            break
        r = Response(status, reason, headers, b"", version, interim)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return r
        te = (r.header("Transfer-Encoding") or "").lower()
        cl = r.header("Content-Length")
        if "chunked" in te:
            r.body = self._read_chunked()
        elif cl is not None:
            r.body = self._read_exact(int(cl))
        else:
            r.body = self.recv_all(1 << 30)
        return r

    def _read_headers(self):
        headers = []
        while True:
            h = self.f.readline(65536)
            if not h:
                raise ConnectionError("connection closed in response headers")
            if h in (b"\r\n", b"\n"):
                return headers
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))

    def _read_exact(self, n):
        out = bytearray()
        while len(out) < n:
            d = self.f.read(min(n - len(out), 1 << 20))
            if not d:
                raise ConnectionError("connection closed after %d of %d body bytes" % (len(out), n))
            out += d
        return bytes(out)

    def _read_chunked(self):
        out = bytearray()
        while True:
            line = self.f.readline(1024)
            if not line:
                raise ConnectionError("connection closed in chunked body")
            n = int(line.split(b";")[0].strip(), 16)
            if n == 0:
                while True:
                    tl = self.f.readline(65536)
                    if not tl or tl in (b"\r\n", b"\n"):
                        return bytes(out)
            out += self._read_exact(n)
            self.f.readline(16)

    def is_closed(self, timeout=1.0):
        """True if the peer closed (EOF/reset) within timeout without sending anything."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            d = self.f.read1(1)
            return d == b""
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass


def get(port, path="/", sni="localhost", ctx=None, headers=None, timeout=10):
    """One GET on a new connection."""
    with Conn(port, sni=sni, ctx=ctx, timeout=timeout) as c:
        return c.request("GET", path, headers=headers)


@dataclass
class SClient:
    returncode: int
    out: str
    err: str

    @property
    def connected(self):
        """True when a handshake finished (a cipher was agreed)."""
        return self.cipher is not None

    @property
    def cipher(self):
        for line in self.out.splitlines():
            line = line.strip()
            if line.startswith("Cipher is ") or line.startswith("Cipher    :"):
                c = line.split()[-1]
                return None if c in ("(NONE)", "0000") else c
            if ", Cipher is " in line:
                c = line.rsplit(" ", 1)[-1]
                return None if c == "(NONE)" else c
        return None

    @property
    def protocol(self):
        """Negotiated version from the SSL-Session block ("TLSv1.2"); None if no handshake."""
        if not self.connected:
            return None
        for line in self.out.splitlines():
            line = line.strip()
            if line.startswith("Protocol  :") or line.startswith("Protocol:"):
                return line.split(":", 1)[1].strip()
        for line in self.out.splitlines():
            if line.startswith("New, ") and ", Cipher is " in line:
                return line.split(",")[1].strip()
        return None

    @property
    def peer_cert_pem(self):
        o = self.out
        a = o.find("-----BEGIN CERTIFICATE-----")
        if a < 0:
            return None
        b = o.find("-----END CERTIFICATE-----", a)
        return o[a:b + len("-----END CERTIFICATE-----")] + "\n"

    def peer_subject(self):
        for line in self.out.splitlines():
            if line.startswith("subject="):
                return line[len("subject="):]
        return None


def s_client(port, *args, sni="localhost", input_=b"", timeout=10, bind_port=None):
    """Runs `openssl s_client -connect 127.0.0.1:PORT ARGS` once, with input_ on stdin."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    if sni:
        cmd += ["-servername", sni]
    else:
        cmd += ["-noservername"]
    if bind_port:
        cmd += ["-bind", "127.0.0.1:%d" % bind_port]
    cmd += list(args)
    r = subprocess.run(cmd, input=input_, capture_output=True, timeout=t(timeout))
    return SClient(r.returncode, r.stdout.decode("utf-8", "replace"),
                   r.stderr.decode("utf-8", "replace"))


def curl(*args, timeout=30, check=False):
    """Runs curl with the given args (add -k or --cacert yourself); returns CompletedProcess."""
    cmd = ["curl", "-sS", "--max-time", str(int(t(timeout)))] + list(args)
    r = subprocess.run(cmd, capture_output=True, timeout=t(timeout) + 10)
    if check and r.returncode != 0:
        raise AssertionError("curl %s failed (%d): %s" % (args, r.returncode, r.stderr.decode()))
    return r


class Hang(AssertionError):
    """The gateway neither answered nor closed before the client's timeout."""


def refused(exchange, *args, **kw):
    """Runs a client exchange (a function); True when the gateway refused it (a TLS alert, a
    reset, a close), False when it answered. A client timeout fails the test: a gateway that hangs
    has not refused anything."""
    try:
        exchange(*args, **kw)
    except socket.timeout as e:
        raise Hang("the gateway neither answered nor closed the connection before the client's "
                   "timeout: a hang, not a refusal (%r)" % e) from e
    except (ssl.SSLError, OSError):
        return True
    return False
