"""Where the binary is, how generous timeouts are, and loopback ports."""
import os
import socket
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("TLSGATE_BIN") or os.path.join(REPO, "build", "tlsgate")
SANITIZED = os.environ.get("TLSGATE_SANITIZED", "") not in ("", "0")
# ASan/UBSan builds start and run several times slower.
SCALE = 3.0 if SANITIZED else 1.0

LOOPBACK = "127.0.0.1"


def t(seconds):
    """A timeout scaled for the sanitized build."""
    return seconds * SCALE


def free_port():
    """A loopback TCP port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


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
