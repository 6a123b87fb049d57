"""Keystores as other tools make them: JKS and JCEKS from keytool (distinct store and key
passwords, several aliases), PKCS12 from keytool and from `openssl pkcs12` (modern and -legacy),
served and verified with curl per alias; a JKS truststore verifying a backend; the checks that
name what is wrong; "enc:" passwords sealed to the internal keystore by `tlsgate secret`."""
import base64
import json
import os
import shutil
import subprocess

import pytest

import testenv
from testenv.env import BIN, t
from testenv.gateway import SANITIZER_MARKERS

STOREPASS = "st0re-pass"
KEYPASS = {"alpha": "alpha-key-pw", "beta": "beta-key-pw"}
SECRETS = [STOREPASS] + list(KEYPASS.values())


def _run(cmd, cwd, **kw):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def _keytool(d, *args):
    # Only the tests that use keytool's stores need it (a failure under CI=true).
    testenv.need_tool("keytool", "openjdk-17-jre-headless")
    return _run(["keytool"] + list(args), d)


def _java_store(d, kind):
    """A keytool-made JKS or JCEKS: alpha (EC P-256, alpha.test) and beta (RSA 2048, beta.test),
    each with its own key password, plus a trusted-certificate entry."""
    path = os.path.join(d, "web." + kind)
    for alias, alg in (("alpha", ["-keyalg", "EC", "-groupname", "secp256r1"]),
                       ("beta", ["-keyalg", "RSA", "-keysize", "2048"])):
        _keytool(d, "-genkeypair", "-storetype", kind.upper(), "-keystore", path, "-storepass",
                 STOREPASS, "-keypass", KEYPASS[alias], "-alias", alias, *alg, "-dname",
                 "CN=%s.test,O=tlsgate tests" % alias, "-ext",
                 "san=dns:%s.test,ip:127.0.0.1" % alias, "-validity", "200")
    return path


def _der(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + body


def _der_children(b):
    """The (tag, body) pairs of the DER elements in b, in order."""
    out, off = [], 0
    while off < len(b):
        tag, n = b[off], b[off + 1]
        off += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[off:off + k], "big")
            off += k
        out.append((tag, b[off:off + n]))
        off += n
    return out


