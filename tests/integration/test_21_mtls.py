"""Mutual TLS on listeners (tls.client_auth): modes, trust and chains, the subject allow list,
CRL-file revocation, identity headers to backends, per-route "require", and one log line and one
counter per refusal reason. Client certificates come from a root -> intermediate PKI made with the
openssl CLI (testenv.mtls) and from `tlsgate cert client`; clients are Python ssl, curl and
`openssl s_client`."""
import base64
import hashlib
import json
import socket
import ssl
import subprocess

import pytest

import testenv
from testenv import Conn, curl, s_client, tlsgate
from testenv.mtls import PKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("mtls"))
    p = PKI(d)
    p.alice = p.client("alice", "/C=GB/L=London/O=Org/CN=CordaOperator",
                       sans=["DNS:alice.example", "URI:spiffe://test/alice",
                             "email:alice@example.com"])
    p.bob = p.client("bob", "/O=Org/CN=bob")
    p.expired = p.client("expired", "/O=Org/CN=expired", start="20200101000000Z",
                         end="20210101000000Z")
    p.future = p.client("future", "/O=Org/CN=future", start="20400101000000Z",
                        end="20410101000000Z")
    p.foreign = p.client("foreign", "/O=elsewhere/CN=foreign", issuer=p.other_root)
    p.server_only = p.client("serveronly", "/O=Org/CN=serveronly", eku="serverAuth")
    # a critical extension nobody knows: a verification error no specific row names
    p.critical_ext = p.client("criticalext", "/O=Org/CN=criticalext",
                              extra=["1.3.6.1.4.1.55555.1=critical,ASN1:NULL"])
    p.revoked = p.client("revoked", "/O=Org/CN=revoked")
    p.revoke(p.inter, p.revoked.cert)
    p.crl_pem = p.crl(p.inter, p.path("inter.crl"))
    p.crl_der = p.crl(p.inter, p.path("inter.crl.der"), der=True)
    # a client made with `tlsgate cert` (issued directly by a root tlsgate made)
    r = tlsgate("cert", "ca", "--out", p.path("tgca"), "--subject", "CN=tlsgate-made CA")
    assert r.returncode == 0, r.stderr
    r = tlsgate("cert", "client", "--out", p.path("tgclient"), "--subject",
                "CN=carol,O=Org", "--ca", p.path("tgca"))
    assert r.returncode == 0, r.stderr
    p.tgca = p.path("tgca.crt")
    p.carol = type(p.alice)(p.path("tgclient.crt"), p.path("tgclient.key"),
                            p.path("tgclient.crt"), "CN=carol,O=Org")
    # trust: the root (and the tlsgate-made CA) in one bundle
    with open(p.path("trust.pem"), "w") as out:
        for f in (p.root.cert, p.tgca):
            out.write(open(f).read())
    p.trust = p.path("trust.pem")
    return p


