"""Fixtures and suite-wide policy for the tlsgate integration suite.

certs    (session) CA + server certificates made with the openssl CLI
origin   factory: origin("name") -> a running testenv.Origin, closed after the test
gateway  factory: gateway(config_dict, ...) -> a started testenv.Gateway; stopped after the test
         with exit code 0 expected. Its log is attached to the report of a failing test.

Policy, for every test (including those that do not know about it):
- a gateway that ends while the test runs (a crash, a signal, any exit) fails that test unless
  the test said so (gw.stop(), gw.wait_exit(), gw.expect_exit()); a sanitizer report in its
  output fails the test in any build;
- every test has a time limit (pytest-timeout; pytest.ini's timeout, x3 for the sanitized
  build), so a hang is a failure;
- under CI=true (or TLSGATE_NO_SKIP=1) a skipped test is a failure that names what is missing;
  locally every skip is listed loudly at the end of the run.
"""

import pytest

import testenv
from testenv.client import set_ca
from testenv.env import STRICT
from testenv.gateway import problems


def pytest_report_header(config):
    return "tlsgate binary: %s%s; time limit %s s per test; skips %s" % (
        testenv.BIN, " (sanitized, timeouts x%g)" % testenv.SCALE if testenv.SANITIZED else "",
        getattr(config, "_env_timeout", None),
        "fail (CI=true)" if STRICT else "allowed, listed at the end")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    # pytest-timeout read pytest.ini's limit in its own pytest_configure; scale it here.
    if getattr(config, "_env_timeout", None):
        config._env_timeout = testenv.t(config._env_timeout)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    c = testenv.make_certs(str(tmp_path_factory.mktemp("certs")))
    set_ca(c.ca.cert)
    return c


@pytest.fixture
def origin():
    made = []

    def make(name="origin"):
        o = testenv.Origin(name)
        made.append(o)
        return o

    yield make
    for o in made:
        o.close()


@pytest.fixture
def gateway(request, tmp_path, certs):
    """Factory: gateway(config, name=..., wait=True, args=..., env=...) starts tlsgate."""
    started = []
    request.node._tg_gateways = started

    def start(config, name=None, wait=True, **kw):
        gw = testenv.Gateway(str(tmp_path), config, name=name or "tlsgate-%d" % (len(started) + 1),
                             **kw)
        started.append(gw)
        gw.start(wait=wait)
        return gw

    yield start
    found = []
    for gw in started:
        found += problems(gw)  # before stop() would count an early exit as expected
        try:
            if gw.running():
                gw.stop(expect=0)
        except testenv.GatewayError as e:
            found.append(str(e))
        finally:
            gw.kill()
        found += problems(gw)  # a report written while it shut down
    if found:
        pytest.fail("\n\n".join(found), pytrace=False)


@pytest.fixture
def port_8443():
    """Port 8443 of the embedded default, held for this test alone (testenv.fixed_port)."""
    with testenv.fixed_port(8443) as port:
        yield port


@pytest.fixture
def dead_port():
    """Factory: dead_port() -> a testenv.DeadPort (refuses connections until the test ends)."""
    made = []

    def make():
        d = testenv.DeadPort()
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    return str(d)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    gws = getattr(item, "_tg_gateways", [])
    if call.when == "call" and not rep.skipped:
        # The test's own verdict cannot stand if a gateway died under it (a test that only
        # asserts a refusal would pass against a crashed gateway).
        found = []
        for gw in gws:
            found += problems(gw)
        if found:
            text = "\n\n".join(found)
            if rep.passed:
                rep.outcome = "failed"
                rep.longrepr = text
            else:
                rep.sections.append(("tlsgate ended during the test", text))
    if rep.skipped and not hasattr(rep, "wasxfail") and STRICT:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = ("skipped under CI=true, where no test may be skipped (install what is "
                        "missing; scripts/deps.sh): %s" % reason)
    if rep.failed:
        for gw in gws:
            rep.sections.append(("tlsgate log %s (%s)" % (gw.name, gw.log_path), gw.log_tail(300)))


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    tr = terminalreporter
    tr.write_sep("!", "%d TESTS SKIPPED: these promises were NOT tested on this machine "
                 "(CI=true fails on them)" % len(skipped), red=True, bold=True)
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        tr.write_line("SKIPPED %s: %s" % (rep.nodeid, reason), red=True)