def _p12_mac_iter(data, iterations):
    """A PKCS#12 file (PFX: version, authSafe, macData) with its MAC iteration count changed."""
    (_, pfx), = _der_children(data)
    version, auth, (_, mac) = _der_children(pfx)
    digest, salt = _der_children(mac)[:2]
    count = iterations.to_bytes((iterations.bit_length() + 8) // 8, "big")
    mac = _der(0x30, _der(*digest) + _der(*salt) + _der(0x02, count))
    return _der(0x30, _der(*version) + _der(*auth) + mac)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, certs):
    d = str(tmp_path_factory.mktemp("stores"))
    s = {"dir": d}
    for kind in ("jks", "jceks"):
        s[kind] = _java_store(d, kind)
    for kind in ("jks", "jceks"):
        for alias in ("alpha", "beta"):
            pem = os.path.join(d, "%s-%s.pem" % (kind, alias))
            _keytool(d, "-exportcert", "-rfc", "-storetype", kind.upper(), "-keystore", s[kind],
                     "-storepass", STOREPASS, "-alias", alias, "-file", pem)
            s["%s_%s_pem" % (kind, alias)] = pem
    # the jks store also gets a trusted-certificate entry (the test CA)
    _keytool(d, "-importcert", "-noprompt", "-storetype", "JKS", "-keystore", s["jks"],
             "-storepass", STOREPASS, "-alias", "test-ca", "-file", certs.ca.cert)
    # keytool PKCS12 (PBES2/AES, HMAC-SHA256); keytool uses the store password for the key
    s["kt_p12"] = os.path.join(d, "kt.p12")
    _keytool(d, "-genkeypair", "-storetype", "PKCS12", "-keystore", s["kt_p12"], "-storepass",
             STOREPASS, "-alias", "gamma", "-keyalg", "EC", "-groupname", "secp256r1", "-dname",
             "CN=gamma.test", "-ext", "san=dns:gamma.test", "-validity", "200")
    s["gamma_pem"] = os.path.join(d, "gamma.pem")
    _keytool(d, "-exportcert", "-rfc", "-keystore", s["kt_p12"], "-storepass", STOREPASS,
             "-alias", "gamma", "-file", s["gamma_pem"])
    # openssl pkcs12, modern and -legacy (RC2/3DES), of the CA-signed localhost key pair
    for name, extra in (("modern", []), ("legacy", ["-legacy"])):
        p = os.path.join(d, name + ".p12")
        _run(["openssl", "pkcs12", "-export", "-in", certs.ec.cert, "-inkey", certs.ec.key,
              "-certfile", certs.ca.cert, "-name", "web", "-out", p, "-passout",
              "pass:" + STOREPASS] + extra, d)
        s[name] = p
    # a PKCS#12 whose MAC asks for more key-derivation iterations than Java's ceiling
    s["mac_iter"] = os.path.join(d, "mac_iter.p12")
    with open(s["mac_iter"], "wb") as f:
        f.write(_p12_mac_iter(open(s["modern"], "rb").read(), 2**31 - 1))
    # a JKS truststore holding only the test CA
    s["trust_jks"] = os.path.join(d, "trust.jks")
    _keytool(d, "-importcert", "-noprompt", "-storetype", "JKS", "-keystore", s["trust_jks"],
             "-storepass", "changeit", "-alias", "tlsgate-test-ca", "-file", certs.ca.cert)
    # damaged copies
    data = open(s["jks"], "rb").read()
    s["tampered"] = os.path.join(d, "tampered.jks")
    with open(s["tampered"], "wb") as f:
        f.write(data[:200] + bytes([data[200] ^ 0x01]) + data[201:])
    s["truncated"] = os.path.join(d, "truncated.jks")
    with open(s["truncated"], "wb") as f:
        f.write(data[:len(data) // 2])
    # keys and certificates TLS cannot use, each alone in a JKS
    s["odd"] = os.path.join(d, "odd.jks")
    for alias, extra in (("dsa", ["-keyalg", "DSA", "-keysize", "2048"]),
                         ("future", ["-keyalg", "EC", "-groupname", "secp256r1", "-startdate",
                                     "+1y"]),
                         ("certsign", ["-keyalg", "EC", "-groupname", "secp256r1", "-ext",
                                       "KU=keyCertSign"])):
        _keytool(d, "-genkeypair", "-storetype", "JKS", "-keystore", s["odd"], "-storepass",
                 STOREPASS, "-keypass", STOREPASS, "-alias", alias, "-dname", "CN=" + alias,
                 *extra)
    # internal keystores: keytool PKCS12 (RSA) and PEM (EC)
    s["internal_p12"] = os.path.join(d, "internal.p12")
    _keytool(d, "-genkeypair", "-storetype", "PKCS12", "-keystore", s["internal_p12"],
             "-storepass", "internal-pw", "-alias", "wso2carbon", "-keyalg", "RSA", "-keysize",
             "2048", "-dname", "CN=internal")
    return s


def _cfg(tmp_path, keystores, certificates, port=None, extra_listeners=(), **top):
    cfg = {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "keystores": keystores,
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % (port or testenv.free_port()),
                       "tls": {"certificates": certificates},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}] + list(extra_listeners),
        "backends": {"status": {"builtin": "status"}},
    }
    cfg.update(top)
    return cfg


def _check(tmp_path, cfg, name="gw.json", env=None):
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    r = subprocess.run([BIN, "check", "-c", path], capture_output=True, text=True,
                       timeout=t(120), env=dict(os.environ, **(env or {})))
    out = r.stdout + r.stderr
    assert not [m for m in SANITIZER_MARKERS if m in out], out
    for s in SECRETS:
        assert s not in out, "a password leaked into check output:\n" + out
    return r.returncode, out


def _secret(verb, cfg_path, data, *args):
    r = subprocess.run([BIN, "secret", verb] + (["-c", cfg_path] if cfg_path else []) + list(args),
                       input=data, capture_output=True, text=True, timeout=t(120))
    assert not [m for m in SANITIZER_MARKERS if m in r.stdout + r.stderr], r.stderr
    return r


def _curl(port, name, cafile):
    return testenv.curl("--cacert", cafile, "--resolve", "%s:%d:127.0.0.1" % (name, port),
                        "https://%s:%d/" % (name, port))


# ---------------------------------------------------------------------------------------------
# serving from Java keystores and PKCS#12 files

