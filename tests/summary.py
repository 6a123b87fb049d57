#!/usr/bin/env python3
"""Prints how many tests `make test` ran, per build: unit executables (and their cmocka cases),
fuzz corpus replays and integration tests, from the JUnit files ctest and pytest wrote; exits 1
when a kind ran no test at all (a dependency that went missing must not shrink the suite
silently), when one failed, or when an integration test was skipped under CI=true.

usage: summary.py BUILD_DIR... (each with test-results/ctest.xml and test-results/integration.xml)
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

CASES_RE = re.compile(r"^\[=+\] (\d+) test\(s\) run\.", re.M)


def ctest_counts(path):
    unit = fuzz = other = cases = failed = 0
    for tc in ET.parse(path).getroot().iter("testcase"):
        name = tc.get("name", "")
        if tc.get("status") != "run" or tc.find("failure") is not None:
            failed += 1
        if name.startswith("unit_"):
            unit += 1
            out = tc.findtext("system-out") or ""
            cases += sum(int(n) for n in CASES_RE.findall(out))
        elif name.startswith("fuzz_") and name.endswith("_replay"):
            fuzz += 1
        else:
            other += 1
    return unit, cases, fuzz, other, failed


def pytest_counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    return n["tests"], n["failures"] + n["errors"], n["skipped"]


def main(dirs):
    strict = os.environ.get("CI", "").lower() in ("true", "1", "yes")
    bad = []
    print("make test ran:")
    for d in dirs:
        res = os.path.join(d, "test-results")
        unit, cases, fuzz, other, cfail = ctest_counts(os.path.join(res, "ctest.xml"))
        itests, ifail, iskip = pytest_counts(os.path.join(res, "integration.xml"))
        print("  %-12s unit %d executables (%d cmocka tests), fuzz-replay %d corpora%s, "
              "integration %d (%d skipped)"
              % (d + "/", unit, cases, fuzz, ", other %d" % other if other else "", itests, iskip))
        for what, count in (("unit", unit), ("fuzz-replay", fuzz), ("integration", itests)):
            if count == 0:
                bad.append("%s: no %s test ran" % (d, what))
        if cfail or ifail:
            bad.append("%s: %d ctest and %d integration failures" % (d, cfail, ifail))
        if iskip and strict:
            bad.append("%s: %d integration tests skipped under CI=true" % (d, iskip))
    for b in bad:
        print("FAIL: " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
