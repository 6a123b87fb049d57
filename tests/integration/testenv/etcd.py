"""A 3-member etcd cluster (Debian's etcd-server 3.4) on loopback ports for the cluster tests:
members can be stopped and started again, and a client-TLS variant is made from a test PKI."""
import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

from .env import LOOPBACK, free_port, need, t, wait_until


def _b64(s):
    return base64.b64encode(s.encode()).decode()


class Etcd:
    """members: how many; tls: None or {"ca", "cert", "key"} PEM paths (server and peer use the
    same certificate; clients must present one signed by ca)."""

    def __init__(self, workdir, members=3, tls=None):
        self.exe = shutil.which("etcd") or "/usr/bin/etcd"
        need(os.path.exists(self.exe), "etcd (Debian package etcd-server, installed by "
             "scripts/deps.sh)")
        self.workdir = workdir
        self.tls = tls
        self.client_tls = tls  # what the helper's own calls present (the test may set another)
        scheme = "https" if tls else "http"
        self.names = ["m%d" % i for i in range(members)]
        self.client_ports = [free_port() for _ in self.names]
        self.peer_ports = [free_port() for _ in self.names]
        self.endpoints = ["%s://%s:%d" % (scheme, LOOPBACK, p) for p in self.client_ports]
        self.cluster = ",".join("%s=http://%s:%d" % (n, LOOPBACK, p)
                                for n, p in zip(self.names, self.peer_ports))
        self.procs = [None] * members
        self.logs = [None] * members

    def _cmd(self, i, new):
        n = self.names[i]
        cmd = [self.exe, "--name", n, "--data-dir", os.path.join(self.workdir, "etcd-" + n),
               "--listen-client-urls", self.endpoints[i],
               "--advertise-client-urls", self.endpoints[i],
               "--listen-peer-urls", "http://%s:%d" % (LOOPBACK, self.peer_ports[i]),
               "--initial-advertise-peer-urls", "http://%s:%d" % (LOOPBACK, self.peer_ports[i]),
               "--initial-cluster", self.cluster,
               "--initial-cluster-token", "tlsgate-test-%d" % self.peer_ports[0],
               "--initial-cluster-state", "new",
               "--heartbeat-interval", "50", "--election-timeout", "500",
               "--logger", "zap", "--log-outputs", "stderr"]
        if self.tls:
            cmd += ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                    "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
        return cmd

    def start_member(self, i):
        log = open(os.path.join(self.workdir, "etcd-%s.log" % self.names[i]), "ab")
        self.logs[i] = log
        self.procs[i] = subprocess.Popen(self._cmd(i, True), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self):
        for i in range(len(self.names)):
            self.start_member(i)
        if not wait_until(self.healthy, t(30)):
            tail = self.log_tail()
            self.close()
            raise AssertionError("etcd did not form a cluster: " + tail)
        return self

    def stop_member(self, i, sig=signal.SIGKILL):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            p.wait(10)
        self.procs[i] = None

    def _ctx(self):
        import ssl
        ctx = ssl.create_default_context(cafile=self.client_tls["ca"])
        ctx.load_cert_chain(self.client_tls["cert"], self.client_tls["key"])
        return ctx

    def call(self, path, body, i=None, timeout=3):
        """POSTs body (a dict) to the JSON gateway of member i (else the first that answers)."""
        last = None
        for k in ([i] if i is not None else range(len(self.names))):
            if self.procs[k] is None:
                continue
            req = urllib.request.Request(self.endpoints[k] + path, data=json.dumps(body).encode(),
                                         method="POST")
            try:
                with urllib.request.urlopen(req, timeout=timeout,
                                            context=self._ctx() if self.tls else None) as r:
                    return json.loads(r.read())
            except OSError as e:
                last = e
        raise OSError("no etcd member answered: %s" % last)

    def healthy(self):
        """A write goes through (quorum)."""
        try:
            self.call("/v3/kv/put", {"key": _b64("/health"), "value": _b64("ok")}, timeout=2)
            return True
        except OSError:
            return False

    def get(self, key):
        r = self.call("/v3/kv/range", {"key": _b64(key), "serializable": True})
        kvs = r.get("kvs") or []
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def log_tail(self, n=30):
        out = []
        for name in self.names:
            p = os.path.join(self.workdir, "etcd-%s.log" % name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out += [name + ": " + l for l in
                            f.read().decode(errors="replace").splitlines()[-n:]]
        return "\n".join(out)

    def close(self):
        for i in range(len(self.names)):
            try:
                self.stop_member(i, signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.stop_member(i)
            if self.logs[i]:
                self.logs[i].close()


def wait_for(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
