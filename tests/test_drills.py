"""Failure drills: a worker killed mid-load, a locked database, a full disk, a read-only file,
a skewed clock. Each answers within the marketplace's budget with the right code, loses nothing
it acknowledged, says in the log what is wrong, and recovers by itself once the cause is gone.
"""

import json
import logging
import os
import signal
import sqlite3
import stat
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from isvapp import create_app
from isvapp.extensions import db
from isvapp.koo.signing import g2_signed_request
from isvapp.storage.models import Answer, Callback, Instance, SignedRequest
from isvapp.storage.schema import init_db
from isvapp.throttle import Throttle
from sqlalchemy import event, text

from .helpers import KEY, Marketplace, new_order
from .live import LIVE_ENV, LiveServer, post_g2


def code_of(response):
    assert response.status_code == 200
    return json.loads(response.content)["resultCode"]


def worker_pids(server):
    """gunicorn's workers: the master's children."""
    path = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


# --- a worker killed with SIGKILL in the middle of sustained load ------------------------------

KILL_ORDERS = 240


@pytest.mark.live
def test_worker_killed_mid_load_loses_no_acknowledged_order_and_retries_converge(tmp_path):
    orders = [new_order(order=f"KILL{n:04d}", test_flag="1") for n in range(KILL_ORDERS)]
    outcome = {}  # orderId -> answer bytes (HTTP 200) or the exception's name
    local = threading.local()
    with LiveServer(tmp_path, workers=3, env=LIVE_ENV) as server:

        def send(body):
            local.session = getattr(local, "session", None) or requests.Session()
            try:
                response = post_g2(local.session, server.url, body, timeout=5)
                outcome[body["orderId"]] = response.content
            except requests.RequestException as error:
                local.session = None
                outcome[body["orderId"]] = type(error).__name__

        killed = []
        with ThreadPoolExecutor(8) as pool:
            for body in orders:
                pool.submit(send, body)
            for at in (KILL_ORDERS // 3, 2 * KILL_ORDERS // 3):  # two kills, while requests flow
                deadline = time.monotonic() + 60
                while len(outcome) < at and time.monotonic() < deadline:
                    time.sleep(0.002)
                victim = worker_pids(server)[0]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
        acknowledged = {
            o: json.loads(b)["instanceId"]
            for o, b in outcome.items()
            if isinstance(b, bytes) and json.loads(b)["resultCode"] == "000000"
        }
        lost = [o for o, b in outcome.items() if not isinstance(b, bytes)]

        # Every acknowledged order is stored, whole; nothing is half-written.
        engine = server.engine()
        with engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT order_id, instance_id FROM instances")).all())
            unanswered = conn.execute(text("SELECT count(*) FROM answers WHERE body IS NULL")).scalar_one()
            created = conn.execute(text("SELECT count(*) FROM events WHERE kind = 'created'")).scalar_one()
            if engine.dialect.name == "sqlite":
                assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        assert all(stored.get(o) == iid for o, iid in acknowledged.items())
        assert unanswered == 0 and created == len(stored)

        # The marketplace retries everything: each order converges on one instance, and orders
        # already acknowledged get their first answer again, byte for byte.
        session = requests.Session()
        retried = {body["orderId"]: post_g2(session, server.url, body) for body in orders}
        with engine.connect() as conn:
            per_order = conn.execute(text("SELECT order_id, count(*) FROM instances GROUP BY order_id")).all()
        engine.dispose()
        assert set(worker_pids(server)).isdisjoint(killed) and len(worker_pids(server)) == 3

    print(
        f"kill drill: {len(acknowledged)} acknowledged, {len(lost)} without an answer, "
        f"{KILL_ORDERS - len(acknowledged) - len(lost)} other answers"
    )
    assert len(acknowledged) >= KILL_ORDERS // 2
    assert all(code_of(r) == "000000" for r in retried.values())
    assert all(retried[o].content == outcome[o] for o in acknowledged)
    assert len(per_order) == KILL_ORDERS and all(count == 1 for _, count in per_order)


# --- the database locked by another process for longer than the busy timeout --------------------


@contextmanager
def database_locked(server):
    """Another process holds the write lock (SQLite) or an exclusive lock on signed_requests (PostgreSQL)."""
    if server.database_uri.startswith("sqlite"):
        blocker = sqlite3.connect(server.database_uri.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    else:
        engine = server.engine()
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE signed_requests IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                conn.rollback()
        engine.dispose()


@pytest.mark.live
def test_locked_database_answers_000005_within_3_5_s_then_serves(tmp_path):
    session = requests.Session()
    with LiveServer(tmp_path, workers=2, env=LIVE_ENV) as server:
        assert code_of(post_g2(session, server.url, new_order(order="WARMUP"))) == "000000"
        with database_locked(server):
            t0 = time.monotonic()
            locked = post_g2(session, server.url, new_order(order="LOCKED"))
            elapsed = time.monotonic() - t0
        after = post_g2(session, server.url, new_order(order="LOCKED"))
        log = (tmp_path / "gunicorn.log").read_text()
    print(f"locked database answered in {elapsed:.2f} s")
    assert code_of(locked) == "000005" and "retry" in json.loads(locked.content)["resultMsg"]
    assert elapsed < 3.5
    assert code_of(after) == "000000"
    assert "database unavailable while answering POST /produce" in log


# --- a full disk and a read-only database file (SQLite) ---------------------------------------


def test_full_disk_answers_000005_logs_it_stores_nothing_half_and_recovers(app, market, caplog):
    """PRAGMA max_page_count caps the file a few pages above its size: new orders fill it."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("max_page_count is SQLite's")
        engine = db.engine
        pages = db.session.execute(text("PRAGMA page_count")).scalar_one()
        db.session.remove()

    def cap(dbapi_connection, _record):
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 3}")

    event.listen(engine, "connect", cap)
    engine.dispose()
    try:
        for n in range(300):
            body = new_order(order=f"FULL{n:03d}")
            answer = json.loads(market.g2(body).data)
            if answer["resultCode"] != "000000":
                break
        else:
            pytest.fail("the capped database never filled up")
    finally:
        event.remove(engine, "connect", cap)
        engine.dispose()
    assert answer["resultCode"] == "000005" and "retry" in answer["resultMsg"]
    assert "database or disk is full" in caplog.text and "database unavailable" in caplog.text
    assert market.count(Instance) == market.count(Answer) == n  # the refused order left nothing
    assert json.loads(market.g2(body).data)["resultCode"] == "000000"  # space freed: served


@contextmanager
def unwritable(path):
    """Make the database file unwritable to this process: chmod, or as root (which ignores file
    modes) also run as nobody meanwhile: the way a restored file with the wrong owner behaves."""
    mode = path.stat().st_mode
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    as_root = os.geteuid() == 0
    if as_root:
        os.seteuid(65534)
    try:
        yield
    finally:
        if as_root:
            os.seteuid(0)
        path.chmod(mode)


def test_read_only_database_file_answers_000005_logs_it_and_recovers(caplog):
    folder = Path(tempfile.mkdtemp(prefix="isvapp-ro-"))  # readable by nobody, unlike tmp_path
    folder.chmod(0o755)
    try:
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(folder),
                "SECRET_KEY": "s",
                "KOO_ACCESS_KEY": KEY,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/ro.sqlite",
            }
        )
        market = Marketplace(app, app.test_client())
        with app.app_context():
            init_db()
            db.engine.dispose()  # connections opened from now on see the file as it is
        for path in folder.iterdir():  # WAL side files too, as the service would find them
            path.chmod(0o644)
        with unwritable(folder / "ro.sqlite"):
            refused = json.loads(market.g2(new_order(order="RO1")).data)
        served = json.loads(market.g2(new_order(order="RO1")).data)
        with app.app_context():
            db.engine.dispose()
    finally:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    assert refused["resultCode"] == "000005" and "retry" in refused["resultMsg"]
    assert "database unavailable while answering POST /produce" in caplog.text
    assert "readonly database" in caplog.text or "unable to open database file" in caplog.text
    assert served["resultCode"] == "000000"  # the broken connection was dropped, not reused


# --- clock skew -------------------------------------------------------------------------------


@pytest.mark.parametrize("skew_s", [-120, 120])
def test_clock_skew_beyond_the_window_is_000002_and_the_log_says_the_clock_is_off(market, caplog, skew_s, monkeypatch):
    from isvapp.produce import answers

    monkeypatch.setattr(answers, "CLOCK_WARNINGS", Throttle(60))  # this worker has not said it yet
    raw, query = g2_signed_request(KEY, new_order(), timestamp=int(time.time() * 1000) + skew_s * 1000)
    with caplog.at_level(logging.WARNING, logger="isvapp.produce"):
        answer = json.loads(
            market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json").data
        )
    off = f"clock off by {-skew_s} s"  # this server's clock minus the marketplace's
    assert answer["resultCode"] == "000002" and off in answer["resultMsg"]
    assert off in caplog.text and "check this server's clock (NTP)" in caplog.text
    assert market.count(SignedRequest) == 0 and market.count(Instance) == 0
    assert [c.result_code for c in market.rows(Callback)] == ["000002"]


def test_a_flood_of_stale_timestamps_says_so_once_a_minute(market, caplog, monkeypatch):
    """Anyone can send a stale timestamp; the server log has no budget of its own."""
    from isvapp.produce import answers

    monkeypatch.setattr(answers, "CLOCK_WARNINGS", Throttle(60))
    stale = int(time.time() * 1000) - 3_600_000
    with caplog.at_level(logging.WARNING, logger="isvapp.produce"):
        for n in range(30):
            raw, query = g2_signed_request("not-the-key", new_order(order=f"STALE{n}"), timestamp=stale)
            market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    assert caplog.text.count("check this server's clock (NTP)") == 1
