"""A real nginx (Debian's /usr/sbin/nginx, from scripts/deps.sh) as a loopback backend, run
with a generated config under a private directory: nothing of /etc/nginx or /var/lib/nginx is
used and the system service is never touched.

    n = Nginx(str(tmp_path), "a", cert=kp.cert, key=kp.key,
              client_ca=ca.cert, verify_client="on").start()
    n.port, n.address            # 127.0.0.1:<free port>
    n.entries()                  # access log as dicts (see LOG_FIELDS)
    n.stop()

Locations: `/` answers 200 "nginx NAME dn=<client DN> reused=<r|.> proto=<TLS version>\\n",
`= /health` answers 200 "ok\\n"; every response carries `X-Origin: NAME`.

Client certificates: `ssl_verify_client on` alone makes nginx finish the handshake without a
certificate (or with one it cannot verify) and answer `400` over HTTP; `require_client_cert`
adds `ssl_conf_command VerifyMode Require`, so a handshake without a certificate fails at the
TLS layer, as most mTLS servers do. No nginx setting refuses a certificate from an unknown CA in
the handshake (its verify callback always accepts and the check happens per request).
"""
import json
import os
import signal
import subprocess
import time

from .env import LOOPBACK, can_connect, free_port, t

NGINX = os.environ.get("TLSGATE_NGINX") or "/usr/sbin/nginx"

# access log fields (JSON, one object per line)
LOG_FIELDS = {
    "request": "$request",
    "host": "$http_host",
    "status": "$status",
    "dn": "$ssl_client_s_dn",
    "verify": "$ssl_client_verify",
    "reused": "$ssl_session_reused",
    "protocol": "$ssl_protocol",
    "cipher": "$ssl_cipher",
    "sni": "$ssl_server_name",
    "alpn": "$ssl_alpn_protocol",
    "connection": "$connection",
    "connection_requests": "$connection_requests",
    "remote_port": "$remote_port",
}


class NginxError(AssertionError):
    pass


def available():
    return os.access(NGINX, os.X_OK)


