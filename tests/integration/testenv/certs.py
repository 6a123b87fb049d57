"""Per-run test certificates made with the openssl CLI (not `tlsgate cert`)."""
import os
import subprocess
from dataclasses import dataclass


@dataclass
class KeyPair:
    cert: str
    key: str

    def keystore(self):
        """The keystore object for a tlsgate config."""
        return {"type": "pem", "cert": self.cert, "key": self.key}


@dataclass
class Certs:
    dir: str
    ca: KeyPair       # ECDSA P-256 CA
    ec: KeyPair       # ECDSA P-256, localhost + 127.0.0.1
    rsa: KeyPair      # RSA-2048, localhost + 127.0.0.1
    other: KeyPair    # ECDSA P-256, other.test
    expired: KeyPair  # ECDSA P-256, localhost, not valid after 2021


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def _ec_key(path, cwd):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path], cwd)


def _rsa_key(path, cwd):
    _run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path], cwd)


def _server_ext(d, name, sans):
    path = os.path.join(d, name + ".ext")
    with open(path, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid\n"
                "subjectAltName=" + ",".join(sans) + "\n")
    return path


def _server(d, name, cn, sans, rsa=False):
    key = os.path.join(d, name + ".key")
    csr = os.path.join(d, name + ".csr")
    crt = os.path.join(d, name + ".crt")
    (_rsa_key if rsa else _ec_key)(key, d)
    _run(["req", "-new", "-key", key, "-subj", "/CN=" + cn + "/O=tlsgate tests", "-out", csr], d)
    _run(["x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
          "-days", "365", "-sha256", "-extfile", _server_ext(d, name, sans), "-out", crt], d)
    return KeyPair(crt, key)


def _expired(d):
    """`openssl x509` cannot back-date, so the expired cert is signed with `openssl ca`."""
    key = os.path.join(d, "expired.key")
    csr = os.path.join(d, "expired.csr")
    crt = os.path.join(d, "expired.crt")
    _ec_key(key, d)
    _run(["req", "-new", "-key", key, "-subj", "/CN=localhost/O=tlsgate tests", "-out", csr], d)
    cadir = os.path.join(d, "ca-db")
    os.makedirs(cadir, exist_ok=True)
    open(os.path.join(cadir, "index.txt"), "w").close()
    with open(os.path.join(cadir, "serial"), "w") as f:
        f.write("1000\n")
    conf = os.path.join(d, "ca.cnf")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca=tg\n"
                "[tg]\ndir=%s\ndatabase=$dir/index.txt\nserial=$dir/serial\n"
                "new_certs_dir=$dir\ncertificate=%s\nprivate_key=%s\n"
                "default_md=sha256\npolicy=pol\ncopy_extensions=copy\nunique_subject=no\n"
                "x509_extensions=ext\n"
                "[pol]\ncommonName=supplied\norganizationName=optional\n"
                "[ext]\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                % (cadir, os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")))
    _run(["ca", "-batch", "-config", conf, "-in", csr, "-out", crt, "-notext",
          "-startdate", "20200101000000Z", "-enddate", "20210101000000Z"], d)
    return KeyPair(crt, key)


def make_certs(d):
    """Makes the CA and every test certificate under directory d."""
    os.makedirs(d, exist_ok=True)
    _ec_key(os.path.join(d, "ca.key"), d)
    ca_ext = os.path.join(d, "ca.ext")
    with open(ca_ext, "w") as f:
        f.write("[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\n")
    _run(["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=tlsgate test CA/O=tlsgate tests",
          "-days", "365", "-sha256", "-config", ca_ext, "-extensions", "v3_ca", "-out", "ca.crt"], d)
    sans = ["DNS:localhost", "IP:127.0.0.1"]
    return Certs(
        dir=d,
        ca=KeyPair(os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")),
        ec=_server(d, "ec", "localhost", sans),
        rsa=_server(d, "rsa", "localhost", sans, rsa=True),
        other=_server(d, "other", "other.test", ["DNS:other.test"]),
        expired=_expired(d),
    )


def fingerprint(cert_pem_path_or_der):
    """SHA-256 fingerprint (hex, lower case) of a PEM file path or of DER bytes."""
    import hashlib
    import ssl
    if isinstance(cert_pem_path_or_der, (bytes, bytearray)):
        der = bytes(cert_pem_path_or_der)
    else:
        with open(cert_pem_path_or_der) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()
