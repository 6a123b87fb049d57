"""Resumption on listeners that ask for client certificates (session_tickets.client_auth):
stateful TLS 1.3 tickets (a session id; the session kept in a process-wide cache, used once,
bounded by client_auth_sessions) by default, stateless tickets when chosen or when the ticket keys
are shared (key_file, etcd store). A resumed session is re-authorised against the current
snapshot and forwards the same identity. Clients are Python ssl (TLS 1.3) and openssl s_client
(-sess_out / -sess_in)."""
import json
import os
import socket
import ssl
import subprocess

import pytest

import testenv
from testenv import tlsgate
from testenv.admin import Admin, admin_section, password_hash
from testenv.mtls import PKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(str(tmp_path_factory.mktemp("mtlssess")))
    p.alice = p.client("alice", "/O=Org/CN=alice")
    p.bob = p.client("bob", "/O=Org/CN=bob")
    p.carol = p.client("carol", "/O=Org/CN=carol")
    return p


def _config(certs, tmp_path, port, origin_port, pki, tickets=None, allowed=None):
    ca = {"mode": "require", "truststore": "clients", "forward": "xfcc"}
    if allowed is not None:
        ca["allowed_subjects"] = allowed
    cfg = {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": {"clients": {"type": "pem", "file": pki.root.cert}},
        "listeners": [{"name": "mtls", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"], "client_auth": ca},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": ["127.0.0.1:%d" % origin_port]}},
    }
    if tickets is not None:
        cfg["session_tickets"] = tickets
    return cfg


def _start(gateway, origin, certs, pki, tmp_path, **kw):
    o = origin("app")
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, o.port, pki, **kw), ready_ports=[(port, False)])
    return gw, port


def _ctx(client):
    ctx = testenv.tls_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(client.chain, client.key)
    return ctx


def _get(port, ctx, session=None):
    """One TLS 1.3 connection and a GET read to the end (so the ticket has arrived):
    (status, session, reused, xfcc); status None when the connection is refused."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        ss = ctx.wrap_socket(s, server_hostname="localhost", session=session)
    except (ssl.SSLError, OSError):
        s.close()
        return None, None, False, None
    try:
        ss.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = ss.recv(65536)
            if not d:
                break
            data += d
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head else None
        xfcc = None
        if status == 200:
            xfcc = {k.lower(): v for k, v in json.loads(body)["headers"]}.get(
                "x-forwarded-client-cert")
        return status, ss.session, ss.session_reused, xfcc
    except (ssl.SSLError, OSError):
        return None, None, ss.session_reused, None
    finally:
        ss.close()


def _get_client_closes(port, ctx, session=None):
    """A keep-alive GET; the client then closes first, without close_notify: (session, reused)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    ss = ctx.wrap_socket(s, server_hostname="localhost", session=session)
    ss.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += ss.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        body += ss.recv(65536)
    sess, reused = ss.session, ss.session_reused
    ss.close()  # Python sends no close_notify
    return sess, reused