class Nginx:
    """One nginx master (+1 worker). tls=False serves plain HTTP. cert/key: the server key pair
    (or keypair=KeyPair). client_ca + verify_client ("on" | "optional" | "optional_no_ca")
    configure client-certificate verification; require_client_cert makes a missing certificate
    fail the handshake. protocols: e.g. "TLSv1.2"; ciphers: TLS 1.2 cipher list (OpenSSL
    names); ciphersuites: TLS 1.3 suites. keepalive_requests=1 closes every connection after one
    response. session_cache/tickets control resumption (both on by default). extra_server /
    extra_http: raw directives added to the server / http block."""

    def __init__(self, workdir, name="nginx", cert=None, key=None, keypair=None, tls=True,
                 client_ca=None, verify_client=None, require_client_cert=False, protocols=None,
                 ciphers=None, ciphersuites=None, keepalive_requests=None, session_cache=True,
                 tickets=True, port=None, extra_server="", extra_http=""):
        if keypair is not None:
            cert, key = keypair.cert, keypair.key
        if tls and not (cert and key):
            raise ValueError("a TLS nginx needs cert and key")
        self.name = name
        self.tls = tls
        self.dir = os.path.join(workdir, "nginx-" + name)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.port = port or free_port()
        self.address = "%s:%d" % (LOOPBACK, self.port)
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self.pid_path = os.path.join(self.dir, "nginx.pid")
        self.out_path = os.path.join(self.dir, "stderr.log")
        self.opts = dict(cert=cert, key=key, client_ca=client_ca, verify_client=verify_client,
                         require_client_cert=require_client_cert, protocols=protocols,
                         ciphers=ciphers, ciphersuites=ciphersuites,
                         keepalive_requests=keepalive_requests, session_cache=session_cache,
                         tickets=tickets, extra_server=extra_server, extra_http=extra_http)
        self.proc = None
        self._out = None

    # ---- config ----
    def config_text(self):
        o = self.opts
        d = self.dir
        q = _quote
        fmt = "{%s}" % ",".join('"%s":"%s"' % kv for kv in LOG_FIELDS.items())
        lines = []
        if os.geteuid() == 0:
            lines.append("user root;")
        lines += [
            "worker_processes 1;",
            "pid %s;" % q(self.pid_path),
            "error_log %s info;" % q(self.error_log),
            "events { worker_connections 256; }",
            "http {",
            "  log_format tg escape=json '%s';" % fmt,
            "  access_log %s tg;" % q(self.access_log),
        ]
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            lines.append("  %s_temp_path %s;" % (kind, q(os.path.join(d, "tmp", kind))))
        lines += ["  default_type text/plain;", "  server_tokens off;"]
        if o["keepalive_requests"] is not None:
            lines.append("  keepalive_requests %d;" % o["keepalive_requests"])
        if o["extra_http"]:
            lines.append("  " + o["extra_http"])
        lines += ["  server {",
                  "    listen %s%s;" % (self.address, " ssl" if self.tls else ""),
                  "    server_name _;"]
        if self.tls:
            lines += ["    ssl_certificate %s;" % q(o["cert"]),
                      "    ssl_certificate_key %s;" % q(o["key"]),
                      "    ssl_protocols %s;" % (o["protocols"] or "TLSv1.2 TLSv1.3")]
            if o["ciphers"]:
                lines.append("    ssl_ciphers %s;" % q(o["ciphers"]))
            if o["ciphersuites"]:
                lines.append("    ssl_conf_command Ciphersuites %s;" % q(o["ciphersuites"]))
            if o["session_cache"]:
                lines += ["    ssl_session_cache shared:tg_%s:1m;" % _ident(self.name),
                          "    ssl_session_timeout 10m;"]
            else:
                lines.append("    ssl_session_cache off;")
            lines.append("    ssl_session_tickets %s;" % ("on" if o["tickets"] else "off"))
            if o["client_ca"]:
                lines.append("    ssl_client_certificate %s;" % q(o["client_ca"]))
                lines.append("    ssl_verify_client %s;" % (o["verify_client"] or "on"))
                if o["require_client_cert"]:
                    lines.append("    ssl_conf_command VerifyMode Require;")
        lines.append("    add_header X-Origin %s always;" % q(self.name))
        if o["extra_server"]:
            lines.append("    " + o["extra_server"])
        body = ("nginx %s dn=$ssl_client_s_dn reused=$ssl_session_reused proto=$ssl_protocol\\n"
                % self.name)
        lines += ["    location = /health { return 200 \"ok\\n\"; }",
                  "    location / { return 200 \"%s\"; }" % body,
                  "  }",
                  "}"]
        return "\n".join(lines) + "\n"

    # ---- process ----
    def command(self):
        return [NGINX, "-p", self.dir + "/", "-e", self.error_log, "-c", self.conf_path,
                "-g", "daemon off;"]

    def start(self, timeout=10):
        if not available():
            raise NginxError("%s not found: run scripts/deps.sh (Debian package nginx)" % NGINX)
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        test = subprocess.run(self.command() + ["-t", "-q"], capture_output=True, text=True,
                              timeout=t(30))
        if test.returncode != 0:
            raise NginxError("nginx -t refused %s:\n%s%s\n%s" % (
                self.conf_path, test.stdout, test.stderr, self.config_text()))
        self._out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir,
                                     start_new_session=True)
        deadline = time.monotonic() + t(timeout)
        while not can_connect(self.port, timeout=0.5):
            if self.proc.poll() is not None:
                self._close_out()
                raise NginxError("nginx %s exited with %d:\n%s" % (
                    self.name, self.proc.returncode, self.diagnostics()))
            if time.monotonic() > deadline:
                self.stop()
                raise NginxError("nginx %s not listening on %s after %.0f s:\n%s" % (
                    self.name, self.address, t(timeout), self.diagnostics()))
            time.sleep(0.05)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        """Fast shutdown (SIGTERM to the master); the whole process group is killed if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=t(timeout))
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker, if the master left it
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._close_out()

    def _close_out(self):
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # ---- logs ----
    def log_lines(self):
        """Raw access log lines (JSON objects with LOG_FIELDS)."""
        try:
            with open(self.access_log, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []

    def entries(self, path=None):
        """Access log entries as dicts; path: only requests whose target starts with it."""
        out = []
        for line in self.log_lines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            parts = e.get("request", "").split(" ")
            e["method"] = parts[0] if parts else ""
            e["path"] = parts[1] if len(parts) > 1 else ""
            if path is None or e["path"].startswith(path):
                out.append(e)
        return out

    def wait_entries(self, n, path=None, timeout=5):
        """Waits until at least n entries (for path) are logged; returns them (maybe fewer).
        nginx writes the line after the response, so a client can be a moment ahead of it."""
        deadline = time.monotonic() + t(timeout)
        while True:
            got = self.entries(path)
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def error_log_text(self):
        try:
            with open(self.error_log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self, lines=40):
        """Config, error log and access log tails, for assertion messages."""
        out = ""
        try:
            with open(self.out_path, "rb") as f:
                out = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            pass
        return "--- nginx %s (%s) error log:\n%s%s\n--- access log:\n%s" % (
            self.name, self.address, out,
            "\n".join(self.error_log_text().splitlines()[-lines:]),
            "\n".join(self.log_lines()[-lines:]))


def _quote(s):
    s = str(s)
    if any(ch in s for ch in " \t;{}\"'\\$"):
        return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')
    return s


def _ident(s):
    return "".join(ch if ch.isalnum() else "_" for ch in s)
