"""`tlsgate run` without -c: HTTPS on 127.0.0.1:8443 with a self-signed cert kept in the state dir."""
import datetime
import os
import subprocess

import testenv
from testenv import Conn, fingerprint, tls_context

DAY = datetime.timedelta(days=1)


def _served_fingerprint():
    with Conn(8443, sni="localhost", ctx=tls_context(verify=False)) as c:
        assert c.tls_version == "TLSv1.3"
        return fingerprint(c.peer_cert_der())


def _dates(path):
    """(notBefore, notAfter) of a PEM certificate as UTC datetimes, read with the openssl CLI (no
    dependency on the version of Python's cryptography module)."""
    out = subprocess.run(["openssl", "x509", "-noout", "-startdate", "-enddate", "-in", path],
                         check=True, capture_output=True, text=True).stdout
    got = dict(line.split("=", 1) for line in out.splitlines())

    def parse(s):
        d = datetime.datetime.strptime(s.strip(), "%b %d %H:%M:%S %Y GMT")
        return d.replace(tzinfo=datetime.timezone.utc)

    return parse(got["notBefore"]), parse(got["notAfter"])


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _seed(state, days):
    """Writes <state>/default.crt and default.key, a self-signed localhost certificate made by the
    openssl CLI that expires in `days` days; returns their bytes."""
    os.makedirs(state, mode=0o700, exist_ok=True)
    crt, key = os.path.join(state, "default.crt"), os.path.join(state, "default.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-days", str(days), "-nodes", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    with open(crt, "rb") as f, open(key, "rb") as g:
        return f.read(), g.read()


def test_embedded_default_config(port_8443, gateway, tmp_path):
    state = str(tmp_path / "default-state")
    env = {"TLSGATE_STATE_DIR": state}

    gw = gateway(None, name="default-1", env=env)
    r = testenv.curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:8443/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "200"

    crt = os.path.join(state, "default.crt")
    key = os.path.join(state, "default.key")
    assert os.path.isfile(crt) and os.path.isfile(key), os.listdir(state)
    assert os.stat(key).st_mode & 0o077 == 0, "default.key must not be readable by others"
    fp1 = _served_fingerprint()
    assert fp1 == fingerprint(crt), "the served certificate is not <state>/default.crt"
    not_before, not_after = _dates(crt)
    validity = not_after - not_before
    assert validity <= 397 * DAY, "default certificate valid for %s, not <= 397 days" % validity
    assert not_before <= _now()
    gw.stop()

    gw2 = gateway(None, name="default-2", env=env)
    assert _served_fingerprint() == fp1, "a restart made a new certificate instead of reusing it"
    gw2.stop()


def _same_files(state, crt_bytes, key_bytes):
    with open(os.path.join(state, "default.crt"), "rb") as f, \
            open(os.path.join(state, "default.key"), "rb") as g:
        return f.read() == crt_bytes, g.read() == key_bytes


def test_default_cert_renewed_at_start_when_close_to_expiry(port_8443, gateway, tmp_path):
    # 100 days left: kept as it is, and nothing said about it.
    state = str(tmp_path / "state-100")
    old_crt, old_key = _seed(state, 100)
    gw = gateway(None, name="default-keep", env={"TLSGATE_STATE_DIR": state})
    assert _same_files(state, old_crt, old_key) == (True, True), \
        "a default certificate with 100 days left was replaced"
    assert _served_fingerprint() == fingerprint(os.path.join(state, "default.crt"))
    assert not gw.log_lines("renewed"), gw.log_tail()
    gw.stop()

    # 10 days left: a new key and certificate, valid 397 days, served from the start.
    state = str(tmp_path / "state-10")
    old_crt, old_key = _seed(state, 10)
    crt, key = os.path.join(state, "default.crt"), os.path.join(state, "default.key")
    gw = gateway(None, name="default-renew", env={"TLSGATE_STATE_DIR": state})
    assert _same_files(state, old_crt, old_key) == (False, False), \
        "the expiring default certificate (or its key) was kept"
    assert os.stat(key).st_mode & 0o077 == 0, "the new default.key must not be readable by others"
    not_before, not_after = _dates(crt)
    assert not_after - _now() > 300 * DAY, not_after
    assert not_after - not_before <= 397 * DAY
    assert _served_fingerprint() == fingerprint(crt), "the renewed certificate is not served"
    until = not_after.strftime("%Y-%m-%d %H:%M:%S")
    lines = gw.log_lines("default.crt", "renewed", until)
    assert len(lines) == 1, "expected one log line saying the default certificate was renewed " \
        "until %s" % until
    assert "PRIVATE KEY" not in gw.log_text()
    gw.stop()


def test_check_renews_an_expired_default_cert(tmp_path):
    """`tlsgate check` without -c loads the embedded default too, so it renews the same way; no
    port needed. The state dir is ./tlsgate-state of its working directory."""
    state = str(tmp_path / "tlsgate-state")
    _seed(state, 1)
    crt = os.path.join(state, "default.crt")
    # Re-signed to end the moment it is made: expired by the time check runs.
    subprocess.run(["openssl", "x509", "-in", crt, "-signkey", os.path.join(state, "default.key"),
                    "-days", "0", "-out", crt], check=True, capture_output=True)
    r = testenv.tlsgate("check", cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "renewed" in r.stderr and "expired" in r.stderr, r.stderr
    assert _dates(crt)[1] - _now() > 300 * DAY, _dates(crt)
