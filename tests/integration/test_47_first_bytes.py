"""The client's first bytes: the server reads them once (the sniff that refuses plain HTTP and
SSLv2 hellos), then hands them to OpenSSL ahead of the socket. A hello that arrives in pieces, or
that is larger than one read, still completes the handshake and the request on it."""
import socket
import ssl
import time

import testenv
from testenv import tls_context


def _config(certs, tmp_path, port):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "main", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
    }


def _exchange(port, pieces=None, alpn=None):
    """A TLS 1.3 client driven by hand: the ClientHello goes out in the given pieces (sizes of the
    first ones, each sent on its own), then the handshake and one GET /_status. Returns the HTTP
    response bytes and the ClientHello's size."""
    ctx = tls_context(verify=False)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    s = socket.create_connection(("127.0.0.1", port), timeout=testenv.t(10))
    try:
        at = 0
        for n in pieces or []:
            s.sendall(hello[at:at + n])
            at += n
            # give the server the chance to read this piece alone (the test holds either way)
            time.sleep(0.2)
        s.sendall(hello[at:])
        while True:
            data = s.recv(65536)
            assert data, "the server closed the connection during the handshake"
            inc.write(data)
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = out.read()
                if pending:
                    s.sendall(pending)
        obj.write(b"GET /_status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        s.sendall(out.read())
        got = b""
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:  # close_notify
                    break
                got += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            pending = out.read()
            if pending:
                s.sendall(pending)
            data = s.recv(65536)
            if not data:
                break
            inc.write(data)
        return got, len(hello)
    finally:
        s.close()


def test_hello_in_pieces_and_large(gateway, certs, tmp_path):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port))

    # the whole hello at once (the usual case)
    resp, _ = _exchange(port)
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    # one byte first: the sniff decides on it, OpenSSL reads the rest from the socket
    resp, _ = _exchange(port, pieces=[1])
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    # the record header alone, then the body in two parts
    resp, _ = _exchange(port, pieces=[5, 40])
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    # a hello of more than 17 KiB (a long ALPN list): more than one read and more than one record
    names = ["x%03d" % i + "y" * 240 for i in range(80)] + ["http/1.1"]
    resp, size = _exchange(port, alpn=names)
    assert size > 17 * 1024, size
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    resp, _ = _exchange(port, pieces=[3000], alpn=names)
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
