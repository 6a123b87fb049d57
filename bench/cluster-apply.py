#!/usr/bin/python3
"""Cluster figures (issue 14): a 3-member etcd and three tlsgate instances with store etcd, all on
127.0.0.1, made and stopped by this script.

1. Apply time: N config PUTs through instance 1 (each waits for the last); for each, the time from
   sending the PUT to every instance having applied it (instance 1's "applied through the admin
   API" and the others' "applied from the store" log lines, millisecond timestamps on the same
   clock). Prints the median and the worst.
2. What an etcd outage costs the data path: wrk (keep-alive) and curl (new TLS connections)
   against instance 2 with etcd up, with every member stopped, and up again (the drift between
   runs on a shared machine, for scale).

Usage: bench/cluster-apply.py [--puts N] [--duration S] [--keep]   (TLSGATE_BIN picks the binary)
"""
import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import testenv  # noqa: E402
from testenv.admin import Admin, admin_section, password_hash  # noqa: E402
from testenv.etcd import Etcd  # noqa: E402

PW = "bench-admin"


def log_times(path, pattern):
    """{version: epoch seconds} of the log lines matching pattern (group 1 = version)."""
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(pattern, line)
            if m:
                ts = datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")
                out[int(m.group(1))] = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
    return out


def wrk(port, duration):
    r = subprocess.run(["wrk", "-t1", "-c16", "-d%ds" % duration, "https://127.0.0.1:%d/" % port],
                       capture_output=True, text=True)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    sock = re.search(r"Socket errors: (.*)", r.stdout)
    return float(m.group(1)) if m else 0.0, (errs.group(1) if errs else "0"), \
        (sock.group(1) if sock else "none")


def handshakes(port, n):
    """n requests, each on a new TLS connection (full handshakes): seconds taken, failures."""
    t0 = time.monotonic()
    fails = 0
    for _ in range(n):
        r = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                            "https://127.0.0.1:%d/" % port], capture_output=True, text=True)
        fails += r.stdout != "200"
    return time.monotonic() - t0, fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--puts", type=int, default=50)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="tlsgate-cluster-bench-")
    certs = testenv.make_certs(os.path.join(d, "certs"))
    etcd = Etcd(d).start()
    gws = []
    try:
        hash_ = password_hash(PW)
        shared = {"version": 1, "log": {"level": "info"},
                  "keystores": {"main": certs.ec.keystore()},
                  "listeners": [{"name": "web", "address": "127.0.0.1:%d" % testenv.free_port(),
                                 "tls": {"certificates": ["main"]},
                                 "routes": [{"path_prefix": "/", "backend": "status"}]}],
                  "backends": {"status": {"builtin": "status"}},
                  "admin": admin_section(testenv.free_port(), hash_),
                  "store": {"type": "etcd", "endpoints": etcd.endpoints, "prefix": "/bench/"}}
        with open(os.path.join(d, "shared.json"), "w") as f:
            json.dump(shared, f)
        subprocess.run([testenv.BIN, "store", "push", "-c", os.path.join(d, "shared.json")],
                       check=True, capture_output=True)
        insts = []
        for i in range(3):
            web, adm = testenv.free_port(), testenv.free_port()
            inst = {"store": {"type": "etcd", "endpoints": etcd.endpoints, "prefix": "/bench/"},
                    "state_dir": os.path.join(d, "s%d" % i), "workers": 1,
                    "admin": {"address": "127.0.0.1:%d" % adm},
                    "listeners": [{"name": "web", "address": "127.0.0.1:%d" % web}]}
            gw = testenv.Gateway(d, inst, name="gw%d" % i, ready_ports=[(web, True), (adm, True)])
            gw.start(timeout=30)
            gws.append(gw)
            insts.append((web, adm))
        api = Admin(insts[0][1], password=PW)
        sent = {}
        for k in range(args.puts):
            r = api.get("/api/v1/config")
            doc, v = r.json["config"], r.json["version"]
            doc["log"]["level"] = "debug" if k % 2 == 0 else "info"
            sent[v + 1] = time.time()
            r = api.request("PUT", "/api/v1/config", body={"version": v, "config": doc})
            assert r.status == 200, r.body
            # wait until all three have it before the next
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if all(v + 1 in log_times(gw.log_path, r"config version (\d+) (?:\(etcd|applied)")
                       for gw in gws):
                    break
                time.sleep(0.005)
        api.close()
        own = log_times(gws[0].log_path, r"config version (\d+) applied through the admin API")
        others = [log_times(gw.log_path, r"config version (\d+) \(etcd revision \d+\) applied")
                  for gw in gws[1:]]
        total, watch = [], []
        for v, t0 in sorted(sent.items()):
            last = max(o[v] for o in others)
            total.append((last - t0) * 1000)
            watch.append((last - own[v]) * 1000)
        print("apply: %d PUTs through instance 1, until all 3 instances applied" % len(total))
        print("  from sending the PUT: median %.1f ms, worst %.1f ms" %
              (statistics.median(total), max(total)))
        print("  from instance 1's apply to the last other instance's: median %.1f ms, worst %.1f ms"
              % (statistics.median(watch), max(watch)))
        port = insts[1][0]
        up = wrk(port, args.duration)
        hs_up = handshakes(port, 200)
        for i in range(3):
            etcd.stop_member(i)
        time.sleep(1)
        down = wrk(port, args.duration)
        hs_down = handshakes(port, 200)
        for i in range(3):  # up again: the machine's drift between runs, for scale
            etcd.start_member(i)
        assert testenv.wait_until(etcd.healthy, 30)
        time.sleep(1)
        up2 = wrk(port, args.duration)
        hs_up2 = handshakes(port, 200)
        print("data path through instance 2 (wrk -t1 -c16 -d%ds keep-alive; 200 curl requests "
              "on new TLS connections)" % args.duration)
        print("  etcd up:           %.0f req/s (non-2xx %s, socket errors %s); 200 handshakes "
              "%.2f s, %d failed" % (up + hs_up))
        print("  all members down:  %.0f req/s (non-2xx %s, socket errors %s); 200 handshakes "
              "%.2f s, %d failed" % (down + hs_down))
        print("  etcd up again:     %.0f req/s (non-2xx %s, socket errors %s); 200 handshakes "
              "%.2f s, %d failed" % (up2 + hs_up2))
    finally:
        for gw in gws:
            if gw.running():
                gw.stop(expect=None, timeout=30)
        etcd.close()
        if args.keep:
            print("work directory kept:", d)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