def _check(tmp_path, cfg):
    path = str(tmp_path / "check.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return tlsgate("check", "-c", path)


def test_stateful_by_default_single_use_same_identity(gateway, origin, certs, pki, tmp_path):
    gw, port = _start(gateway, origin, certs, pki, tmp_path)
    r = _check(tmp_path, gw.config)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "client-certificate sessions (session_tickets.client_auth): stateful" in r.stdout
    assert "session resumption: stateful" in r.stdout, r.stdout
    ctx = _ctx(pki.alice)
    st, s1, reused, xfcc = _get(port, ctx)
    assert st == 200 and not reused and xfcc and "CN=alice" in xfcc
    st, s2, reused, xfcc2 = _get(port, ctx, s1)
    assert st == 200 and reused, "a TLS 1.3 session resumes from the cache"
    assert xfcc2 == xfcc, "a resumed session forwards the same identity"
    st, s3, reused, _ = _get(port, ctx, s2)
    assert st == 200 and reused, "each resumption gets a new ticket that resumes"
    # A stateful TLS 1.3 ticket is used once: the first one again is a full handshake.
    st, _, reused, xfcc4 = _get(port, ctx, s1)
    assert st == 200 and not reused and xfcc4 == xfcc
    # A client that closes first without close_notify keeps its session (as with a ticket).
    sess, reused = _get_client_closes(port, ctx)
    assert not reused
    sess, reused = _get_client_closes(port, ctx, sess)
    assert reused, "a session whose connection the client ended abruptly resumes"
    st, _, reused, _ = _get(port, ctx, sess)
    assert st == 200 and reused


def test_reload_keeps_sessions_and_the_new_allow_list_refuses(gateway, origin, certs, pki,
                                                              tmp_path):
    gw, port = _start(gateway, origin, certs, pki, tmp_path,
                      allowed=["CN=alice,O=Org", "CN=bob,O=Org"])
    alice, bob = _ctx(pki.alice), _ctx(pki.bob)
    st, sa, _, _ = _get(port, alice)
    st2, sb, _, _ = _get(port, bob)
    assert st == 200 and st2 == 200
    # A reload keeping the policy (SIGHUP; a new SSL_CTX) keeps the sessions resumable.
    cfg = json.loads(json.dumps(gw.config))
    cfg["log"]["level"] = "debug"
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "generation 2" in s, timeout=5), gw.log_tail()
    st, sa, reused, xfcc = _get(port, alice, sa)
    assert st == 200 and reused and "CN=alice" in xfcc, "same policy after a reload: resumed"
    # Alice leaves the allow list: her session does not get her in (a full handshake, refused);
    # bob's session was made under the old policy too: he does a full handshake and is admitted.
    cfg["listeners"][0]["tls"]["client_auth"]["allowed_subjects"] = ["CN=bob,O=Org"]
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "generation 3" in s, timeout=5), gw.log_tail()
    st, _, reused, _ = _get(port, alice, sa)
    assert st is None and not reused, "alice's old session must not get her past the new list"
    assert gw.wait_log(lambda t: "client_cert_not_allowed" in t), gw.log_tail()
    st, sb2, reused, xfcc = _get(port, bob, sb)
    assert st == 200 and not reused and "CN=bob" in xfcc
    st, _, reused, _ = _get(port, bob, sb2)
    assert st == 200 and reused


def _gauge(body, name):
    lines = [l for l in body.decode().splitlines() if l.startswith(name + " ")]
    assert len(lines) == 1, body
    return int(lines[0].split()[1])


def _cached(aport, with_bytes=False):
    with Admin(aport, password="pw") as a:
        r = a.get("/metrics")
        assert r.status == 200, r.body
    n = _gauge(r.body, "tlsgate_client_auth_sessions_cached")
    if not with_bytes:
        return n
    return n, _gauge(r.body, "tlsgate_client_auth_sessions_bytes")


def test_cache_bound_drops_the_oldest(gateway, origin, certs, pki, tmp_path):
    o = origin("app")
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = _config(certs, tmp_path, port, o.port, pki, tickets={"client_auth_sessions": 2})
    cfg["admin"] = admin_section(aport, password_hash("pw"), tls={"certificates": ["ec"]})
    gateway(cfg, ready_ports=[(port, False), (aport, True)])
    assert _cached(aport, with_bytes=True) == (0, 0)
    ctxs = [_ctx(who) for who in (pki.alice, pki.bob, pki.carol)]
    sessions = []
    held = []
    for ctx in ctxs:
        st, s, _, _ = _get(port, ctx)
        assert st == 200
        sessions.append(s)
        held.append(_cached(aport, with_bytes=True))
    # the bytes the cache holds follow its entries: one encoded session with an ECDSA client
    # certificate each (about 0.8 KiB), and no more once the bound drops the oldest
    assert held[0][0] == 1 and 400 < held[0][1] < 4096, held
    assert held[1][0] == 2 and 1.5 * held[0][1] < held[1][1] < 2.5 * held[0][1], held
    assert held[2][0] == 2 and held[2][1] < 1.5 * held[1][1], held
    assert _cached(aport) == 2, "the bound holds"
    # three sessions, room for two: alice's (the oldest) is gone, carol's resumes
    st, _, reused, xfcc = _get(port, ctxs[0], sessions[0])
    assert st == 200 and not reused and "CN=alice" in xfcc
    st, _, reused, xfcc = _get(port, ctxs[2], sessions[2])
    assert st == 200 and reused and "CN=carol" in xfcc
    assert _cached(aport) == 2


