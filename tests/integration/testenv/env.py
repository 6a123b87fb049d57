"""Where the binary is, how generous timeouts are, and loopback ports."""
import contextlib
import fcntl
import os
import shutil
import socket
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("TLSGATE_BIN") or os.path.join(REPO, "build", "tlsgate")
SANITIZED = os.environ.get("TLSGATE_SANITIZED", "") not in ("", "0")
# ASan/UBSan builds start and run several times slower.
SCALE = 3.0 if SANITIZED else 1.0

LOOPBACK = "127.0.0.1"

# CI=true (or TLSGATE_NO_SKIP=1): nothing may be skipped, a missing dependency fails the test.
STRICT = (os.environ.get("CI", "").lower() in ("true", "1", "yes")
          or os.environ.get("TLSGATE_NO_SKIP", "") not in ("", "0"))


def need(ok, what):
    """Skips the calling test (a failure under CI=true) unless ok; what names the missing
    dependency ("keytool (openjdk-17-jre-headless)"). Call it only in the tests that need it."""
    if ok:
        return
    if STRICT:
        pytest.fail("missing under CI=true, where nothing may be skipped: %s" % what, pytrace=False)
    pytest.skip("missing: %s" % what)


def need_tool(name, package):
    """The path of a command the test needs (see need())."""
    path = shutil.which(name)
    need(path is not None, "%s (Debian package %s, installed by scripts/deps.sh)" % (name, package))
    return path


def t(seconds):
    """A timeout scaled for the sanitized build."""
    return seconds * SCALE


def free_port():
    """A loopback TCP port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fixed_port(port, wait=20):
    """Holds a port the spec fixes (8443 of the embedded default) for the calling test: one test
    at a time across every pytest run on this machine (a lock file), waiting up to `wait` s for
    another process to let the port go. Busy for longer: a skip, or a failure under CI=true."""
    path = os.path.join(tempfile.gettempdir(), "tlsgate-tests-port-%d.lock" % port)
    with open(path, "a") as lock:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    need(False, "port %d: another test run held it for %d s" % (port, wait))
                time.sleep(0.1)
        need(wait_until(lambda: port_is_free(port), max(0.0, deadline - time.monotonic()) + 1),
             "port %d on 127.0.0.1 (fixed by the spec; another process listens there)" % port)
        try:
            yield port
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class DeadPort:
    """A loopback port that refuses connections for as long as this object lives: bound (so no
    other process can take it, as can happen to a port that was merely free a moment ago) but
    never listening. .address is "127.0.0.1:PORT"."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.address = "%s:%d" % (LOOPBACK, self.port)

    def close(self):
        self.sock.close()


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def can_connect(port, host=LOOPBACK, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a true value (returned) or timeout seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