def _config(certs, tmp_path, port, origin_port, client_auth, routes=None, truststores=None):
    ts = {"clients": {"type": "pem", "file": client_auth.pop("_trust")}}
    ts.update(truststores or {})
    client_auth.setdefault("truststore", "clients")
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "truststores": ts,
        "listeners": [{"name": "mtls", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"], "min_version": "TLS1.2",
                               "client_auth": client_auth},
                       "routes": routes or [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": ["127.0.0.1:%d" % origin_port]}},
    }


def _ctx(client=None, chain=True, tls12=False):
    ctx = testenv.tls_context()
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if client is not None:
        ctx.load_cert_chain(client.chain if chain else client.cert, client.key)
    return ctx


def _echo(port, client=None, chain=True, headers=None, path="/echo"):
    with Conn(port, ctx=_ctx(client, chain)) as c:
        return c.request("GET", path, headers=headers)


def _refused(port, client=None, chain=True, tls12=False):
    """True when the handshake (or the first exchange, with TLS 1.3) fails; a hang fails the test."""
    def exchange():
        with Conn(port, ctx=_ctx(client, chain, tls12)) as c:
            c.request("GET", "/echo")
    return testenv.refused(exchange)


def _start(gateway, origin, certs, pki, tmp_path, client_auth, **kw):
    o = origin("app")
    port = testenv.free_port()
    client_auth = dict(client_auth)
    client_auth.setdefault("_trust", pki.trust)
    # readiness by TCP connect: a TLS probe without a certificate would log a refusal itself
    gw = gateway(_config(certs, tmp_path, port, o.port, client_auth, **kw),
                 ready_ports=[(port, False)])
    return gw, port, o


def _status(gw):
    """The gateway's status JSON counters (via a plain status listener is not configured here,
    so read them from the log-less admin: the built-in status backend on a second route)."""
    return None


def _reason(gw, token, *more):
    needle = "reason=" + token

    def matching(text):
        # (a 403 for a route that requires a certificate is a request refusal, with its own
        # token: not one of these lines)
        return [l for l in text.splitlines() if needle in l and "request refused with" not in l]
    text = gw.wait_log(lambda s: matching(s), timeout=3)
    assert text, "no log line with %r:\n%s" % (needle, gw.log_tail())
    lines = matching(gw.log_text())
    assert len(lines) == 1, "want one line with %r:\n%s" % (needle, "\n".join(lines))
    for s in ("peer=127.0.0.1:", "listener=mtls") + more:
        assert s in lines[0], "%r missing from:\n%s" % (s, lines[0])
    return lines[0]


def _headers(r):
    return {k.lower(): v for k, v in json.loads(r.body)["headers"]}


# ---------------------------------------------------------------------------------------------

def test_valid_client_admitted_with_xfcc(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    r = _echo(port, pki.alice)
    assert r.status == 200, (r.status, r.body)
    h = _headers(r)
    xfcc = h["x-forwarded-client-cert"]
    der = ssl.PEM_cert_to_DER_cert(open(pki.alice.cert).read())
    assert xfcc.startswith("Hash=" + hashlib.sha256(der).hexdigest() + ";"), xfcc
    assert 'Subject="CN=CordaOperator,O=Org,L=London,C=GB"' in xfcc, xfcc
    assert 'URI="spiffe://test/alice"' in xfcc and 'DNS="alice.example"' in xfcc, xfcc
    assert "client-cert" not in h, "rfc9440 fields only with forward rfc9440/both"
    assert "reason=client_cert" not in gw.log_text(), gw.log_tail()


def test_rfc9440_and_spoofed_headers_stripped(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "forward": "rfc9440"})
    spoof = [("X-Forwarded-Client-Cert", "Hash=00;Subject=\"CN=admin\""),
             ("Client-Cert", ":AAAA:"), ("Client-Cert-Chain", ":AAAA:")]
    r = _echo(port, pki.alice, headers=spoof)
    assert r.status == 200, r.body
    hs = [(k.lower(), v) for k, v in json.loads(r.body)["headers"]]
    names = [k for k, _ in hs]
    assert "x-forwarded-client-cert" not in names, hs
    assert names.count("client-cert") == 1 and names.count("client-cert-chain") == 1, hs
    h = dict(hs)
    leaf = ssl.PEM_cert_to_DER_cert(open(pki.alice.cert).read())
    inter = ssl.PEM_cert_to_DER_cert(open(pki.inter.cert).read())
    assert h["client-cert"] == ":" + base64.b64encode(leaf).decode() + ":"
    assert h["client-cert-chain"] == ":" + base64.b64encode(inter).decode() + ":"


def _der_b64(pem_file):
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(open(pem_file).read())).decode()


def _s_client_echo(port, client, chain_file, *extra):
    """GET /echo with s_client presenting client's certificate plus chain_file's certificates;
    returns the forwarded headers (lower-cased names, in order)."""
    out = s_client(port, "-quiet", "-cert", client.cert, "-key", client.key, "-cert_chain",
                   chain_file, *extra,
                   input_=b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert "HTTP/1.1 200" in out.out, out.out[-2000:] + out.err[-2000:]
    resp = out.out[out.out.index("HTTP/1.1 200"):]
    body = resp[resp.index("\r\n\r\n") + 4:]
    doc, _ = json.JSONDecoder().raw_decode(body)
    return [(k.lower(), v) for k, v in doc["headers"]]


@pytest.mark.parametrize("tls", ["-tls1_3", "-tls1_2"])
def test_rfc9440_chain_is_the_verified_chain(gateway, origin, certs, pki, tmp_path, tls):
    """Client-Cert-Chain carries the chain the certificate was verified with (without the trust
    anchor), never certificates the client merely appended (issue 11)."""
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "forward": "rfc9440"})
    extra = pki.path("alice-extra-chain.pem")
    with open(extra, "w") as f:  # unrelated certificates around the real intermediate
        for p in (pki.foreign.cert, pki.inter.cert, pki.other_root.cert, pki.bob.cert,
                  pki.root.cert):
            f.write(open(p).read())
    hs = _s_client_echo(port, pki.alice, extra, tls)
    chain = [v for k, v in hs if k == "client-cert-chain"]
    assert chain == [":%s:" % _der_b64(pki.inter.cert)], chain
    # only the leaf sent, the intermediate not in the truststore: refused as before
    assert _refused(port, pki.alice, chain=False)


def test_rfc9440_chain_with_trust_anchor_when_asked(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "forward": "both", "forward_trust_anchor": True})
    hs = _s_client_echo(port, pki.alice, pki.inter.cert)
    chain = [v for k, v in hs if k == "client-cert-chain"]
    assert chain == [":%s:, :%s:" % (_der_b64(pki.inter.cert), _der_b64(pki.root.cert))], chain