def test_stateless_choice_and_the_shared_key_default(gateway, origin, certs, pki, tmp_path):
    key = str(tmp_path / "ticket.key")
    with open(key, "wb") as f:
        f.write(os.urandom(80))
    os.chmod(key, 0o600)
    # a key_file shares tickets with other instances: stateless unless told otherwise
    cfg = _config(certs, tmp_path, testenv.free_port(), 1, pki, tickets={"key_file": key})
    r = _check(tmp_path, cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(session_tickets.client_auth): stateless" in r.stdout, r.stdout
    assert "session resumption: stateless tickets" in r.stdout, r.stdout
    cfg["session_tickets"]["client_auth"] = "stateful"
    r = _check(tmp_path, cfg)
    assert "(session_tickets.client_auth): stateful" in r.stdout, r.stdout

    gw, port = _start(gateway, origin, certs, pki, tmp_path,
                      tickets={"client_auth": "stateless"})
    ctx = _ctx(pki.alice)
    st, s1, reused, xfcc = _get(port, ctx)
    assert st == 200 and not reused
    # a stateless ticket carries the session: the same one resumes twice
    for _ in range(2):
        st, _, reused, xfcc2 = _get(port, ctx, s1)
        assert st == 200 and reused and xfcc2 == xfcc


def test_s_client_resumes_with_a_certificate(gateway, origin, certs, pki, tmp_path):
    gw, port = _start(gateway, origin, certs, pki, tmp_path)
    sess = str(tmp_path / "sess.pem")

    def run(*extra):
        p = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3",
             "-servername", "localhost", "-cert", pki.alice.cert, "-key", pki.alice.key,
             "-cert_chain", pki.inter.cert, "-ign_eof"] + list(extra),
            input=b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            capture_output=True, timeout=testenv.t(20))
        return p.stdout.decode("utf-8", "replace")

    out = run("-sess_out", sess)
    assert "HTTP/1.1 200" in out and "New, TLSv1.3" in out, out
    out = run("-sess_in", sess)
    assert "HTTP/1.1 200" in out and "Reused, TLSv1.3" in out, out
    assert "CN=alice" in out


def test_resumes_through_a_hello_retry_request(gateway, origin, certs, pki, tmp_path):
    """A client whose key share the listener does not take sends its ticket again in its second
    ClientHello: the session is still there (used once means once resumed, not once looked up)."""
    o = origin("app")
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port, o.port, pki)
    cfg["listeners"][0]["tls"]["curves"] = ["X25519"]
    gateway(cfg, ready_ports=[(port, False)])
    sess = str(tmp_path / "sess.pem")

    def run(*extra):
        p = subprocess.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3",
             "-servername", "localhost", "-cert", pki.alice.cert, "-key", pki.alice.key,
             "-cert_chain", pki.inter.cert, "-ign_eof", "-groups", "P-256:X25519"] + list(extra),
            input=b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            capture_output=True, timeout=testenv.t(20))
        return p.stdout.decode("utf-8", "replace")

    out = run("-sess_out", sess)
    assert "HTTP/1.1 200" in out and "New, TLSv1.3" in out, out
    out = run("-sess_in", sess, "-msg")
    assert out.count("ClientHello") == 2, "no HelloRetryRequest:\n" + out[:3000]
    assert "HTTP/1.1 200" in out and "Reused, TLSv1.3" in out, out[-3000:]


def test_config_errors(certs, pki, tmp_path):
    cfg = _config(certs, tmp_path, testenv.free_port(), 1, pki,
                  tickets={"client_auth": "sometimes", "client_auth_sessions": 0})
    r = _check(tmp_path, cfg)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr
    assert "check.json:" in err and "/session_tickets/client_auth:" in err, err
    assert "\"sometimes\" is not a way to resume client-certificate sessions" in err, err
    assert "allowed: stateful" in err and "stateless" in err, err
    assert "/session_tickets/client_auth_sessions:" in err and "1..1048576" in err, err
    cfg["session_tickets"] = {"client_auth": True}
    r = _check(tmp_path, cfg)
    assert r.returncode == 2 and "/session_tickets/client_auth:" in r.stderr, r.stderr
