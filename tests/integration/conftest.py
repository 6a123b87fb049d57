"""Fixtures for the tlsgate integration suite.

certs    (session) CA + server certificates made with the openssl CLI
origin   factory: origin("name") -> a running testenv.Origin, closed after the test
gateway  factory: gateway(config_dict, ...) -> a started testenv.Gateway; stopped after the test
         with exit code 0 expected. Its log is attached to the report of a failing test, and
         under TLSGATE_SANITIZED=1 a sanitizer report in the log fails the test.
"""

import pytest

import testenv
from testenv.client import set_ca


def pytest_report_header(config):
    return "tlsgate binary: %s%s" % (testenv.BIN, " (sanitized, timeouts x3)" if testenv.SANITIZED else "")


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
    problems = []
    for gw in started:
        try:
            if gw.running():
                gw.stop(expect=0)
        except testenv.GatewayError as e:
            problems.append(str(e))
        finally:
            gw.kill()
        try:
            testenv.check_sanitizer(gw)
        except testenv.GatewayError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    return str(d)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for gw in getattr(item, "_tg_gateways", []):
            rep.sections.append(("tlsgate log %s (%s)" % (gw.name, gw.log_path), gw.log_tail(300)))
