"""The worker rides out a database outage: it backs off, reconnects, logs the outage once, and
every job still ends done exactly once, its attempts untouched by the outage.

The first tests make the worker's own database steps (claim, completion, recording a failure, the
heartbeat) fail for a while, on SQLite and PostgreSQL alike; the last one restarts a real
PostgreSQL server under a real `flask worker` process.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from isvapp.background import jobs, status, worker
from isvapp.extensions import db
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.serving import Running
from isvapp.storage.models import Event, Job, JobState
from isvapp.storage.transactions import write_transaction
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from . import pgctl
from .helpers import AK, KEY, ON_POSTGRES, RECORD_FILE, SK, hook_calls, new_order
from .live import ROOT

KIND = "outage_test"
LOST = "server closed the connection unexpectedly"


def db_down():
    return OperationalError("SELECT 1", {}, Exception(LOST))


def flaky(real, failures, after=False):
    """``real``, except that its first ``failures`` calls raise as a lost database does; with
    ``after``, each of those runs ``real`` first (its commit went through, the answer was lost)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) <= failures:
            if after:
                real(*args, **kwargs)
            raise db_down()
        return real(*args, **kwargs)

    wrapper.calls = calls
    return wrapper


@pytest.fixture
def app_config():
    return {"JOB_RETRY_BASE_S": 0}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(worker, "OUTAGE_BACKOFF_S", 0.001, raising=False)
    monkeypatch.setattr(worker, "OUTAGE_BACKOFF_MAX_S", 0.004, raising=False)


@pytest.fixture
def ran(app, monkeypatch):
    """The test kind's handler: records (key, attempts); ``ran.fail`` holds errors to raise first."""

    class Calls(list):
        pass

    calls = Calls()

    def handle(job):
        calls.append((job.key, job.attempts))
        if handle.fail:
            raise handle.fail.pop(0)

    handle.fail = []
    calls.handler = handle
    monkeypatch.setitem(app.extensions["isvapp_jobs"].handlers, KIND, handle)
    return calls


@pytest.fixture
def queued(app):
    with app.app_context():
        with write_transaction():
            jobs.enqueue(KIND, "k1")
    return "k1"


def work(app, caplog, **kwargs):
    caplog.set_level(logging.INFO, logger="isvapp.jobs")
    with app.app_context():
        return worker.work(**{"until_idle": True, "max_jobs": 20, **kwargs})


def job_rows(app):
    with app.app_context():
        rows = db.session.execute(select(Job).order_by(Job.id)).scalars().all()
        db.session.expunge_all()
        db.session.remove()
        return rows


def assert_one_outage_logged(caplog):
    records = [r for r in caplog.records if r.name == "isvapp.jobs"]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    [warning] = warnings
    assert "OperationalError" in warning.getMessage() and LOST not in warning.getMessage()
    assert warning.exc_info is None  # the class, not a traceback
    back = [r for r in records if r.levelno == logging.INFO and "back" in r.getMessage()]
    assert len(back) == 1, [r.getMessage() for r in records]


def test_claim_failing_is_waited_out(app, caplog, monkeypatch, ran, queued):
    monkeypatch.setattr(jobs, "claim", flaky(jobs.claim, 3))
    assert work(app, caplog) == 1
    assert ran == [("k1", 1)]
    [job] = job_rows(app)
    assert (job.state, job.attempts) == (JobState.DONE, 1)
    assert_one_outage_logged(caplog)


def test_a_claim_committed_whose_answer_was_lost_is_released_without_costing_an_attempt(
    app, caplog, monkeypatch, ran, queued
):
    monkeypatch.setattr(jobs, "claim", flaky(jobs.claim, 1, after=True))
    assert work(app, caplog) == 1
    assert ran == [("k1", 1)]  # not left RUNNING until the lease ran out, and attempt 1, not 2
    [job] = job_rows(app)
    assert (job.state, job.attempts) == (JobState.DONE, 1)
    assert_one_outage_logged(caplog)


def test_a_completion_failing_is_retried_and_the_job_does_not_run_again(app, caplog, monkeypatch, ran, queued):
    monkeypatch.setattr(jobs, "complete", flaky(jobs.complete, 2))
    assert work(app, caplog) == 1
    assert ran == [("k1", 1)]
    [job] = job_rows(app)
    assert (job.state, job.attempts, job.last_error) == (JobState.DONE, 1, None)
    assert_one_outage_logged(caplog)


@pytest.mark.parametrize("app_config", [{"JOB_RETRY_BASE_S": 0, "JOB_MAX_ATTEMPTS": 1}])
def test_a_handler_cut_off_by_the_outage_runs_again_and_is_not_made_dead(app, caplog, monkeypatch, ran, queued):
    ran.handler.fail = [db_down()]  # the handler's own statement hit the outage...
    monkeypatch.setattr(jobs, "fail", flaky(jobs.fail, 1))  # ...and so did recording its failure
    assert work(app, caplog) == 2  # two runs of the handler
    assert ran == [("k1", 1), ("k1", 1)]  # at least once, same key; its only attempt is not spent
    [job] = job_rows(app)
    assert (job.state, job.attempts) == (JobState.DONE, 1)
    assert_one_outage_logged(caplog)


def test_a_real_handler_failure_during_an_outage_still_counts(app, caplog, monkeypatch, ran, queued):
    ran.handler.fail = [RuntimeError("the merchant's app said no")]
    monkeypatch.setattr(jobs, "fail", flaky(jobs.fail, 2))
    assert work(app, caplog) == 3  # the job twice, and the job_failed alert its failure raised
    assert ran == [("k1", 1), ("k1", 2)]
    [job] = [row for row in job_rows(app) if row.kind == KIND]
    assert (job.state, job.attempts) == (JobState.DONE, 2)
    assert_one_outage_logged(caplog)