@pytest.mark.parametrize("kind", ["jks", "jceks"])
def test_java_keystore_served_per_alias(gateway, stores, tmp_path, kind):
    pwfile = tmp_path / "store.pw"
    pwfile.write_text(STOREPASS + "\n")  # as Kaazing's keystore.pw
    port = testenv.free_port()
    gw = gateway(_cfg(tmp_path, {
        "a": {"type": kind, "file": stores[kind], "password": {"file": str(pwfile)},
              "alias": "alpha", "key_password": KEYPASS["alpha"]},
        "b": {"type": kind, "file": stores[kind], "password": STOREPASS, "alias": "BETA",
              "key_password": {"env": "TG_BETA_PW"}},
    }, ["a", "b"], port=port), env={"TG_BETA_PW": KEYPASS["beta"]})
    for alias in ("alpha", "beta"):
        r = _curl(port, alias + ".test", stores["%s_%s_pem" % (kind, alias)])
        assert r.returncode == 0, (alias, r.stderr, gw.log_tail())
    # the certificate of the other alias does not verify: each name got its own entry
    r = _curl(port, "alpha.test", stores[kind + "_beta_pem"])
    assert r.returncode == 60, (r.returncode, r.stderr)
    log = gw.log_text()
    for s in SECRETS:
        assert s not in log


@pytest.mark.parametrize("which", ["modern", "legacy"])
def test_openssl_pkcs12_served(gateway, stores, certs, tmp_path, which):
    port = testenv.free_port()
    gateway(_cfg(tmp_path, {"web": {"type": "pkcs12", "file": stores[which],
                                    "password": STOREPASS}}, ["web"], port=port))
    r = _curl(port, "localhost", certs.ca.cert)
    assert r.returncode == 0, r.stderr


def test_keytool_pkcs12_served(gateway, stores, tmp_path):
    port = testenv.free_port()
    gateway(_cfg(tmp_path, {"g": {"type": "pkcs12", "file": stores["kt_p12"],
                                  "password": STOREPASS, "alias": "gamma"}}, ["g"], port=port))
    r = _curl(port, "gamma.test", stores["gamma_pem"])
    assert r.returncode == 0, r.stderr


def test_jks_truststore_verifies_backend(gateway, stores, certs, tmp_path):
    """The gateway's second listener (test-CA-signed localhost certificate) is the TLS backend of
    its first; the JKS truststore holds the test CA."""
    port, inner = testenv.free_port(), testenv.free_port()
    inner_listener = {"name": "inner", "address": "127.0.0.1:%d" % inner,
                      "tls": {"certificates": ["pem"]},
                      "routes": [{"path_prefix": "/", "backend": "status"}]}
    cfg = _cfg(tmp_path, {"pem": certs.ec.keystore()}, ["pem"], port=port,
               extra_listeners=[inner_listener],
               truststores={"java": {"type": "jks", "file": stores["trust_jks"],
                                     "password": "changeit"},
                            "wrong": {"type": "jks", "file": stores["jks"],
                                      "password": STOREPASS, "aliases": ["alpha"]}})
    cfg["backends"]["inner"] = {"targets": ["127.0.0.1:%d" % inner],
                                "tls": {"truststore": "java", "server_name": "localhost"}}
    cfg["backends"]["inner_wrong"] = {"targets": ["127.0.0.1:%d" % inner],
                                      "tls": {"truststore": "wrong", "server_name": "localhost"}}
    cfg["listeners"][0]["routes"] = [{"path_prefix": "/wrong", "backend": "inner_wrong"},
                                     {"path_prefix": "/", "backend": "inner"}]
    gw = gateway(cfg)
    r = testenv.curl("--cacert", certs.ca.cert, "-o", "/dev/null", "-w", "%{http_code}",
                     "https://localhost:%d/" % port)
    assert r.stdout.decode() == "200", (r.stdout, r.stderr, gw.log_tail())
    r = testenv.curl("--cacert", certs.ca.cert, "-o", "/dev/null", "-w", "%{http_code}",
                     "https://localhost:%d/wrong" % port)
    assert r.stdout.decode() == "502", (r.stdout, r.stderr, gw.log_tail())
    code, out = _check(tmp_path, cfg, "trust.json")
    assert code == 0, out
    assert 'truststore "java" (1 CA' in out, out


def test_jks_truststore_verifies_clients(gateway, stores, certs, tmp_path):
    """tls.client_auth with a truststore read from a keytool-made JKS holding the test CA."""
    prefix = str(tmp_path / "client")
    r = testenv.tlsgate("cert", "client", "--out", prefix, "--ca", os.path.join(certs.dir, "ca"),
                        "--subject", "CN=client,O=tlsgate tests")
    assert r.returncode == 0, r.stdout + r.stderr
    port = testenv.free_port()
    cfg = _cfg(tmp_path, {"pem": certs.ec.keystore()}, ["pem"], port=port,
               truststores={"java": {"type": "jks", "file": stores["trust_jks"],
                                     "password": "changeit"}})
    cfg["listeners"][0]["tls"]["client_auth"] = {"mode": "require", "truststore": "java"}
    gw = gateway(cfg)
    r = testenv.curl("--cacert", certs.ca.cert, "--cert", prefix + ".crt", "--key", prefix + ".key",
                     "-o", "/dev/null", "-w", "%{http_code}", "https://localhost:%d/" % port)
    assert r.stdout.decode() == "200", (r.stdout, r.stderr, gw.log_tail())
    r = testenv.curl("--cacert", certs.ca.cert, "-o", "/dev/null", "-w", "%{http_code}",
                     "https://localhost:%d/" % port)
    assert r.stdout.decode() != "200", (r.stdout, r.stderr)


