"""A loopback backend that answers each request with bytes chosen by the test, written in pieces:
for response heads split across TCP segments at chosen offsets, oversized heads and other sloppy
or hostile backend behaviour."""
import socket
import threading
import time


class ScriptedOrigin:
    """respond(method, target, head_bytes) returns (pieces, keep): pieces is a list of bytes
    written one after another with `gap` seconds between them (TCP_NODELAY, so each arrives as
    its own segment); keep says whether to read another request on the connection. Requests must
    have no body. heads records every request head received (bytes)."""

    def __init__(self, respond, gap=0.02):
        self.respond = respond
        self.gap = gap
        self.heads = []
        self.accepts = 0
        self.closed_conns = 0
        self.lock = threading.Lock()
        self.closing = False
        self.conns = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self._accept_loop, daemon=True, name="scripted")
        self.thread.start()

    def _accept_loop(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.accepts += 1
                self.conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(30)
        buf = b""
        try:
            while not self.closing:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                with self.lock:
                    self.heads.append(head)
                first = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
                pieces, keep = self.respond(first[0], first[1], head)
                for i, p in enumerate(pieces):
                    if i:
                        time.sleep(self.gap)
                    c.sendall(p)
                if not keep:
                    return
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(c)
                self.closed_conns += 1
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


def split_at(data, *offsets):
    """data cut at the given offsets (ascending, 0 < off < len(data))."""
    out, last = [], 0
    for off in offsets:
        out.append(data[last:off])
        last = off
    out.append(data[last:])
    return [p for p in out if p]
