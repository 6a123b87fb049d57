#!/usr/bin/python3
"""docs/testing.md's promise table stays true to the suite: every `NN:test_name` it names exists
in tests/integration (`NN*` prefixes, [param] ids and `*` wildcards allowed), every `unit
mod/test_file` exists in tests/unit, rows are numbered 1..N, and the counts line matches the
statuses. Run by ctest (testing_md)."""
import glob
import os
import re
import sys
from collections import Counter

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
ALIASES = {"22m": "22_mtls_revocation", "23p": "23_proxy_protocol_in", "23s": "23_streams",
           "24a": "24_admin", "24h": "24_http2", "24t": "24_session_tickets",
           "25a": "25_admin_config", "25o": "25_ocsp_stapling"}


def test_names():
    by = {}
    for p in glob.glob(os.path.join(ROOT, "tests/integration/test_*.py")):
        base = os.path.basename(p)[5:-3]
        names = set(re.findall(r"^(?:async )?def (test_\w+)", open(p).read(), re.M))
        by.setdefault(base.split("_")[0], set()).update(
            names if base != "22_mtls_revocation" else set())
        for alias, stem in ALIASES.items():
            if base == stem:
                by[alias] = names
    return by


def main():
    doc = open(os.path.join(ROOT, "docs/testing.md")).read()
    defs = test_names()
    problems, rows = [], []
    for line in doc.splitlines():
        m = re.match(r"\| (\d+) \|", line)
        if not m:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((int(m.group(1)), cells[-1]))
        cur = None
        for tok in re.split(r"[,;]\s*", cells[-2]):
            for um in re.finditer(r"unit (\w+)/(test_\w+)", tok):
                if not os.path.exists(os.path.join(ROOT, "tests/unit", um.group(1),
                                                   um.group(2) + ".c")):
                    problems.append("row %s: no unit test %s/%s" % (m.group(1), um.group(1),
                                                                     um.group(2)))
            tm = re.match(r"\s*(\d+[a-z]?):(\S+)", tok)
            if tm:
                cur, name = tm.group(1), tm.group(2)
            else:
                name = tok.strip().split(" ")[0]
            name = re.sub(r"[\[(].*", "", name).strip("`")
            if cur is None or not name.startswith("test_") or name.startswith("test_" + "..."):
                continue
            if "..." in name:
                continue
            pre, star, suf = name.partition("*")
            have = defs.get(cur, set())
            ok = any(d.startswith(pre) and d.endswith(suf) for d in have) if star else name in have
            if not ok:
                problems.append("row %s: %s:%s is not a test" % (m.group(1), cur, name))
    nums = [n for n, _ in rows]
    if nums != list(range(1, len(rows) + 1)):
        problems.append("rows are not numbered 1..%d" % len(rows))
    c = Counter(st for _, st in rows)
    want = "**Counts: %d promises; %d tested, %d partly, %d untested.**" % (
        len(rows), c["tested"], c["partly"], c["untested"])
    if want not in doc:
        problems.append("the counts line should read: " + want)
    for p in problems:
        print(p)
    print("%d rows, %s" % (len(rows), dict(c)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
