"""Promises of the command line and the stores, through the binary: `secret encrypt|decrypt --in`,
`secret hash --password-file` (the hash verifies with scrypt), PKCS#12 and JCEKS truststores
verifying a backend, and client_auth forward "both"."""
import base64
import hashlib
import json
import os
import subprocess

import pytest

import testenv
from testenv import Conn
from test_32_failure_tables import _Backend, _server_ctx


def _tg(*args, input_=None):
    r = subprocess.run([testenv.BIN] + [str(a) for a in args], input=input_, capture_output=True,
                       text=True, timeout=testenv.t(60))
    assert not testenv.gateway.sanitizer_lines(r.stdout + r.stderr), r.stderr
    return r


def _write(path, data):
    with open(path, "w") as f:
        f.write(data)
    return str(path)


# ---------------------------------------------------------------------------------------------
# secret encrypt|decrypt --in, secret hash --password-file

def test_secret_in_file(certs, tmp_path):
    port = testenv.free_port()
    cfg = {"version": 1, "keystores": {"internal": certs.other.keystore(),
                                       "ec": certs.ec.keystore()},
           "listeners": [{"name": "p", "address": "127.0.0.1:%d" % port,
                          "tls": {"certificates": ["ec"]},
                          "routes": [{"path_prefix": "/", "backend": "s"}]}],
           "backends": {"s": {"builtin": "status"}}}
    path = _write(tmp_path / "gw.json", json.dumps(cfg))
    secret_file = _write(tmp_path / "secret.txt", "file-secret-1\n")  # one newline dropped
    r = _tg("secret", "encrypt", "-c", path, "--in", secret_file)
    assert r.returncode == 0, r.stderr
    value = r.stdout.strip()
    assert value.startswith("enc:") and "file-secret-1" not in value, r.stdout
    enc_file = _write(tmp_path / "value.txt", value + "\n")
    r = _tg("secret", "decrypt", "-c", path, "--in", enc_file)
    assert r.returncode == 0 and r.stdout == "file-secret-1\n", (r.stdout, r.stderr)
    # the same through stdin gives the same secret
    r = _tg("secret", "decrypt", "-c", path, input_=value)
    assert r.returncode == 0 and r.stdout == "file-secret-1\n", r.stderr
    # a file that is not there: exit 2, named
    missing = str(tmp_path / "missing.txt")
    r = _tg("secret", "encrypt", "-c", path, "--in", missing)
    assert r.returncode == 2 and "missing.txt" in r.stderr, r.stderr


def _scrypt_verify(password, h):
    """Checks a $scrypt$ln=N,r=R,p=P$salt$hash value (base64, padded or not) with hashlib."""
    parts = h.split("$")
    assert parts[1] == "scrypt", h
    params = dict(kv.split("=") for kv in parts[2].split(","))

    def b64(s):
        return base64.b64decode(s + "=" * (-len(s) % 4))
    salt, want = b64(parts[3]), b64(parts[4])
    n, r, p = 1 << int(params["ln"]), int(params["r"]), int(params["p"])
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(want),
                         maxmem=256 * 1024 * 1024)
    return got == want


def test_secret_hash_password_file(tmp_path):
    pw = _write(tmp_path / "admin.pw", "correct horse\n")
    r = _tg("secret", "hash", "--password-file", pw)
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert h.startswith("$scrypt$ln=15,r=8,p=1$") and "correct horse" not in h, h
    assert _scrypt_verify("correct horse", h), "the hash does not verify with scrypt: " + h
    assert not _scrypt_verify("correct horsf", h)
    r2 = _tg("secret", "hash", input_="correct horse\n")
    assert r2.returncode == 0 and _scrypt_verify("correct horse", r2.stdout.strip())
    assert r2.stdout.strip() != h  # salted
    r = _tg("secret", "hash", "--password-file", str(tmp_path / "nope.pw"))
    assert r.returncode == 2 and "nope.pw" in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------
# PKCS#12 and JCEKS truststores verify a backend

def _store(kind, d, cacert, password):
    path = os.path.join(d, "trust." + kind)
    if kind == "pkcs12-openssl":
        path = os.path.join(d, "trust-openssl.p12")
        subprocess.run(["openssl", "pkcs12", "-export", "-nokeys", "-in", cacert, "-out", path,
                        "-passout", "pass:" + password], check=True, capture_output=True)
        return path
    testenv.need_tool("keytool", "openjdk-17-jre-headless")
    storetype = {"pkcs12": "PKCS12", "jceks": "JCEKS"}[kind]
    subprocess.run(["keytool", "-importcert", "-noprompt", "-storetype", storetype, "-keystore",
                    path, "-storepass", password, "-alias", "test-ca", "-file", cacert],
                   check=True, capture_output=True, timeout=120)
    return path


