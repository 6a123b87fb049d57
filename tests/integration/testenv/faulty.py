"""A raw-socket HTTP/1.1 backend that misbehaves on request: the request path names the fault.
It numbers its connections and tags every response with the connection and the request's place
on it ("c3-r2"), so a test can tell which backend connection answered and that a pooled
connection was (or was not) used again. Stray bytes it sends are a complete response whose body
starts with STRAY: a client that ever sees STRAY got bytes meant for nobody."""
import socket
import struct
import threading

STRAY = b"STRAY"

# path -> what the backend does (after reading the request head; requests have no body)
FAULTS = {
    "reset": "sends the head and part of the body (Content-Length 1000), then resets (RST)",
    "closehead": "sends part of a response head, then closes",
    "stall": "sends nothing and keeps the connection open",
    "stallbody": "sends the head and part of the body, then nothing",
    "twice": "sends a complete response and a second one in the same write",
    "twicelater": "sends a complete response, then a second one a moment later",
    "closelater": "sends a complete response, then closes a moment later (FIN while pooled)",
    "resetlater": "sends a complete response, then resets a moment later (RST while pooled)",
    "long": "sends a body longer than its Content-Length",
    "chunkcut": "sends a chunked body cut off in a chunk, then closes",
    "chunkreset": "sends a chunked body cut off in a chunk, then resets",
    "clte": "sends both Content-Length and Transfer-Encoding: chunked (a desync attempt)",
    "twocl": "sends two different Content-Length values",
    "nocontent": "sends a 204 followed by bytes (a 204 has no body)",
    "headbody": "answers HEAD with a body",
    "resetearly": "resets as soon as the request head is read (a request body unread)",
    "earlyreply": "answers 413 and closes as soon as the request head is read",
    "badchunk": "sends a chunk size that is not hex, then a response",
    "chunknocrlf": "sends a chunk's data without the CRLF after it, then a response",
    "interimclose": "sends 100 Continue, then closes",
    "interimreset": "sends 103 Early Hints, then resets",
    "interimok": "sends 100 Continue and 103 Early Hints, then a whole response",
    "notmodified": "sends a 304 with a Content-Length and a body (a 304 has no body)",
    "headchunked": "answers HEAD with Transfer-Encoding: chunked and a chunked body",
    "eofbody": "sends a body ended by closing (no Content-Length, not chunked)",
    "eofbodyreset": "sends a body meant to end by closing, then resets",
    "tegzip": "sends Transfer-Encoding: gzip (a coding the gateway cannot frame)",
    "tetwice": "sends Transfer-Encoding: chunked, chunked (chunked applied twice)",
    "teidentity": "sends Transfer-Encoding: identity, chunked (identity is no coding)",
    "tetwolines": "sends Transfer-Encoding: chunked in two field lines",
    "tegzipchunked": "sends Transfer-Encoding: gzip, chunked (a coding the client is not told)",
    "http10": "answers HTTP/1.0 with a Content-Length and no Keep-Alive, then a response",
    "badcl": "sends Content-Length: 5x (not a number)",
    "upgrade": "answers 101 Switching Protocols to a request that asked for no upgrade",
    "eofbodynotify": "sends a body ended by closing, after a TLS close_notify (plain: as eofbody)",
    "okreset": "sends a whole response (Connection: close), then resets at once",
    "closeonreuse": "on a connection that answered before: reads the request, closes without an "
                    "answer (a backend closing its idle connection as it is reused); else answers",
}

# Transfer-Encoding lines a strict gateway refuses (RFC 9112 6.1: chunked once, and last), each
# followed by a chunked body that would read whole if taken as chunked.
TE_FIELDS = {
    "tetwice": b"Transfer-Encoding: chunked, chunked\r\n",
    "teidentity": b"Transfer-Encoding: identity, chunked\r\n",
    "tetwolines": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    "tegzipchunked": b"Transfer-Encoding: gzip, chunked\r\n",
}

def ok_body(tag, path):
    return b"ok %s %s\n" % (tag, path.encode())


def _response(body, extra=b""):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
            % len(body) + body + extra)


