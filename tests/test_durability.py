"""An acknowledged order is on disk before its answer leaves: every durable write transaction
commits with SQLite's synchronous=FULL (the log's fsync inside COMMIT), on the session and in the
lean transaction alike; only what may be lost (the callback log, a read-only request's claim)
commits with NORMAL."""

import pytest
from isvapp.extensions import db
from isvapp.storage.models import Instance
from sqlalchemy import event

from .helpers import new_order, result

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def trace(app):
    """The SQL each new connection runs, in order (PRAGMAs, BEGIN, COMMIT included)."""
    entries = []
    with app.app_context():
        engine = db.engine
        engine.dispose()  # connections made from here on are traced (lean ones too: the pool makes them)

        def traced(dbapi_connection, _record):
            dbapi_connection.set_trace_callback(lambda sql: entries.append(sql.strip()))

        event.listen(engine, "connect", traced)
        yield entries
        event.remove(engine, "connect", traced)
        engine.dispose()


def synchronous_before(entries, index):
    levels = [sql for sql in entries[:index] if sql.startswith("PRAGMA synchronous")]
    return levels[-1] if levels else None


def test_a_new_order_commits_with_full_sync(market, trace):
    assert result(market.g2(new_order("CSDURABLE1")))["resultCode"] == "000000"
    begins = [i for i, sql in enumerate(trace) if sql == "BEGIN IMMEDIATE"]
    assert begins, trace
    # the order's own transaction (the first write) waits for the disk
    assert synchronous_before(trace, begins[0]) == "PRAGMA synchronous=FULL"
    assert "PRAGMA synchronous=NORMAL" not in trace[: begins[0]]


def test_a_repeated_order_on_the_session_commits_with_full_sync_too(market, trace):
    order = new_order("CSDURABLE2")
    market.g2(order)
    trace.clear()
    again = result(market.g2({**order, "businessId": "another"}))  # the session path (a repeat)
    assert again["resultCode"] == "000000" and again["instanceId"] == order["businessId"]
    writes = [i for i, sql in enumerate(trace) if sql == "BEGIN IMMEDIATE"]
    assert writes and all(synchronous_before(trace, i) in (None, "PRAGMA synchronous=FULL") for i in writes[:1])
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_what_may_be_lost_commits_without_waiting_for_the_disk(app, market, trace):
    """The callback log row of a refused request: NORMAL (WAL keeps it consistent, a power cut may
    lose the last rows), then FULL again for the next order."""
    market.g2(new_order("CSDURABLE3"), key="wrong-key")
    assert "PRAGMA synchronous=NORMAL" in trace
    trace.clear()
    assert result(market.g2(new_order("CSDURABLE4")))["resultCode"] == "000000"
    first_write = trace.index("BEGIN IMMEDIATE")
    assert synchronous_before(trace, first_write) in (None, "PRAGMA synchronous=FULL")
    assert market.count(Instance, Instance.order_id == "CSDURABLE4") == 1
