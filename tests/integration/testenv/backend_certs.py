"""Certificates for the backend-TLS tests, made with the openssl CLI next to (never inside) the
main test CA of testenv.certs:

  server        main CA, DNS:localhost + IP:127.0.0.1
  expired       main CA, localhost + 127.0.0.1, valid 2020-01-01 .. 2021-01-01
  not_yet_valid main CA, localhost + 127.0.0.1, valid 2090-01-01 .. 2091-01-01
  wrong_name    main CA, DNS:wrong.example + DNS:www.wrong.example only
  ip_only       main CA, IP:127.0.0.1 only (no DNS name)
  dns_only      main CA, DNS:localhost only (no IP address)
  foreign       unrelated CA, localhost + 127.0.0.1 (a backend our truststore does not know)
  client_a      client CA, subject CN=client-a,O=Test (RFC 2253 order, as nginx prints it)
  client_b      client CA, CN=client-b,O=Test
  client_foreign unrelated CA, CN=client-x,O=Test (a client certificate the backend refuses)

Usage, from a module-scoped fixture (no conftest needed):

    @pytest.fixture(scope="module")
    def bcerts(tmp_path_factory, certs):
        return make_backend_certs(str(tmp_path_factory.mktemp("bcerts")), certs)
"""
import base64
import hashlib
import os
import subprocess
from dataclasses import dataclass

from .certs import KeyPair

LOCAL_SANS = ["DNS:localhost", "IP:127.0.0.1"]


@dataclass
class BackendCerts:
    dir: str
    ca: KeyPair              # the main test CA (certs.ca), issuer of the server certificates
    other_ca: KeyPair        # an unrelated CA
    client_ca: KeyPair       # issuer of client_a and client_b
    server: KeyPair
    expired: KeyPair
    not_yet_valid: KeyPair
    wrong_name: KeyPair
    ip_only: KeyPair
    dns_only: KeyPair
    foreign: KeyPair
    client_a: KeyPair
    client_b: KeyPair
    client_foreign: KeyPair

    def pin(self, which):
        """`sha256/BASE64` SPKI pin of a KeyPair (or certificate path)."""
        return spki_pin(which.cert if isinstance(which, KeyPair) else which)


def _run(args, cwd, input_=None):
    r = subprocess.run(["openssl"] + args, cwd=cwd, input=input_, capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s%s" % (" ".join(args), r.stdout.decode(
            "utf-8", "replace"), r.stderr.decode("utf-8", "replace")))
    return r.stdout


def _ec_key(path, cwd):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path],
         cwd)


def _make_ca(d, name, subj):
    key = os.path.join(d, name + ".key")
    crt = os.path.join(d, name + ".crt")
    _ec_key(key, d)
    ext = os.path.join(d, name + "-ca.ext")
    with open(ext, "w") as f:
        f.write("[v3_ca]\nbasicConstraints=critical,CA:TRUE\n"
                "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n")
    _run(["req", "-x509", "-new", "-key", key, "-subj", subj, "-days", "365", "-sha256",
          "-config", ext, "-extensions", "v3_ca", "-out", crt], d)
    return KeyPair(crt, key)


def _sign(d, ca, name, subj, sans=None, client=False, dates=None):
    """A leaf certificate signed by ca with `openssl ca` (which can back- and forward-date).
    subj is in openssl's /A=x/B=y form and kept in that order (-preserveDN)."""
    key = os.path.join(d, name + ".key")
    csr = os.path.join(d, name + ".csr")
    crt = os.path.join(d, name + ".crt")
    _ec_key(key, d)
    _run(["req", "-new", "-key", key, "-subj", subj, "-out", csr], d)
    db = os.path.join(d, "db-" + name)
    os.makedirs(db, exist_ok=True)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("%X\n" % (0x1000 + len(os.listdir(d))))
    eku = "clientAuth" if client else "serverAuth"
    ext = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
           "extendedKeyUsage=%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n" % eku)
    if sans:
        ext += "subjectAltName=" + ",".join(sans) + "\n"
    conf = os.path.join(d, name + ".cnf")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca=tg\n"
                "[tg]\ndir=%s\ndatabase=$dir/index.txt\nserial=$dir/serial\n"
                "new_certs_dir=$dir\ncertificate=%s\nprivate_key=%s\n"
                "default_md=sha256\npolicy=pol\nunique_subject=no\nx509_extensions=ext\n"
                "[pol]\norganizationName=optional\ncommonName=supplied\n"
                "[ext]\n%s" % (db, ca.cert, ca.key, ext))
    args = ["ca", "-batch", "-config", conf, "-in", csr, "-out", crt, "-notext", "-preserveDN"]
    if dates:
        args += ["-startdate", dates[0], "-enddate", dates[1]]
    else:
        args += ["-days", "365"]
    _run(args, d)
    return KeyPair(crt, key)


def spki_pin(cert_path):
    """`sha256/BASE64` of the certificate's SubjectPublicKeyInfo (DER), as HPKP/curl pins."""
    pub = _run(["x509", "-in", cert_path, "-noout", "-pubkey"], None)
    der = _run(["pkey", "-pubin", "-outform", "DER"], None, input_=pub)
    return "sha256/" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def subject_rfc2253(cert_path):
    """The certificate's subject as nginx's $ssl_client_s_dn shows it (RFC 2253)."""
    out = _run(["x509", "-in", cert_path, "-noout", "-subject", "-nameopt", "RFC2253"], None)
    return out.decode().strip().split("=", 1)[1]


def make_backend_certs(d, certs):
    """Makes every certificate above under directory d; certs is the session `certs` fixture
    (its CA signs the server certificates, so the gateway's truststore can be certs.ca.cert)."""
    os.makedirs(d, exist_ok=True)
    ca = KeyPair(certs.ca.cert, certs.ca.key)
    other_ca = _make_ca(d, "other-ca", "/O=Elsewhere/CN=unrelated test CA")
    client_ca = _make_ca(d, "client-ca", "/O=Test/CN=tlsgate client CA")
    srv = "/O=tlsgate tests/CN=localhost"
    return BackendCerts(
        dir=d, ca=ca, other_ca=other_ca, client_ca=client_ca,
        server=_sign(d, ca, "server", srv, LOCAL_SANS),
        expired=_sign(d, ca, "expired", srv, LOCAL_SANS,
                      dates=("20200101000000Z", "20210101000000Z")),
        not_yet_valid=_sign(d, ca, "not-yet-valid", srv, LOCAL_SANS,
                            dates=("20900101000000Z", "20910101000000Z")),
        wrong_name=_sign(d, ca, "wrong-name", "/O=tlsgate tests/CN=wrong.example",
                         ["DNS:wrong.example", "DNS:www.wrong.example"]),
        ip_only=_sign(d, ca, "ip-only", "/O=tlsgate tests/CN=ip only", ["IP:127.0.0.1"]),
        dns_only=_sign(d, ca, "dns-only", srv, ["DNS:localhost"]),
        foreign=_sign(d, other_ca, "foreign", srv, LOCAL_SANS),
        client_a=_sign(d, client_ca, "client-a", "/O=Test/CN=client-a", client=True),
        client_b=_sign(d, client_ca, "client-b", "/O=Test/CN=client-b", client=True),
        client_foreign=_sign(d, other_ca, "client-foreign", "/O=Test/CN=client-x", client=True),
    )
