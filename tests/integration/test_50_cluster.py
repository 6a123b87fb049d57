"""Scale-out (issue 14): three tlsgate instances share config, allow lists and session ticket
keys through a 3-member etcd (Debian's etcd-server), with HAProxy in TCP mode sending PROXY v2 in
front. A write through any instance is a compare-and-swap in etcd and reaches every instance
through its watch; one member down changes nothing; quorum lost gives 503 on writes while
traffic flows; etcd back, the instances converge; an instance started with etcd down serves its
last local copy; a config in etcd that does not validate is refused everywhere."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import testenv
from testenv import Conn
from testenv.admin import Admin, admin_section, password_hash
from testenv.etcd import Etcd
from testenv.gateway import problems
from testenv.mtls import PKI

PW = "cluster-admin"
BOB = "CN=bob,O=Org"
ALICE = "CN=alice,O=Org"
BASE = "/api/v1/listeners/p2p/allowed-client-certificate-subjects"


def _shared(certs, pki, origin_port, hash_):
    return {
        "version": 1, "log": {"level": "info"},
        "keystores": {"main": certs.ec.keystore(), "rsa": certs.rsa.keystore()},
        "truststores": {"clients": {"type": "pem", "file": pki.root.cert}},
        "listeners": [
            {"name": "web", "address": "127.0.0.1:%d" % testenv.free_port(), "proxy_protocol": True,
             "proxy_protocol_from": ["127.0.0.1/32"],
             "tls": {"certificates": ["main"], "min_version": "TLS1.2"},
             "routes": [{"path_prefix": "/", "backend": "app"}]},
            {"name": "p2p", "address": "127.0.0.1:%d" % testenv.free_port(),
             "tls": {"certificates": ["main"], "min_version": "TLS1.2",
                     "client_auth": {"mode": "require", "truststore": "clients",
                                     "allowed_subjects": [BOB]}},
             "routes": [{"path_prefix": "/", "backend": "app"}]}],
        "backends": {"app": {"targets": ["127.0.0.1:%d" % origin_port]}},
        "session_tickets": {"rotate_seconds": 3600, "keep": 3},
        "admin": admin_section(testenv.free_port(), hash_),
    }


class Instance:
    def __init__(self, workdir, name, endpoints, prefix, tls=None):
        self.name = name
        self.web, self.p2p, self.admin = (testenv.free_port() for _ in range(3))
        # (etcd fsyncs every write: on a loaded machine that can take a second)
        store = {"type": "etcd", "endpoints": endpoints, "prefix": prefix, "timeout_ms": 3000}
        if tls:
            store["tls"] = tls
        self.file = {
            "store": store, "state_dir": os.path.join(workdir, name + "-state"), "workers": 1,
            "admin": {"address": "127.0.0.1:%d" % self.admin},
            "listeners": [{"name": "web", "address": "127.0.0.1:%d" % self.web},
                          {"name": "p2p", "address": "127.0.0.1:%d" % self.p2p}]}
        self.gw = testenv.Gateway(workdir, self.file, name=name,
                                  ready_ports=[(self.p2p, True), (self.admin, True)])

    def start(self, timeout=20):
        self.gw.start(timeout=testenv.t(timeout))
        return self

    def api(self):
        return Admin(self.admin, password=PW)

    def config(self):
        with self.api() as a:
            r = a.get("/api/v1/config")
            assert r.status == 200, r.body
            return r.json["config"], r.json["version"]


class HAProxy:
    """TCP mode, PROXY v2 to each instance's web listener: one frontend per instance and one
    that balances over all."""

    def __init__(self, workdir, instances):
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        testenv.need(os.path.exists(exe), "haproxy (Debian package haproxy)")
        self.ports = [testenv.free_port() for _ in instances]
        self.all = testenv.free_port()
        lines = ["global", "  maxconn 200", "defaults", "  mode tcp", "  timeout connect 5s",
                 "  timeout client 30s", "  timeout server 30s"]
        for i, (p, inst) in enumerate(zip(self.ports, instances)):
            lines += ["frontend fe%d" % i, "  bind 127.0.0.1:%d" % p, "  default_backend be%d" % i,
                      "backend be%d" % i,
                      "  server s%d 127.0.0.1:%d send-proxy-v2" % (i, inst.web)]
        lines += ["frontend all", "  bind 127.0.0.1:%d" % self.all, "  default_backend lb",
                  "backend lb", "  balance roundrobin"]
        lines += ["  server a%d 127.0.0.1:%d send-proxy-v2" % (i, inst.web)
                  for i, inst in enumerate(instances)]
        cfg = os.path.join(workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(workdir, "haproxy.log"), "wb")
        self.proc = subprocess.Popen([exe, "-db", "-f", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        assert testenv.wait_until(lambda: testenv.can_connect(self.all), testenv.t(10))

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _ctx(client=None, max_version=None):
    ctx = testenv.tls_context()
    if client is not None:
        ctx.load_cert_chain(client.chain, client.key)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def _served_cert(port):
    with Conn(port) as c:
        return testenv.fingerprint(c.peer_cert_der())


def _status(port, ctx=None):
    try:
        with Conn(port, ctx=ctx) as c:
            return c.request("GET", "/echo").status
    except (ssl.SSLError, ConnectionError, OSError):
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, certs):
    d = str(tmp_path_factory.mktemp("cluster"))
    pki = PKI(os.path.join(d, "pki"))
    pki.alice = pki.client("alice", "/O=Org/CN=alice")
    pki.bob = pki.client("bob", "/O=Org/CN=bob")
    etcd = Etcd(d).start()
    origin = testenv.Origin("app")
    insts, hp = [], None
    try:
        hash_ = password_hash(PW)
        shared = _shared(certs, pki, origin.port, hash_)
        with open(os.path.join(d, "shared.json"), "w") as f:
            json.dump(dict(shared, store={"type": "etcd", "endpoints": etcd.endpoints,
                                          "prefix": "/tlsgate/t50/"}), f)
        out = testenv.tlsgate("store", "push", "-c", os.path.join(d, "shared.json"))
        assert out.returncode == 0, out.stderr
        for i in range(3):
            insts.append(Instance(d, "gw%d" % i, etcd.endpoints, "/tlsgate/t50/"))
            insts[-1].start()
        hp = HAProxy(d, insts)
        c = type("Cluster", (), {})()
        c.etcd, c.insts, c.hp, c.pki, c.certs, c.dir, c.origin = (etcd, insts, hp, pki, certs, d,
                                                                  origin)
        yield c
    finally:  # everything this fixture started goes, whatever failed
        if hp is not None:
            hp.close()
        bad = []
        for inst in insts:
            bad += problems(inst.gw)
            if inst.gw.running():
                inst.gw.stop(expect=None if bad else 0, timeout=testenv.t(20))
        etcd.close()
        origin.close()
    assert not bad, bad


def _dump_logs(c):
    return "\n".join("== %s\n%s" % (i.name, i.gw.log_tail(40)) for i in c.insts)


def test_start_log_names_where_keys_come_from(cluster):
    for inst in cluster.insts:
        text = inst.gw.log_text()
        assert "the shared config from etcd /tlsgate/t50/config, version 1" in text, text
        assert "per-instance keys from %s: store, state_dir, workers, admin.address, " \
               "listeners[web].address, listeners[p2p].address" % inst.gw.config_path in text, text


def test_put_reaches_every_instance_within_a_second(cluster):
    """The web listener's certificate changed through instance 1: GET /api/v1/config and the
    handshakes (through HAProxy) of instances 2 and 3 show it within a second."""
    a, b, c = cluster.insts
    doc, v = a.config()
    assert _served_cert(cluster.hp.ports[1]) == testenv.fingerprint(cluster.certs.ec.cert)
    doc["listeners"][0]["tls"]["certificates"] = ["rsa"]
    want = testenv.fingerprint(cluster.certs.rsa.cert)
    apis = [b.api(), c.api()]  # kept open: each new admin connection hashes the password
    for api in apis:
        api.get("/api/v1/config")
    with a.api() as api:
        api.get("/api/v1/config")
        r = api.request("PUT", "/api/v1/config", body={"version": v, "config": doc})
        assert r.status == 200, r.body
    t0 = time.monotonic()
    seen = {}
    while len(seen) < 4 and time.monotonic() - t0 < testenv.t(3):
        for k, (api, port) in enumerate(zip(apis, cluster.hp.ports[1:])):
            if ("config", k) not in seen and api.get("/api/v1/config").json["version"] == v + 1:
                seen[("config", k)] = time.monotonic() - t0
            if ("handshake", k) not in seen and _served_cert(port) == want:
                seen[("handshake", k)] = time.monotonic() - t0
        time.sleep(0.01)
    for api in apis:
        api.close()
    assert len(seen) == 4, (seen, _dump_logs(cluster))
    assert max(seen.values()) < testenv.t(1.0), seen
    for inst in (b, c):
        assert "applied from the store" in inst.gw.log_text()


def test_same_version_puts_on_two_instances_one_wins(cluster):
    a, b, _ = cluster.insts
    doc, v = a.config()
    assert testenv.wait_until(lambda: b.config()[1] == v, testenv.t(2))
    results = []

    def put(inst, level):
        d = json.loads(json.dumps(doc))
        d["log"]["level"] = level
        with inst.api() as api:
            r = api.request("PUT", "/api/v1/config", body={"version": v, "config": d})
            results.append(r.status)

    ts = [threading.Thread(target=put, args=(a, "debug")),
          threading.Thread(target=put, args=(b, "warn"))]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    assert sorted(results) == [200, 409], results
    conflicts = 0
    for inst in (a, b):
        with inst.api() as api:
            m = api.get("/metrics").body.decode()
        conflicts += 'tlsgate_store_write_failures_total{reason="conflict"} 1' in m
    assert conflicts == 1, m
    # every instance ends on the one that won
    assert testenv.wait_until(lambda: len({i.config()[1] for i in cluster.insts}) == 1,
                              testenv.t(2))


def test_allowed_subject_added_on_two_admits_on_all(cluster):
    a, b, c = cluster.insts
    actx = _ctx(cluster.pki.alice)
    for inst in cluster.insts:
        assert _status(inst.p2p, actx) is None
    with b.api() as api:
        r = api.request("PUT", BASE + "/" + ALICE.replace(",", "%2C").replace("=", "%3D"))
        assert r.status == 201, r.body
    for inst in cluster.insts:
        assert testenv.wait_until(lambda: _status(inst.p2p, actx) == 200, testenv.t(2)), \
            _dump_logs(cluster)


def _https_get(port, ctx, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    reused, sess = s.session_reused, s.session
    s.close()
    return data, reused, sess


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_made_on_one_resumes_on_three(cluster, version):
    """Through HAProxy (PROXY v2): the ticket keys are the cluster's, not the instance's."""
    ctx = _ctx(max_version=version)
    data, reused, sess = _https_get(cluster.hp.ports[0], ctx)
    assert data.startswith(b"HTTP/1.1 200") and not reused
    data, reused, _ = _https_get(cluster.hp.ports[2], ctx, session=sess)
    assert data.startswith(b"HTTP/1.1 200")
    assert reused, "a session made through instance 1 did not resume on instance 3"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_certificate_session_made_on_one_resumes_on_three(cluster, version):
    """With an etcd store, listeners asking for client certificates keep stateless tickets by
    default (session_tickets.client_auth), so their sessions resume on any instance too."""
    a, _, c = cluster.insts
    ctx = _ctx(cluster.pki.bob, max_version=version)
    data, reused, sess = _https_get(a.p2p, ctx)
    assert data.startswith(b"HTTP/1.1 200") and not reused, data[:200]
    data, reused, _ = _https_get(c.p2p, ctx, session=sess)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert reused, "an mTLS session made on instance 1 did not resume on instance 3"


def _put_tickets(inst, rotate, keep):
    doc, v = inst.config()
    doc["session_tickets"] = {"rotate_seconds": rotate, "keep": keep}
    with inst.api() as api:
        r = api.request("PUT", "/api/v1/config", body={"version": v, "config": doc})
        assert r.status == 200, r.body
    return r.json["version"]


def test_ticket_keys_rotated_by_one_instance_at_a_time(cluster):
    """rotate_seconds 2: the ring in etcd is replaced about every 2 s by whichever instance holds
    the lease lock, not by each of the three; a session made before a rotation still resumes on
    another instance after it (the ring keeps the older keys: keep 16)."""
    ctx = _ctx(max_version=ssl.TLSVersion.TLSv1_2)
    _, _, sess = _https_get(cluster.hp.ports[0], ctx)

    def rotations():  # each rotation is one put of the ring: the key's version counts them
        import base64
        r = cluster.etcd.call("/v3/kv/range", {
            "key": base64.b64encode(b"/tlsgate/t50/tickets").decode(), "serializable": True})
        return int(r["kvs"][0]["version"])

    before = rotations()
    v = _put_tickets(cluster.insts[1], 2, 16)
    assert testenv.wait_until(lambda: all(i.config()[1] >= v for i in cluster.insts),
                              testenv.t(3))
    # the first rotation under the new period (a lock left by a rotator that could not delete
    # it, e.g. on a loaded machine, holds for its 10 s lease at most)
    assert testenv.wait_until(lambda: rotations() > before, testenv.t(15)), _dump_logs(cluster)
    first = rotations()
    t0 = time.monotonic()
    time.sleep(6.5)
    n = rotations() - first
    elapsed = time.monotonic() - t0
    _put_tickets(cluster.insts[1], 3600, 3)
    # one rotation per period across the cluster, not one per instance (that would be ~9)
    assert 2 <= n <= elapsed / 2 + 1, (n, elapsed, _dump_logs(cluster))
    data, reused, _ = _https_get(cluster.hp.ports[2], ctx, session=sess)
    assert data.startswith(b"HTTP/1.1 200") and reused


def _put_level(inst, level):
    doc, v = inst.config()
    doc["log"]["level"] = level
    with inst.api() as api:
        return api.request("PUT", "/api/v1/config", body={"version": v, "config": doc})


def test_member_down_quorum_lost_and_back(cluster):
    a, b, c = cluster.insts
    e = cluster.etcd
    e.stop_member(0)
    try:
        # (if it led, the other two elect a leader first: etcd's election, not ours)
        assert testenv.wait_until(e.healthy, testenv.t(10)), e.log_tail()
        r = _put_level(a, "info")
        assert r.status == 200, r.body
        v = r.json["version"]
        assert testenv.wait_until(lambda: all(i.config()[1] == v for i in cluster.insts),
                                  testenv.t(3)), _dump_logs(cluster)
        e.stop_member(1)
        r = _put_level(b, "debug")
        assert r.status == 503, r.body
        with b.api() as api:
            m = api.get("/metrics").body.decode()
        assert 'tlsgate_store_write_failures_total{reason="unavailable"} 1' in m, m
        msg = json.dumps(r.json)
        assert "etcd" in msg and ("unknown" in msg or "unreachable" in msg), msg
        # reads and traffic go on
        assert all(i.config()[1] == v for i in cluster.insts)
        for p in cluster.hp.ports + [cluster.hp.all]:
            assert _status(p) == 200
    finally:
        e.start_member(0)
        e.start_member(1)
    assert testenv.wait_until(e.healthy, testenv.t(30)), e.log_tail()
    # converged: what is in etcd (the timed-out write may have been committed) is on every
    # instance, and a new write reaches all
    stored = json.loads(e.get("/tlsgate/t50/config"))["version"]
    assert testenv.wait_until(lambda: all(i.config()[1] == stored for i in cluster.insts),
                              testenv.t(5)), _dump_logs(cluster)
    r = testenv.wait_until(lambda: (lambda r: r if r.status == 200 else None)(_put_level(c, "info")),
                           testenv.t(10))
    assert r, "no write succeeded after etcd came back"
    assert testenv.wait_until(lambda: all(i.config()[1] == r.json["version"]
                                          for i in cluster.insts), testenv.t(3))


def test_watch_resumed_past_a_compaction_reads_afresh(cluster):
    """Instance 3 frozen while the member its watch uses dies, writes go on and etcd compacts
    them away: thawed, it cannot resume from its last revision and reads the store afresh."""
    a, _, c = cluster.insts
    e = cluster.etcd
    c.gw.signal(signal.SIGSTOP)
    try:
        for i in range(3):  # a rolling restart: the member its watch sits on goes too
            e.stop_member(i)
            e.start_member(i)
            assert testenv.wait_until(e.healthy, testenv.t(30)), e.log_tail()
        for level in ("debug", "info"):
            r = testenv.wait_until(
                lambda: (lambda r: r if r.status == 200 else None)(_put_level(a, level)),
                testenv.t(10))
            assert r
        head = int(e.call("/v3/kv/range", {"key": "Lw=="})["header"]["revision"])
        e.call("/v3/kv/compaction", {"revision": str(head), "physical": True})
    finally:
        c.gw.signal(signal.SIGCONT)
    assert testenv.wait_until(lambda: c.config()[1] == r.json["version"], testenv.t(10)), \
        c.gw.log_tail()
    assert "revisions compacted" in c.gw.log_text() or "reading the store afresh" in \
        c.gw.log_text(), c.gw.log_tail()
    assert testenv.wait_until(e.healthy, testenv.t(30))


def test_invalid_config_in_etcd_is_refused_everywhere(cluster):
    e = cluster.etcd
    a = cluster.insts[0]
    doc, v = a.config()
    raw = json.loads(e.get("/tlsgate/t50/config"))
    bad = raw["config"]
    bad["listeners"][0]["tls"]["min_version"] = "TLS1.9"
    import base64
    e.call("/v3/kv/put", {"key": base64.b64encode(b"/tlsgate/t50/config").decode(),
                          "value": base64.b64encode(json.dumps(
                              {"version": raw["version"] + 1, "config": bad}).encode()).decode()})
    for inst in cluster.insts:
        assert inst.gw.wait_log(lambda t: "refused with" in t and "TLS1.9" in t, testenv.t(3)), \
            inst.gw.log_tail()
        assert inst.config()[1] == v
        with inst.api() as api:
            m = api.get("/metrics").body.decode()
        assert 'tlsgate_store_configs_total{result="refused"} 1' in m, m
        assert "tlsgate_store_up 1" in m
        assert _status(cluster.hp.ports[cluster.insts.index(inst)]) == 200
    # a write of the version they run repairs the cluster
    with a.api() as api:
        r = api.request("PUT", "/api/v1/config", body={"version": v, "config": doc})
        assert r.status == 200, r.body
    assert testenv.wait_until(lambda: all(i.config()[1] == r.json["version"]
                                          for i in cluster.insts), testenv.t(3))


def test_instance_restarted_with_etcd_down_serves_last_copy(cluster):
    e = cluster.etcd
    c = cluster.insts[2]
    _, v = c.config()
    c.gw.stop(expect=0, timeout=testenv.t(20))
    for i in range(3):
        e.stop_member(i)
    try:
        c.start(timeout=30)
        assert "because etcd is unreachable" in c.gw.log_text()
        assert c.config()[1] == v
        assert _status(cluster.hp.ports[2]) == 200
        r = _put_level(c, "warn")
        assert r.status == 503
    finally:
        for i in range(3):
            e.start_member(i)
    assert testenv.wait_until(e.healthy, testenv.t(30)), e.log_tail()
    r = testenv.wait_until(lambda: (lambda r: r if r.status == 200 else None)(_put_level(c, "info")),
                           testenv.t(10))
    assert r
    assert testenv.wait_until(lambda: all(i.config()[1] == r.json["version"]
                                          for i in cluster.insts), testenv.t(3))


def test_store_status_and_pull(cluster):
    inst_file = cluster.insts[0].gw.config_path
    out = testenv.tlsgate("store", "status", "-c", inst_file)
    assert out.returncode == 0, out.stderr
    assert "members reached: 3 of 3" in out.stdout, out.stdout
    assert "instance " in out.stdout and "last apply" in out.stdout, out.stdout
    out = testenv.tlsgate("store", "pull", "-c", inst_file)
    assert out.returncode == 0, out.stderr
    pulled = json.loads(out.stdout)
    assert pulled["session_tickets"]["keys"] == "***"
    assert pulled["config"]["admin"]["users"][0]["password_hash"] == "***"
    out = testenv.tlsgate("store", "pull")
    assert out.returncode == 2
