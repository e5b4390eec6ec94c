"""The two tiers (tests/tiers.py): what is marked live, and the guard that fails a test that starts
a server or a process without the mark. Played in a pytest session of its own (pytester), in this
process."""

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.any_database  # the tiers' marks and guard

INNER_CONFTEST = """
from tests.tiers import mark_live, pytest_runtest_call, pytest_runtest_setup  # noqa: F401


def pytest_collection_modifyitems(items):
    mark_live(items)
"""

INNER_TESTS = """
import os
import socket
import subprocess

import pytest
from tests.tiers import live_fixture


@live_fixture
def tiers_probe_server():
    yield "would start a server"


@pytest.fixture
def through_another_fixture(tiers_probe_server):
    return tiers_probe_server


def test_uses_a_live_fixture(tiers_probe_server):
    pass


def test_uses_it_through_another_fixture(through_another_fixture):
    pass


@pytest.mark.live
def test_marked_by_hand():
    pass


def test_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()


def test_starts_a_process_and_swallows_the_refusal():
    try:
        subprocess.run(["true"])
    except BaseException:
        pass


def test_runs_a_shell_command():
    os.system("true")


def test_stays_in_process():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # a free port, as tests/live.py finds one: bound, never listened on
"""


def test_live_fixtures_mark_their_users_and_fast_leaves_them_out(pytester):
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    marked = pytester.runpytest("--collect-only", "-q", "-m", "live")
    assert sorted(line for line in marked.outlines if "::" in line) == [
        "test_inner.py::test_marked_by_hand",
        "test_inner.py::test_uses_a_live_fixture",
        "test_inner.py::test_uses_it_through_another_fixture",
    ]


def test_a_test_not_marked_live_fails_when_it_listens_or_starts_a_process(pytester):
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest("-m", "not live")
    result.assert_outcomes(passed=1, failed=3, deselected=3)
    result.stdout.fnmatch_lines_random(
        [
            "*test_inner.py::test_listens listens on a socket but is not marked live*",
            "*test_inner.py::test_starts_a_process_and_swallows_the_refusal starts a process (subprocess.Popen)*",
            "*test_inner.py::test_runs_a_shell_command starts a process (os.system)*",
        ]
    )