def test_rfc9440_chain_too_large_is_left_out(gateway, origin, certs, pki, tmp_path):
    """A valid chain too large for the forwarded head: the request is served without
    Client-Cert-Chain (RFC 9440 allows it), logged once per connection, never a 431."""
    big = pki.intermediate("biginter", "/O=tlsgate tests/CN=Big Intermediate",
                           comment="x" * 9000)
    dave = pki.client("dave", "/O=Org/CN=dave", issuer=big)
    o = origin("app")
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port, o.port,
                  {"_trust": pki.trust, "mode": "require", "forward": "rfc9440"})
    cfg["limits"] = {"max_header_bytes": 4096}
    gw = gateway(cfg, ready_ports=[(port, False)])
    with Conn(port, ctx=_ctx(dave)) as c:
        for _ in range(2):
            r = c.request("GET", "/echo")
            assert r.status == 200, (r.status, r.body[:300])
            h = _headers(r)
            assert "client-cert-chain" not in h, list(h)
            assert h["client-cert"] == ":%s:" % _der_b64(dave.cert)
    lines = gw.log_lines("Client-Cert-Chain")
    assert len(lines) == 1 and "listener=mtls" in lines[0], gw.log_tail()
    assert "reason=forwarded_head_too_large" not in gw.log_text(), gw.log_tail()
    # a chain that fits is still sent
    r = _echo(port, pki.alice)
    assert r.status == 200 and "client-cert-chain" in _headers(r), r.body[:300]


@pytest.mark.parametrize("tls", ["-tls1_3", "-tls1_2"])
def test_oversized_certificate_message_gets_its_alert(gateway, origin, certs, pki, tmp_path, tls):
    """A Certificate message over OpenSSL's limit (here ~330 KB of chain): the client reads the
    illegal_parameter alert (not a reset first: the gateway drains what the client still sends
    before closing), and the refusal has its own reason (issue 11)."""
    huge = pki.intermediate("hugeinter", "/O=tlsgate tests/CN=Huge Intermediate",
                            comment="h" * 9000)
    chain = pki.path("huge-chain.pem")
    with open(chain, "w") as f:
        for _ in range(36):
            f.write(open(huge.cert).read())
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    out = s_client(port, tls, "-ign_eof", "-cert", pki.alice.cert, "-key", pki.alice.key,
                   "-cert_chain", chain,
                   input_=b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert "alert illegal parameter" in out.err, (out.out[-1500:], out.err[-1500:])
    _reason(gw, "handshake_message_too_large")
    assert "reason=protocol_error" not in gw.log_text(), gw.log_tail()


def test_forward_none_still_strips(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "forward": "none"})
    r = _echo(port, pki.alice, headers=[("X-Forwarded-Client-Cert", "Hash=00"),
                                        ("client-cert", ":AA:")])
    h = _headers(r)
    assert "x-forwarded-client-cert" not in h and "client-cert" not in h, h


def test_optional_without_certificate(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "optional"},
                         routes=[{"path_prefix": "/admin", "backend": "app",
                                  "client_auth": "require"},
                                 {"path_prefix": "/", "backend": "app"}])
    r = _echo(port)
    assert r.status == 200 and "x-forwarded-client-cert" not in _headers(r)
    r = _echo(port, path="/admin/x")
    assert r.status == 403, r.status
    assert "client certificate is required for this path" in r.text, r.text
    assert not [q for q in o.requests if q[1].startswith("/admin")], "reached the backend"
    r = _echo(port, pki.alice, path="/admin/x")
    assert r.status == 200, r.body
    # a bad certificate is refused even though a certificate is optional
    assert _refused(port, pki.foreign)
    _reason(gw, "client_cert_", "subject=\"CN=foreign,O=elsewhere\"")


def test_require_without_certificate(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    assert _refused(port)
    _reason(gw, "client_cert_missing")
    assert not o.requests


def test_mode_none_sends_no_certificate_request(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "none"})
    out = s_client(port, "-tls1_2", "-cert", pki.alice.cert, "-key", pki.alice.key,
                   input_=b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert out.connected, out.err
    assert "No client certificate CA names sent" in out.out or "Acceptable client certificate CA names" not in out.out
    assert "x-forwarded-client-cert" not in out.out.lower()


@pytest.mark.parametrize("send_names", [True, False])
def test_ca_names(gateway, origin, certs, pki, tmp_path, send_names):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "send_ca_names": send_names})
    out = s_client(port, "-tls1_2", "-cert", pki.alice.cert, "-key", pki.alice.key,
                   "-cert_chain", pki.inter.cert, input_=b"")
    if send_names:
        assert "Acceptable client certificate CA names" in out.out, out.out
        assert "mTLS Test Root" in out.out and "tlsgate-made CA" in out.out, out.out
    else:
        assert "No client certificate CA names sent" in out.out, out.out


@pytest.mark.parametrize("case,token,detail", [
    ("expired", "client_cert_expired", "expired on 2021-01-01"),
    ("future", "client_cert_not_yet_valid", "not valid before 2040-01-01"),
    ("server_only", "client_cert_wrong_usage", "unsuitable certificate purpose"),
    ("critical_ext", "client_cert_invalid", "unhandled critical extension"),
])
def test_refusal_reasons(gateway, origin, certs, pki, tmp_path, case, token, detail):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    client = getattr(pki, case)
    assert _refused(port, client)
    line = _reason(gw, token, detail, "subject=\"%s\"" % client.subject_rfc)
    assert "issuer=\"CN=mTLS Test Intermediate,O=tlsgate tests\"" in line, line
    assert not o.requests


