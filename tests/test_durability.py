"""An acknowledged order is on disk before its answer leaves: the write-ahead log is fsynced
after the commit (outside the write lock) and before the answer, or, with
SQLITE_SYNC_AFTER_COMMIT off, inside the commit by SQLite's synchronous=FULL."""
import os

import pytest
from sqlalchemy import event

from isvapp.storage import durability
from isvapp.storage.durability import sync_file
from isvapp.extensions import db
from isvapp.storage.models import Instance

from .test_produce_g2 import new_order, result

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def journal(app, monkeypatch):
    """What happened, in order: the SQL each connection ran, and the files fsynced (by path)."""
    entries = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def recorder(real):
        def sync(fd):
            real(fd)
            entries.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return sync

    monkeypatch.setattr(os, "fsync", recorder(real_fsync))  # the folder
    monkeypatch.setattr(os, "fdatasync", recorder(real_fdatasync))  # the log's data, as SQLite syncs it
    with app.app_context():
        engine = db.engine
        engine.dispose()  # connections made from here on are traced

        def trace(dbapi_connection, _record):
            dbapi_connection.set_trace_callback(lambda sql: entries.append(("sql", sql.strip())))

        event.listen(engine, "connect", trace)
        yield entries, engine.url.database
        event.remove(engine, "connect", trace)
        engine.dispose()


def test_the_log_is_synced_after_commit_and_before_the_answer(market, journal):
    entries, path = journal
    entries.clear()
    body = result(market.g2(new_order("CSDURABLE1")))
    assert body["resultCode"] == "000000"
    commit = entries.index(("sql", "COMMIT"))
    begin = max(i for i, entry in enumerate(entries[:commit]) if entry == ("sql", "BEGIN IMMEDIATE"))
    levels = [text for kind, text in entries[:begin] if kind == "sql" and text.startswith("PRAGMA synchronous")]
    assert levels[-1] == "PRAGMA synchronous=NORMAL"  # SQLite's own fsync in COMMIT is replaced...
    synced = [i for i, entry in enumerate(entries) if entry == ("fsync", path + "-wal")]
    assert synced and synced[0] > commit, entries  # ...by this one, once the lock is free again


def test_the_folder_is_synced_once_per_log_file(market, journal):
    entries, path = journal
    market.g2(new_order("CSDURABLE2"))
    entries.clear()
    durability._synced_wal_inode.clear()
    market.g2(new_order("CSDURABLE3"))
    market.g2(new_order("CSDURABLE4"))
    folders = [entry for entry in entries if entry == ("fsync", os.path.dirname(path))]
    assert len(folders) == 1, entries


@pytest.mark.parametrize("app_config", [{"SQLITE_SYNC_AFTER_COMMIT": "false"}])
def test_switched_off_sqlite_syncs_inside_the_commit(market, journal):
    entries, path = journal
    entries.clear()
    assert result(market.g2(new_order("CSDURABLE5")))["resultCode"] == "000000"
    assert ("fsync", path + "-wal") not in entries
    begin = entries.index(("sql", "BEGIN IMMEDIATE"))
    assert ("sql", "PRAGMA synchronous=NORMAL") not in entries[:begin]
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_an_order_whose_log_cannot_be_synced_is_not_acknowledged(market, journal, monkeypatch):
    """The fsync fails (a dying disk): the marketplace gets 000005, never a success it cannot rely
    on; its retry, once the disk is back, gets the instance the first request made."""
    entries, path = journal
    real_fsync = os.fdatasync
    failures = []

    def failing(fd):
        if os.readlink(f"/proc/self/fd/{fd}") == path + "-wal" and not failures:
            failures.append(fd)
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fdatasync", failing)
    order = new_order("CSDURABLE6")
    first = result(market.g2(order))
    assert first["resultCode"] == "000005" and failures
    second = result(market.g2(order))
    assert second["resultCode"] == "000000"
    assert market.count(Instance, Instance.order_id == "CSDURABLE6") == 1
    assert second["instanceId"] == order["businessId"]


def test_a_log_already_checkpointed_away_needs_no_sync(tmp_path):
    sync_file(str(tmp_path / "gone.sqlite-wal"))  # nothing there: nothing to do, no error
    (tmp_path / "here.sqlite-wal").write_bytes(b"frames")
    sync_file(str(tmp_path / "here.sqlite-wal"))
    assert durability._synced_wal_inode[str(tmp_path / "here.sqlite-wal")] == os.stat(tmp_path / "here.sqlite-wal").st_ino
    assert str(tmp_path / "gone.sqlite-wal") not in durability._synced_wal_inode
