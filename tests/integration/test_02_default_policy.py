"""A listener with no TLS options offers TLS 1.3 only, with its three standard suites."""
import re
import subprocess

import testenv
from testenv import s_client

TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}


def _config(certs, tmp_path, port):
    return {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "access_log": "stdout"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
    }


def parse_sslscan(out):
    """{protocol: bool}, [(version, suite)], text of the renegotiation and compression sections."""
    protocols, suites, sections, cur = {}, [], {}, None
    for line in out.splitlines():
        m = re.match(r"^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)\s*$", line.strip())
        if m:
            protocols[m.group(1)] = m.group(2) == "enabled"
            continue
        m = re.match(r"^(Preferred|Accepted)\s+(\S+)\s+\d+\s+bits\s+(\S+)", line.strip())
        if m:
            suites.append((m.group(2), m.group(3)))
            continue
        if line.startswith("  ") and line.strip().endswith(":"):
            cur = line.strip().rstrip(":")
            sections[cur] = ""
        elif cur:
            sections[cur] += line + "\n"
    return protocols, suites, sections


def test_sslscan_default_policy(gateway, certs, tmp_path):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port))
    r = subprocess.run(["sslscan", "--no-colour", "127.0.0.1:%d" % port], capture_output=True,
                       timeout=testenv.t(120))
    out = r.stdout.decode("utf-8", "replace")
    protocols, suites, sections = parse_sslscan(out)
    assert protocols == {"SSLv2": False, "SSLv3": False, "TLSv1.0": False, "TLSv1.1": False,
                         "TLSv1.2": False, "TLSv1.3": True}, out
    assert {v for v, _ in suites} == {"TLSv1.3"}, out
    assert {s for _, s in suites} == TLS13_SUITES, out
    assert len(suites) == 3, out
    # sslscan 2.0 on Debian cannot test compression ("OpenSSL version does not support
    # compression"); it must at least never report it enabled.
    comp = sections.get("TLS Compression", "")
    assert "Compression enabled" not in comp, out
    reneg = sections.get("TLS renegotiation", "")
    assert "not supported" in reneg or "renegotiation" not in reneg.lower(), out


def test_s_client_versions_and_suites(gateway, certs, tmp_path):
    port = testenv.free_port()
    gateway(_config(certs, tmp_path, port))
    for suite in sorted(TLS13_SUITES):
        r = s_client(port, "-tls1_3", "-ciphersuites", suite)
        assert r.connected and r.cipher == suite, r.out + r.err
        assert "Compression: NONE" in r.out, r.out
    for flag in ("-tls1_2", "-tls1_1", "-tls1"):
        r = s_client(port, flag, "-cipher", "ALL:@SECLEVEL=0")
        assert not r.connected, "%s was accepted:\n%s" % (flag, r.out)
    r = s_client(port, "-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256")
    assert not r.connected, r.out
