"""OCSP stapling (tls.ocsp_stapling): a response fetched from the certificate's AIA responder
(`openssl ocsp` over the CA's index file, started here) is stapled and `openssl s_client -status`
shows it; a response from a file likewise; an expired response, or one for another certificate,
is never stapled; a file replaced while running is re-read; handshakes under load while the
file flips between a good and an expired response (and reloads re-read it) staple only current
responses; `tlsgate check` shows status and expiry; config errors."""
import datetime
import json
import os
import shutil
import signal
import threading
import time

import pytest

import testenv
from testenv.mtls import PKI
from testenv.ocsp import OcspResponder, expired_response_file, response_file


@pytest.fixture(scope="module")
def spki(tmp_path_factory):
    """A server certificate for localhost under the test intermediate, naming an OCSP responder
    on a loopback port (AIA)."""
    d = str(tmp_path_factory.mktemp("staplepki"))
    port = testenv.free_port()
    p = PKI(d, ocsp="http://127.0.0.1:%d" % port)
    p.srv = p.client("srv", "/O=tlsgate tests/CN=localhost", sans=["DNS:localhost"],
                     eku="serverAuth", days=60)
    p.other = p.client("other", "/O=tlsgate tests/CN=other", eku="serverAuth")
    p.valid(p.inter, p.srv.cert)
    p.valid(p.inter, p.other.cert)
    p.ocsp_port = port
    return p


@pytest.fixture
def responder(spki, tmp_path):
    r = OcspResponder(spki, spki.ocsp_port, str(tmp_path))
    yield r
    r.close()


def _config(spki, tmp_path, port, stapling):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"srv": {"type": "pem", "cert": spki.srv.chain, "key": spki.srv.key}},
        "listeners": [{"name": "edge", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["srv"], "ocsp_stapling": stapling},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
    }


def _status(port, spki):
    """What s_client -status saw: ("good", text) when a staple came, (None, text) when not."""
    r = testenv.s_client(port, "-status", "-CAfile", spki.root.cert)
    assert r.connected, r.out + r.err
    if "OCSP response: no response sent" in r.out:
        return None, r.out
    assert "OCSP Response Status: successful" in r.out, r.out
    for line in r.out.splitlines():
        if "Cert Status:" in line:
            return line.split(":", 1)[1].strip(), r.out
    return "?", r.out


def _check(path):
    r = testenv.tlsgate("check", "-c", str(path))
    return r.returncode, r.stdout + r.stderr


def test_fetched_from_the_aia_responder(gateway, spki, responder, tmp_path):
    port = testenv.free_port()
    gw = gateway(_config(spki, tmp_path, port, {"fetch": True}))
    assert gw.wait_log(lambda s: "OCSP staple for" in s and "fetched from" in s, timeout=10), \
        gw.log_tail()
    status, out = _status(port, spki)
    assert status == "good", out
    assert "Responder Id" in out
    hits = responder.hits
    for _ in range(3):
        assert _status(port, spki)[0] == "good"
    assert responder.hits == hits, "handshakes staple the kept response, not a new fetch"
    # A reload keeps the fetched response (the staple is shared by both configs).
    cfg = json.loads(json.dumps(gw.config))
    cfg["log"]["level"] = "debug"
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "generation 2" in s), gw.log_tail()
    assert _status(port, spki)[0] == "good"
    # check asks the responder and prints the status and expiry.
    code, out = _check(gw.config_path)
    assert code == 0, out
    line = [l for l in out.splitlines() if l.strip().startswith("OCSP staple (")]
    assert len(line) == 1 and "fetched from http://127.0.0.1:%d" % spki.ocsp_port in line[0] \
        and "good, produced for this certificate" in line[0] and "expires 20" in line[0], out


def test_responder_down_no_staple(gateway, spki, tmp_path):
    port = testenv.free_port()
    gw = gateway(_config(spki, tmp_path, port, {"fetch": True}))
    assert gw.wait_log(lambda s: "OCSP staple for" in s and "fetching from" in s
                       and "tried again in 30 s" in s, timeout=10), gw.log_tail()
    assert _status(port, spki)[0] is None


def test_from_file_expired_and_replaced(gateway, spki, tmp_path):
    resp = str(tmp_path / "srv.ocsp")
    expired_response_file(spki.inter, spki.srv.cert, resp)
    port = testenv.free_port()
    gw = gateway(_config(spki, tmp_path, port, {"file": resp}))
    assert "expired" in gw.log_text() and "no OCSP response is stapled now" in gw.log_text(), \
        gw.log_tail()
    status, out = _status(port, spki)
    assert status is None, "an expired response must not be stapled:\n" + out
    code, out = _check(gw.config_path)
    assert code == 0 and "none stapled: the response from" in out and "expired" in out, out

    response_file(spki, spki.inter, spki.srv.cert, resp, str(tmp_path))
    assert gw.wait_log(lambda s: "re-read from" in s, timeout=10), gw.log_tail()
    status, out = _status(port, spki)
    assert status == "good", out
    code, out = _check(gw.config_path)
    assert code == 0 and "OCSP staple (file %s): good" % resp in out, out

    # Replaced by an expired one again: stapling stops at once.
    expired_response_file(spki.inter, spki.srv.cert, resp)
    assert gw.wait_log(lambda s: "not stapled" in s.split("re-read from")[-1], timeout=10), \
        gw.log_tail()
    assert _status(port, spki)[0] is None