def test_wrong_ca_and_missing_intermediate(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    # the leaf alone: its issuer (the intermediate) is neither sent nor trusted
    assert _refused(port, pki.alice, chain=False)
    _reason(gw, "client_cert_missing_intermediate", "CN=mTLS Test Intermediate")
    # with the intermediate: admitted
    assert _echo(port, pki.alice).status == 200
    # a chain up to a root we do not trust (sent with its root)
    with open(pki.path("foreign-full.pem"), "w") as f:
        f.write(open(pki.foreign.cert).read() + open(pki.other_root.cert).read())
    pki.foreign.chain = pki.path("foreign-full.pem")
    assert _refused(port, pki.foreign)
    _reason(gw, "client_cert_unknown_ca", "CN=Other Root")


def test_tlsgate_made_client(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    r = curl("--cacert", certs.ca.cert, "--cert", pki.carol.cert, "--key", pki.carol.key,
             "https://localhost:%d/echo" % port, "--resolve", "localhost:%d:127.0.0.1" % port)
    assert r.returncode == 0, r.stderr
    h = {k.lower(): v for k, v in json.loads(r.stdout)["headers"]}
    assert 'Subject="CN=carol,O=Org"' in h["x-forwarded-client-cert"]


def test_allow_list(gateway, origin, certs, pki, tmp_path):
    # alice's subject written in another order and case, with spaces
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {
        "mode": "require",
        "allowed_subjects": ["cn=CordaOperator , c=GB,l=London, o=Org"]})
    assert _echo(port, pki.alice).status == 200
    assert _refused(port, pki.bob)
    _reason(gw, "client_cert_not_allowed", "subject=\"CN=bob,O=Org\"")
    assert [q for q in o.requests if q[1] == "/echo"].__len__() == 1


def _logfmt(line):
    """The (key, value) pairs a logfmt reader takes from a text log line: key=value, or
    key="..." with \\ and \" escapes; words without '=' are skipped."""
    out, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        k = i
        while i < n and line[i] not in " =\"":
            i += 1
        key = line[k:i].lstrip("(")
        if i < n and line[i] == "=":
            i += 1
            if i < n and line[i] == '"':
                i, v = i + 1, ""
                while i < n and line[i] != '"':
                    if line[i] == "\\" and i + 1 < n:
                        i += 1
                    v += line[i]
                    i += 1
                i += 1
            else:
                k2 = i
                while i < n and line[i] != " ":
                    i += 1
                v = line[k2:i]
            out.append((key, v))
        elif i < n and line[i] == '"':  # a quoted word of prose
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
    return out


def test_subject_cannot_add_log_fields(gateway, origin, certs, pki, tmp_path):
    """A subject holding quotes stays one quoted value in the text error log: read as logfmt,
    the refusal line has the one issuer the gateway wrote (issue 11)."""
    evil = pki.client("evil", '/O=Org/CN=x" issuer="CN=Partner CA')
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "allowed_subjects": ["CN=CordaOperator,O=Org,L=London,C=GB"]})
    assert _refused(port, evil)
    line = _reason(gw, "client_cert_not_allowed")
    fields = _logfmt(line[line.index("TLS handshake failed"):])
    issuers = [v for k, v in fields if k == "issuer"]
    subjects = [v for k, v in fields if k == "subject"]
    assert issuers == ["CN=mTLS Test Intermediate,O=tlsgate tests"], (issuers, line)
    assert len(subjects) == 1 and subjects[0].startswith('CN=x\\" issuer=\\"CN=Partner CA'), \
        (subjects, line)
    assert [k for k, _ in fields].count("reason") == 1, line


def test_allow_list_value_case_matters(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {
        "mode": "require", "allowed_subjects": ["CN=corDaoperator,C=GB,L=London,O=Org"]})
    assert _refused(port, pki.alice)


@pytest.mark.parametrize("entry", ["dns:ALICE.example", "uri:spiffe://test/alice",
                                   "email:alice@example.com", "spki:"])
def test_allow_list_san_and_pin_entries(gateway, origin, certs, pki, tmp_path, entry):
    if entry == "spki:":
        pub = subprocess.run(["openssl", "x509", "-in", pki.alice.cert, "-pubkey", "-noout"],
                             capture_output=True, check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                             capture_output=True, check=True).stdout
        entry = "spki:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "allowed_subjects": [entry]})
    assert _echo(port, pki.alice).status == 200
    assert _refused(port, pki.bob)


@pytest.mark.parametrize("der", [False, True])
def test_revoked_by_crl_file(gateway, origin, certs, pki, tmp_path, der):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {
        "mode": "require",
        "revocation": {"mode": "soft_fail", "fetch": False,
                       "crl": [pki.crl_der if der else pki.crl_pem]}})
    assert _echo(port, pki.alice).status == 200
    assert _refused(port, pki.revoked)
    line = _reason(gw, "client_cert_revoked", "revoked on", "CRL file")


