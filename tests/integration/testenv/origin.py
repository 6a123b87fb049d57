"""Plain HTTP/1.1 test origins on loopback: keep-alive, chunked bodies, 100-continue.

Endpoints:
  /echo               JSON: origin name, method, path, headers (list of [name, value]), body length
  /upload             reads the body (Content-Length or chunked); JSON: sha256, length (and
                      trailers, when the chunked body had any)
  /download?size=N    N deterministic bytes (see pattern_bytes) with Content-Length
  /chunked?n=K        chunked response of K chunks ("chunk <i>\n" repeated i+1 times)
  /slow?seconds=S     sleeps S seconds, then answers 200 "slow done"
  /status/CODE        answers with that status
  anything else       200 "origin <name> <path>\n"
Every response carries `X-Origin: <name>`. accepts counts accepted TCP connections; requests
records (method, path, headers) of every request.
"""
import hashlib
import json
import socket
import threading
import time
import urllib.parse

PATTERN_BLOCK = bytes(range(256)) * 256  # 64 KiB


def pattern_bytes(size):
    """The body /download?size=N sends (generator of chunks)."""
    left = size
    while left > 0:
        n = min(left, len(PATTERN_BLOCK))
        yield PATTERN_BLOCK[:n]
        left -= n


def pattern_sha256(size):
    h = hashlib.sha256()
    for chunk in pattern_bytes(size):
        h.update(chunk)
    return h.hexdigest()


def chunked_body(n):
    """The decoded body /chunked?n=K sends, for comparison."""
    return b"".join(_chunk(i) for i in range(n))


def _chunk(i):
    return (b"chunk %d\n" % i) * (i + 1)


class _BadRequest(Exception):
    pass


class Origin:
    def __init__(self, name="origin", port=0):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.accepts = 0
        self.requests = []
        self.lock = threading.Lock()
        self.closing = False
        self.conns = set()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True,
                                       name="origin-" + name)
        self.thread.start()

    # -- lifecycle --
    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)

    def reset_counts(self):
        with self.lock:
            self.accepts = 0
            self.requests = []

    def _accept_loop(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepts += 1
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    # -- one connection --
    def _serve(self, c):
        c.settimeout(120)
        f = c.makefile("rb")
        try:
            while not self.closing:
                if not self._one(c, f):
                    break
        except (OSError, _BadRequest, ValueError):
            pass
        finally:
            with self.lock:
                self.conns.discard(c)
            try:
                f.close()
                c.close()
            except OSError:
                pass

    def _one(self, c, f):
        line = f.readline(65536)
        if not line:
            return False
        if line in (b"\r\n", b"\n"):
            return True
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3:
            raise _BadRequest(line)
        method, target, version = parts
        headers = []
        while True:
            h = f.readline(65536)
            if not h:
                return False
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        hmap = {}
        for k, v in headers:
            hmap.setdefault(k.lower(), []).append(v)
        with self.lock:
            self.requests.append((method, target, headers))
        keep = version == "HTTP/1.1"
        conn_tokens = ",".join(hmap.get("connection", [])).lower()
        if "close" in conn_tokens:
            keep = False
        elif "keep-alive" in conn_tokens:
            keep = True

        te = ",".join(hmap.get("transfer-encoding", [])).lower()
        cl = hmap.get("content-length")
        has_body = "chunked" in te or (cl is not None and int(cl[0]) > 0)
        if has_body and "100-continue" in ",".join(hmap.get("expect", [])).lower():
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        h = hashlib.sha256()
        length = 0
        trailers = []
        if "chunked" in te:
            while True:
                sz = f.readline(1024)
                if not sz:
                    return False
                n = int(sz.split(b";")[0].strip(), 16)
                if n == 0:
                    while True:  # trailers
                        tl = f.readline(65536)
                        if not tl or tl in (b"\r\n", b"\n"):
                            break
                        k, _, v = tl.decode("latin-1").partition(":")
                        trailers.append([k.strip(), v.strip()])
                    break
                left = n
                while left:
                    d = f.read(min(left, 65536))
                    if not d:
                        return False
                    h.update(d)
                    length += len(d)
                    left -= len(d)
                f.readline(16)
        elif cl is not None:
            left = int(cl[0])
            while left:
                d = f.read(min(left, 65536))
                if not d:
                    return False
                h.update(d)
                length += len(d)
                left -= len(d)

        u = urllib.parse.urlsplit(target)
        q = urllib.parse.parse_qs(u.query)
        path = u.path
        status, body, extra = 200, None, []
        stream = None
        if path == "/echo":
            body = json.dumps({"origin": self.name, "method": method, "path": target,
                               "version": version, "headers": headers,
                               "body_length": length}).encode()
            extra.append(("Content-Type", "application/json"))
        elif path == "/upload":
            doc = {"origin": self.name, "sha256": h.hexdigest(), "length": length}
            if trailers:
                doc["trailers"] = trailers
            body = json.dumps(doc).encode()
            extra.append(("Content-Type", "application/json"))
        elif path == "/download":
            size = int(q.get("size", ["0"])[0])
            stream = ("length", size)
        elif path == "/chunked":
            stream = ("chunked", int(q.get("n", ["3"])[0]))
        elif path == "/slow":
            time.sleep(float(q.get("seconds", ["1"])[0]))
            body = b"slow done\n"
        elif path.startswith("/status/"):
            status = int(path[len("/status/"):])
            body = b"status %d\n" % status
        else:
            body = ("origin %s %s\n" % (self.name, target)).encode()

        head = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Status")),
                "X-Origin: " + self.name]
        head += ["%s: %s" % kv for kv in extra]
        if not keep:
            head.append("Connection: close")
        if method == "HEAD" or status in (204, 304):
            head.append("Content-Length: %d" % (len(body) if body is not None else 0))
            c.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        elif stream and stream[0] == "length":
            head.append("Content-Length: %d" % stream[1])
            c.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            for chunk in pattern_bytes(stream[1]):
                c.sendall(chunk)
        elif stream and stream[0] == "chunked":
            head.append("Transfer-Encoding: chunked")
            c.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            for i in range(stream[1]):
                d = _chunk(i)
                c.sendall(b"%x\r\n%s\r\n" % (len(d), d))
                time.sleep(0.005)
            c.sendall(b"0\r\n\r\n")
        else:
            head.append("Content-Length: %d" % len(body))
            c.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return keep


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified",
            400: "Bad Request", 403: "Forbidden", 404: "Not Found", 418: "I'm a teapot",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
