"""The worker: the loop that claims and runs the queue's jobs (jobs.py), the periodic tasks, the
heartbeat, and the `isvapp worker` command.

The worker rides out a database outage (a server restart, a locked or failing SQLite file): a
database error in its own steps (claim, completion, recording a failure, heartbeat, periodic
work) makes it drop its connections, wait (OUTAGE_BACKOFF_S doubling to OUTAGE_BACKOFF_MAX_S),
and try again, logging the outage once when it starts and once when it ends. An outage is not
the job's failure: what the worker could not record is finished once the database is back (see
:func:`work`), and no attempt is spent on it.
"""

import logging
import os
import signal
import socket
import sqlite3
import time
import traceback
from typing import NamedTuple

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import case, text, update
from sqlalchemy import exc as sa_exc

from .. import metrics
from ..config import secret_key_problem
from ..extensions import db
from ..market.openapi import MarketError
from ..outbound import Unanswered
from ..settings import settings_of
from ..storage.models import Job, JobState, utcnow
from ..storage.transactions import write_transaction
from . import jobs, registry, status
from .channels import ChannelError

# The worker's lines keep the logger they always had: a deployment's log settings name it.
log = logging.getLogger("isvapp.jobs")

# Failures whose message names their cause (the marketplace's answer, a receiver that could not be
# reached or refused): logged in one line. Anything else is a fault in code and is logged with its
# traceback, which is what reaches Sentry. The job's stored error has the traceback either way.
EXPECTED_FAILURES = (jobs.Permanent, jobs.Expected, MarketError, Unanswered, ChannelError)

try:
    import psycopg
except ImportError:  # SQLite only
    psycopg = None  # type: ignore[assignment]  # the driver is optional

# What a database outage raises: SQLAlchemy's wrapped driver errors (OperationalError,
# InterfaceError, ...: all DBAPIError), and the drivers' own, which a few raw calls let through
# unwrapped (storage.connections runs BEGIN IMMEDIATE and PRAGMAs on the driver connection in SQLAlchemy's
# "begin" event, before SQLAlchemy's error handling).
DATABASE_ERRORS = (sa_exc.DBAPIError, sqlite3.Error) + ((psycopg.Error,) if psycopg else ())
OUTAGE_BACKOFF_S = 0.5  # the worker's first wait after a database error; it doubles...
OUTAGE_BACKOFF_MAX_S = 10.0  # ...up to this, so a restarted database is noticed within 10 s


# How long the worker goes without reaching the database before its outage watchers hear of it.
OUTAGE_REPORT_S = 60


class _Unfinished(NamedTuple):
    """What a database error kept the worker from recording about a job it held, for
    :func:`_finish` to do once the database is back: "complete" (the handler succeeded), "fail"
    (it failed with ``error``), or "release" (give the job back without spending its attempt).
    ``job`` is None when no handler ran (a claim whose answer was lost)."""

    action: str
    job_id: int
    worker: str
    job: jobs.ClaimedJob | None = None
    error: str | None = None
    permanent: bool = False


def run_one(worker, lease_s=None, unfinished=None, kinds=None):
    """Claim and run one job (of ``kinds``, when given); returns the job, or None when nothing was due.

    A database error in the worker's own steps (the claim, marking the job done, recording its
    failure) is raised, after noting in ``unfinished`` (a list; work() passes its own) what the
    database did not take. Why not simply let the lease run out: the job would sit RUNNING for
    JOB_LEASE_S, a handler that succeeded would run again, and the next claim would spend an
    attempt on it, so a few outages could make a job dead that never failed. What is noted:
    - a handler that succeeded: "complete", retried later; it does not run again (unless its lease
      ran out first and another worker took it over, which jobs.complete() refuses: at least once).
    - a handler that failed for its own reasons (HTTP 500 from the merchant...): "fail", recorded
      later as the failure it was; that attempt counts, as it would have without the outage.
    - a handler whose own database error was this outage (recording the failure failed too, so
      the database was really gone): "release", the job queued again with its attempt given back;
      the failure was the outage's, not the job's. A database error in a handler while the database
      works (recording succeeds) is the handler's failure: a blip cannot be told from a handler's
      bad statement, so it counts, bounded by the retries' backoff.
    """
    unfinished = [] if unfinished is None else unfinished
    taking = []
    try:
        job = jobs.claim(worker, lease_s or settings_of(current_app).jobs.lease_s, taking, kinds)
    except DATABASE_ERRORS:
        unfinished.extend(_Unfinished("release", job_id, worker) for job_id in taking)
        db.session.remove()
        raise
    if job is None:
        return None
    try:
        function = registry.current().handlers.get(job.kind)
        if function is None:
            raise jobs.Permanent(f"no handler for job kind {job.kind}")
        function(job)
    except Exception as error:  # noqa: BLE001  every failure is recorded on the job
        message = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}"
        try:
            db.session.rollback()
            jobs.fail(job, message, isinstance(error, jobs.Permanent))
        except DATABASE_ERRORS:
            action = "release" if isinstance(error, DATABASE_ERRORS) else "fail"
            unfinished.append(_Unfinished(action, job.id, worker, job, message, isinstance(error, jobs.Permanent)))
            raise
        # Recorded: now logged, a fault in code with its traceback (and so sent to Sentry when it
        # is set up).
        if isinstance(error, EXPECTED_FAILURES):
            log.error("job %s %s failed on attempt %d: %s", job.id, job.kind, job.attempts, error)
        else:
            log.error("job %s %s failed on attempt %d", job.id, job.kind, job.attempts, exc_info=error)
    else:
        try:
            db.session.rollback()  # end whatever the handler left open; jobs.complete() is a no-op if it completed
            with write_transaction():
                jobs.complete(job)
        except DATABASE_ERRORS:
            unfinished.append(_Unfinished("complete", job.id, worker, job))
            raise
        metrics.job_run(job.kind, "done")
    finally:
        db.session.remove()
    return job