def test_hard_fail_scope_leaf_and_chain(gateway, origin, certs, pki, tmp_path):
    # a CRL for the intermediate's certificates only: under scope leaf a missing CRL for the
    # intermediate itself (issued by the root) must not refuse valid leaves
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {
        "mode": "require",
        "revocation": {"mode": "hard_fail", "fetch": False, "crl": [pki.crl_pem]}})
    assert _echo(port, pki.alice).status == 200
    gw2, port2, o2 = _start(gateway, origin, certs, pki, tmp_path, {
        "mode": "require",
        "revocation": {"mode": "hard_fail", "fetch": False, "scope": "chain",
                       "crl": [pki.crl_pem]}})
    assert _refused(port2, pki.alice)
    _reason(gw2, "client_cert_status_unknown", "CN=mTLS Test Root")


def test_curl_and_s_client(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    r = curl("--cacert", certs.ca.cert, "--cert", pki.alice.chain, "--key", pki.alice.key,
             "https://localhost:%d/echo" % port, "--resolve", "localhost:%d:127.0.0.1" % port)
    assert r.returncode == 0, r.stderr
    r = curl("--cacert", certs.ca.cert, "https://localhost:%d/echo" % port,
             "--resolve", "localhost:%d:127.0.0.1" % port)
    assert r.returncode != 0
    out = s_client(port, "-ign_eof", "-tls1_2", "-cert", pki.bob.cert, "-key", pki.bob.key, "-cert_chain",
                   pki.inter.cert,
                   input_=b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert "CN=bob" in out.out, out.out[-2000:]


# ---------------------------------------------------------------------------------------------
# every refusal reason: one log line and one counter each

def _two_listener_config(certs, tmp_path, pki, o, p1, p2, p3):
    cfg = _config(certs, tmp_path, p1, o.port, {
        "_trust": pki.trust, "mode": "require",
        "allowed_subjects": ["CN=CordaOperator,O=Org,L=London,C=GB", "CN=revoked,O=Org",
                             "CN=expired,O=Org", "CN=future,O=Org", "CN=serveronly,O=Org"],
        "revocation": {"mode": "soft_fail", "fetch": False, "crl": [pki.crl_pem]}})
    cfg["listeners"].append({"name": "strict", "address": "127.0.0.1:%d" % p2,
                             "tls": {"certificates": ["ec"], "client_auth": {
                                 "mode": "require", "truststore": "clients",
                                 "revocation": {"mode": "hard_fail", "scope": "chain",
                                                "fetch": False, "crl": [pki.crl_pem]}}},
                             "routes": [{"path_prefix": "/", "backend": "app"}]})
    cfg["listeners"].append({"name": "stat", "address": "127.0.0.1:%d" % p3,
                             "tls": {"certificates": ["ec"]},
                             "routes": [{"path_prefix": "/", "backend": "status"}]})
    cfg["backends"]["status"] = {"builtin": "status"}
    return cfg


def test_every_reason_logged_and_counted(gateway, origin, certs, pki, tmp_path):
    o = origin("app")
    p1, p2, p3 = testenv.free_port(), testenv.free_port(), testenv.free_port()
    gw = gateway(_two_listener_config(certs, tmp_path, pki, o, p1, p2, p3),
                 ready_ports=[(p1, False), (p2, False), (p3, False)])
    with open(pki.path("foreign-full.pem"), "w") as f:
        f.write(open(pki.foreign.cert).read() + open(pki.other_root.cert).read())
    foreign_full = type(pki.foreign)(pki.foreign.cert, pki.foreign.key, pki.path("foreign-full.pem"))
    cases = [
        (p1, None, True, "client_cert_missing"),
        (p1, pki.expired, True, "client_cert_expired"),
        (p1, pki.future, True, "client_cert_not_yet_valid"),
        (p1, foreign_full, True, "client_cert_unknown_ca"),
        (p1, pki.alice, False, "client_cert_missing_intermediate"),
        (p1, pki.server_only, True, "client_cert_wrong_usage"),
        (p1, pki.critical_ext, True, "client_cert_invalid"),
        (p1, pki.revoked, True, "client_cert_revoked"),
        (p1, pki.bob, True, "client_cert_not_allowed"),
        (p2, pki.alice, True, "client_cert_status_unknown"),
    ]
    for port, client, chain, token in cases:
        assert _refused(port, client, chain), token
    assert _echo(p1, pki.alice).status == 200
    r = testenv.get(p3, "/")
    failures = r.json()["handshake_failures"]
    text = gw.log_text()
    for port, client, chain, token in cases:
        assert failures.get(token) == 1, (token, failures)
        lines = [l for l in text.splitlines() if "reason=%s:" % token in l]
        assert len(lines) == 1, (token, gw.log_tail())
        assert "peer=127.0.0.1:" in lines[0] and "listener=" in lines[0]
        if client is not None:
            assert "subject=\"" in lines[0] and "issuer=\"" in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------
# live re-authorisation on reload

def _keepalive(port, client):
    c = Conn(port, ctx=_ctx(client))
    assert c.request("GET", "/echo").status == 200
    return c


@pytest.mark.parametrize("live", [True, False])
def test_reload_closes_connections_the_new_list_refuses(gateway, origin, certs, pki, tmp_path,
                                                        live):
    ca = {"mode": "require", "reauthorize_live": live,
          "allowed_subjects": ["CN=CordaOperator,O=Org,L=London,C=GB", "CN=bob,O=Org"]}
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, ca)
    a = _keepalive(port, pki.alice)
    b = _keepalive(port, pki.bob)
    cfg = dict(gw.config)
    cfg["listeners"][0]["tls"]["client_auth"]["allowed_subjects"] = [
        "CN=CordaOperator,O=Org,L=London,C=GB"]
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "generation 2" in s or "reloaded" in s, timeout=5), gw.log_tail()
    if live:
        assert gw.wait_log(lambda s: "closed after reload" in s, timeout=5), gw.log_tail()
        line = [l for l in gw.log_text().splitlines() if "closed after reload" in l]
        assert len(line) == 1 and "CN=bob,O=Org" in line[0], line
        assert "reason=client_cert_not_allowed" in line[0], line
        assert b.is_closed(timeout=3)
    else:
        import time
        time.sleep(testenv.t(0.5))  # a re-check that would close it has had its chance
        assert b.request("GET", "/echo").status == 200
    assert a.request("GET", "/echo").status == 200
    # new handshakes follow the new list either way
    assert _refused(port, pki.bob)
    a.close()
    b.close()