@pytest.mark.parametrize("kind", ["pkcs12", "pkcs12-openssl", "jceks"])
def test_store_truststore_verifies_backend(gateway, certs, tmp_path, kind):
    path = _store(kind, str(tmp_path), certs.ca.cert, "trust-pw")
    stype = "jceks" if kind == "jceks" else "pkcs12"
    b = _Backend("ok", tls=_server_ctx(certs.ec))
    try:
        port = testenv.free_port()
        cfg = {"version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
               "log": {"level": "info", "access_log": None},
               "keystores": {"ec": certs.ec.keystore()},
               "truststores": {"t": {"type": stype, "file": path, "password": "trust-pw"},
                               "other": {"type": "pem", "file": certs.other.cert}},
               "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                              "tls": {"certificates": ["ec"]},
                              "routes": [{"path_prefix": "/ok", "backend": "good"},
                                         {"path_prefix": "/", "backend": "bad"}]}],
               "backends": {"good": {"targets": [b.address], "tls": {"truststore": "t"}},
                            "bad": {"targets": [b.address], "tls": {"truststore": "other"}}}}
        gw = gateway(cfg)
        r = testenv.get(port, "/ok")
        assert r.status == 200 and r.body == b"ok\n", (r.status, r.body[:200], gw.log_tail(10))
        # the check says what the truststore holds
        chk = _tg("check", "-c", gw.config_path)
        assert chk.returncode == 0, chk.stdout + chk.stderr
        assert 'trust: truststore "t" (1 CA from %s)' % path in chk.stdout, chk.stdout
        # and the same backend under a truststore without our CA is refused
        r = testenv.get(port, "/other")
        assert r.status == 502 and "unknown_ca" in r.text, (r.status, r.body[:200])
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# client_auth forward "both": XFCC and RFC 9440 fields; spoofed ones removed

def _client_cert(certs, d):
    key, csr, crt = (os.path.join(d, n) for n in ("fc.key", "fc.csr", "fc.crt"))
    ext = _write(os.path.join(d, "fc.ext"), "subjectAltName=DNS:fc.example,URI:spiffe://t/fc\n"
                 "extendedKeyUsage=clientAuth\n")
    for cmd in (["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
                ["req", "-new", "-key", key, "-subj", "/CN=fc/O=Org", "-out", csr],
                ["x509", "-req", "-in", csr, "-CA", certs.ca.cert, "-CAkey", certs.ca.key,
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt]):
        subprocess.run(["openssl"] + cmd, check=True, capture_output=True, cwd=d)
    return crt, key


def test_forward_both(gateway, origin, certs, tmp_path):
    import ssl
    crt, key = _client_cert(certs, str(tmp_path))
    o = origin("app")
    port = testenv.free_port()
    gateway({"version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
             "log": {"level": "info", "access_log": None},
             "keystores": {"ec": certs.ec.keystore()},
             "truststores": {"ca": {"type": "pem", "file": certs.ca.cert}},
             "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                            "tls": {"certificates": ["ec"],
                                    "client_auth": {"mode": "require", "truststore": "ca",
                                                    "forward": "both"}},
                            "routes": [{"path_prefix": "/", "backend": "app"}]}],
             "backends": {"app": {"targets": [o.address]}}})
    ctx = testenv.tls_context()
    ctx.load_cert_chain(crt, key)
    spoof = [("X-Forwarded-Client-Cert", "Hash=00;Subject=\"CN=admin\""),
             ("Client-Cert", ":AAAA:"), ("Client-Cert-Chain", ":BBBB:")]
    with Conn(port, ctx=ctx) as c:
        r = c.request("GET", "/echo", headers=spoof)
    assert r.status == 200, r.body[:200]
    got = {}
    for k, v in r.json()["headers"]:
        got.setdefault(k.lower(), []).append(v)
    der = ssl.PEM_cert_to_DER_cert(open(crt).read())
    xfcc = got.get("x-forwarded-client-cert", [])
    assert len(xfcc) == 1 and xfcc[0].startswith("Hash=%s;" % hashlib.sha256(der).hexdigest()), xfcc
    assert 'Subject="O=Org,CN=fc"' in xfcc[0] and 'DNS="fc.example"' in xfcc[0], xfcc
    assert 'URI="spiffe://t/fc"' in xfcc[0], xfcc
    assert got.get("client-cert") == [":%s:" % base64.b64encode(der).decode()], got.get("client-cert")
    # Python's client (OpenSSL) may send the CA along with its certificate; the chain field
    # carries only the verified chain beyond the leaf, without the trust anchor (there is none
    # here), and the client's own copy is stripped
    assert "client-cert-chain" not in got, got