# ---------------------------------------------------------------------------------------------
# what check says

def test_check_prints_each_keystore(stores, tmp_path):
    code, out = _check(tmp_path, _cfg(tmp_path, {
        "a": {"type": "jceks", "file": stores["jceks"], "password": STOREPASS, "alias": "alpha",
              "key_password": KEYPASS["alpha"]},
        "unused": {"type": "jks", "file": stores["jks"], "password": STOREPASS, "alias": "beta",
                   "key_password": KEYPASS["beta"]},
    }, ["a"]))
    assert code == 0, out
    line = [l for l in out.splitlines() if l.startswith('  keystore "a"')]
    assert line, out
    assert 'alias "alpha"' in line[0] and "ECDSA P-256" in line[0], line[0]
    assert "CN=alpha.test" in line[0] and "names 127.0.0.1, alpha.test" in line[0], line[0]
    assert "not after" in line[0], line[0]
    line = [l for l in out.splitlines() if l.startswith('  keystore "unused"')]
    assert line and 'alias "beta"' in line[0] and "RSA 2048" in line[0], out


CASES = [
    ("wrong store password", {"type": "jks", "file": "jks", "password": "not-it", "alias": "alpha",
                              "key_password": KEYPASS["alpha"]},
     "the integrity digest does not match: wrong store password"),
    ("wrong key password", {"type": "jceks", "file": "jceks", "password": STOREPASS,
                            "alias": "alpha", "key_password": "not-it"},
     'cannot decrypt the key of entry "alpha": wrong key password'),
    ("key password needed", {"type": "jks", "file": "jks", "password": STOREPASS,
                             "alias": "beta"},
     "set key_password if the key has its own"),
    ("wrong alias", {"type": "jks", "file": "jks", "password": STOREPASS, "alias": "gamma"},
     'no entry "gamma" in'),
    ("trusted entry as key", {"type": "jks", "file": "jks", "password": STOREPASS,
                              "alias": "test-ca"},
     'entry "test-ca" in'),
    ("several keys", {"type": "jks", "file": "jks", "password": STOREPASS},
     'holds 2 key entries ("alpha" (key), "beta" (key), "test-ca" (trusted certificate)): set '
     '"alias"'),
    ("tampered", {"type": "jks", "file": "tampered", "password": STOREPASS, "alias": "alpha",
                  "key_password": KEYPASS["alpha"]},
     "the integrity digest does not match"),
    ("truncated", {"type": "jks", "file": "truncated", "password": STOREPASS, "alias": "alpha"},
     "the file is truncated"),
    ("dsa key", {"type": "jks", "file": "odd", "password": STOREPASS, "alias": "dsa"},
     "is a DSA key"),
    ("not yet valid", {"type": "jks", "file": "odd", "password": STOREPASS, "alias": "future"},
     'certificate of entry "future" in'),
    ("key usage", {"type": "jks", "file": "odd", "password": STOREPASS, "alias": "certsign"},
     "a key usage without digitalSignature, which forbids its use in a TLS handshake"),
    ("wrong pkcs12 password", {"type": "pkcs12", "file": "legacy", "password": "not-it"},
     "wrong store password (the PKCS#12 MAC does not verify)"),
    # OpenSSL would run 2^31 - 1 iterations (minutes); refused before it starts
    ("pkcs12 iterations", {"type": "pkcs12", "file": "mac_iter", "password": STOREPASS},
     "the PKCS#12 MAC asks for 2147483647 key-derivation iterations; more than 5000000 are "
     "refused"),
]


@pytest.mark.parametrize("what,ks,message", CASES, ids=[c[0] for c in CASES])
def test_check_names_the_problem(stores, tmp_path, what, ks, message):
    ks = dict(ks, file=stores[ks["file"]])
    code, out = _check(tmp_path, _cfg(tmp_path, {"web": ks}, ["web"]))
    assert code == 2, out
    lines = [l for l in out.splitlines() if "/keystores/web:" in l and "warning" not in l]
    assert lines, out
    assert message in lines[0], out
    if what == "not yet valid":
        assert "is not valid yet" in lines[0], out
    if what == "wrong alias":
        assert '"alpha" (key), "beta" (key), "test-ca" (trusted certificate)' in lines[0], out