def test_reload_lets_the_response_in_flight_finish(gateway, origin, certs, pki, tmp_path):
    import threading
    ca = {"mode": "require", "allowed_subjects": ["CN=bob,O=Org"]}
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, ca)
    b = _keepalive(port, pki.bob)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", b.request("GET", "/slow?seconds=1")))
    t.start()
    assert testenv.wait_until(lambda: any(p.startswith("/slow") for _, p, _ in o.requests),
                              testenv.t(5)), "the slow request never reached the origin"
    cfg = dict(gw.config)
    cfg["listeners"][0]["tls"]["client_auth"]["allowed_subjects"] = ["CN=alice,O=Org"]
    gw.reload(cfg)
    t.join(testenv.t(10))
    assert out["r"].status == 200 and out["r"].text == "slow done\n", out
    assert b.is_closed(timeout=testenv.t(3))
    assert "after the response in flight" in gw.log_text(), gw.log_tail()


# ---------------------------------------------------------------------------------------------
# tlsgate check --client-cert

def test_check_client_cert(certs, pki, tmp_path):
    cfg = _config(certs, tmp_path, testenv.free_port(), 1, {
        "_trust": pki.trust, "mode": "require",
        "allowed_subjects": ["CN=CordaOperator,O=Org,L=London,C=GB", "CN=revoked,O=Org"],
        "revocation": {"mode": "soft_fail", "fetch": False, "crl": [pki.crl_der]}})
    path = str(tmp_path / "gw.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = tlsgate("check", "-c", path, "--client-cert", pki.alice.chain)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("admitted: listener \"mtls\""), r.stdout
    r = tlsgate("check", "-c", path, "--client-cert", pki.alice.cert, "--chain", pki.inter.cert,
                "--listener", "mtls")
    assert r.returncode == 0, r.stdout + r.stderr
    r = tlsgate("check", "-c", path, "--client-cert", pki.bob.chain)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "refused" in r.stdout and "reason=client_cert_not_allowed" in r.stdout, r.stdout
    r = tlsgate("check", "-c", path, "--client-cert", pki.revoked.chain)
    assert r.returncode == 1 and "reason=client_cert_revoked" in r.stdout, r.stdout
    assert "revoked on" in r.stdout and "CRL file" in r.stdout, r.stdout
    r = tlsgate("check", "-c", path, "--client-cert", pki.alice.cert)
    assert r.returncode == 1 and "client_cert_missing_intermediate" in r.stdout, r.stdout
    # the policy is printed by plain check
    r = tlsgate("check", "-c", path)
    assert r.returncode == 0 and "client certificates: require" in r.stdout, r.stdout


# ---------------------------------------------------------------------------------------------
# bad input: located errors, and a reload with them changes nothing

