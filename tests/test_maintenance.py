"""Retention (`flask prune`) and backups (`isvapp backup`): what goes, what stays, what is archived."""

from datetime import timedelta

import pytest
from isvapp.background import maintenance
from isvapp.background.maintenance import prune
from isvapp.extensions import db
from isvapp.storage.models import Answer, Callback, Event, Instance, SignedRequest, utcnow

from .helpers import new_order


def age_rows(app, model, column, by):
    with app.app_context():
        db.session.execute(model.__table__.update().values({column.key: utcnow() - by}))
        db.session.commit()


def test_prune_removes_only_expired_nonces_and_old_callback_rows(app, market, runner):
    for n in range(3):
        market.g2(new_order(order=f"OLD{n}"))
    # 2 x the 60 s window and the hosts' clock margin have passed
    age_rows(app, SignedRequest, SignedRequest.seen_at, timedelta(seconds=121 + maintenance.HOST_CLOCK_MARGIN_S))
    age_rows(app, Callback, Callback.received_at, timedelta(days=91))
    age_rows(app, Instance, Instance.created_at, timedelta(days=400))
    age_rows(app, Answer, Answer.created_at, timedelta(days=400))
    age_rows(app, Event, Event.created_at, timedelta(days=400))
    market.g2(new_order(order="NEW"))  # fresh nonce and log row: kept
    before = {m: market.count(m) for m in (Instance, Answer, Event)}

    output = runner.invoke(args=["prune"]).output
    assert "Pruned 3 nonces and 3 callback log rows (callback log kept 90 days)" in output
    assert market.count(SignedRequest) == 1 and market.count(Callback) == 1
    assert {m: market.count(m) for m in (Instance, Answer, Event)} == before == {Instance: 4, Answer: 4, Event: 4}
    assert "Pruned 0 nonces and 0 callback" in runner.invoke(args=["prune"]).output


def test_prune_keeps_nonces_inside_twice_the_window_and_log_when_retention_is_zero(app, market):
    market.g2(new_order())
    # Past 2 x the window, but a host whose clock is ahead could still accept it: kept.
    age_rows(app, SignedRequest, SignedRequest.seen_at, timedelta(seconds=119 + maintenance.HOST_CLOCK_MARGIN_S))
    age_rows(app, Callback, Callback.received_at, timedelta(days=3650))
    with app.app_context():
        assert prune(app.extensions["isvapp"], callback_days=0) == {"nonces": 0, "callbacks": 0, "relay_budgets": 0}
    assert market.count(SignedRequest) == 1 and market.count(Callback) == 1


def test_prune_deletes_in_batches(app, market):
    with app.app_context():
        db.session.execute(
            SignedRequest.__table__.insert(),
            [
                {
                    "scope": "g2",
                    "nonce": f"n{i}",
                    "token": f"t{i}",
                    "fingerprint": "f",
                    "answer": b"{}",
                    "seen_at": utcnow() - timedelta(hours=1),
                }
                for i in range(45)
            ],
        )
        db.session.commit()
        from isvapp.background import maintenance

        assert maintenance._delete_older(SignedRequest, SignedRequest.seen_at, utcnow(), batch=10) == 45
    assert market.count(SignedRequest) == 0


def test_backup_archives_the_database_on_sqlite_and_points_at_pg_dump_on_postgresql(app, runner, tmp_path):
    """The archive always holds SECRET_KEY; the database only on SQLite (PostgreSQL: pg_dump beside it).
    tests/test_backups.py has the round trips."""
    from isvapp import archive

    with app.app_context():
        sqlite_db = db.engine.dialect.name == "sqlite"
    path = tmp_path / "x.tar.gz"
    result = runner.invoke(args=["backup", str(path)])
    assert result.exit_code == 0, result.output
    manifest = archive.read(path, str(tmp_path), allowed=lambda name: True)
    assert "SECRET_KEY" in manifest["members"]
    if sqlite_db:
        assert manifest["database"]["kind"] == "sqlite" and "database/isvapp.sqlite" in manifest["members"]
    else:
        assert manifest["database"] == {"kind": "postgresql"} and "pg_dump" in result.output


def test_the_worker_schedules_one_prune_per_period(app, market):
    from datetime import datetime

    from isvapp.background import worker
    from isvapp.background.maintenance import schedule_prune
    from isvapp.storage.models import Job, JobState

    with app.app_context():
        moment = datetime(2026, 11, 24, 10, 0)
        schedule_prune(moment)
        schedule_prune(moment.replace(hour=11))  # same 24 h period: nothing new
        assert worker.work(until_idle=True) == 1
        schedule_prune(moment.replace(day=25, hour=10))
    assert market.count(Job, Job.kind == "prune") == 2
    assert market.count(Job, Job.kind == "prune", Job.state == JobState.DONE) == 1


@pytest.mark.parametrize("app_config", [{"KOO_G1_WINDOW_S": 20 * 365 * 86400}])  # WIRE was signed in 2023
def test_prune_never_touches_licenses_or_tenants(app, market, runner):
    from isvapp.storage.models import License, Tenant

    from .helpers import TENANT, WIRE

    market.send("GET", "/license?" + WIRE)
    market.kit("tenantSync", TENANT)
    age_rows(app, Callback, Callback.received_at, timedelta(days=400))
    age_rows(app, License, License.issued_at, timedelta(days=400))
    age_rows(app, Tenant, Tenant.updated_at, timedelta(days=400))
    runner.invoke(args=["prune"])
    assert market.count(Callback) == 0
    assert market.count(License) == 1 and market.count(Tenant) == 1 and market.count(Instance) == 1