def _finish(item):
    """Record one :class:`_Unfinished` step, in a transaction of its own. Each is guarded by the
    lease (locked_by, RUNNING), so a job another worker took over meanwhile, or one whose first
    try was written after all, is left as it is."""
    try:
        if item.action == "complete":
            with write_transaction():
                if not jobs.complete(item.job):
                    log.info("job %s: already done, or taken over by another worker during the outage", item.job_id)
                    return
            metrics.job_run(item.job.kind, "done")
        elif item.action == "fail":
            jobs.fail(item.job, item.error, item.permanent)
        else:
            _release(item)
    finally:
        db.session.remove()


def _release(item):
    """Queue a job this worker holds again, due now, giving back the attempt its claim took."""
    values = dict(
        state=JobState.QUEUED,
        attempts=case((Job.attempts > 0, Job.attempts - 1), else_=0),
        run_after=utcnow(),
        locked_until=None,
        updated_at=utcnow(),
    )
    if item.error:
        values["last_error"] = item.error[-4000:]
    with write_transaction():
        db.session.execute(
            update(Job)
            .where(Job.id == item.job_id, Job.locked_by == item.worker, Job.state == JobState.RUNNING)
            .values(**values)
        )


def worker_id():
    return f"{socket.gethostname()}:{os.getpid()}"


def work(poll_s=1.0, max_jobs=None, until_idle=False, tick=None):
    """Run jobs until stopped (SIGTERM/SIGINT), ``max_jobs`` ran, or, with ``until_idle``, none is due.

    A database error in the worker's own steps is an outage, waited out here (also with
    ``until_idle``: whether a job is due cannot be known without the database): connections are
    dropped, the worker waits (interrupted by SIGTERM), and tries again; what run_one() could not
    record is finished first, before any new claim, so this worker never claims a job it still
    holds. The job counts (``max_jobs``) include runs finished that way. Stopped during an outage,
    the worker leaves what it could not record to the lease: those jobs run again once it runs out.
    """
    stopping, previous = [], {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, lambda *_: stopping.append(True))
        except ValueError:  # not the main thread (tests)
            pass
    try:
        return _work(stopping, poll_s, max_jobs, until_idle, tick)
    finally:
        for sig, handler in previous.items():  # a caller (a test) keeps its own handlers after
            if handler is not None:
                signal.signal(sig, handler)


def _work(stopping, poll_s, max_jobs, until_idle, tick):
    me, done, last_tick, last_beat = worker_id(), 0, 0.0, None
    periodic_s = settings_of(current_app).jobs.periodic_s
    outage, unfinished = _Outage(), []
    while not stopping and (max_jobs is None or done < max_jobs):
        try:
            while unfinished:
                _finish(unfinished[0])
                done += unfinished.pop(0).job is not None
            if last_beat is None or time.monotonic() - last_beat >= status.HEARTBEAT_S:
                heartbeat(me)
                last_beat = time.monotonic()
            if tick and time.monotonic() - last_tick >= periodic_s:
                tick()
                last_tick = time.monotonic()
            job = run_one(me, unfinished=unfinished)
        except DATABASE_ERRORS as error:
            _drop_connections()
            wait = outage.failed(error)
            if outage.to_report():
                for watcher in registry.current().outage_watchers:
                    watcher(error)
            _pause(wait, stopping)
            continue
        outage.over()
        if job is not None:
            done += 1
            continue
        if until_idle:
            break
        _pause(poll_s, stopping)
    if unfinished:
        log.warning(
            "worker stopped while the database was down: job(s) %s run again when their lease runs out",
            ", ".join(str(item.job_id) for item in unfinished),
        )
    return done