def _check_errors(tmp_path, cfg):
    path = str(tmp_path / "bad.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    r = tlsgate("check", "-c", path)
    assert r.returncode == 2, r.stdout + r.stderr
    return r.stderr


def test_config_errors(certs, pki, tmp_path):
    fake = pki._ca("fakeroot", "/O=tlsgate tests/CN=mTLS Test Root", None)
    forged = pki.crl(fake, pki.path("forged.crl"))
    with open(pki.path("junk.crl"), "w") as f:
        f.write("not a crl\n")
    cfg = _config(certs, tmp_path, testenv.free_port(), 1, {
        "_trust": pki.trust, "mode": "require",
        "allowed_subjects": ["CN=ok,O=Org", "CN=x,,O=y", "FOO=bar", "spki:abc", "dns:",
                             "ip:300.1.1.1"],
        "revocation": {"mode": "hard_fail", "crl": [pki.path("junk.crl"), forged,
                                                    pki.path("missing.crl")]}})
    err = _check_errors(tmp_path, cfg)
    for path in ("/listeners/0/tls/client_auth/allowed_subjects/1",
                 "/listeners/0/tls/client_auth/allowed_subjects/2",
                 "/listeners/0/tls/client_auth/allowed_subjects/3",
                 "/listeners/0/tls/client_auth/allowed_subjects/4",
                 "/listeners/0/tls/client_auth/allowed_subjects/5",
                 "/listeners/0/tls/client_auth/revocation/crl/0",
                 "/listeners/0/tls/client_auth/revocation/crl/1",
                 "/listeners/0/tls/client_auth/revocation/crl/2"):
        assert path + ":" in err, (path, err)
    assert "allowed_subjects/0:" not in err, err
    assert "not signed by that CA" in err, err
    assert "bad.json:" in err  # file:line:col locations
    # config-level errors (reported before any file is opened)
    cfg = _config(certs, tmp_path, testenv.free_port(), 1, {"_trust": pki.trust,
                                                            "mode": "sometimes"},
                  routes=[{"path_prefix": "/", "backend": "app", "client_auth": "optional"}])
    err = _check_errors(tmp_path, cfg)
    assert "/listeners/0/tls/client_auth/mode:" in err and "sometimes" in err, err
    assert "/listeners/0/routes/0/client_auth:" in err, err
    # a route that requires a certificate on a listener that never asks for one
    cfg = _config(certs, tmp_path, testenv.free_port(), 1, {"_trust": pki.trust},
                  routes=[{"path_prefix": "/", "backend": "app", "client_auth": "require"}])
    err = _check_errors(tmp_path, cfg)
    assert "/listeners/0/routes/0/client_auth:" in err and "optional" in err, err
    cfg = _config(certs, tmp_path, testenv.free_port(), 1, {
        "_trust": pki.path("nope.pem"), "mode": "require"})
    err = _check_errors(tmp_path, cfg)
    assert "/truststores/clients" in err, err
    assert "cannot read" in err and "nope.pem" in err, err
    cfg = _config(certs, tmp_path, testenv.free_port(), 1, {"_trust": pki.trust,
                                                            "mode": "require"})
    del cfg["listeners"][0]["tls"]["client_auth"]["truststore"]
    cfg["listeners"][0]["tls"]["client_auth"]["truststore"] = "client"
    err = _check_errors(tmp_path, cfg)
    assert "did you mean \"clients\"" in err, err


def test_bad_reload_changes_nothing(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "allowed_subjects": ["CN=bob,O=Org"]})
    b = _keepalive(port, pki.bob)
    cfg = json.loads(json.dumps(gw.config))
    cfg["listeners"][0]["tls"]["client_auth"]["allowed_subjects"] = ["CN=x,,bad"]
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "allowed_subjects/0" in s, timeout=5), gw.log_tail()
    assert b.request("GET", "/echo").status == 200
    assert _echo(port, pki.bob).status == 200
    assert "closed after reload" not in gw.log_text()
    b.close()


@pytest.mark.parametrize("case,alert", [
    ("bob", "CERTIFICATE_UNKNOWN"),      # not on the list (OpenSSL 3.0 cannot send access_denied)
    ("revoked", "CERTIFICATE_REVOKED"),
    ("expired", "CERTIFICATE_EXPIRED"),
])
def test_refusal_alerts(gateway, origin, certs, pki, tmp_path, case, alert):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {
        "mode": "require", "allowed_subjects": ["CN=revoked,O=Org", "CN=expired,O=Org"],
        "revocation": {"mode": "soft_fail", "fetch": False, "crl": [pki.crl_pem]}})
    ctx = _ctx(getattr(pki, case), tls12=True)
    with pytest.raises(ssl.SSLError) as e:
        with Conn(port, ctx=ctx) as c:
            c.request("GET", "/echo")
    assert alert in str(e.value).upper().replace(" ", "_"), str(e.value)


