"""Let's Encrypt's test ACME server, Pebble (Debian's pebble package), with pebble-challtestsrv
as its DNS (every name answers 127.0.0.1), on loopback ports; its validation ports point at the
gateway's listeners. Pebble's own HTTPS certificate is the test CA's localhost certificate."""
import json
import os
import ssl
import subprocess
import time
import urllib.request

from .env import LOOPBACK, can_connect, free_port, need_tool, t


class Pebble:
    def __init__(self, workdir, certs, http_port, tls_port, env=None, eab=None):
        need_tool("pebble", "pebble")
        need_tool("pebble-challtestsrv", "pebble")
        self.workdir = workdir
        self.certs = certs
        self.port = free_port()
        self.mgmt_port = free_port()
        self.dns_port = free_port()
        self.dns_mgmt_port = free_port()
        self.http_port = http_port
        self.tls_port = tls_port
        self.extra_env = env or {}
        self.eab = eab  # {kid: base64url HMAC key}: external account binding required
        self.proc = self.dns = None
        self.log_path = os.path.join(workdir, "pebble.log")
        self.config_path = os.path.join(workdir, "pebble.json")

    @property
    def directory(self):
        return "https://localhost:%d/dir" % self.port

    def start(self):
        with open(self.config_path, "w") as f:
            json.dump({"pebble": {
                "listenAddress": "%s:%d" % (LOOPBACK, self.port),
                "managementListenAddress": "%s:%d" % (LOOPBACK, self.mgmt_port),
                "certificate": self.certs.ec.cert, "privateKey": self.certs.ec.key,
                "httpPort": self.http_port, "tlsPort": self.tls_port,
                "ocspResponderURL": "", "externalAccountBindingRequired": bool(self.eab),
                "externalAccountMACKeys": self.eab or {}}}, f)
        self._log = open(self.log_path, "ab")
        if self.dns is None:
            self.dns = subprocess.Popen(
                ["pebble-challtestsrv", "-defaultIPv4", LOOPBACK, "-defaultIPv6", "",
                 "-dns01", "%s:%d" % (LOOPBACK, self.dns_port), "-http01", "", "-https01", "",
                 "-tlsalpn01", "", "-management",
                 "%s:%d" % (LOOPBACK, self.dns_mgmt_port)],
                stdout=self._log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + t(10)
            while not can_connect(self.dns_mgmt_port):
                if self.dns.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("pebble-challtestsrv did not start:\n" + self.log_text())
                time.sleep(0.1)
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1")
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            ["pebble", "-config", self.config_path, "-dnsserver",
             "%s:%d" % (LOOPBACK, self.dns_port)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + t(20)
        while True:
            try:
                self._get(self.directory)
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("pebble did not start:\n" + self.log_text())
                time.sleep(0.2)

    def _get(self, url):
        ctx = ssl.create_default_context(cafile=self.certs.ca.cert)
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return r.read()

    def root_pem(self, path):
        """Writes Pebble's issuing root (from its management port) to path."""
        with open(path, "wb") as f:
            f.write(self._get("https://localhost:%d/roots/0" % self.mgmt_port))
        return path

    def stop(self):
        for p in (self.proc, self.dns):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.proc = self.dns = None

    def stop_acme(self):
        """Stops Pebble itself (its DNS keeps running)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""