class _Outage:
    """The worker's view of one database outage. Logged once when it starts, with the error's
    class only (a refused connection's traceback says nothing new, and one every poll would bury
    the log), and once when it ends, with how long it lasted. The waits between tries double from
    OUTAGE_BACKOFF_S to OUTAGE_BACKOFF_MAX_S: a restart of a few seconds costs about a second more,
    a long outage one try every 10 s."""

    def __init__(self):
        self.since, self.delay, self.tries, self.reported = None, 0.0, 0, False

    def to_report(self):
        """True once per outage, when it has lasted OUTAGE_REPORT_S."""
        if self.since is None or self.reported or time.monotonic() - self.since < OUTAGE_REPORT_S:
            return False
        self.reported = True
        return True

    def failed(self, error):
        """Note a failed try; returns how long to wait before the next."""
        if self.since is None:
            self.since, self.delay, self.tries, self.reported = time.monotonic(), float(OUTAGE_BACKOFF_S), 0, False
            log.warning(
                "database unavailable (%s): the worker waits and tries again, at most every %g s",
                type(error).__name__,
                OUTAGE_BACKOFF_MAX_S,
            )
        else:
            self.delay = min(self.delay * 2, float(OUTAGE_BACKOFF_MAX_S))
        self.tries += 1
        log.debug("worker database error (try %d)", self.tries, exc_info=error)
        return self.delay

    def over(self):
        if self.since is not None:
            log.info(
                "database is back after %.1f s (%d failed tries); the worker goes on",
                time.monotonic() - self.since,
                self.tries,
            )
            self.since = None


def _pause(seconds, stopping):
    """Sleep, but return soon after SIGTERM: a signal handler does not cut time.sleep() short."""
    deadline = time.monotonic() + seconds
    while not stopping:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))


def _drop_connections():
    """Forget the session and every pooled connection. Why all of them: after a server restart each
    pooled connection is dead (there is no pre-ping), SQLAlchemy finds that out one statement, and
    one failure, at a time, and each would be another "outage". Public APIs only (remove, dispose);
    a failure here (the pool cannot even close a socket) must not stop the worker either."""
    for drop in (db.session.remove, db.engine.dispose):
        try:
            drop()
        except Exception:  # noqa: BLE001
            log.debug("could not drop the database connections", exc_info=True)


def _is_outage(error):
    """Whether a database error in the heartbeat or a periodic task means the database is gone
    (work() waits it out) rather than that one statement failed (logged; the worker goes on, as a
    task with a bug must not stop every job). A lost connection is an outage; otherwise a trivial
    query on a fresh connection decides."""
    if getattr(error, "connection_invalidated", False):
        return True
    return not _database_reachable()


def _database_reachable():
    db.session.remove()
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except DATABASE_ERRORS:
        return False
    finally:
        db.session.remove()


def heartbeat(me):
    """Report this worker alive (StatusItem "worker_heartbeat"). A failure is logged, never raised,
    except when the database is gone: then work() waits out the outage (logged once, not every 15 s)."""
    try:
        status.report("worker_heartbeat", {"worker": me, "pid": os.getpid()})
    except DATABASE_ERRORS as error:
        if _is_outage(error):
            raise
        log.warning("could not report the worker heartbeat", exc_info=True)
    except Exception:  # noqa: BLE001  a hiccup must not stop the worker
        log.warning("could not report the worker heartbeat", exc_info=True)
    finally:
        db.session.remove()


def tick():
    """Run the periodic functions; one that fails is logged and the rest still run, except when the
    database is gone: then the outage is raised for work() to wait out, and tick() runs again after
    (the functions only schedule idempotent work, so the ones that ran before are harmless again)."""
    for function in registry.current().ticks:
        try:
            function()
        except DATABASE_ERRORS as error:
            if _is_outage(error):
                raise
            log.exception("periodic %s failed", function.__name__)
        except Exception:  # noqa: BLE001  a failing schedule must not stop the worker
            db.session.rollback()
            log.exception("periodic %s failed", function.__name__)


@click.command("worker")
@click.option("--poll", "poll_s", default=1.0, show_default=True, help="Seconds between looks when idle.")
@click.option("--until-idle", is_flag=True, help="Stop when no job is due (for cron or tests).")
@with_appcontext
def worker_command(poll_s, until_idle):
    """Run background jobs: order details, provisioning hooks, usage push."""
    _log_to_stderr()
    settings = settings_of(current_app)
    problem = secret_key_problem(settings.secret_key)
    if problem:  # the worker opens sealed secrets (a buyer's password for a provisioning hook)
        log.warning(problem)
    if settings.ops.metrics_enabled:
        metrics.share_folder(current_app.instance_path)  # its counts in the server's /metrics
    log.info("worker %s started", worker_id())
    ran = work(poll_s=poll_s, until_idle=until_idle, tick=tick)
    click.echo(f"worker stopped after {ran} jobs")


def _log_to_stderr():
    """isvapp's log lines on stderr, with time and level, unless logging was set up already.
    Why: with no handler Python prints only warnings, bare, so the worker's info lines (started;
    the database is back after an outage) were lost. Only the "isvapp" loggers, at
    ISVAPP_LOG_LEVEL (gunicorn's setting, default info): other libraries keep their defaults."""
    logger = logging.getLogger("isvapp")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        try:
            logger.setLevel(os.environ.get("ISVAPP_LOG_LEVEL", "info").upper())
        except ValueError:
            logger.setLevel(logging.INFO)


def init_app(app):
    app.cli.add_command(worker_command)