def _resume(port, ctx, session=None):
    """One TLS 1.2 connection (so the session is there at once) and a GET; (status, session,
    reused, xfcc)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    ss = ctx.wrap_socket(s, server_hostname="localhost", session=session)
    try:
        ss.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = ss.recv(65536)
            if not d:
                break
            data += d
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head else None
        xfcc = None
        if status == 200:
            xfcc = {k.lower(): v for k, v in json.loads(body)["headers"]}.get(
                "x-forwarded-client-cert")
        return status, ss.session, ss.session_reused, xfcc
    finally:
        ss.close()


def test_resumption_across_reloads_only_under_the_same_policy(gateway, origin, certs, pki,
                                                               tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    ctx = _ctx(pki.alice, tls12=True)
    st, sess, reused, xfcc = _resume(port, ctx)
    assert st == 200 and not reused and xfcc
    st, sess2, reused, xfcc2 = _resume(port, ctx, sess)
    assert st == 200 and reused, "sessions resume under the same policy"
    assert xfcc2 == xfcc, "a resumed session forwards the same identity"
    # A reload that leaves the client-certificate policy as it was keeps sessions resumable
    # (the ticket carries the policy's fingerprint) ...
    cfg = json.loads(json.dumps(gw.config))
    cfg["log"]["level"] = "debug"
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "generation 2" in s, timeout=5), gw.log_tail()
    st, sess2, reused, xfcc3 = _resume(port, ctx, sess2)
    assert st == 200 and reused and xfcc3 == xfcc, "same policy after a reload: resumed"
    # ... one that changes it makes the client do a full handshake under the new policy.
    cfg["listeners"][0]["tls"]["client_auth"]["allowed_subjects"] = ["CN=bob,O=Org"]
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "generation 3" in s, timeout=5), gw.log_tail()
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, ValueError)):
        st, _, reused, _ = _resume(port, ctx, sess2)
        assert st is None, "alice's old session must not get her past the new list"


def test_verify_depth(gateway, origin, certs, pki, tmp_path):
    # depth 1: a trust anchor right above the leaf; alice's chain has an intermediate
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "require", "verify_depth": 1})
    assert _refused(port, pki.alice)
    _reason(gw, "client_cert_invalid", "chain too long")
    assert _echo(port, pki.carol).status == 200  # issued by a root directly
    gw2, port2, o2 = _start(gateway, origin, certs, pki, tmp_path,
                            {"mode": "require", "verify_depth": 2})
    assert _echo(port2, pki.alice).status == 200


def test_bad_signature(gateway, origin, certs, pki, tmp_path):
    # alice's certificate with one byte of its signature changed (the key still matches)
    der = bytearray(ssl.PEM_cert_to_DER_cert(open(pki.alice.cert).read()))
    der[-5] ^= 0x01
    bad = pki.path("alice-badsig.pem")
    with open(bad, "w") as f:
        f.write(ssl.DER_cert_to_PEM_cert(bytes(der)) + open(pki.inter.cert).read())
    client = type(pki.alice)(bad, pki.alice.key, bad)
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path, {"mode": "require"})
    assert _refused(port, client)
    _reason(gw, "client_cert_bad_signature", "subject=\"CN=CordaOperator")


# ---------------------------------------------------------------------------------------------
# HTTP/2 (the listener's default alpn offers it): identity and refusals as for HTTP/1.1

def test_http2_forwards_and_refuses_as_http11(gateway, origin, certs, pki, tmp_path):
    gw, port, o = _start(gateway, origin, certs, pki, tmp_path,
                         {"mode": "optional", "forward": "both"},
                         routes=[{"path_prefix": "/admin", "backend": "app",
                                  "client_auth": "require"},
                                 {"path_prefix": "/", "backend": "app"}])
    base = ["--cacert", certs.ca.cert, "--resolve", "localhost:%d:127.0.0.1" % port]
    spoof = ["-H", "X-Forwarded-Client-Cert: Hash=00", "-H", "Client-Cert: :AA:",
             "-H", "X-Forwarded-For: 10.9.9.9", "-H", "X-Forwarded-Proto: gopher"]
    seen = {}
    for proto in ("--http2", "--http1.1"):
        r = curl(proto, *base, "--cert", pki.alice.chain, "--key", pki.alice.key, *spoof,
                 "-w", "\n%{http_version}", "https://localhost:%d/echo" % port)
        doc, _, ver = r.stdout.rpartition(b"\n")
        assert ver == (b"2" if proto == "--http2" else b"1.1"), (ver, r.stderr)
        hs = [(k.lower(), v) for k, v in json.loads(doc)["headers"]]
        fwd = sorted((k, v) for k, v in hs if k.startswith("x-forwarded") or
                     k.startswith("client-cert"))
        assert [k for k, _ in fwd].count("x-forwarded-client-cert") == 1, fwd
        assert dict(fwd)["x-forwarded-for"] == "127.0.0.1", fwd
        assert dict(fwd)["x-forwarded-proto"] == "https", fwd
        assert 'Subject="CN=CordaOperator,O=Org,L=London,C=GB"' in \
            dict(fwd)["x-forwarded-client-cert"], fwd
        seen[proto] = fwd
    assert seen["--http2"] == seen["--http1.1"]
    # the route that requires a certificate refuses a client without one, alike
    for proto in ("--http2", "--http1.1"):
        r = curl(proto, *base, "-w", "\n%{http_version} %{http_code}",
                 "https://localhost:%d/admin/x" % port)
        body, _, tail = r.stdout.rpartition(b"\n")
        assert tail == (b"2 403" if proto == "--http2" else b"1.1 403"), r.stdout
        assert b"client certificate is required for this path" in body, body
    assert not [q for q in o.requests if q[1].startswith("/admin")], "reached the backend"
    lines = gw.log_lines("reason=client_cert_required_for_route")
    assert len(lines) == 2, lines