def test_group_readable_key_file_warns(certs, tmp_path):
    key = tmp_path / "open.key"
    shutil.copy(certs.ec.key, key)
    os.chmod(key, 0o644)
    code, out = _check(tmp_path, _cfg(tmp_path, {"web": {"type": "pem", "cert": certs.ec.cert,
                                                          "key": str(key)}}, ["web"]))
    assert code == 0, out
    assert "warning: /keystores/web: " in out and "readable by group and others (mode 0644)" in out


def test_internal_keystore_is_not_for_tls(stores, tmp_path):
    code, out = _check(tmp_path, _cfg(tmp_path, {
        "internal": {"type": "pkcs12", "file": stores["internal_p12"], "password": "internal-pw"}},
        ["internal"]))
    assert code == 2 and "never used for TLS" in out, out


# ---------------------------------------------------------------------------------------------
# secrets

@pytest.mark.parametrize("internal", ["rsa-pkcs12", "ec-pem"])
def test_enc_passwords(gateway, stores, certs, tmp_path, internal):
    ik = ({"type": "pkcs12", "file": stores["internal_p12"], "password": "internal-pw"}
          if internal == "rsa-pkcs12" else certs.other.keystore())
    base = _cfg(tmp_path, {"internal": ik}, ["web"])
    base["keystores"]["web"] = {"type": "jks", "file": stores["jks"], "password": STOREPASS,
                                "alias": "alpha", "key_password": KEYPASS["alpha"]}
    path = str(tmp_path / "base.json")
    with open(path, "w") as f:
        json.dump(base, f)
    values = {}
    for s in (STOREPASS, KEYPASS["alpha"]):
        r = _secret("encrypt", path, s + "\n")
        assert r.returncode == 0, r.stderr
        v = r.stdout.strip()
        assert v.startswith("enc:") and "\n" not in v and s not in v, r.stdout
        values[s] = v
        back = _secret("decrypt", path, v)
        assert back.returncode == 0 and back.stdout == s + "\n", back.stderr
    # two encryptions of one secret differ (random data key and nonce)
    assert _secret("encrypt", path, STOREPASS).stdout.strip() != values[STOREPASS]

    cfg = json.loads(json.dumps(base))
    cfg["keystores"]["web"]["password"] = values[STOREPASS]
    cfg["keystores"]["web"]["key_password"] = values[KEYPASS["alpha"]]
    code, out = _check(tmp_path, cfg, "enc.json")
    assert code == 0, out
    port = cfg["listeners"][0]["address"].rsplit(":", 1)[1]
    gw = gateway(cfg)
    r = _curl(int(port), "alpha.test", stores["jks_alpha_pem"])
    assert r.returncode == 0, (r.stderr, gw.log_tail())

    # a tampered value is refused, by decrypt and by the config load, naming the JSON path
    raw = bytearray(base64.b64decode(values[KEYPASS["alpha"]][4:]))
    raw[-20] ^= 0x01
    bad = "enc:" + base64.b64encode(bytes(raw)).decode()
    r = _secret("decrypt", path, bad)
    assert r.returncode == 2 and "does not authenticate" in r.stderr, r.stderr
    assert KEYPASS["alpha"] not in r.stdout + r.stderr
    cfg["keystores"]["web"]["key_password"] = bad
    code, out = _check(tmp_path, cfg, "tampered.json")
    assert code == 2, out
    assert '/keystores/web/key_password: cannot decrypt the "enc:" value' in out, out
    # a cut value, and a value for another internal key
    cfg["keystores"]["web"]["key_password"] = values[KEYPASS["alpha"]][:30]
    code, out = _check(tmp_path, cfg, "cut.json")
    assert code == 2 and "damaged or cut short" in out, out


def test_enc_value_for_another_internal_key(stores, certs, tmp_path):
    a = _cfg(tmp_path, {"internal": certs.other.keystore()}, ["web"])
    a["keystores"]["web"] = certs.ec.keystore()
    b = json.loads(json.dumps(a))
    b["keystores"]["internal"] = certs.rsa.keystore()
    pa, pb = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    json.dump(a, open(pa, "w"))
    json.dump(b, open(pb, "w"))
    v = _secret("encrypt", pa, "s3cret").stdout.strip()
    r = _secret("decrypt", pb, v)
    assert r.returncode == 2 and "encrypted for another internal key" in r.stderr, r.stderr