class FaultyBackend:
    """tls: None, or (cert, key) PEM paths to speak TLS (an end is then a TCP FIN without
    close_notify, except in eofbodynotify)."""

    def __init__(self, later_gap=0.05, tls=None):
        self.later_gap = later_gap
        self.ctx = None
        if tls is not None:
            import ssl
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls)
        self.lock = threading.Lock()
        self.n_conns = 0
        self.served = []  # (cid, n, path)
        self.stray_sent = threading.Event()
        self.closing = False
        self.conns = set()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True, name="faulty")
        self.thread.start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.n_conns += 1
                cid = self.n_conns
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c, cid), daemon=True).start()

    @staticmethod
    def _reset(c):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()

    def _serve(self, c, cid):
        raw = c
        c.settimeout(60)
        buf, n = b"", 0
        try:
            if self.ctx is not None:
                c = self.ctx.wrap_socket(c, server_side=True)
            while not self.closing:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                n += 1
                path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
                with self.lock:
                    self.served.append((cid, n, path))
                tag = b"c%d-r%d" % (cid, n)
                fault = path.split("?")[0].strip("/")
                stray = _response(STRAY + b" " + tag + b"\n")
                if fault == "reset":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"r" * 100)
                    self._reset(c)
                    return
                if fault == "closeonreuse" and n > 1:
                    return
                if fault == "okreset":
                    body = ok_body(tag, path)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n"
                              b"\r\n" % len(body) + body)
                    self._reset(c)
                    return
                if fault == "resetearly":
                    self._reset(c)
                    return
                if fault == "earlyreply":
                    c.sendall(b"HTTP/1.1 413 Too Large\r\nContent-Length: 4\r\n"
                              b"Connection: close\r\n\r\nbig\n")
                    c.shutdown(socket.SHUT_WR)
                    while c.recv(65536):
                        pass
                    return
                if fault == "closehead":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Ta")
                    return
                if fault in ("stall", "stallbody"):
                    if fault == "stallbody":
                        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"s" * 100)
                    while c.recv(65536):  # until the gateway gives up and closes
                        pass
                    return
                if fault == "twice":
                    c.sendall(_response(ok_body(tag, path)) + stray)
                elif fault == "twicelater":
                    c.sendall(_response(ok_body(tag, path)))
                    threading.Event().wait(self.later_gap)
                    c.sendall(stray)
                    self.stray_sent.set()
                elif fault in ("closelater", "resetlater"):
                    c.sendall(_response(ok_body(tag, path)))
                    threading.Event().wait(self.later_gap)
                    if fault == "resetlater":
                        self._reset(c)
                    else:
                        c.shutdown(socket.SHUT_WR)
                    self.stray_sent.set()
                    if fault == "resetlater":
                        return
                    while c.recv(65536):
                        pass
                    return
                elif fault == "long":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + stray)
                elif fault in ("chunkcut", "chunkreset"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n")
                    threading.Event().wait(0.05)
                    c.sendall(b"10\r\nworl")
                    if fault == "chunkreset":
                        self._reset(c)
                    return
                elif fault == "clte":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                              + stray)
                elif fault == "twocl":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 20\r\n"
                              b"\r\nhello" + stray)
                elif fault == "nocontent":
                    c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n" + stray)
                elif fault == "headbody":
                    body = ok_body(tag, path)
                    c.sendall(_response(body) + body)
                elif fault == "badchunk":
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\nzz\r\n" + stray)
                elif fault == "chunknocrlf":
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello" + stray)
                elif fault in ("interimclose", "interimreset"):
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" if fault == "interimclose"
                              else b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
                    threading.Event().wait(0.05)
                    if fault == "interimreset":
                        self._reset(c)
                    return
                elif fault == "interimok":
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                              b"Link: </a.css>\r\n\r\n" + _response(ok_body(tag, path)))
                elif fault == "notmodified":
                    c.sendall(b"HTTP/1.1 304 Not Modified\r\nContent-Length: %d\r\n\r\n"
                              % len(stray) + stray)
                elif fault == "headchunked":
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"%x\r\n" % len(stray) + stray + b"\r\n0\r\n\r\n")
                elif fault in ("eofbody", "eofbodyreset", "eofbodynotify"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                              + ok_body(tag, path))
                    threading.Event().wait(0.05)
                    if fault == "eofbodyreset":
                        self._reset(c)
                    elif fault == "eofbodynotify" and self.ctx is not None:
                        c = c.unwrap()
                    return
                elif fault == "tegzip":
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + stray)
                elif fault in TE_FIELDS:
                    body = ok_body(tag, path)
                    c.sendall(b"HTTP/1.1 200 OK\r\n" + TE_FIELDS[fault] + b"\r\n%x\r\n"
                              % len(body) + body + b"\r\n0\r\n\r\n" + stray)
                elif fault == "http10":
                    body = ok_body(tag, path)
                    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                              + body + stray)
                elif fault == "badcl":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello" + stray)
                elif fault == "upgrade":
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              b"Connection: Upgrade\r\n\r\n" + stray)
                else:
                    c.sendall(_response(ok_body(tag, path)))
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(raw)
            try:
                c.close()
            except OSError:
                pass

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