def test_a_heartbeat_failing_in_an_outage_is_waited_out(app, caplog, monkeypatch, ran, queued):
    monkeypatch.setattr(status, "report", flaky(status.report, 2))
    monkeypatch.setattr(worker, "_database_reachable", lambda: False, raising=False)
    assert work(app, caplog) == 1
    assert ran == [("k1", 1)]
    with app.app_context():
        assert status.read("worker_heartbeat")["worker_heartbeat"][0]["worker"] == worker.worker_id()
    assert_one_outage_logged(caplog)


def test_a_heartbeat_failing_on_a_reachable_database_is_only_logged(app, caplog, monkeypatch, ran, queued):
    monkeypatch.setattr(status, "report", flaky(status.report, 1))
    assert work(app, caplog) == 1  # the worker went on at once: no outage
    assert ran == [("k1", 1)]
    assert [r.getMessage() for r in caplog.records if r.name == "isvapp.jobs" and r.levelno >= logging.WARNING] == [
        "could not report the worker heartbeat"
    ]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs signals")
def test_sigterm_stops_the_worker_while_it_waits_for_the_database(app, caplog, monkeypatch, ran, queued):
    monkeypatch.setattr(worker, "OUTAGE_BACKOFF_S", 30, raising=False)
    monkeypatch.setattr(worker, "OUTAGE_BACKOFF_MAX_S", 30, raising=False)
    timers = []

    def claim(*args, **kwargs):
        if not timers:  # SIGTERM arrives while the worker waits out the first failure
            timers.append(threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)))
            timers[0].start()
        raise db_down()

    monkeypatch.setattr(jobs, "claim", claim)

    def ours(*_):
        pass

    original = signal.signal(signal.SIGTERM, ours)  # so a late SIGTERM cannot end pytest
    try:
        started = time.monotonic()
        assert work(app, caplog, until_idle=False, max_jobs=None) == 0
        assert time.monotonic() - started < 10  # not the 30 s backoff
        assert signal.getsignal(signal.SIGTERM) is ours  # work() put back the handler it found
    finally:
        for timer in timers:
            timer.cancel()
            timer.join()
        signal.signal(signal.SIGTERM, original)
    assert ran == []
    [job] = job_rows(app)
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)


# --- a real worker process, a real PostgreSQL restart -------------------------------------------


@pytest.mark.live
@pytest.mark.skipif(not ON_POSTGRES, reason="restarts the PostgreSQL server (scripts/with-postgres.sh)")
def test_a_worker_process_rides_out_a_postgresql_restart(app, market, tmp_path, monkeypatch):
    if not pgctl.available():
        pytest.skip("this PostgreSQL cannot be restarted: run through scripts/with-postgres.sh")
    hook_log = tmp_path / "hooks.jsonl"
    monkeypatch.setenv(RECORD_FILE, str(hook_log))
    orders = 10
    with Running(create_fake_market(AK, SK, KEY)) as market_api:
        for i in range(orders):
            market.g2(new_order(order=f"OUTAGE{i}", business=f"inst-out{i}"))
        env = {
            **os.environ,
            "ISVAPP_INSTANCE_PATH": app.instance_path,
            "ISVAPP_SECRET_KEY": "test-secret",
            "ISVAPP_KOO_ACCESS_KEY": KEY,
            "ISVAPP_PROVISIONER": "tests.helpers:Recorder",
            "ISVAPP_KOO_API_BASE_URL": market_api.url,
            "ISVAPP_KOO_AK": AK,
            "ISVAPP_KOO_SK": SK,
            "ISVAPP_JOB_RETRY_BASE_S": "0",
            "ISVAPP_TEST_HOOK_SLEEP": "0.3",
            "PYTHONPATH": str(ROOT),
        }
        log_path = tmp_path / "worker.log"
        with open(log_path, "w") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "isvapp", "worker", "--poll", "0.2"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while len([c for c in hook_calls(hook_log) if "kind" in c]) < 2:
                assert worker.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the worker ran no job"
                time.sleep(0.05)
            pgctl.restart_postgres(3.0)
            with app.app_context():
                db.engine.dispose()  # this process's own connections died with the server
            deadline = time.monotonic() + 90
            while True:
                assert worker.poll() is None, "the worker died:\n" + log_path.read_text()[-3000:]
                with app.app_context():
                    left = db.session.execute(
                        select(func.count()).select_from(Job).where(Job.state != JobState.DONE)
                    ).scalar_one()
                    db.session.remove()
                if left == 0:
                    break
                assert time.monotonic() < deadline, f"{left} job(s) not done:\n{log_path.read_text()[-3000:]}"
                time.sleep(0.2)
            assert worker.poll() is None
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                code = worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                code = worker.wait(10)
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    starts = [c for c in hook_calls(hook_log) if "kind" in c]
    done = [c for c in hook_calls(hook_log) if c.get("done")]
    assert len(starts) == len({c["event"] for c in starts}) == market.count(Event) == 2 * orders, output
    assert len(done) == len(starts)
    rows = job_rows(app)
    # per order: the "created" hook, the order query, its hook (and the worker's periodic prune)
    assert sorted(j.kind for j in rows if j.kind != "prune") == sorted(
        ["provision", "fetch_order", "provision"] * orders
    )
    assert {(j.state, j.attempts) for j in rows} == {(JobState.DONE, 1)}, [
        (j.kind, j.state, j.attempts) for j in rows
    ]  # nothing run twice, dead, or charged for the outage
    assert output.count("database unavailable") == 1, output
    assert output.count("database is back") == 1, output
    assert "Traceback" not in output, output
    assert "worker stopped after" in output
