"""OCSP for the tests: a responder on loopback that answers with `openssl ocsp` over a CA's
index file, and OCSP responses made as files (current ones with `openssl ocsp`, expired ones with
Python's cryptography, since `openssl ocsp` cannot date a response in the past)."""
import datetime
import http.server
import os
import subprocess
import threading


class OcspResponder:
    """An OCSP responder on 127.0.0.1: each POSTed request is answered by `openssl ocsp` in
    responder mode (-reqin/-respout with the CA's index), since `openssl ocsp -port` would listen
    on every interface."""

    def __init__(self, pki, port, d, ca=None):
        self.hits = 0
        ca = ca or pki.inter
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.hits += 1
                n = int(self.headers.get("Content-Length", "0"))
                req = os.path.join(d, "req-%d.der" % outer.hits)
                resp = req.replace("req-", "resp-")
                with open(req, "wb") as f:
                    f.write(self.rfile.read(n))
                subprocess.run(["openssl", "ocsp", "-index", ca.db, "-CA", ca.cert,
                                "-rsigner", ca.cert, "-rkey", ca.key, "-nmin", "5",
                                "-reqin", req, "-respout", resp], check=True,
                               capture_output=True, timeout=30)
                body = open(resp, "rb").read()
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()




def response_file(pki, ca, cert, out, workdir):
    """A current OCSP response (DER) for cert from ca's index, valid for a day, written to out."""
    req = os.path.join(workdir, os.path.basename(out) + ".req")
    subprocess.run(["openssl", "ocsp", "-issuer", ca.cert, "-cert", cert, "-no_nonce",
                    "-reqout", req], check=True, capture_output=True, timeout=30)
    subprocess.run(["openssl", "ocsp", "-index", ca.db, "-CA", ca.cert, "-rsigner", ca.cert,
                    "-rkey", ca.key, "-ndays", "1", "-reqin", req, "-respout", out + ".tmp"],
                   check=True, capture_output=True, timeout=30)
    os.replace(out + ".tmp", out)
    return out


def expired_response_file(ca, cert, out, hours_ago=2):
    """A "good" OCSP response for cert signed by ca whose nextUpdate passed an hour ago."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    def load(p):
        return x509.load_pem_x509_certificate(open(p, "rb").read())
    leaf, issuer = load(cert), load(ca.cert)
    key = serialization.load_pem_private_key(open(ca.key, "rb").read(), None)
    now = datetime.datetime.utcnow()
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf, issuer=issuer, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=now - datetime.timedelta(hours=hours_ago),
        next_update=now - datetime.timedelta(hours=hours_ago - 1),
        revocation_time=None, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    der = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    with open(out + ".tmp", "wb") as f:
        f.write(der)
    os.replace(out + ".tmp", out)
    return out
