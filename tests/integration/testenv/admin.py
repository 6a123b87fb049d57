"""The admin API from Python: http.client over TLS with HTTP Basic, and password hashes made by
the binary itself (`tlsgate secret hash`)."""
import base64
import http.client
import json
import socket
import ssl
import subprocess

from .env import BIN, LOOPBACK, t


def password_hash(password, binary=None):
    out = subprocess.run([binary or BIN, "secret", "hash"], input=password.encode(),
                         capture_output=True, check=True)
    return out.stdout.decode().strip()


def admin_section(port, password_hash_value, user="admin", tls=None, **extra):
    sec = {"address": "%s:%d" % (LOOPBACK, port),
           "tls": tls or {"certificates": ["main"]},
           "users": [{"name": user, "password_hash": password_hash_value}]}
    sec.update(extra)
    return sec


class _BoundHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection from a chosen loopback source address (a distinct peer)."""

    def __init__(self, *a, source=None, **kw):
        super().__init__(*a, source_address=(source, 0) if source else None, **kw)


class Admin:
    """One kept-alive connection to the admin API."""

    def __init__(self, port, user="admin", password=None, source=None, timeout=10):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.port = port
        self.auth = None
        if password is not None:
            self.auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.conn = _BoundHTTPS(LOOPBACK, port, context=ctx, timeout=t(timeout), source=source)

    def request(self, method, path, body=None, headers=None, auth=True):
        h = dict(headers or {})
        if auth and self.auth and "Authorization" not in h:
            h["Authorization"] = self.auth
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        resp.body = data
        try:
            resp.json = json.loads(data) if data else None
        except ValueError:
            resp.json = None
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
