"""`tlsgate run` without -c: HTTPS on 127.0.0.1:8443 with a self-signed cert kept in the state dir."""
import os

import pytest

import testenv
from testenv import Conn, fingerprint, tls_context


def _served_fingerprint():
    with Conn(8443, sni="localhost", ctx=tls_context(verify=False)) as c:
        assert c.tls_version == "TLSv1.3"
        return fingerprint(c.peer_cert_der())


def test_embedded_default_config(gateway, tmp_path):
    if not testenv.port_is_free(8443):
        pytest.skip("port 8443 (fixed by the spec for the embedded default) is in use")
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
    gw.stop()

    gw2 = gateway(None, name="default-2", env=env)
    assert _served_fingerprint() == fp1, "a restart made a new certificate instead of reusing it"
    gw2.stop()
