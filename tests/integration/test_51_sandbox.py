"""The sandbox of `tlsgate run` (docs/robustness.md "Sandbox"): no_new_privs and seccomp on every
thread, Landlock limited to the files the config names, `user` dropping root on every thread after
binding, reloads outside the sandbox refused with a message to restart, `check` listing it all."""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import ssl
import tempfile

import pytest

import testenv
from testenv.gateway import problems


def _config(certs, tmp_path, port, **extra):
    cfg = {
        "version": 1, "workers": 2, "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
        "keystores": {"ec": certs.ec.keystore()},
        "listeners": [{"name": "public", "address": "127.0.0.1:%d" % port,
                       "tls": {"certificates": ["ec"]},
                       "routes": [{"path_prefix": "/", "backend": "status"}]}],
        "backends": {"status": {"builtin": "status"}},
    }
    cfg.update(extra)
    return cfg


def _threads(pid):
    """{tid: {field: value}} from /proc/PID/task/*/status."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        out[tid] = fields
    return out


def _der(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def _status_ok(port):
    try:
        return testenv.get(port, "/").status == 200
    except OSError:
        return False


@pytest.fixture
def outside():
    """A directory under /tmp that no rule of the test gateways covers, readable by anyone."""
    d = tempfile.mkdtemp(prefix="tg-sandbox-outside-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_sandbox_on_by_default_on_every_thread(gateway, certs, tmp_path):
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port))
    assert _status_ok(port)
    threads = _threads(gw.proc.pid)
    assert len(threads) >= 3, "expected the main thread and 2 workers: %r" % threads
    for tid, st in threads.items():
        assert st["NoNewPrivs"] == "1", "thread %s: NoNewPrivs %s" % (tid, st["NoNewPrivs"])
        assert st["Seccomp"] == "2", "thread %s: Seccomp %s (2 = filter)" % (tid, st["Seccomp"])
    log = gw.log_text()
    assert "Landlock ABI" in log and "seccomp filter on every thread" in log, log
    # What check lists is what was applied: one line per path, as many as the log's paths.
    applied = int(re.search(r"Landlock ABI \d+ with \d+ path rules on (\d+) paths", log).group(1))
    out = testenv.tlsgate("check", "-c", gw.config_path).stdout
    listed = [ln for ln in out.splitlines()
              if re.match(r"    (read-only|read-write|write \(append, create\)|read, execute) ",
                          ln)]
    assert len(listed) == applied, (applied, out)
    seccomp = re.search(r"seccomp filter on every thread: (\d+) system calls", log).group(1)
    assert "seccomp: on, %s system calls allowed" % seccomp in out, out
    # A reload of the same files works inside the sandbox; the gateway keeps serving.
    gw.signal(signal.SIGHUP)
    assert gw.wait_log(lambda s: "config reloaded" in s or "reload failed" in s, timeout=10)
    assert "config reloaded" in gw.log_text(), gw.log_tail()
    assert _status_ok(port)


def test_sandbox_disabled_gives_no_filter(gateway, certs, tmp_path):
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port, sandbox={"enabled": False}))
    assert _status_ok(port)
    for tid, st in _threads(gw.proc.pid).items():
        assert st["Seccomp"] == "0", "thread %s: Seccomp %s" % (tid, st["Seccomp"])
        assert st["NoNewPrivs"] == "0", "thread %s: NoNewPrivs %s" % (tid, st["NoNewPrivs"])
    assert "sandbox: off" in gw.log_text()


def test_reload_naming_a_file_outside_is_refused(gateway, certs, tmp_path, outside):
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port))
    shutil.copy(certs.rsa.cert, os.path.join(outside, "rsa.crt"))
    shutil.copy(certs.rsa.key, os.path.join(outside, "rsa.key"))
    os.chmod(os.path.join(outside, "rsa.key"), 0o644)
    # A new key file outside: the loader's read is denied by Landlock, the message says why.
    cfg = _config(certs, tmp_path, port)
    cfg["keystores"]["ec"] = {"type": "pem", "cert": os.path.join(outside, "rsa.crt"),
                              "key": os.path.join(outside, "rsa.key")}
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "reload failed" in s, timeout=10), gw.log_tail()
    refused = gw.log_lines("/keystores/ec/cert", "outside what the sandbox allows",
                           "restart tlsgate")
    assert refused and os.path.join(outside, "rsa.crt") in refused[0], gw.log_tail()
    # An access log outside (nothing reads it while loading): the reload check refuses it.
    cfg = _config(certs, tmp_path, port, log={"level": "info",
                                              "access_log": os.path.join(outside, "a.log")})
    gw.reload(cfg)
    assert gw.wait_log(lambda s: s.count("reload failed") >= 2, timeout=10), gw.log_tail()
    refused = gw.log_lines("/log/access_log", "outside what the sandbox allows",
                           "restart tlsgate")
    assert refused, gw.log_tail()
    # located at the key: file:line:column
    assert re.search(r"\.json:\d+:\d+: /log/access_log: access log ", refused[0]), refused
    assert not os.path.exists(os.path.join(outside, "a.log"))
    # A new truststore directory inside the allowed ones whose file links outside: refused by
    # the reload check (it follows the links), located at the truststore.
    shutil.copy(certs.ca.cert, os.path.join(outside, "ca.pem"))
    os.mkdir(str(tmp_path / "trust"))
    os.symlink(os.path.join(outside, "ca.pem"), str(tmp_path / "trust" / "ca.pem"))
    cfg = _config(certs, tmp_path, port)
    cfg["truststores"] = {"corp": {"type": "pem", "file": str(tmp_path / "trust")}}
    cfg["backends"]["app"] = {"targets": ["127.0.0.1:9"], "tls": {"truststore": "corp"}}
    cfg["listeners"][0]["routes"].insert(0, {"path_prefix": "/app", "backend": "app"})
    gw.reload(cfg)
    assert gw.wait_log(lambda s: s.count("reload failed") >= 3, timeout=10), gw.log_tail()
    refused = gw.log_lines("/truststores/corp/file:", "outside what the sandbox allows",
                           "restart tlsgate")
    assert refused and re.search(r"\.json:\d+:\d+: /truststores/corp/file: truststore ",
                                 refused[0]), gw.log_tail()
    assert not gw.log_lines("config reloaded"), gw.log_tail()
    # The running gateway is intact: still serving, with the certificate it started with.
    assert _status_ok(port)
    with testenv.Conn(port) as c:
        assert c.peer_cert_der() == _der(certs.ec.cert)


def test_landlock_denies_a_file_read_after_start(gateway, certs, tmp_path, outside):
    """A password file is read by the config loader itself (no check names it first): the kernel
    denies the read although the file is world-readable and tlsgate runs as root."""
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port))
    pw = os.path.join(outside, "pw")
    with open(pw, "w") as f:
        f.write("secret\n")
    os.chmod(pw, 0o644)
    assert os.geteuid() != 0 or open(pw).read() == "secret\n"
    cfg = _config(certs, tmp_path, port)
    cfg["keystores"]["ec"]["key_password"] = {"file": pw}
    gw.reload(cfg)
    assert gw.wait_log(lambda s: "reload failed" in s, timeout=10), gw.log_tail()
    denied = gw.log_lines(pw, "Permission denied", "restart tlsgate")
    assert denied, "the read was not denied:\n" + gw.log_tail()
    assert _status_ok(port)


def test_reload_reads_password_files_and_linked_keys_again(gateway, certs, tmp_path, outside):
    """The files a started config names are read again by every reload inside the sandbox: a
    key password file in its own directory, a certificate and key reached through symbolic
    links into another directory (certbot's live/ -> archive/), a truststore directory of links.
    A renewal that points the links at new files is served after SIGHUP. (All outside the config
    file's directory.)"""
    top = pathlib.Path(outside)
    live, archive, secrets = top / "le" / "live", top / "le" / "archive", top / "secrets"
    trust, cas = top / "trust", top / "cas"
    for d in (live, archive, secrets, trust, cas):
        d.mkdir(parents=True)
    # A truststore directory whose files are links into another directory.
    shutil.copy(certs.ca.cert, str(cas / "ca.pem"))
    os.symlink("../cas/ca.pem", str(trust / "corp.pem"))
    (secrets / "pw").write_text("sandbox-key-pw\n")

    def issue(n, pair):
        shutil.copy(pair.cert, str(archive / ("cert%d.pem" % n)))
        subprocess.run(["openssl", "pkey", "-in", pair.key, "-aes256", "-passout",
                        "file:" + str(secrets / "pw"), "-out", str(archive / ("key%d.pem" % n))],
                       check=True, capture_output=True)
        for name in ("cert", "key"):
            link = live / (name + ".pem")
            if os.path.lexists(str(link)):
                os.unlink(str(link))
            os.symlink("../archive/%s%d.pem" % (name, n), str(link))
    issue(1, certs.ec)
    port = testenv.free_port()
    cfg = _config(certs, tmp_path, port)
    cfg["keystores"]["ec"] = {"type": "pem", "cert": str(live / "cert.pem"),
                              "key": str(live / "key.pem"),
                              "key_password": {"file": str(secrets / "pw")}}
    cfg["truststores"] = {"corp": {"type": "pem", "file": str(trust)}}
    cfg["backends"]["app"] = {"targets": ["127.0.0.1:9"], "tls": {"truststore": "corp"}}
    cfg["listeners"][0]["routes"].insert(0, {"path_prefix": "/app", "backend": "app"})
    path = str(tmp_path / "gw.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    gw = gateway(cfg)
    gw.signal(signal.SIGHUP)
    assert gw.wait_log(lambda s: "config reloaded" in s or "reload failed" in s, timeout=10)
    assert "config reloaded" in gw.log_text(), gw.log_tail()
    issue(2, certs.rsa)
    gw.signal(signal.SIGHUP)
    assert gw.wait_log(lambda s: s.count("config reloaded") >= 2 or "reload failed" in s,
                       timeout=10)
    assert "reload failed" not in gw.log_text(), gw.log_tail()

    def served_der():
        with testenv.Conn(port) as c:
            return c.peer_cert_der()
    # the workers take the new config as they wake up
    assert testenv.wait_until(lambda: served_der() == _der(certs.rsa.cert), testenv.t(5))
    # check names both directories, and why.
    out = testenv.tlsgate("check", "-c", path).stdout
    rules = {line.split()[1]: line for line in out.splitlines()
             if line.strip().startswith("read-only")}
    assert "password file /keystores/ec/key_password/file" in rules.get(str(secrets), ""), out
    assert "certificate /keystores/ec/cert through its link" in rules.get(str(archive), ""), out
    assert "truststore /truststores/corp/file through its link" in rules.get(str(cas), ""), out


def test_reload_naming_an_unknown_user_is_refused_not_killed(gateway, certs, tmp_path):
    """A reload naming a user and group that /etc/passwd and /etc/group lack goes on to the
    other NSS modules (nss-systemd asks prctl(PR_CAPBSET_READ)): the reload is refused at
    /user and /group and the gateway keeps serving, no SIGSYS. A known new user is a warning:
    it takes effect at the next restart."""
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port))
    gw.reload(_config(certs, tmp_path, port, user="no-such-user-tlsgate",
                      group="no-such-group-tlsgate"))
    assert gw.wait_log(lambda s: "reload failed" in s, timeout=10), gw.log_tail()
    assert gw.log_lines("/user:", "no user \"no-such-user-tlsgate\""), gw.log_tail()
    assert gw.log_lines("/group:", "no group \"no-such-group-tlsgate\""), gw.log_tail()
    assert gw.running() and _status_ok(port), gw.log_tail()
    gw.reload(_config(certs, tmp_path, port, user="nobody"))
    assert gw.wait_log(lambda s: "config reloaded" in s, timeout=10), gw.log_tail()
    assert gw.log_lines("/user:", "take effect at the next restart"), gw.log_tail()
    assert _status_ok(port)


def _free_low_port():
    """A free loopback port under 1024 (tests bind loopback only)."""
    for port in range(700, 1000, 7):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.skip("no free port under 1024 on 127.0.0.1")


def test_user_drops_root_on_every_thread(gateway, certs, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("dropping to another user needs root")
    # nobody must read the files a reload reads again: a world-readable copy under /tmp (the
    # pytest directories are 0700). These are throwaway test keys.
    d = tempfile.mkdtemp(prefix="tg-sandbox-user-")
    try:
        os.chmod(d, 0o755)
        for src, dst in ((certs.ec.cert, "ec.crt"), (certs.ec.key, "ec.key")):
            shutil.copy(src, os.path.join(d, dst))
            os.chmod(os.path.join(d, dst), 0o644)
        low = _free_low_port()
        cfg = _config(certs, tmp_path, low, user="nobody", state_dir=os.path.join(d, "state"))
        cfg["keystores"]["ec"] = {"type": "pem", "cert": os.path.join(d, "ec.crt"),
                                  "key": os.path.join(d, "ec.key")}
        gw = testenv.Gateway(d, cfg, name="gw")
        gw.start()
        try:
            assert _status_ok(low)
            threads = _threads(gw.proc.pid)
            assert len(threads) >= 3
            for tid, st in threads.items():
                assert st["Uid"].split() == ["65534"] * 4, "thread %s: Uid %s" % (tid, st["Uid"])
                assert st["Gid"].split() == ["65534"] * 4, "thread %s: Gid %s" % (tid, st["Gid"])
                assert st["Groups"] == "", "thread %s: Groups %s" % (tid, st["Groups"])
                assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1"
            assert os.stat(os.path.join(d, "state")).st_uid == 65534
            # The same config again: the port bound as root at start is kept, not re-bound.
            gw.signal(signal.SIGHUP)
            assert gw.wait_log(lambda s: "config reloaded" in s or "reload failed" in s, 10)
            assert "config reloaded" in gw.log_text(), gw.log_tail()
            # A new port under 1024 cannot be bound any more: refused, saying to restart.
            cfg2 = json.loads(json.dumps(cfg))
            cfg2["listeners"].append(dict(cfg["listeners"][0], name="second",
                                          address="127.0.0.1:%d" % (low + 1)))
            gw.reload(cfg2)
            assert gw.wait_log(lambda s: "reload failed" in s, timeout=10), gw.log_tail()
            assert gw.log_lines("under 1024", "restart tlsgate"), gw.log_tail()
            assert _status_ok(low)
            # A reload that drops the port closes it; one that lists it again cannot bind it
            # any more: refused the same way, before anything changes.
            high = testenv.free_port()
            cfg3 = json.loads(json.dumps(cfg))
            cfg3["listeners"][0]["address"] = "127.0.0.1:%d" % high
            gw.reload(cfg3)
            assert gw.wait_log(lambda s: s.count("config reloaded") >= 2, 10), gw.log_tail()
            assert testenv.wait_until(lambda: _status_ok(high) and not _status_ok(low),
                                      testenv.t(5))
            cfg3["listeners"].append(dict(cfg["listeners"][0], name="again"))
            gw.reload(cfg3)
            assert gw.wait_log(lambda s: s.count("reload failed") >= 2, 10), gw.log_tail()
            assert len(gw.log_lines("port %d is under 1024" % low, "restart tlsgate")) == 1, \
                gw.log_tail()
            assert not gw.log_lines("cannot listen"), gw.log_tail()
            assert _status_ok(high)
        finally:
            found = problems(gw)
            gw.stop(expect=0)
            found += problems(gw)
            assert not found, "\n".join(found)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_user_without_root_is_a_clear_error_before_binding(certs):
    """`user` names another user but tlsgate does not start as root: an error at the key's
    file:line:column before anything is bound or started, not a gateway that starts and stops."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start the gateway as another user")
    d = tempfile.mkdtemp(prefix="tg-sandbox-nonroot-")
    try:
        os.chmod(d, 0o755)
        for src, dst in ((certs.ec.cert, "ec.crt"), (certs.ec.key, "ec.key")):
            shutil.copy(src, os.path.join(d, dst))
            os.chmod(os.path.join(d, dst), 0o644)
        port = testenv.free_port()
        cfg = _config(certs, pathlib.Path(d), port, user="daemon")
        cfg["keystores"]["ec"] = {"type": "pem", "cert": os.path.join(d, "ec.crt"),
                                  "key": os.path.join(d, "ec.key")}
        path = os.path.join(d, "gw.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        os.chmod(path, 0o644)

        def as_nobody():
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
        r = subprocess.run([testenv.BIN, "run", "-c", path], capture_output=True, text=True,
                           timeout=testenv.t(30), preexec_fn=as_nobody, cwd=d)
        assert r.returncode == 1, (r.returncode, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if "/user:" in ln]
        assert lines and path + ":" in lines[0], r.stderr
        assert "needs tlsgate to start as root" in lines[0] and "uid 65534" in lines[0], lines
        assert "started" not in r.stderr and "listener public on" not in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(d, "state")), "the sandbox was entered"
        # check, as the same user, says so too (a note: run may well start as root).
        r = subprocess.run([testenv.BIN, "check", "-c", path], capture_output=True, text=True,
                           timeout=testenv.t(30), preexec_fn=as_nobody, cwd=d)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "note: run as this process (uid 65534) could not switch" in r.stdout, r.stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_check_lists_the_allowances(certs, tmp_path):
    cfg = _config(certs, tmp_path, testenv.free_port(), user="nobody")
    path = str(tmp_path / "gw.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = testenv.tlsgate("check", "-c", path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "user: nobody (uid 65534)" in out, out
    assert "no_new_privs: on" in out
    assert "landlock: ABI" in out or "landlock: not available" in out
    certdir = os.path.dirname(os.path.realpath(certs.ec.cert))
    assert any(line.split()[:2] == ["read-only", certdir] and "/keystores/ec/key" in line
               for line in out.splitlines()), out
    assert any(line.split()[:2] == ["read-write", os.path.realpath(str(tmp_path / "state"))]
               or "read-write" in line and "state directory" in line
               for line in out.splitlines()), out
    assert "seccomp: on" in out and "restart" in out
    # pytest's directories are 0700 root: nobody could not read the key on a reload.
    assert any(line.strip().startswith("warning: uid 65534 cannot read " + certs.ec.key)
               and "/keystores/ec/key" in line for line in out.splitlines()), out
    # Nor make a new access log in a directory only root may write, after a rotation.
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    os.chmod(str(logs), 0o755)
    cfg["log"]["access_log"] = str(logs / "access.log")
    with open(path, "w") as f:
        json.dump(cfg, f)
    out = testenv.tlsgate("check", "-c", path).stdout
    assert any(line.strip().startswith("warning: uid 65534 cannot create files in " +
                                       os.path.realpath(str(logs)))
               and "/log/access_log" in line and "SIGUSR1" in line
               for line in out.splitlines()), out

    cfg["sandbox"] = {"enabled": False}
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = testenv.tlsgate("check", "-c", path)
    assert r.returncode == 0 and "sandbox: off" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("extra,where,words", [
    ({"sandbox": {"enabled": "yes"}}, "/sandbox/enabled", "true or false"),
    ({"sandbox": {"enable": True}}, "/sandbox/enable", "did you mean \"enabled\""),
    ({"user": "no-such-user-tlsgate"}, "/user", "no user \"no-such-user-tlsgate\""),
    ({"group": "no-such-group-tlsgate"}, "/group", "no group"),
    ({"user": 65534}, "/user", "a string"),
    # the state directory is given to the user: never one other programs share
    ({"user": "nobody", "state_dir": "/var/lib/"}, "/state_dir", "other programs share"),
    ({"group": "nogroup", "state_dir": "/tmp"}, "/state_dir", "e.g. /var/lib/tlsgate"),
])
def test_sandbox_config_errors(certs, tmp_path, extra, where, words):
    cfg = _config(certs, tmp_path, testenv.free_port(), **extra)
    path = str(tmp_path / "gw.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    r = testenv.tlsgate("check", "-c", path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if where + ":" in ln]
    assert lines and words in lines[0] and lines[0].startswith(path + ":"), r.stderr


def _kernel_log():
    r = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30)
    return r.stdout if r.returncode == 0 else None


def test_forbidden_system_call_kills_and_is_logged(gateway, certs, tmp_path):
    """Test builds (TG_FAULT_INJECTION, the sanitized build): SIGUSR1 with the seccomp_probe
    site makes a call outside the allow list; the kernel kills the process with SIGSYS and logs
    a SECCOMP audit record naming it. Other builds ignore the variable and keep serving."""
    port = testenv.free_port()
    gw = gateway(_config(certs, tmp_path, port), env={"TLSGATE_TEST_FAULT": "seccomp_probe"})
    pid = gw.proc.pid
    if not testenv.SANITIZED:
        assert gw.log_lines("TLSGATE_TEST_FAULT", "ignor"), gw.log_tail()
        gw.signal(signal.SIGUSR1)
        assert gw.wait_log(lambda s: "SIGUSR1" in s, timeout=5), gw.log_tail()
        assert _status_ok(port)
        return
    gw.expect_exit()
    gw.signal(signal.SIGUSR1)
    code = gw.wait_exit(timeout=10)
    assert code == -signal.SIGSYS, "expected death by SIGSYS, got %s:\n%s" % (code, gw.log_tail())
    log = _kernel_log()
    if log is None:
        return  # the kernel log is not readable here: the SIGSYS death is the evidence
    # type=1326 is AUDIT_SECCOMP; getcpu is 309 on x86_64 (the line names the number).
    lines = [ln for ln in log.splitlines()
             if "type=1326" in ln and " pid=%d " % pid in ln and "sig=31" in ln]
    assert lines, "no SECCOMP audit line for pid %d in the kernel log" % pid


def test_admin_api_inside_the_sandbox(gateway, certs, tmp_path, outside):
    """The admin API writes the state directory inside the sandbox; a PUT naming a file outside
    gets 400 with the same message to restart, and nothing changes."""
    from testenv.admin import Admin, admin_section, password_hash
    pw = "sandbox-admin-pw"
    port, aport = testenv.free_port(), testenv.free_port()
    cfg = _config(certs, tmp_path, port, admin=admin_section(aport, password_hash(pw),
                                                             tls={"certificates": ["ec"]}))
    gateway(cfg, ready_ports=[(port, True), (aport, True)])
    with Admin(aport, password=pw) as a:
        doc = a.get("/api/v1/config").json
        good = doc["config"]
        good["log"]["level"] = "debug"
        r = a.request("PUT", "/api/v1/config", body={"version": doc["version"], "config": good})
        assert r.status == 200, r.body
        stored = json.load(open(str(tmp_path / "state" / "config.json")))
        assert stored["version"] == r.json["version"]

        shutil.copy(certs.rsa.cert, os.path.join(outside, "rsa.crt"))
        bad = json.loads(json.dumps(good))
        bad["keystores"]["ec"]["cert"] = os.path.join(outside, "rsa.crt")
        r = a.request("PUT", "/api/v1/config", body={"version": stored["version"], "config": bad})
        assert r.status == 400, r.body
        msgs = [e["message"] for e in r.json["errors"]]
        assert any("restart tlsgate" in m and "outside what the sandbox allows" in m
                   for m in msgs), msgs
        assert a.get("/api/v1/config").json["version"] == stored["version"]
    assert _status_ok(port)
