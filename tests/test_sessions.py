"""The merchant's session ends after SESSION_IDLE_MIN minutes without a page (30 by default), and
12 h after its login however busy it was: re-signing the cookie must not renew its lifetime."""

import pytest
from isvapp.dashboard import security

from .helpers import log_in


class Clock:
    def __init__(self, monkeypatch):
        self.now = 1_800_000_000.0
        monkeypatch.setattr(security.time, "time", lambda: self.now)

    def advance(self, minutes):
        self.now += 60 * minutes


def logged_in(client):
    response = client.get("/admin/")
    return response.status_code == 200, response


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def test_an_idle_session_ends_after_30_minutes(client, admin, clock):
    assert log_in(client).status_code == 302
    clock.advance(29)
    assert logged_in(client)[0]
    clock.advance(29)  # 29 minutes after the last page, 58 after the login: still alive
    assert logged_in(client)[0]
    clock.advance(31)
    alive, response = logged_in(client)
    assert not alive and response.status_code == 302 and "/admin/login" in response.headers["Location"]
    clock.advance(1)
    assert not logged_in(client)[0]  # the session was cleared, not only refused once


@pytest.mark.parametrize("app_config", [{"SESSION_IDLE_MIN": 5}])
def test_the_idle_timeout_is_a_setting(client, admin, clock):
    log_in(client)
    clock.advance(6)
    assert not logged_in(client)[0]


def test_a_busy_session_still_ends_12_hours_after_its_login(client, admin, clock):
    log_in(client)
    for _ in range(12 * 60 // 20 - 1):  # a page every 20 minutes for just under 12 h
        clock.advance(20)
        assert logged_in(client)[0]
    clock.advance(21)
    assert not logged_in(client)[0]
    assert log_in(client).status_code == 302 and logged_in(client)[0]  # a new login starts afresh