def test_enc_needs_internal_keystore(stores, certs, tmp_path):
    cfg = _cfg(tmp_path, {"web": dict(certs.ec.keystore(), key_password="enc:AAAA")}, ["web"])
    code, out = _check(tmp_path, cfg)
    assert code == 2 and 'needs the keystore named "internal"' in out, out


def test_secret_cli_refuses_argv_and_hashes(tmp_path):
    r = _secret("encrypt", None, "", "hunter2")
    assert r.returncode == 2 and "never from the command line" in r.stderr, r.stderr
    r = _secret("encrypt", None, "x")
    assert r.returncode == 2 and "-c FILE is required" in r.stderr, r.stderr
    r = _secret("hash", None, "admin-password\n")
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert h.startswith("$scrypt$ln=15,r=8,p=1$") and "admin-password" not in h, h
    assert _secret("hash", None, "admin-password\n").stdout.strip() != h  # salted


def test_debian_java_cacerts_as_truststore(certs, tmp_path):
    """The distribution's own Java truststore (JKS, "changeit"), digest checked, every entry."""
    testenv.need(os.path.exists("/etc/ssl/certs/java/cacerts"),
                 "/etc/ssl/certs/java/cacerts (ca-certificates-java, with openjdk-17-jre-headless)")
    cfg = _cfg(tmp_path, {"pem": certs.ec.keystore()}, ["pem"],
               truststores={"cacerts": {"type": "jks", "file": "/etc/ssl/certs/java/cacerts",
                                        "password": "changeit"}})
    cfg["backends"]["out"] = {"targets": ["127.0.0.1:1"], "tls": {"truststore": "cacerts"}}
    code, out = _check(tmp_path, cfg)
    assert code == 0, out
    n = int(out.split('truststore "cacerts" (')[1].split(" CA")[0])
    assert n > 50, out


def test_backend_client_certificate_from_jks(gateway, certs, tmp_path):
    """backends.NAME.tls.client_certificate names a JKS keystore (converted by keytool from a
    tlsgate-made client certificate); the backend is the gateway's own listener requiring it."""
    d = str(tmp_path)
    prefix = os.path.join(d, "gwclient")
    r = testenv.tlsgate("cert", "client", "--out", prefix, "--ca", os.path.join(certs.dir, "ca"),
                        "--subject", "CN=gateway,O=tlsgate tests")
    assert r.returncode == 0, r.stdout + r.stderr
    _run(["openssl", "pkcs12", "-export", "-in", prefix + ".crt", "-inkey", prefix + ".key",
          "-name", "gw", "-out", prefix + ".p12", "-passout", "pass:" + STOREPASS], d)
    jks = os.path.join(d, "client.jks")
    _keytool(d, "-importkeystore", "-srckeystore", prefix + ".p12", "-srcstoretype", "PKCS12",
             "-srcstorepass", STOREPASS, "-destkeystore", jks, "-deststoretype", "JKS",
             "-deststorepass", STOREPASS, "-destkeypass", KEYPASS["beta"])
    port, inner = testenv.free_port(), testenv.free_port()
    inner_listener = {"name": "inner", "address": "127.0.0.1:%d" % inner,
                      "tls": {"certificates": ["pem"],
                              "client_auth": {"mode": "require", "truststore": "ca"}},
                      "routes": [{"path_prefix": "/", "backend": "status"}]}
    cfg = _cfg(tmp_path, {"pem": certs.ec.keystore(),
                          "client": {"type": "jks", "file": jks, "password": STOREPASS,
                                     "key_password": KEYPASS["beta"]}},
               ["pem"], port=port, extra_listeners=[inner_listener],
               truststores={"ca": {"type": "pem", "file": certs.ca.cert}})
    cfg["backends"]["inner"] = {"targets": ["127.0.0.1:%d" % inner],
                                "tls": {"truststore": "ca", "server_name": "localhost",
                                        "client_certificate": "client"}}
    cfg["backends"]["nocert"] = {"targets": ["127.0.0.1:%d" % inner],
                                 "tls": {"truststore": "ca", "server_name": "localhost"}}
    cfg["listeners"][0]["routes"] = [{"path_prefix": "/nocert", "backend": "nocert"},
                                     {"path_prefix": "/", "backend": "inner"}]
    gw = gateway(cfg)
    r = testenv.curl("--cacert", certs.ca.cert, "-o", "/dev/null", "-w", "%{http_code}",
                     "https://localhost:%d/" % port)
    assert r.stdout.decode() == "200", (r.stdout, r.stderr, gw.log_tail())
    # without the certificate the same backend refuses the gateway
    r = testenv.curl("--cacert", certs.ca.cert, "-o", "/dev/null", "-w", "%{http_code}",
                     "https://localhost:%d/nocert" % port)
    assert r.stdout.decode() == "502", (r.stdout, r.stderr, gw.log_tail())


