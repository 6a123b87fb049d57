"""A client-certificate PKI for the mTLS tests, made with the openssl CLI (plus `tlsgate cert`
for one client): a root, an intermediate, client certificates per case, CRLs, and an OCSP
responder's certificate. Certificates can name a CRL Distribution Point and an OCSP responder."""
import os
import subprocess
from dataclasses import dataclass, field


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def _key(path, cwd):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path], cwd)


@dataclass
class Client:
    cert: str
    key: str
    chain: str  # cert + intermediate(s) it was issued under (what a client sends)
    subject: str = ""
    subject_rfc: str = ""  # as RFC 4514 writes it (most significant last)


@dataclass
class CA:
    name: str
    cert: str
    key: str
    dir: str
    db: str = ""
    issued: list = field(default_factory=list)


class PKI:
    """Root -> intermediate -> clients, all under directory d."""

    def __init__(self, d, cdp=None, ocsp=None):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.cdp = cdp      # URL prefix for CRL distribution points, e.g. http://127.0.0.1:P
        self.ocsp = ocsp    # OCSP responder URL
        self.root = self._ca("root", "/O=tlsgate tests/CN=mTLS Test Root", None)
        self.inter = self._ca("inter", "/O=tlsgate tests/CN=mTLS Test Intermediate", self.root)
        self.other_root = self._ca("other", "/O=elsewhere/CN=Other Root", None)

    def path(self, name):
        return os.path.join(self.d, name)

    def intermediate(self, name, subj, comment=None):
        """Another CA under the root; comment (an nsComment) makes its certificate that big."""
        return self._ca(name, subj, self.root, comment)

    def _ca(self, name, subj, parent, comment=None):
        key = self.path(name + ".key")
        crt = self.path(name + ".crt")
        _key(key, self.d)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier=hash\n")
            if comment:
                f.write("nsComment=%s\n" % comment)
            if parent is not None:
                f.write("authorityKeyIdentifier=keyid\n")
                if self.cdp:
                    f.write("crlDistributionPoints=URI:%s/%s.crl\n" % (self.cdp, parent.name))
        if parent is None:
            _run(["req", "-x509", "-new", "-key", key, "-subj", subj, "-days", "365", "-sha256",
                  "-config", ext, "-extensions", "v3", "-out", crt], self.d)
        else:
            csr = self.path(name + ".csr")
            _run(["req", "-new", "-key", key, "-subj", subj, "-out", csr], self.d)
            _run(["x509", "-req", "-in", csr, "-CA", parent.cert, "-CAkey", parent.key,
                  "-CAcreateserial", "-days", "365", "-sha256", "-extfile", ext, "-extensions",
                  "v3", "-out", crt], self.d)
        ca = CA(name, crt, key, self.d)
        # an "openssl ca" database, for CRLs and the OCSP responder
        db = self.path(name + ".db")
        open(db, "w").close()
        with open(self.path(name + ".cnf"), "w") as f:
            f.write("[ca]\ndefault_ca=x\n[x]\ndatabase=%s\ndefault_md=sha256\n"
                    "default_crl_days=30\ncrlnumber=%s\n" % (db, self.path(name + ".crlnum")))
        with open(self.path(name + ".crlnum"), "w") as f:
            f.write("01\n")
        ca.db = db
        return ca

    def client(self, name, subj, issuer=None, sans=None, days=None, start=None, end=None,
               eku="clientAuth", cdp=True, extra=None):
        """A client certificate (issuer: the intermediate by default); extra: more lines for
        the openssl extension file."""
        issuer = issuer or self.inter
        key = self.path(name + ".key")
        csr = self.path(name + ".csr")
        crt = self.path(name + ".crt")
        ext = self.path(name + ".ext")
        _key(key, self.d)
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
            if eku:
                f.write("extendedKeyUsage=%s\n" % eku)
            if sans:
                f.write("subjectAltName=" + ",".join(sans) + "\n")
            for line in extra or ():
                f.write(line + "\n")
            if cdp and self.cdp:
                f.write("crlDistributionPoints=URI:%s/%s.crl\n" % (self.cdp, issuer.name))
            if cdp and self.ocsp:
                f.write("authorityInfoAccess=OCSP;URI:%s\n" % self.ocsp)
        _run(["req", "-new", "-key", key, "-subj", subj, "-out", csr], self.d)
        args = ["x509", "-req", "-in", csr, "-CA", issuer.cert, "-CAkey", issuer.key,
                "-CAcreateserial", "-sha256", "-extfile", ext, "-out", crt]
        if start or end:
            # "openssl ca" takes explicit dates; x509 -req does not, so sign with ca
            return self._client_dated(name, subj, issuer, ext, csr, key, start, end)
        args += ["-days", str(days or 30)]
        _run(args, self.d)
        return self._finish(name, crt, key, issuer, subj)

    def _client_dated(self, name, subj, issuer, ext, csr, key, start, end):
        crt = self.path(name + ".crt")
        # openssl x509 -req cannot set explicit dates in 3.0: "openssl ca" can
        cnf = self.path(issuer.name + "-dated.cnf")
        with open(cnf, "w") as f:
            f.write("[ca]\ndefault_ca=x\n[x]\ndatabase=%s\nnew_certs_dir=%s\ndefault_md=sha256\n"
                    "policy=pol\nunique_subject=no\nserial=%s\n[pol]\ncommonName=supplied\n"
                    "organizationName=optional\n" % (self.path(issuer.name + ".dated.db"), self.d,
                                                       self.path(issuer.name + ".serial")))
        if not os.path.exists(self.path(issuer.name + ".dated.db")):
            open(self.path(issuer.name + ".dated.db"), "w").close()
            with open(self.path(issuer.name + ".serial"), "w") as f:
                f.write("1000\n")
        _run(["ca", "-batch", "-config", cnf, "-cert", issuer.cert, "-keyfile", issuer.key,
              "-in", csr, "-out", crt, "-notext", "-startdate", start, "-enddate", end,
              "-extfile", ext, "-preserveDN"], self.d)
        return self._finish(name, crt, key, issuer, subj)

    def _finish(self, name, crt, key, issuer, subj):
        chain = self.path(name + "-chain.pem")
        with open(chain, "w") as out:
            for p in [crt] + ([issuer.cert] if issuer is not self.root and issuer is not self.other_root else []):
                with open(p) as f:
                    out.write(f.read())
        issuer.issued.append(crt)
        return Client(crt, key, chain, subj,
                      ",".join(reversed([x for x in subj.split("/") if x])))

    def revoke(self, ca, crt):
        """Marks crt revoked in ca's database (see crl())."""
        _run(["ca", "-config", self.path(ca.name + ".cnf"), "-name", "x", "-cert", ca.cert,
              "-keyfile", ca.key, "-revoke", crt], self.d)

    def valid(self, ca, crt):
        """Records crt as valid in ca's database (the OCSP responder answers "good")."""
        _run(["ca", "-config", self.path(ca.name + ".cnf"), "-name", "x", "-cert", ca.cert,
              "-keyfile", ca.key, "-valid", crt], self.d)

    def crl(self, ca, out, der=False, seconds=None):
        """Writes ca's CRL (every revoked certificate) to out, PEM or DER; seconds: its
        nextUpdate that many seconds ahead (default 30 days)."""
        pem = out if not der else out + ".pem"
        cnf = self.path(ca.name + ".cnf")
        extra = []
        if seconds:
            # default_crl_days would add to -crlsec: a config without it
            short = self.path(ca.name + "-short.cnf")
            with open(cnf) as f, open(short, "w") as o:
                o.write("".join(l for l in f if not l.startswith("default_crl_days")))
            cnf, extra = short, ["-crlsec", str(seconds)]
        _run(["ca", "-config", cnf, "-name", "x", "-cert", ca.cert,
              "-keyfile", ca.key, "-gencrl", "-out", pem + ".tmp"] + extra, self.d)
        os.replace(pem + ".tmp", pem)
        if der:
            _run(["crl", "-in", pem, "-outform", "DER", "-out", out], self.d)
        return out

    def ocsp_signer(self):
        return self.inter
