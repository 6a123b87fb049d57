"""WebSocket through an http listener: wss:// from the client to a ws:// and to a wss:// backend
(10,000 mixed text and binary messages, 0..64 KiB, echoed intact), a backend that sends its
first frame in the same write as its 101, a refused upgrade relayed as the backend's response,
ordinary HTTP on the same listener meanwhile, and the status page's "websocket" counter."""
import random

import pytest
import websockets.exceptions

import testenv
from testenv import Conn, pp2
from testenv.wsecho import REFUSAL_BODY, WSClient, WSServer, raw_ws_handler


# ---------------------------------------------------------------------------------------------
# helpers

def _base(certs, tmp_path, port, routes, backends):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"testca": {"type": "pem", "file": certs.ca.cert}},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]}, "routes": routes}],
        "backends": backends,
    }


def _messages(n, seed=20):
    """n messages, alternating text and binary; sizes log-uniform over 0..64 KiB, and in every
    32 one text and one binary message of a frame length boundary (0, 1, 125, 126, 127, 65535,
    65536 bytes)."""
    rnd = random.Random(seed)
    pool = rnd.randbytes(1 << 17)
    alphabet = "abcdefghij klmnopqrstuvwxyz0123456789\n\u00e9\u20ac\U0001d11e\u4e2d"
    text_pool = "".join(rnd.choice(alphabet) for _ in range(1 << 16))
    ascii_pool = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(1 << 16))
    edges = [0, 1, 125, 126, 127, 65535, 65536]
    out = []
    for i in range(n):
        edge = i % 32 < 2
        size = edges[(i // 32) % len(edges)] if edge else int(2 ** rnd.uniform(0, 16))
        if i % 2:
            off = rnd.randrange(0, len(pool) - size + 1)
            out.append(pool[off:off + size])
        elif edge:  # exact byte length
            out.append(ascii_pool[:size])
        else:
            off = rnd.randrange(0, len(text_pool) - size + 1)
            s = text_pool[off:off + size]
            while len(s.encode("utf-8")) > 65536:
                s = s[:-64]
            out.append(s)
    return out


def _hget(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def _find_key(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = _find_key(v, key)
            if r is not None:
                return r
    return None


def _ws_upgrades(port):
    """The status page's count of WebSocket upgrades: the "websocket" key (a number, or an
    object with an "upgrades"-like member)."""
    r = testenv.get(port, "/_status")
    assert r.status == 200, (r.status, r.body[:300])
    j = r.json()
    v = _find_key(j, "websocket")
    assert v is not None, "no \"websocket\" key in the status JSON:\n%s" % r.text[:3000]
    if isinstance(v, dict):
        for k in ("upgrades", "upgraded", "total", "completed", "accepted"):
            if isinstance(v.get(k), int):
                return v[k]
        pytest.fail("status \"websocket\" object has no upgrade count: %r" % v)
    assert isinstance(v, int), v
    return v


def _upgrade_headers():
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]


# ---------------------------------------------------------------------------------------------
# echo through the gateway

@pytest.mark.parametrize("backend_tls", [False, True], ids=["ws-backend", "wss-backend"])
def test_websocket_echo_10000_messages(gateway, origin, certs, tmp_path, backend_tls):
    ws = WSServer(tls=certs.ec if backend_tls else None, name="chat")
    o = origin("app")
    port = testenv.free_port()
    chat = {"targets": [ws.address]}
    if backend_tls:
        chat["tls"] = {"truststore": "testca", "server_name": "localhost"}
    try:
        gateway(_base(certs, tmp_path, port,
                      routes=[{"path_prefix": "/chat", "backend": "chat"},
                              {"path_prefix": "/", "backend": "app"}],
                      backends={"chat": chat, "app": {"targets": [o.address]}}))
        msgs = _messages(10000)
        with WSClient(port, "/chat/room-1?user=test") as c:
            assert c.tls_version == "TLSv1.3"
            assert c.echo_many(msgs, window=32) == len(msgs)
        assert ws.upgrades == 1, ws.upgrades
        assert ws.messages == len(msgs), ws.messages
        assert not ws.errors, ws.errors
        path, headers = ws.requests[-1]
        assert path == "/chat/room-1?user=test", path
        assert [v.lower() for v in _hget(headers, "Upgrade")] == ["websocket"], headers
        assert "upgrade" in ",".join(_hget(headers, "Connection")).lower(), headers
        assert _hget(headers, "Sec-WebSocket-Key"), headers
        if backend_tls:
            assert ws.tls_versions and ws.tls_versions[-1] in ("TLSv1.2", "TLSv1.3"), \
                ws.tls_versions
            assert "localhost" in ws.sni_seen, ws.sni_seen
        assert not o.requests, "the upgrade went to the wrong backend: %s" % o.requests
    finally:
        ws.close()


def test_bytes_after_101_in_same_write(gateway, certs, tmp_path):
    """A backend that writes its 101 and its first frame together: the frame reaches the
    client (nothing read along with the response head is dropped)."""
    greeting = b"hello before you ask"
    b = pp2.TCPBackend(raw_ws_handler(greeting), proxy_header="none", name="raw-ws")
    port = testenv.free_port()
    try:
        gateway(_base(certs, tmp_path, port,
                      routes=[{"path_prefix": "/", "backend": "raw"}],
                      backends={"raw": {"targets": [b.address]}}))
        with WSClient(port, "/eager") as c:
            assert c.recv() == greeting.decode()
            c.send(b"\x00binary\xff")
            assert c.recv() == b"\x00binary\xff"
            c.send("text after")
            assert c.recv() == "text after"
    finally:
        b.close()


@pytest.mark.parametrize("accept", [
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",  # the RFC's, for another key
    "",  # none
    "Sec-WebSocket-Accept: {ok}\r\nSec-WebSocket-Accept: {ok}\r\n",  # twice
], ids=["wrong", "missing", "repeated"])
def test_101_without_valid_accept_is_502(gateway, certs, tmp_path, accept):
    """A backend that answers 101 without the Sec-WebSocket-Accept for the client's key is not
    the WebSocket server the client asked for: 502 bad_response, never a tunnel (issue 11)."""
    key = "AAECAwQFBgcICQoLDA0ODw=="
    from testenv.wsecho import ws_accept
    b = pp2.TCPBackend(raw_ws_handler(b"hi", accept=accept.format(ok=ws_accept(key))),
                       proxy_header="none", name="raw-ws")
    port = testenv.free_port()
    try:
        gw = gateway(_base(certs, tmp_path, port,
                           routes=[{"path_prefix": "/", "backend": "raw"}],
                           backends={"raw": {"targets": [b.address]}}))
        headers = [(k, key if k == "Sec-WebSocket-Key" else v) for k, v in _upgrade_headers()]
        with Conn(port) as c:
            r = c.request("GET", "/ws", headers=headers)
        assert r.status == 502, (r.status, r.headers, r.body[:300])
        assert b"bad_response" in r.body, r.body
        assert r.header("Upgrade") is None and r.header("Sec-WebSocket-Accept") is None
        assert gw.wait_log(lambda t: "Sec-WebSocket-Accept for the client's key" in t), \
            gw.log_tail()
        # and a WebSocket client fails the handshake the same way
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            WSClient(port, "/ws")
        assert ei.value.status_code == 502
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# refused upgrade

@pytest.mark.parametrize("status", [403, 400])
def test_refused_upgrade_is_relayed(gateway, certs, tmp_path, status):
    ws = WSServer(refuse=status, name="guard")
    port = testenv.free_port()
    try:
        gateway(_base(certs, tmp_path, port,
                      routes=[{"path_prefix": "/", "backend": "guard"}],
                      backends={"guard": {"targets": [ws.address]}}))
        with Conn(port) as c:
            r = c.request("GET", "/private", headers=_upgrade_headers())
        assert r.status == status, (r.status, r.body[:300])
        assert r.body == REFUSAL_BODY, r.body[:300]
        assert r.header("X-Refused-By") == "guard", r.headers
        assert r.header("Sec-WebSocket-Accept") is None
        assert ws.requests and ws.requests[-1][0] == "/private", ws.requests
        assert [v.lower() for v in _hget(ws.requests[-1][1], "Upgrade")] == ["websocket"], \
            "the upgrade request reached the backend without its Upgrade header: %s" \
            % ws.requests[-1][1]
        # a WebSocket client sees the backend's status
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            WSClient(port, "/private")
        assert ei.value.status_code == status
        assert ws.upgrades == 0
    finally:
        ws.close()


# ---------------------------------------------------------------------------------------------
# ordinary HTTP on the same listener

def test_http_requests_alongside_websocket(gateway, origin, certs, tmp_path):
    ws = WSServer(name="chat")
    o = origin("app")
    port = testenv.free_port()
    try:
        gateway(_base(certs, tmp_path, port,
                      routes=[{"path_prefix": "/chat", "backend": "chat"},
                              {"path_prefix": "/", "backend": "app"}],
                      backends={"chat": {"targets": [ws.address]},
                                "app": {"targets": [o.address]}}))
        with Conn(port) as http_conn:
            assert http_conn.request("GET", "/before").body == b"origin app /before\n"
            with WSClient(port, "/chat") as c:
                c.send("ping")
                for i in range(3):  # a tunnel is open; keep-alive HTTP goes on
                    r = http_conn.request("GET", "/during?%d" % i)
                    assert r.status == 200 and r.body == b"origin app /during?%d\n" % i
                    r = testenv.get(port, "/new-conn?%d" % i)
                    assert r.status == 200 and r.header("X-Origin") == "app"
                assert c.recv() == "ping"
            r = http_conn.request("POST", "/upload", body=b"z" * 100000)
            assert r.status == 200 and r.json()["length"] == 100000
        # an upgrade request to the HTTP origin (which answers 200, not 101) stays plain HTTP
        with Conn(port) as c2:
            r = c2.request("GET", "/echo", headers=_upgrade_headers())
            assert r.status == 200, r.status
            assert c2.request("GET", "/after").body == b"origin app /after\n"
        assert ws.upgrades == 1
    finally:
        ws.close()


# ---------------------------------------------------------------------------------------------
# status counter

def test_status_counts_websocket_upgrades(gateway, certs, tmp_path):
    ws = WSServer(name="chat")
    guard = WSServer(refuse=403, name="guard")
    port = testenv.free_port()
    try:
        gateway(_base(certs, tmp_path, port,
                      routes=[{"path_prefix": "/chat", "backend": "chat"},
                              {"path_prefix": "/guard", "backend": "guard"},
                              {"path_prefix": "/_status", "backend": "status"}],
                      backends={"chat": {"targets": [ws.address]},
                                "guard": {"targets": [guard.address]},
                                "status": {"builtin": "status"}}))
        before = _ws_upgrades(port)
        for i in range(3):
            with WSClient(port, "/chat/%d" % i) as c:
                c.send("m%d" % i)
                assert c.recv() == "m%d" % i
        with pytest.raises(websockets.exceptions.InvalidStatusCode):
            WSClient(port, "/guard")
        assert ws.upgrades == 3
        after = testenv.wait_until(lambda: (lambda v: v if v >= before + 3 else None)(
            _ws_upgrades(port)), testenv.t(3))
        assert after == before + 3, "status counts %s upgrades after 3 (before: %d)" % (
            _ws_upgrades(port), before)
    finally:
        ws.close()
        guard.close()
