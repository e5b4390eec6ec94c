"""The two tiers of the suite: the in-process tests, and the ``live`` ones (setup.cfg) that start a
server, a process or a browser. ``./scripts/test.sh --fast`` runs the first (``-m "not live"``);
the full command runs both.

A test is marked live by hand (``@pytest.mark.live``), or by using a fixture made with
``live_fixture`` (directly or through other fixtures): conftest.py calls ``mark_live``. Every
other test runs under a guard (conftest.py takes the two hook wrappers below) that fails it if it
listens on a socket or starts a process, so nothing live hides in the fast tier.
"""

import os
import socket
import subprocess

import pytest

# The names of the fixtures made with live_fixture. A name is marked wherever a fixture by that
# name is used, so a live fixture wants a name no in-process fixture has.
LIVE_FIXTURES = set()


def live_fixture(function=None, **kwargs):
    """``pytest.fixture`` (same arguments) for a fixture that starts a server, a process or a
    browser: every test using it is marked live, with no mark of its own to forget."""

    def make(function):
        LIVE_FIXTURES.add(kwargs.get("name") or function.__name__)
        return pytest.fixture(**kwargs)(function)

    return make(function) if function else make


def mark_live(items):
    """Mark live each collected test that uses a live fixture (before ``-m`` deselects by mark)."""
    for item in items:
        if LIVE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)


# What starts a server or a process: listening on a socket (werkzeug's and http.server's servers,
# asyncio's, aiosmtpd's), subprocess (asyncio's subprocesses and Playwright's driver too), and the
# os calls beside it.
STARTERS = [
    (socket.socket, "listen", "listens on a socket"),
    (subprocess.Popen, "__init__", "starts a process (subprocess.Popen)"),
    *(
        (os, name, f"starts a process (os.{name})")
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system")
    ),
]


def _refuse(item, refused, what):
    def refuse(*args, **kwargs):
        message = (
            f"{item.nodeid} {what} but is not marked live: mark it @pytest.mark.live, or start it in a "
            "fixture made with tests/tiers.py's live_fixture, so that ./scripts/test.sh --fast leaves it out"
        )
        refused.append(message)
        pytest.fail(message, pytrace=False)

    return refuse


def _guarded(item):
    """One phase of ``item`` (the body of a hook wrapper), with everything in STARTERS refused
    unless the test is marked live. What was refused fails the test even when the code under test
    swallowed the failure (in a server thread, or an ``except BaseException``)."""
    if item.get_closest_marker("live"):
        return (yield)
    refused = []
    with pytest.MonkeyPatch.context() as patch:
        for owner, name, what in STARTERS:
            patch.setattr(owner, name, _refuse(item, refused, what))
        result = yield
    if refused:
        pytest.fail(refused[0], pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _guarded(item))
