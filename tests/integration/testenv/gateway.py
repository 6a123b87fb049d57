"""Runs the real tlsgate binary on a config written as JSON; waits for it, signals it, stops it."""
import json
import os
import re
import signal as _signal
import socket
import ssl
import subprocess
import time

from .env import BIN, LOOPBACK, t

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
# What ASan, LSan and UBSan print, anchored so that a logged request line that happens to contain
# "runtime error:" is not taken for a report.
SANITIZER_RE = re.compile(r"^==\d+==ERROR: (?:Address|Leak|Thread|Memory)Sanitizer"
                          r"|^\S+:\d+:\d+: runtime error: "
                          r"|^SUMMARY: (?:Address|Leak|UndefinedBehavior)Sanitizer", re.M)


def describe_exit(code):
    """'exit code 3' or 'killed by signal SIGSEGV' for a Popen return code."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return "killed by signal %s" % _signal.Signals(-code).name
        except ValueError:
            return "killed by signal %d" % -code
    return "exit code %d" % code


class GatewayError(AssertionError):
    pass


def _probe_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


def _listener_ports(config):
    """[(port, tls?)] of every listener in a config dict."""
    out = []
    for ls in (config or {}).get("listeners", []):
        addr = ls.get("address", "")
        m = re.match(r"^(?:\[.*\]|[^:]*):(\d+)$", addr)
        if m:
            tls = not (ls.get("tls") or {}).get("disabled", False)
            out.append((int(m.group(1)), tls))
    return out


class Gateway:
    """One tlsgate process. config is a dict (written to <workdir>/<name>.json) or None to run
    without -c. Output (stdout and stderr) goes to <workdir>/<name>.log."""

    def __init__(self, workdir, config=None, name="tlsgate", args=None, env=None, binary=None,
                 ready_ports=None, fd_limit=None, split_stdout=False):
        self.workdir = workdir
        self.name = name
        self.config = config
        self.binary = binary or BIN
        self.config_path = os.path.join(workdir, name + ".json")
        self.log_path = os.path.join(workdir, name + ".log")
        self.extra_args = list(args or [])
        self.env = dict(os.environ)
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            self.env.update(env)
        self.proc = None
        self.returncode = None
        self.ready_ports = ready_ports
        self.fd_limit = fd_limit  # hard and soft RLIMIT_NOFILE for the process, if set
        self._logf = None
        # split_stdout: stdout goes to <workdir>/<name>.out, the log keeps stderr only
        self.out_path = os.path.join(workdir, name + ".out") if split_stdout else None
        self._outf = None
        # Set when the test says the process is meant to end (stop, wait_exit, expect_exit, or a
        # start that failed and raised). An exit nobody expected fails the test (conftest).
        self.exit_expected = False
        self.problem_reported = False

    # ---- config ----
    def write_config(self, config):
        self.config = config
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        os.replace(tmp, self.config_path)

    @property
    def port(self):
        """Port of the first listener."""
        if self.config is None:
            return 8443
        return _listener_ports(self.config)[0][0]

    # ---- process ----
    def command(self):
        cmd = [self.binary, "run"]
        if self.config is not None:
            cmd += ["-c", self.config_path]
        return cmd + self.extra_args

    def start(self, wait=True, timeout=15):
        if not os.path.exists(self.binary):
            raise GatewayError("tlsgate binary not found at %s (set TLSGATE_BIN)" % self.binary)
        if self.config is not None:
            self.write_config(self.config)
        self._logf = open(self.log_path, "ab")
        preexec = None
        if self.fd_limit is not None:
            import resource
            lim = self.fd_limit
            preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (lim, lim))  # noqa: E731
        out, err = self._logf, subprocess.STDOUT
        if self.out_path:
            self._outf = open(self.out_path, "ab")
            out, err = self._outf, self._logf
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir, env=self.env,
                                     start_new_session=True, preexec_fn=preexec)
        if wait:
            self.wait_ready(timeout)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=15):
        """Waits until every listener completes a TLS handshake (or, for plaintext listeners,
        accepts TCP). A listener that accepts TCP and answers with a TLS alert counts as ready."""
        ports = self.ready_ports
        if ports is None:
            ports = _listener_ports(self.config) if self.config is not None else [(8443, True)]
        deadline = time.monotonic() + t(timeout)
        pending = list(ports)
        last_err = None
        while pending:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                self.exit_expected = True  # reported by this exception, to the test
                raise GatewayError("tlsgate exited (%s) before it was ready:\n%s"
                                   % (describe_exit(self.returncode), self.log_text()))
            port, tls = pending[0]
            try:
                self._probe(port, tls)
                pending.pop(0)
                continue
            except OSError as e:
                last_err = e
            if time.monotonic() > deadline:
                raise GatewayError("tlsgate not ready on port %d after %.0f s (%s):\n%s"
                                   % (port, t(timeout), last_err, self.log_text()))
            time.sleep(0.05)

    @staticmethod
    def _probe(port, tls):
        s = socket.create_connection((LOOPBACK, port), timeout=t(2))
        try:
            if tls:
                try:
                    ss = _probe_ctx().wrap_socket(s, server_hostname="localhost")
                    ss.close()
                except ssl.SSLError:
                    pass  # it speaks TLS, just not with this client's offer
        finally:
            s.close()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def expect_exit(self):
        """Says that this test makes the process end by itself (a fatal config, a signal sent
        with signal()): its exit is then not reported as a crash."""
        self.exit_expected = True

    def unexpected_exit(self):
        """A sentence if the process ended while nobody expected it to, else None."""
        if self.proc is None or self.exit_expected or self.proc.poll() is None:
            return None
        self.returncode = self.proc.returncode
        return "tlsgate %s ended during the test (%s) without the test stopping it" % (
            self.name, describe_exit(self.returncode))

    def wait_exit(self, timeout=10):
        self.exit_expected = True
        try:
            self.returncode = self.proc.wait(timeout=t(timeout))
        except subprocess.TimeoutExpired:
            raise GatewayError("tlsgate did not exit within %.0f s:\n%s"
                               % (t(timeout), self.log_text()))
        return self.returncode

    def stop(self, expect=0, timeout=10, sig=_signal.SIGTERM):
        """Sends sig (SIGTERM), waits for the exit and asserts the exit code (expect=None: any).
        Kills the process if it hangs."""
        if self.proc is None:
            return None
        died = self.unexpected_exit()
        self.exit_expected = True
        if died:
            self._close_log()
            raise GatewayError("%s:\n%s" % (died, self.log_tail()))
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.wait_exit(timeout)
            except GatewayError:
                self.kill()
                raise
        self.returncode = self.proc.returncode
        self._close_log()
        if expect is not None and self.returncode != expect:
            raise GatewayError("tlsgate exited (%s), expected exit code %s:\n%s"
                               % (describe_exit(self.returncode), expect, self.log_tail()))
        return self.returncode

    def kill(self):
        """SIGKILLs the process group (teardown, or a test that means to: call expect_exit())."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self):
        if self._logf is not None:
            self._logf.close()
            self._logf = None
        if self._outf is not None:
            self._outf.close()
            self._outf = None

    def out_text(self):
        """What the process wrote to stdout (split_stdout=True)."""
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def reload(self, config):
        """Rewrites the config file and sends SIGHUP."""
        self.write_config(config)
        self.signal(_signal.SIGHUP)

    # ---- log ----
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=200):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_lines(self, *needles):
        """Log lines that contain every needle (case-insensitive)."""
        out = []
        for line in self.log_text().splitlines():
            low = line.lower()
            if all(n.lower() in low for n in needles):
                out.append(line)
        return out

    def wait_log(self, pred, timeout=5):
        """Waits until pred(log_text) is true; returns the text, or None on timeout."""
        deadline = time.monotonic() + t(timeout)
        while True:
            text = self.log_text()
            if pred(text):
                return text
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def sanitizer_report(self):
        """The sanitizer report lines in the log, if any (checked after every test, any build)."""
        return sanitizer_lines(self.log_text())


