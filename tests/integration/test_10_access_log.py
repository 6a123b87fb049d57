"""Access log lines (text and JSON) carry method, path, status, TLS version, suite and SNI."""
import json
import os

import pytest

import testenv
from testenv import Conn


def _config(certs, tmp_path, port, o, fmt, access):
    return {
        "version": 1, "workers": 1, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info", "format": fmt, "access_log": access},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": [o.address]}},
    }


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _lines_with(text, needle):
    return [l for l in text.splitlines() if needle in l]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_log(gateway, origin, certs, tmp_path, fmt):
    o = origin("app")
    port = testenv.free_port()
    access = os.path.join(str(tmp_path), "access-%s.log" % fmt)
    gw = gateway(_config(certs, tmp_path, port, o, fmt, access))
    with Conn(port, sni="localhost") as c:
        assert c.request("GET", "/echo?marker=m1", headers=[("Host", "h.example")]).status == 200
        assert c.request("POST", "/status/404?marker=m2", headers=[("Host", "h.example")], body=b"x").status == 404
        version, cipher = c.tls_version, c.cipher  # "TLSv1.3", "TLS_AES_256_GCM_SHA384"

    if not testenv.wait_until(lambda: len(_lines_with(_read(access), "marker=m2")) > 0,
                              testenv.t(3)):
        gw.stop()  # a buffered log must be flushed at the latest on exit
    text = _read(access)
    l1, l2 = _lines_with(text, "marker=m1"), _lines_with(text, "marker=m2")
    assert len(l1) == 1 and len(l2) == 1, "access log:\n" + text

    versions = (version, version.replace("TLSv", "TLS"), version.replace("v", " "))
    if fmt == "json":
        for line, method, status in ((l1[0], "GET", 200), (l2[0], "POST", 404)):
            doc = json.loads(line)
            values = [str(v) for v in _flatten(doc)]
            assert method in values, doc
            assert str(status) in values, doc
            assert any("marker=" in v for v in values), doc
            assert any(v in versions for v in values), doc
            assert cipher in values, doc
            assert "localhost" in values, doc
    else:
        for line, method, status in ((l1[0], "GET", " 200"), (l2[0], "POST", " 404")):
            assert method in line and status in line, line
            assert any(v in line for v in versions), line
            assert cipher in line, line
            assert "localhost" in line, line


def _flatten(doc):
    if isinstance(doc, dict):
        for v in doc.values():
            yield from _flatten(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _flatten(v)
    else:
        yield doc
