"""Certificate selection: SNI picks other.test's cert; RSA-only clients get the RSA cert."""
import testenv
from testenv import Conn, fingerprint, s_client, tls_context


def _config(certs, tmp_path, p13, p12):
    routes = [{"path_prefix": "/", "backend": "status"}]
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore(), "rsa": certs.rsa.keystore(),
                      "other": certs.other.keystore()},
        "listeners": [
            {"name": "tls13", "address": "127.0.0.1:%d" % p13,
             "tls": {"certificates": ["ec", "rsa", "other"]}, "routes": routes},
            {"name": "tls12", "address": "127.0.0.1:%d" % p12,
             "tls": {"certificates": ["ec", "rsa", "other"], "min_version": "TLS1.2",
                     "max_version": "TLS1.3",
                     "cipher_suites": ["TLS_AES_128_GCM_SHA256",
                                       "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                                       "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]},
             "routes": routes},
        ],
        "backends": {"status": {"builtin": "status"}},
    }


def _fp_pem(pem):
    import ssl
    return fingerprint(ssl.PEM_cert_to_DER_cert(pem))


def test_sni_and_key_type_selection(gateway, certs, tmp_path):
    p13, p12 = testenv.free_port(), testenv.free_port()
    gateway(_config(certs, tmp_path, p13, p12))
    ec, rsa, other = (fingerprint(k.cert) for k in (certs.ec, certs.rsa, certs.other))

    # default client: ECDSA cert for localhost, verified against the test CA
    with Conn(p13, sni="localhost") as c:
        assert fingerprint(c.peer_cert_der()) == ec
        assert c.request("GET", "/").status == 200
    # unknown name: still the default certificate
    with Conn(p13, sni="unknown.test", ctx=tls_context(verify=False)) as c:
        assert fingerprint(c.peer_cert_der()) == ec
    # SNI other.test
    with Conn(p13, sni="other.test") as c:
        assert fingerprint(c.peer_cert_der()) == other
        assert c.request("GET", "/", headers=[("Host", "other.test")]).status == 200
    r = s_client(p13, sni="other.test")
    assert r.connected and _fp_pem(r.peer_cert_pem) == other, r.out

    # TLS 1.3 client that can only verify RSA signatures
    r = s_client(p13, "-tls1_3", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256")
    assert r.connected, r.out + r.err
    assert _fp_pem(r.peer_cert_pem) == rsa, "RSA-only client did not get the RSA cert:\n" + r.out
    r = s_client(p13, "-tls1_3")
    assert _fp_pem(r.peer_cert_pem) == ec, r.out

    # TLS 1.2 client offering only an ECDHE-RSA suite
    r = s_client(p12, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert r.cipher == "ECDHE-RSA-AES128-GCM-SHA256", r.out + r.err
    assert _fp_pem(r.peer_cert_pem) == rsa, r.out
    r = s_client(p12, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert r.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256", r.out
    assert _fp_pem(r.peer_cert_pem) == ec, r.out