def sanitizer_lines(text):
    """Lines of an ASan/LSan/UBSan report in a process's output."""
    return [m.group(0) for m in SANITIZER_RE.finditer(text)]


def check_sanitizer(gw):
    if gw.sanitizer_report():
        raise GatewayError("sanitizer report in the log of tlsgate %s:\n%s"
                           % (gw.name, gw.log_tail(400)))


def problems(gw):
    """What is wrong with a gateway after a test ran: an exit nobody expected, a sanitizer report.
    Each problem is reported once (the test's own report, else its teardown)."""
    if gw.problem_reported:
        return []
    out = []
    died = gw.unexpected_exit()
    if died:
        out.append("%s:\n%s" % (died, gw.log_tail(200)))
    if gw.sanitizer_report():
        out.append("sanitizer report in the log of tlsgate %s:\n%s" % (gw.name, gw.log_tail(400)))
    if out:
        gw.problem_reported = True
    return out


def tlsgate(*args, timeout=60, cwd=None):
    """Runs a short-lived tlsgate verb (check, cert, version ...); returns the CompletedProcess
    (text). Any sanitizer report in its output fails the calling test."""
    r = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=t(timeout), cwd=cwd)
    out = r.stdout + r.stderr
    if sanitizer_lines(out):
        raise GatewayError("sanitizer report from tlsgate %s:\n%s" % (" ".join(map(str, args)), out))
    if r.returncode < 0:
        raise GatewayError("tlsgate %s %s:\n%s" % (" ".join(map(str, args)),
                                                    describe_exit(r.returncode), out))
    return r