# ---------------------------------------------------------------------------------------------
# types as Java reads them: "jks" and "pkcs12" each load the other's format (keystore.type.compat)

JSSE_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "JsseClient.java")


@pytest.fixture(scope="module")
def compat(tmp_path_factory, certs):
    """keytool's default (PKCS#12) stores named .jks, -storetype JKS stores named .p12, a client
    certificate signed by the test CA (PEM for curl, PKCS#12 for Java)."""
    d = str(tmp_path_factory.mktemp("compat"))
    s = {}
    for kind, storetype in (("p12", []), ("jks", ["-storetype", "JKS"])):
        ext = "jks" if kind == "p12" else "p12"  # each file named as the other format
        s[kind + "_ks"] = os.path.join(d, "web-%s.%s" % (kind, ext))
        _keytool(d, "-genkeypair", *storetype, "-keystore", s[kind + "_ks"], "-storepass",
                 STOREPASS, "-keypass", STOREPASS, "-alias", "web", "-keyalg", "EC",
                 "-groupname", "secp256r1", "-dname", "CN=localhost,O=tlsgate tests", "-ext",
                 "san=dns:localhost,ip:127.0.0.1", "-validity", "200")
        s[kind + "_pem"] = os.path.join(d, "web-%s.pem" % kind)
        _keytool(d, "-exportcert", "-rfc", "-keystore", s[kind + "_ks"], "-storepass", STOREPASS,
                 "-alias", "web", "-file", s[kind + "_pem"])
        s[kind + "_trust"] = os.path.join(d, "trust-%s.%s" % (kind, ext))
        _keytool(d, "-importcert", "-noprompt", *storetype, "-keystore", s[kind + "_trust"],
                 "-storepass", "changeit", "-alias", "tlsgate-test-ca", "-file", certs.ca.cert)
    with open(s["p12_ks"], "rb") as f:
        assert f.read(1) == b"\x30"  # keytool's default really is PKCS#12
    with open(s["jks_ks"], "rb") as f:
        assert f.read(4) == b"\xfe\xed\xfe\xed"
    prefix = os.path.join(d, "client")
    r = testenv.tlsgate("cert", "client", "--out", prefix, "--ca", os.path.join(certs.dir, "ca"),
                        "--subject", "CN=java client,O=tlsgate tests")
    assert r.returncode == 0, r.stdout + r.stderr
    s["client_crt"], s["client_key"] = prefix + ".crt", prefix + ".key"
    s["client_p12"] = prefix + ".p12"
    _run(["openssl", "pkcs12", "-export", "-in", prefix + ".crt", "-inkey", prefix + ".key",
          "-name", "client", "-out", s["client_p12"], "-passout", "pass:" + STOREPASS], d)
    # Java's truststore for the gateway: a JKS holding the keytool-made server certificate
    s["java_trust"] = os.path.join(d, "java-trust.jks")
    _keytool(d, "-importcert", "-noprompt", "-storetype", "JKS", "-keystore", s["java_trust"],
             "-storepass", "changeit", "-alias", "gateway", "-file", s["p12_pem"])
    return s


def _compat_cfg(tmp_path, compat, kind, written, port, **tls):
    cfg = _cfg(tmp_path, {"web": {"type": written, "file": compat[kind + "_ks"],
                                  "password": STOREPASS}}, ["web"], port=port,
               truststores={"clients": {"type": written, "file": compat[kind + "_trust"],
                                        "password": "changeit"}})
    cfg["listeners"][0]["tls"]["client_auth"] = {"mode": "require", "truststore": "clients"}
    cfg["listeners"][0]["tls"].update(tls)
    return cfg


@pytest.mark.parametrize("kind,written,found", [("p12", "jks", "PKCS#12"),
                                                ("jks", "pkcs12", "JKS")],
                         ids=["pkcs12-file-as-jks", "jks-file-as-pkcs12"])
