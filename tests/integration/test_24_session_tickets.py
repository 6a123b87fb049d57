"""Session resumption (session_tickets): openssl s_client -sess_out / -sess_in across a reload,
across two instances sharing a key file (not across different keys), a key file re-read when it
changes, one TLS 1.3 ticket per handshake, rotation, TLS 1.2 tickets, the session cache of
legacy policies, the resumed-handshake counter, and config errors."""
import json
import os
import subprocess

import pytest

import testenv

REQ = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def _config(certs, tmp_path, port, tickets=None, name="edge", **tls):
    cfg = {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": name, "address": "127.0.0.1:%d" % port,
                       "tls": dict({"certificates": ["ec"]}, **tls),
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
    }
    if tickets is not None:
        cfg["session_tickets"] = tickets
    return cfg


def _connect(port, sess_out=None, sess_in=None, *args):
    """One s_client connection that sends a request and reads the answer (so TLS 1.3 tickets
    arrive); (reused?, number of NewSessionTicket messages, SClient)."""
    a = ["-msg", "-ign_eof"] + list(args)
    if sess_out:
        a += ["-sess_out", sess_out]
    if sess_in:
        a += ["-sess_in", sess_in]
    r = testenv.s_client(port, *a, input_=REQ)
    assert r.connected, r.out + r.err
    assert "HTTP/1.1 200" in r.out, r.out
    reused = "Reused, " in r.out
    assert reused or "New, " in r.out, r.out
    return reused, r.out.count("NewSessionTicket"), r


def _keyfile(path, n=2, keys=None):
    data = keys if keys is not None else os.urandom(80 * n)
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, str(path))
    return data


def _status(port):
    r = testenv.s_client(port, "-ign_eof", input_=REQ)
    return json.JSONDecoder().raw_decode(r.out[r.out.index("{"):])[0]


def test_one_ticket_resume_across_reload(gateway, certs, tmp_path):
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port))
    sess = str(tmp_path / "s1.pem")
    reused, tickets, r = _connect(port, sess_out=sess)
    assert not reused and tickets == 1, r.out  # OpenSSL's default would be two
    reused, tickets, r = _connect(port, sess_in=sess)
    # TLS 1.3 tickets are used once by clients: a resumption gets exactly one new ticket, or
    # every other connection of a client would be a full handshake.
    assert reused and tickets == 1, r.out
    reused, tickets, r = _connect(port, sess_in=sess)
    assert reused and tickets == 1, r.out
    cfg = json.loads(json.dumps(gw.config))
    cfg["log"]["level"] = "debug"
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "generation 2" in s), gw.log_tail()
    reused, _, r = _connect(port, sess_in=sess)
    assert reused, "a reload must keep sessions resumable:\n" + r.out
    assert _status(port)["handshakes"]["resumed"] >= 2


def test_per_handshake_and_tls12(gateway, certs, tmp_path):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"per_handshake": 3}, min_version="TLS1.2"))
    reused, tickets, r = _connect(port)
    assert tickets == 3, r.out
    sess = str(tmp_path / "s12.pem")
    reused, tickets, r = _connect(port, sess, None, "-tls1_2")
    assert not reused and tickets == 1, r.out
    reused, _, r = _connect(port, None, sess, "-tls1_2")
    assert reused, r.out
    # No session cache for modern policies: without tickets nothing resumes.
    reused, _, r = _connect(port, sess, None, "-tls1_2", "-no_ticket")
    reused, _, r = _connect(port, None, sess, "-tls1_2", "-no_ticket")
    assert not reused, r.out


def test_legacy_policy_session_cache(gateway, certs, tmp_path):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, min_version="TLS1.0"))
    sess = str(tmp_path / "sid.pem")
    reused, _, r = _connect(port, sess, None, "-tls1_2", "-no_ticket")
    assert not reused
    reused, _, r = _connect(port, None, sess, "-tls1_2", "-no_ticket")
    assert reused, "a legacy policy resumes by session id:\n" + r.out


