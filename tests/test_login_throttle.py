"""Guessing the merchant's password, through a real gunicorn: parallel guesses cannot pass the
limit (each is counted before its password is checked), and guesses spread over many addresses
meet a growing delay per name, which still lets the merchant in once it has passed."""

import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import requests
from isvapp.dashboard import security
from isvapp.storage.models import LoginAttempt
from sqlalchemy import func, select

from .helpers import KEY, log_in_from
from .live import LiveServer
from .tiers import live_fixture

PASSWORD = "the merchant's own password"


def attempt(url, password, forwarded_for=None):
    with requests.Session() as browser:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        page = browser.get(url + "/admin/login", headers=headers, timeout=30).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        return browser.post(
            url + "/admin/login",
            data={"name": "boss", "password": password, "csrf_token": csrf},
            headers=headers,
            allow_redirects=False,
            timeout=30,
        ).status_code


def counted(server):
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(LoginAttempt.__table__)).scalar_one()
    finally:
        engine.dispose()


@live_fixture
def server(database_uri):
    with tempfile.TemporaryDirectory() as folder:
        live = LiveServer(Path(folder), workers=2, env={"ISVAPP_KOO_ACCESS_KEY": KEY, "ISVAPP_PROXY_FIX_HOPS": "1"})
        live.flask("init-db")
        live.flask("create-admin", "boss", "--password", PASSWORD)
        with live:
            yield live


def test_forty_parallel_guesses_from_one_address_get_five_checks(server):
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda n: attempt(server.url, f"guess {n}", "203.0.113.50"), range(40)))
    assert answers == [401] * 40
    assert counted(server) == security.MAX_FAILURES  # 5 checked against the limit, not 11
    assert attempt(server.url, PASSWORD, "203.0.113.50") == 401  # that address is locked for that name
    assert counted(server) == security.MAX_FAILURES


def test_guesses_from_forty_addresses_meet_a_growing_delay_per_name(server):
    started = time.monotonic()
    answers = [attempt(server.url, f"guess {n}", f"198.51.100.{n % 40 + 1}") for n in range(80)]
    elapsed = time.monotonic() - started
    assert set(answers) == {401}
    # Only the free failures and the few the doubling delay let through in that time were checked
    # (after k more, the name has waited 2 + 4 + ... = 2 * (2**k - 1) s), not all 80 (two from each address).
    let_through = next(k for k in range(64) if 2 * (2 ** (k + 1) - 1) > elapsed)
    assert security.NAME_FREE_FAILURES <= counted(server) <= security.NAME_FREE_FAILURES + let_through + 1
    assert attempt(server.url, PASSWORD, "192.0.2.7") == 401  # right password, new address: wait first


def test_the_merchant_gets_in_once_the_delay_has_passed(app, admin, monkeypatch):
    clock = [security.utcnow()]
    monkeypatch.setattr(security, "utcnow", lambda: clock[0])
    client = app.test_client()
    for n in range(security.NAME_FREE_FAILURES + 3):  # spread over addresses, each waiting its delay
        clock[0] += timedelta(seconds=security.name_delay_s(n) + 1)
        assert log_in_from(client, f"198.51.100.{n + 1}", password="guess").status_code == 401
    delay = security.name_delay_s(security.NAME_FREE_FAILURES + 3)
    assert delay == 16
    assert log_in_from(client, "192.0.2.7").status_code == 401  # too soon after the last failure
    clock[0] += timedelta(seconds=delay + 1)
    assert log_in_from(client, "192.0.2.7").status_code == 302
    assert security.name_delay_s(10**6) == security.NAME_DELAY_MAX_S  # bounded: never locked out for good
