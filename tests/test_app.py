"""The factory, configuration, init-db, health, and the SQLite settings."""

import json
import os
import sqlite3
import time

import pytest
from isvapp import create_app
from isvapp.extensions import db
from isvapp.koo.signing import g2_signed_request
from isvapp.settings import load as load_settings
from isvapp.storage.models import Instance

from .helpers import KEY


def test_config_from_instance_file_then_environment(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text('KOO_ACCESS_KEY = "from-file"\nSECRET_KEY = "f"\n')
    monkeypatch.setenv("ISVAPP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("ISVAPP_SQLALCHEMY_DATABASE_URI", raising=False)  # set on PostgreSQL runs
    assert create_app().extensions["isvapp"].access_key == "from-file"
    monkeypatch.setenv("ISVAPP_KOO_ACCESS_KEY", "12345")  # JSON-parsed to an int by Flask
    app = create_app()
    assert app.extensions["isvapp"].access_key == "12345"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + str(tmp_path / "isvapp.sqlite")


def test_kit_key_defaults_to_basic_key():
    settings = load_settings({"KOO_ACCESS_KEY": "k", "KOO_ENCRYPT_TYPE": 2})
    assert settings.kit_access_key == "k" and settings.encrypt_type == "2"


def test_init_db_twice_keeps_data(app, runner, market):
    from .helpers import new_order

    market.g2(new_order())
    assert "Initialised" in runner.invoke(args=["init-db"]).output
    assert "Initialised" in runner.invoke(args=["init-db"]).output
    assert market.count(Instance) == 1


@pytest.mark.sqlite_only
def test_sqlite_pragmas(app):
    with app.app_context():
        conn = db.engine.raw_connection()
        try:
            cur = conn.cursor()
            assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert cur.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert 0 < cur.execute("PRAGMA busy_timeout").fetchone()[0] <= 3000
            assert cur.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
            assert cur.execute("PRAGMA cache_size").fetchone()[0] == -64 * 1024  # SQLITE_CACHE_MIB, in KiB
        finally:
            conn.close()
        assert os.path.isabs(db.engine.url.database)


@pytest.mark.sqlite_only
def test_sqlite_cache_size_is_a_setting(tmp_path):
    """SQLITE_CACHE_MIB sizes every connection's page cache, the lean write path's too; 0 leaves SQLite's own."""
    from isvapp.storage import transactions

    for mib, expected in ((16, -16 * 1024), (0, None)):
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "t" * 40,
                "INSTANCE_PATH": str(tmp_path / str(mib)),
                "SQLITE_CACHE_MIB": mib,
            }
        )
        with app.app_context():
            pooled = db.engine.raw_connection()
            try:
                default = sqlite3.connect(":memory:").execute("PRAGMA cache_size").fetchone()[0]
                assert pooled.cursor().execute("PRAGMA cache_size").fetchone()[0] == (expected or default)
            finally:
                pooled.close()
            lean = transactions._lean_connection(app.extensions["isvapp_lean"])
            assert lean.execute("PRAGMA cache_size").fetchone()[0] == (expected or default)
            assert lean.execute("PRAGMA busy_timeout").fetchone()[0] == 0  # retried in short steps instead


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok", "database": "ok"}


def test_init_config_writes_once_with_mode_600(tmp_path, monkeypatch):
    monkeypatch.setenv("ISVAPP_INSTANCE_PATH", str(tmp_path))
    runner = create_app().test_cli_runner()
    first = runner.invoke(args=["init-config"])
    assert "Development KOO_ACCESS_KEY" in first.output
    assert oct((tmp_path / "config.py").stat().st_mode & 0o777) == "0o600"
    content = (tmp_path / "config.py").read_text()
    assert "exists" in runner.invoke(args=["init-config"]).output
    assert (tmp_path / "config.py").read_text() == content
    assert create_app().extensions["isvapp"].access_key in first.output


@pytest.mark.sqlite_only
def test_locked_database_answers_000005_within_budget_and_leaves_nothing(app, market):
    from .helpers import new_order

    # Another process holds the write lock on the app's SQLite file for longer than the busy timeout.
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        raw, query = g2_signed_request(KEY, new_order())
        t0 = time.monotonic()
        response = app.test_client().post("/produce", query_string=query, data=raw, content_type="application/json")
        elapsed = time.monotonic() - t0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    response.close()  # the log row is written after the answer, once the lock is gone
    answer = json.loads(response.data)
    assert response.status_code == 200 and answer["resultCode"] == "000005" and "retry" in answer["resultMsg"]
    assert 2.5 < elapsed < 4.5
    assert market.count(Instance) == 0
    assert json.loads(market.g2(new_order()).data)["resultCode"] == "000000"