def test_store_type_as_java_reads_it(gateway, compat, tmp_path, kind, written, found):
    """A keystore and a truststore whose type names the other format serve a handshake and
    verify a client; the log and check say what was found."""
    port = testenv.free_port()
    cfg = _compat_cfg(tmp_path, compat, kind, written, port)
    gw = gateway(cfg)
    url = "https://localhost:%d/" % port
    r = testenv.curl("--cacert", compat[kind + "_pem"], "--cert", compat["client_crt"], "--key",
                     compat["client_key"], "-o", "/dev/null", "-w", "%{http_code}", url)
    assert r.stdout.decode() == "200", (r.stdout, r.stderr, gw.log_tail())
    r = testenv.curl("--cacert", compat[kind + "_pem"], "-o", "/dev/null", "-w", "%{http_code}",
                     url)
    assert r.stdout.decode() != "200", (r.stdout, r.stderr)
    note = "type %s, file is %s: loaded as %s" % (written, found, found)
    log = gw.log_text()
    assert 'keystore "web": %s: %s' % (compat[kind + "_ks"], note) in log, log
    assert 'truststore "clients": %s: %s' % (compat[kind + "_trust"], note) in log, log
    code, out = _check(tmp_path, cfg)
    assert code == 0, out
    assert "warning: /keystores/web: " in out and note in out, out
    assert "warning: /truststores/clients: " in out, out


def test_store_types_written_as_found_say_nothing(compat, tmp_path):
    code, out = _check(tmp_path, _compat_cfg(tmp_path, compat, "p12", "pkcs12", 1))
    assert code == 0 and "loaded as" not in out, out
    code, out = _check(tmp_path, _compat_cfg(tmp_path, compat, "jks", "jks", 1))
    assert code == 0 and "loaded as" not in out, out


STRICT = [
    ("none of the formats", "pem", "pkcs12", "a PEM file, not a PKCS#12, JKS or JCEKS keystore"),
    ("random bytes", "junk", "jks", "not a PKCS#12, JKS or JCEKS keystore (it starts with 00 01"),
    ("wrong password, pkcs12 as jks", "p12_ks", "jks",
     "wrong store password (the PKCS#12 MAC does not verify)"),
    ("wrong password, jks as pkcs12", "jks_ks", "pkcs12",
     "the integrity digest does not match: wrong store password"),
    ("tampered pkcs12 as jceks", "p12_tampered", "jceks", "the PKCS#12 MAC does not verify"),
]


@pytest.mark.parametrize("what,file,written,message", STRICT, ids=[c[0] for c in STRICT])
def test_store_type_compat_stays_strict(compat, certs, tmp_path, what, file, written, message):
    if file == "pem":
        path = certs.ec.cert
    elif file == "junk":
        path = str(tmp_path / "junk.jks")
        with open(path, "wb") as f:
            f.write(bytes(range(64)))
    elif file == "p12_tampered":
        data = bytearray(open(compat["p12_ks"], "rb").read())
        data[len(data) // 2] ^= 0x01
        path = str(tmp_path / "tampered.jks")
        with open(path, "wb") as f:
            f.write(bytes(data))
    else:
        path = compat[file]
    password = "not-it" if "wrong password" in what else STOREPASS
    code, out = _check(tmp_path, _cfg(tmp_path, {"web": {"type": written, "file": path,
                                                         "password": password}}, ["web"]))
    assert code == 2, out
    lines = [l for l in out.splitlines() if "/keystores/web:" in l and "warning" not in l]
    assert lines and message in lines[0], out


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_java_client_mutual_tls(gateway, compat, tmp_path, version):
    """Java's own client (JSSE HttpsURLConnection, a PKCS#12 keystore and a JKS truststore)
    against a listener whose keystore and truststore are keytool-default files typed "jks"."""
    if shutil.which("java") is None:
        pytest.fail("java (openjdk-17-jre-headless) is not installed")
    port = testenv.free_port()
    gw = gateway(_compat_cfg(tmp_path, compat, "p12", "jks", port, min_version="TLS1.2"))
    url = "https://localhost:%d/" % port

    def java(*stores):
        return subprocess.run(["java", JSSE_CLIENT, url, version, compat["java_trust"],
                               "changeit"] + list(stores),
                              capture_output=True, text=True, timeout=t(120), cwd=str(tmp_path))

    r = java(compat["client_p12"], STOREPASS)
    assert r.returncode == 0, (r.stdout, r.stderr, gw.log_tail())
    assert r.stdout.startswith("status=200 protocol=%s " % version), r.stdout
    # without its keystore the same client is refused: the gateway did require the certificate
    r = java()
    assert r.returncode == 1 and r.stdout.startswith("failed: "), (r.stdout, r.stderr)
    assert "status=" not in r.stdout, r.stdout
