"""The web console (issue 13) in a real browser: Debian's chromium, headless, driven over the
DevTools protocol. Log in with the admin credentials (a Secure, HttpOnly, SameSite=Strict session
cookie), see a certificate's days left (highlighted under 30), add an allowed subject through the
page and see a handshake with that certificate admitted; writes without the CSRF token are
refused; the page's Content-Security-Policy allows no inline script. A screenshot is saved as a
test artefact (test-artifacts/console.png, or $TLSGATE_ARTIFACTS)."""
import os
import ssl
import subprocess

import pytest

import testenv
from testenv import Conn
from testenv.admin import Admin, admin_section, password_hash
from testenv.browser import Browser, available
from testenv.mtls import PKI

PW = "console-admin-pw"
CORDA = "CN=CordaOperator,C=GB,L=London,O=Org"

pytestmark = pytest.mark.skipif(not available(), reason="chromium is not installed "
                                "(scripts/deps.sh installs it)")


@pytest.fixture(scope="module")
def pw_hash():
    return password_hash(PW)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = PKI(str(tmp_path_factory.mktemp("consolepki")))
    p.alice = p.client("alice", "/C=GB/L=London/O=Org/CN=CordaOperator")
    return p


def _soon_cert(d):
    """A localhost certificate with 12 days left."""
    crt, key = os.path.join(d, "soon.crt"), os.path.join(d, "soon.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-days", "12", "-nodes", "-subj",
                    "/O=Example Ltd/CN=soon.localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return {"type": "pem", "cert": crt, "key": key}


def _admitted(port, client):
    ctx = testenv.tls_context()
    ctx.load_cert_chain(client.chain, client.key)
    try:
        with Conn(port, ctx=ctx) as c:
            return c.request("GET", "/").status == 200
    except (ssl.SSLError, ConnectionError, OSError):
        return False


def _artifact_dir():
    d = os.environ.get("TLSGATE_ARTIFACTS") or os.path.join(testenv.REPO, "test-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def test_console_in_a_real_browser(gateway, origin, certs, pki, tmp_path, pw_hash):
    o = origin("app")
    port, soon_port, aport = testenv.free_port(), testenv.free_port(), testenv.free_port()
    cfg = {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"web": certs.ec.keystore(), "soon": _soon_cert(str(tmp_path)),
                      "adminks": certs.rsa.keystore()},
        "truststores": {"partners": {"type": "pem", "file": pki.root.cert}},
        "listeners": [
            {"name": "p2p", "address": "127.0.0.1:%d" % port,
             "tls": {"certificates": ["web"], "min_version": "TLS1.2",
                     "client_auth": {"mode": "require", "truststore": "partners",
                                     "allowed_subjects": ["CN=bob,O=Org"]}},
             "routes": [{"path_prefix": "/", "backend": "status"}]},
            {"name": "legacy", "address": "127.0.0.1:%d" % soon_port,
             "tls": {"certificates": ["soon"]},
             "routes": [{"path_prefix": "/api", "backend": "app"},
                        {"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"},
                     "app": {"targets": [o.address, "127.0.0.1:%d" % testenv.free_port()],
                             "health": {"path": "/hello", "interval": 0.5, "timeout": 0.4}}},
        "admin": admin_section(aport, pw_hash, tls={"certificates": ["adminks"]}),
    }
    gw = gateway(cfg, ready_ports=[(port, False), (soon_port, True), (aport, True)])
    assert not _admitted(port, pki.alice)
    for _ in range(3):
        testenv.get(soon_port, "/", ctx=testenv.tls_context(verify=False))
    b = Browser()
    try:
        b.call("Emulation.setDeviceMetricsOverride", {"width": 1366, "height": 900,
                                                      "deviceScaleFactor": 1, "mobile": False})
        b.call("Network.enable")
        b.navigate("https://127.0.0.1:%d/" % aport)
        b.wait_for("!document.getElementById('login-view').hidden", what="the login form")
        # A wrong password first: an error on the page, no session.
        b.eval("document.getElementById('login-user').value='admin';"
               "document.getElementById('login-password').value='nope';"
               "document.getElementById('login-submit').click(); true")
        b.wait_for("document.getElementById('login-error').textContent.length > 0")
        b.eval("document.getElementById('login-password').value=%r;"
               "document.getElementById('login-submit').click(); true" % PW)
        b.wait_for("document.querySelectorAll('[data-test=cert-row]').length >= 3",
                   what="the certificates table")
        cookies = b.call("Network.getCookies")["cookies"]
        sess = [c for c in cookies if c["name"] == "tg_session"]
        assert sess and sess[0]["secure"] and sess[0]["httpOnly"]
        assert sess[0]["sameSite"] == "Strict"
        # Days left as the API says, highlighted under 30.
        with Admin(aport, password=PW) as a:
            inv = a.get("/api/v1/certificates").json
        want = sorted(str(c["days_left"]) for c in inv["certificates"])
        got = sorted(b.eval("[...document.querySelectorAll('[data-test=days-left]')]"
                            ".map(e => e.textContent)"))
        # the "soon" certificate has exactly 12 days: it reads 12 in the second it was made and 11
        # after, so the page and the API, asked a moment apart, may straddle that second
        assert len(got) == len(want) and all(
            abs(int(g) - int(w)) <= 1 for g, w in zip(got, want)), (got, want)
        soon = b.eval("[...document.querySelectorAll('.days.soon')].map(e => e.textContent)")
        assert soon in (["11"], ["12"]), soon
        assert b.eval("document.getElementById('version').textContent") == "1"
        # Live counters are filled from /metrics.
        b.wait_for("Number(document.getElementById('c-req').textContent) >= 3")
        # Backends with their targets in or out of rotation (a health check fails on the 2nd).
        b.wait_for("[...document.querySelectorAll('[data-test=target-state]')]"
                   ".map(e => e.textContent).join('|').includes('out (2/2 workers)')",
                   what="the dead target out of rotation on both workers")
        with Admin(aport, password=PW) as a:
            bes = {x["name"]: x for x in a.get("/api/v1/backends").json["backends"]}
        rot = {t["address"]: t["in_rotation"] for t in bes["app"]["targets"]}
        assert rot[o.address] is True and list(rot.values()).count(False) == 1
        # Add CordaOperator through the page.
        b.eval("document.querySelector('[data-test=allow-input-p2p]').value=%r;"
               "document.querySelector('[data-test=allow-add-p2p]').click(); true" % CORDA)
        b.wait_for("document.querySelector('[data-test=allow-list-p2p]').textContent"
                   ".includes(%r)" % CORDA, what="the new subject on the page")
        assert _admitted(port, pki.alice)
        b.wait_for("document.getElementById('version').textContent === '2'")
        # A write with the session cookie but without the CSRF token is refused.
        st = b.eval("fetch('/api/v1/reload', {method: 'POST', credentials: 'same-origin'})"
                    ".then(r => r.status)")
        assert st == 403
        # No inline script may run under the page's policy.
        csp_blocked = b.eval(
            "new Promise(res => { document.addEventListener('securitypolicyviolation', "
            "() => res(true)); const s = document.createElement('script'); "
            "s.textContent = 'window.__inline = 1'; document.body.append(s); "
            "setTimeout(() => res(window.__inline !== 1), 500); })")
        assert csp_blocked
        path = b.screenshot(os.path.join(_artifact_dir(), "console.png"))
        assert os.path.getsize(path) > 20000
        # Log out: the session is gone.
        b.eval("document.getElementById('logout').click(); true")
        b.wait_for("!document.getElementById('login-view').hidden")
        assert b.eval("fetch('/api/v1/config', {headers: {'X-Requested-With': 'console'}})"
                      ".then(r => r.status)") == 401
    finally:
        b.close()
    r = testenv.curl("-k", "-sI", "https://127.0.0.1:%d/" % aport)
    head = r.stdout.decode()
    assert "script-src 'self'" in head and "unsafe-inline" not in head
