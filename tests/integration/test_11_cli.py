"""`tlsgate cert` makes certificates openssl accepts and the gateway serves; version and --help."""
import os
import re
import subprocess

import pytest

import testenv
from testenv import Conn, fingerprint


def tg(*args):
    return testenv.tlsgate(*args)


def openssl(*args):
    return subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=60)


def test_cert_verbs(gateway, tmp_path):
    d = str(tmp_path)
    ca, srv, rsa, cli = (os.path.join(d, n) for n in ("ca", "server", "server-rsa", "client"))
    r = tg("cert", "ca", "--out", ca)
    assert r.returncode == 0, r.stdout + r.stderr
    r = tg("cert", "server", "--out", srv, "--ca", ca, "--name", "localhost",
           "--name", "127.0.0.1", "--name", "api.test")
    assert r.returncode == 0, r.stdout + r.stderr
    r = tg("cert", "server", "--out", rsa, "--ca", ca, "--name", "localhost", "--rsa", "2048")
    assert r.returncode == 0, r.stdout + r.stderr
    r = tg("cert", "client", "--out", cli, "--ca", ca, "--subject", "CN=alice,O=Org")
    assert r.returncode == 0, r.stdout + r.stderr

    for p in (srv, rsa, cli):
        v = openssl("verify", "-CAfile", ca + ".crt", p + ".crt")
        assert v.returncode == 0 and ": OK" in v.stdout, v.stdout + v.stderr
        assert os.stat(p + ".key").st_mode & 0o077 == 0, p + ".key is readable by others"
    v = openssl("verify", "-CAfile", ca + ".crt", "-purpose", "sslserver", srv + ".crt")
    assert v.returncode == 0, v.stdout + v.stderr
    v = openssl("verify", "-CAfile", ca + ".crt", "-purpose", "sslclient", cli + ".crt")
    assert v.returncode == 0, v.stdout + v.stderr

    san = openssl("x509", "-in", srv + ".crt", "-noout", "-ext", "subjectAltName").stdout
    assert "DNS:localhost" in san and "IP Address:127.0.0.1" in san and "DNS:api.test" in san, san
    subj = openssl("x509", "-in", cli + ".crt", "-noout", "-subject", "-nameopt", "RFC2253").stdout
    assert "CN=alice" in subj and "O=Org" in subj, subj

    assert "ASN1 OID: prime256v1" in openssl("pkey", "-in", srv + ".key", "-noout", "-text").stdout
    rsa_text = openssl("pkey", "-in", rsa + ".key", "-noout", "-text").stdout
    assert re.search(r"Private-Key: \(2048 bit", rsa_text), rsa_text[:200]

    # the gateway serves the generated certificate, and a client trusting the new CA accepts it
    port = testenv.free_port()
    gateway({
        "version": 1, "workers": 1, "state_dir": os.path.join(d, "state"),
        "log": {"level": "info"},
        "keystores": {"dev": {"type": "pem", "cert": srv + ".crt", "key": srv + ".key"}},
        "listeners": [{"name": "dev", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["dev"]},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
    })
    import ssl
    ctx = ssl.create_default_context(cafile=ca + ".crt")
    with Conn(port, sni="api.test", ctx=ctx) as c:
        assert fingerprint(c.peer_cert_der()) == fingerprint(srv + ".crt")
        assert c.request("GET", "/").status == 200


def test_cert_usage_errors(tmp_path):
    r = tg("cert", "server", "--out", str(tmp_path / "x"))  # no --name
    assert r.returncode == 2, r.stdout + r.stderr
    r = tg("cert", "bogus")
    assert r.returncode == 2, r.stdout + r.stderr


def test_version():
    r = tg("version")
    assert r.returncode == 0
    assert re.search(r"tlsgate \d+\.\d+", r.stdout), r.stdout
    assert "OpenSSL" in r.stdout, r.stdout


@pytest.mark.parametrize("verb", [["run"], ["check"], ["cert"], ["cert", "ca"], ["cert", "server"],
                                  ["cert", "client"], ["version"]])
def test_help(verb):
    r = tg(*(verb + ["--help"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "usage" in (r.stdout + r.stderr).lower()


def test_cert_pkcs12(tmp_path):
    d = str(tmp_path)
    ca, cli, pw = os.path.join(d, "ca"), os.path.join(d, "alice"), os.path.join(d, "pw.txt")
    with open(pw, "w") as f:
        f.write("s3cret\n")
    assert tg("cert", "ca", "--out", ca).returncode == 0
    r = tg("cert", "client", "--out", cli, "--ca", ca, "--subject", "CN=alice,O=Org",
           "--p12", "--password-file", pw)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "s3cret" not in r.stdout + r.stderr
    assert os.stat(cli + ".p12").st_mode & 0o777 == 0o600
    ok = openssl("pkcs12", "-in", cli + ".p12", "-passin", "pass:s3cret", "-nodes")
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"subject=.*CN ?= ?alice", ok.stdout), ok.stdout
    assert "PRIVATE KEY" in ok.stdout
    bad = openssl("pkcs12", "-in", cli + ".p12", "-passin", "pass:wrong", "-nodes")
    assert bad.returncode != 0