def test_two_instances_share_a_key_file(gateway, certs, tmp_path):
    keys = tmp_path / "ticket.key"
    other = tmp_path / "other.key"
    _keyfile(keys)
    _keyfile(other)
    pa, pb, pc = testenv.free_port(), testenv.free_port(), testenv.free_port()
    a = gateway(_config(certs, tmp_path, pa, {"key_file": str(keys)}), name="a")
    b = gateway(_config(certs, tmp_path, pb, {"key_file": str(keys)}), name="b")
    gateway(_config(certs, tmp_path, pc, {"key_file": str(other)}), name="c")
    assert a.log_lines("session ticket keys read from", "2 key(s)"), a.log_tail()
    sess = str(tmp_path / "a.pem")
    assert not _connect(pa, sess_out=sess)[0]
    reused, _, r = _connect(pb, sess_in=sess)
    assert reused, "instance b must resume a's session:\n" + r.out
    reused, _, r = _connect(pc, sess_in=sess)
    assert not reused, "an instance with other keys must not:\n" + r.out
    # TLS 1.2 tickets too
    s12 = str(tmp_path / "a12.pem")
    cfg = _config(certs, tmp_path, pa, {"key_file": str(keys)}, min_version="TLS1.2")
    a.reload(cfg)
    assert a.wait_log(lambda s: "generation 2" in s), a.log_tail()
    assert _connect(pa, s12, None, "-tls1_2")[2].protocol == "TLSv1.2"
    cfg["listeners"][0]["address"] = "127.0.0.1:%d" % pb
    b.reload(cfg)
    assert b.wait_log(lambda s: "generation 2" in s), b.log_tail()
    assert _connect(pb, None, s12, "-tls1_2")[0]

    # b's key file changes: it is re-read, and a's sessions no longer resume on b, while a
    # key kept as the second entry still decrypts (rotation by the operator).
    def rereads():
        return b.log_text().count("session ticket keys re-read")
    old = open(str(keys), "rb").read()
    n = rereads()
    _keyfile(keys, keys=os.urandom(80) + old[:80])
    assert testenv.wait_until(lambda: rereads() > n, testenv.t(10)), b.log_tail()
    assert _connect(pb, sess_in=sess)[0], "the old newest key still decrypts"
    n = rereads()
    _keyfile(keys, keys=os.urandom(160))
    assert testenv.wait_until(lambda: rereads() > n, testenv.t(10)), b.log_tail()
    assert not _connect(pb, sess_in=sess)[0]


def test_bad_key_file_at_runtime_keeps_keys(gateway, certs, tmp_path):
    keys = tmp_path / "ticket.key"
    _keyfile(keys)
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, {"key_file": str(keys)}))
    sess = str(tmp_path / "s.pem")
    _connect(port, sess_out=sess)
    with open(str(keys), "ab") as f:
        f.write(b"x" * 10)
    assert gw.wait_log(lambda s: "keeping the 2 key(s) in use" in s, timeout=10), gw.log_tail()
    assert "holds 170 bytes" in gw.log_text()
    assert _connect(port, sess_in=sess)[0]


def test_rotation(gateway, certs, tmp_path):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port, {"rotate_seconds": 1, "keep": 3}))
    sess = str(tmp_path / "r.pem")
    _connect(port, sess_out=sess)
    assert _connect(port, sess_in=sess)[0]
    import time
    time.sleep(4.5)  # three rotations: the key that made the ticket is gone
    assert not _connect(port, sess_in=sess)[0]


def test_config_errors(tmp_path, certs):
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"z" * 81)
    os.chmod(str(bad), 0o600)
    cfg = _config(certs, tmp_path, 1, {"key_file": str(bad), "rotate_seconds": 0, "keep": 17,
                                       "per_handshake": 9, "lifetime": 3},
                  early_data=True, max_version="TLS1.2", min_version="TLS1.2")
    path = tmp_path / "t.json"
    path.write_text(json.dumps(cfg, indent=2))
    r = testenv.tlsgate("check", "-c", str(path))
    err = r.stdout + r.stderr
    assert r.returncode == 2, err
    for needle in ("/session_tickets/key_file: \"%s\" holds 81 bytes: a key file is 1 to 16 keys "
                   "of 80 bytes each" % bad,
                   "/session_tickets/rotate_seconds: 0 is out of range (allowed: 1..604800)",
                   "/session_tickets/keep: 17 is out of range (allowed: 1..16)",
                   "/session_tickets/per_handshake: 9 is out of range (allowed: 1..8)",
                   "/session_tickets/lifetime: unknown key \"lifetime\"",
                   "/listeners/0/tls/early_data: early data (0-RTT) is TLS 1.3 only"):
        assert needle in err, err
    assert "t.json:" in err


def test_key_file_readable_by_others_is_warned(tmp_path, certs):
    key = tmp_path / "ticket.key"
    key.write_bytes(os.urandom(80))
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_config(certs, tmp_path, 1, {"key_file": str(key)})))
    for mode, warned in ((0o644, True), (0o640, True), (0o600, False)):
        os.chmod(str(key), mode)
        r = testenv.tlsgate("check", "-c", str(path))
        out = r.stdout + r.stderr
        assert r.returncode == 0, out  # a warning, not an error
        lines = [l for l in out.splitlines() if "/session_tickets/key_file" in l
                 and "warning" in l and "is readable by group or others" in l]
        assert len(lines) == (1 if warned else 0), (oct(mode), out)
