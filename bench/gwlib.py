"""What bench/flood.py and bench/idle20k.py share: a throw-away tlsgate (certificate, config,
process in its own session with a raised RLIMIT_NOFILE, stopped on exit), its RSS and CPU, and
percentiles. Loopback only."""
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def raise_nofile(n):
    """Raises this process's RLIMIT_NOFILE to n (the hard limit too when root)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, max(n, hard)))
    except (ValueError, OSError):  # raising the hard limit needs CAP_SYS_RESOURCE
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(values, p):
    """The p-th percentile (nearest rank) of values, or None."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]



def get_close(s, path):
    """Sends GET path with Connection: close on socket s (plain or TLS), reads to the end,
    closes s and returns every byte of the answer."""
    s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path.encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    return data

class Gateway:
    """tlsgate on 127.0.0.1 with a fresh ECDSA certificate; cfg_extra is merged into the config
    (limits, timeouts, backends, routes)."""

    def __init__(self, binary=None, workers=2, nofile=65536, keep=False):
        self.binary = binary or os.environ.get("TLSGATE_BIN") or os.path.join(REPO, "build",
                                                                               "tlsgate")
        self.work = tempfile.mkdtemp(prefix="tlsgate-bench-")
        self.keep = keep
        self.workers = workers
        self.nofile = nofile
        self.port = free_port()
        self.sport = free_port()
        self.proc = None
        subprocess.run([self.binary, "cert", "server", "--out", os.path.join(self.work, "srv"),
                        "--name", "localhost", "--name", "127.0.0.1"], check=True,
                       stdout=subprocess.DEVNULL)

    def config(self, extra):
        cfg = {
            "version": 1, "workers": self.workers, "state_dir": os.path.join(self.work, "state"),
            "log": {"level": "info", "access_log": None},
            "keystores": {"srv": {"type": "pem", "cert": "srv.crt", "key": "srv.key"}},
            "listeners": [
                {"name": "bench", "address": "127.0.0.1:%d" % self.port,
                 "tls": {"certificates": ["srv"]},
                 "routes": [{"path_prefix": "/", "backend": "status"}]},
                {"name": "status", "address": "127.0.0.1:%d" % self.sport,
                 "tls": {"disabled": True},
                 "routes": [{"path_prefix": "/", "backend": "status"}]}],
            "backends": {"status": {"builtin": "status"}},
        }
        for k, v in extra.items():
            if k == "routes":
                cfg["listeners"][0]["routes"] = v
            elif k == "backends":
                cfg["backends"].update(v)
            else:
                cfg[k] = v
        return cfg

    def start(self, extra):
        path = os.path.join(self.work, "gw.json")
        with open(path, "w") as f:
            json.dump(self.config(extra), f, indent=1)
        n = self.nofile

        def pre():
            os.setsid()
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            lim = n if hard == resource.RLIM_INFINITY else min(n, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (lim, hard))
        self.log = open(os.path.join(self.work, "gw.log"), "wb")
        self.proc = subprocess.Popen([self.binary, "run", "-c", path], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=pre, cwd=self.work)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                sys.exit("tlsgate exited at start:\n" + self.log_text())
            try:
                socket.create_connection(("127.0.0.1", self.sport), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("tlsgate not ready:\n" + self.log_text())
                time.sleep(0.05)
        return self

    def log_text(self):
        with open(os.path.join(self.work, "gw.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self):
        s = socket.create_connection(("127.0.0.1", self.sport), timeout=10)
        data = get_close(s, "/")
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print("work directory kept: %s" % self.work, file=sys.stderr)


def machine():
    """One line about the machine and its load now."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return "%s, %d cores, %d MiB RAM, kernel %s, load average %s" % (
        model, os.cpu_count(), mem, os.uname().release,
        " ".join(open("/proc/loadavg").read().split()[:3]))