def _next_update(out):
    """The stapled response's Next Update (UTC) from s_client -status output."""
    for line in out.splitlines():
        if line.strip().startswith("Next Update:"):
            text = " ".join(line.split(":", 1)[1].split())
            return datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y GMT")
    raise AssertionError("no Next Update in a stapled response:\n" + out)


def test_file_flipped_under_load(gateway, spki, tmp_path):
    """Handshakes on two workers while the staple file flips between a good and an expired
    response, each flip followed by a reload (which re-reads it on the spot): no stapled
    response is ever expired, each phase staples what its file says once the reload is done,
    and (under ASan) no set of responses is read after it was freed."""
    good = response_file(spki, spki.inter, spki.srv.cert, str(tmp_path / "good.ocsp"),
                         str(tmp_path))
    expired = expired_response_file(spki.inter, spki.srv.cert, str(tmp_path / "expired.ocsp"))
    resp = str(tmp_path / "srv.ocsp")
    shutil.copyfile(good, resp)
    port = testenv.free_port()
    cfg = _config(spki, tmp_path, port, {"file": resp})
    cfg["workers"] = 2
    gw = gateway(cfg)

    stop = threading.Event()
    results = []  # (start, end, status or None, next update or None)
    errors = []

    def client():
        while not stop.is_set():
            start = time.monotonic()
            try:
                status, out = _status(port, spki)
                nu = _next_update(out) if status is not None else None
            except AssertionError as e:
                errors.append(str(e))
                return
            results.append((start, time.monotonic(), status, nu))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for th in threads:
        th.start()
    phases = []  # (stapled expected, from, until): after the reload was done, until the next flip
    try:
        for i in range(8):
            want = i % 2 == 1
            flipped = time.monotonic()
            if phases:
                phases[-1] = phases[-1][:2] + (flipped,)
            tmp = resp + ".new"
            shutil.copyfile(good if want else expired, tmp)
            os.replace(tmp, resp)
            gw.signal(signal.SIGHUP)
            # (the same document: the version stays, each reload says so)
            assert gw.wait_log(lambda s: s.count("config reloaded (generation 1 kept") == i + 1,
                               timeout=10), gw.log_tail()
            phases.append((want, time.monotonic(), None))
            time.sleep(0.3)
        phases[-1] = phases[-1][:2] + (time.monotonic(),)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=60)
    assert not errors, errors[0]
    now = datetime.datetime.utcnow()
    stapled = [r for r in results if r[2] is not None]
    assert stapled and len(stapled) < len(results), (len(stapled), len(results))
    for r in stapled:
        assert r[2] == "good" and r[3] > now, "an expired response was stapled: %r" % (r,)
    checked = 0
    for want, begin, until in phases:
        for start, end, status, _ in results:
            if start >= begin + 0.05 and end <= until:
                checked += 1
                assert (status is not None) == want, \
                    "phase %s: a handshake %s stapled" % ("good" if want else "expired",
                                                         "was" if status else "was not")
    assert checked >= 8, (checked, len(results))


def test_file_for_another_certificate(gateway, spki, tmp_path):
    resp = response_file(spki, spki.inter, spki.other.cert, str(tmp_path / "other.ocsp"),
                         str(tmp_path))
    port = testenv.free_port()
    gw = gateway(_config(spki, tmp_path, port, {"file": resp}))
    assert "about another certificate" in gw.log_text(), gw.log_tail()
    assert _status(port, spki)[0] is None


def test_config_errors(certs, spki, tmp_path):
    bad = {
        "version": 1,
        "keystores": {"ec": certs.ec.keystore(),
                      "srv": {"type": "pem", "cert": spki.srv.chain, "key": spki.srv.key}},
        "listeners": [
            {"name": "a", "address": "127.0.0.1:1",
             "tls": {"certificates": ["srv"], "ocsp_stapling": {}},
             "routes": [{"path_prefix": "/", "backend": "s"}]},
            {"name": "b", "address": "127.0.0.1:2",
             "tls": {"certificates": ["srv"], "ocsp_stapling": {"fetch": True, "file": "x"}},
             "routes": [{"path_prefix": "/", "backend": "s"}]},
            {"name": "d", "address": "127.0.0.1:4",
             "tls": {"certificates": ["srv"], "ocsp_stapling": {"file": "missing.der"}},
             "routes": [{"path_prefix": "/", "backend": "s"}]},
        ],
        "backends": {"s": {"builtin": "status"}},
    }
    path = tmp_path / "o.json"
    path.write_text(json.dumps(bad, indent=2))
    code, out = _check(path)
    assert code == 2, out
    for needle in ("/listeners/0/tls/ocsp_stapling: needs \"file\"",
                   "/listeners/1/tls/ocsp_stapling: give either \"file\" or \"fetch\": true",
                   "/listeners/2/tls/ocsp_stapling/file: cannot read \"missing.der\""):
        assert needle in out, out
    assert "o.json:" in out
    # Checked once the key material loads: a certificate without a responder cannot fetch.
    bad["listeners"] = [{"name": "c", "address": "127.0.0.1:3",
                         "tls": {"certificates": ["ec"], "ocsp_stapling": {"fetch": True}},
                         "routes": [{"path_prefix": "/", "backend": "s"}]}]
    path.write_text(json.dumps(bad, indent=2))
    code, out = _check(path)
    assert code == 2, out
    assert "/listeners/0/tls/ocsp_stapling: keystore \"ec\": cannot fetch OCSP staples: the " \
        "certificate names no http:// OCSP responder" in out, out
