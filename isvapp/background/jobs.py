"""Durable background jobs in the app's own database, and the worker that runs them.

Jobs are rows written in the same transaction as the event that needs them, so nothing
acknowledged to the marketplace can lose its follow-up work. A worker claims one job at a time
with a lease (``locked_until``): on PostgreSQL the claim uses SELECT ... FOR UPDATE SKIP LOCKED,
on SQLite the claim runs in a BEGIN IMMEDIATE transaction, which serialises claimers. A worker
that dies mid-job lets its lease run out and the job runs again, with the same key (the event id
hooks receive). Failures retry with exponential backoff and jitter, and after the last attempt
the job is kept as dead with its error until `isvapp jobs retry` revives it.

The worker rides out a database outage (a server restart, a locked or failing SQLite file): a
database error in its own steps (claim, completion, recording a failure, heartbeat, periodic
work) makes it drop its connections, wait (OUTAGE_BACKOFF_S doubling to OUTAGE_BACKOFF_MAX_S),
and try again, logging the outage once when it starts and once when it ends. An outage is not
the job's failure: what the worker could not record is finished once the database is back (see
:func:`work`), and no attempt is spent on it.
"""

import logging
import os
import random
import signal
import socket
import sqlite3
import time
import traceback
from datetime import timedelta
from typing import NamedTuple

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import and_, case, or_, select, text, update
from sqlalchemy import exc as sa_exc

from .. import metrics
from ..config import secret_key_problem
from ..extensions import db
from ..settings import settings_of
from ..storage.models import Job, JobState, utcnow
from ..storage.statements import bind_insert_ignore_many, insert_ignore
from ..storage.transactions import write_transaction
from . import registry, status

log = logging.getLogger("isvapp.jobs")

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


class Permanent(Exception):
    """A failure retrying cannot fix: the job goes dead at once."""


def job_row(kind, key, payload=None, instance_id=None, delay_s=0):
    now = utcnow()
    return dict(
        kind=kind,
        key=str(key)[:100],
        payload=payload,
        instance_id=instance_id,
        state=JobState.QUEUED,
        attempts=0,
        max_attempts=settings_of(current_app).jobs.max_attempts,
        run_after=now + timedelta(seconds=delay_s),
        created_at=now,
        updated_at=now,
    )


def enqueue(kind, key, payload=None, instance_id=None, delay_s=0):
    """Add a job inside the caller's transaction; a second job with the same (kind, key) is not added."""
    return insert_ignore(Job, **job_row(kind, key, payload, instance_id, delay_s))


def bind_enqueue_many(rows):
    """Several job_row()s in one statement (a lifecycle event's jobs), bound, for the caller's
    transaction to run (db.run_bound)."""
    return bind_insert_ignore_many(Job, rows)


def backoff_s(attempts, base_s, max_s, rng=random):
    """Exponential with "equal jitter": half the delay fixed, half random, so retries spread out."""
    delay = min(max_s, base_s * 2 ** max(attempts - 1, 0))
    return delay / 2 + rng.uniform(0, delay / 2)


class ClaimedJob:
    """What a handler sees: a snapshot of the row plus the worker holding it."""

    def __init__(self, row, worker):
        self.id, self.kind, self.key, self.payload = row.id, row.kind, row.key, row.payload or {}
        self.attempts, self.instance_id, self.worker = row.attempts, row.instance_id, worker


def claim(worker, lease_s, taking=None, kinds=None):
    """Take the next due job (or one whose worker's lease ran out); None when there is none.
    ``kinds``: only jobs of these kinds (the web processes' watchdog takes only direct alerts).

    ``taking`` (a list) is given the job's id before the commit. Why: a commit that raises may
    still have been written (the server took the COMMIT and the connection died before its
    answer); the job would then be RUNNING under this worker until the lease ran out, with an
    attempt spent on a handler that never ran. With the id, work() gives it back (_release).
    """
    now = utcnow()
    with write_transaction():
        due = or_(
            and_(Job.state == JobState.QUEUED, Job.run_after <= now),
            and_(Job.state == JobState.RUNNING, Job.locked_until < now),
        )
        row = db.session.execute(
            select(Job)
            .where(due, *([Job.kind.in_(kinds)] if kinds else []))
            .order_by(Job.run_after, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if row is None:
            return None
        row.state, row.locked_by, row.attempts = JobState.RUNNING, worker, row.attempts + 1
        row.locked_until, row.updated_at = now + timedelta(seconds=lease_s), now
        if taking is not None:
            taking.append(row.id)
        return ClaimedJob(row, worker)


def complete(job):
    """Mark the job done, inside the caller's transaction (so its effects and 'done' commit together).

    Returns False when the lease was lost (another worker took the job over): the caller's
    transaction should then be rolled back.
    """
    result = db.session.execute(
        update(Job)
        .where(Job.id == job.id, Job.locked_by == job.worker, Job.state == JobState.RUNNING)
        .values(state=JobState.DONE, finished_at=utcnow(), updated_at=utcnow(), locked_until=None, last_error=None)
        .returning(Job.id)
    )
    return result.first() is not None


def fail(job, error, permanent):
    """Record a failed try of a job this worker holds, in a transaction of its own: queued again
    after the retries' backoff, or dead (at once when ``permanent``, else after its last attempt),
    with its watchers told. A job whose lease was lost meanwhile is left as it is."""
    retries = settings_of(current_app).jobs
    with write_transaction():
        row = db.session.get(Job, job.id)
        if row is None or row.locked_by != job.worker or row.state != JobState.RUNNING:
            return
        row.last_error, row.updated_at, row.locked_until = error[-4000:], utcnow(), None
        metrics.unexpected_error("job")
        if permanent or row.attempts >= row.max_attempts:
            row.state = JobState.DEAD
            metrics.job_run(row.kind, "dead")
            log.error(
                "job %s %s %s is dead after %d attempts: %s",
                row.id,
                row.kind,
                row.key,
                row.attempts,
                error.splitlines()[-1] if error else "",
            )
            on_dead = registry.current().on_dead.get(row.kind)
            if on_dead:
                on_dead(job)
            for watcher in registry.current().dead_watchers:
                watcher(row, error)
        else:
            row.state = JobState.QUEUED
            row.run_after = utcnow() + timedelta(
                seconds=backoff_s(row.attempts, retries.retry_base_s, retries.retry_max_s)
            )
            metrics.job_run(row.kind, "retry")
            for watcher in registry.current().failure_watchers:
                watcher(row, error)


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
    job: ClaimedJob | None = None
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
      ran out first and another worker took it over, which complete() refuses: at least once).
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
        job = claim(worker, lease_s or settings_of(current_app).jobs.lease_s, taking, kinds)
    except DATABASE_ERRORS:
        unfinished.extend(_Unfinished("release", job_id, worker) for job_id in taking)
        db.session.remove()
        raise
    if job is None:
        return None
    try:
        function = registry.current().handlers.get(job.kind)
        if function is None:
            raise Permanent(f"no handler for job kind {job.kind}")
        function(job)
    except Exception as error:  # noqa: BLE001  every failure is recorded on the job
        message = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}"
        try:
            db.session.rollback()
            fail(job, message, isinstance(error, Permanent))
        except DATABASE_ERRORS:
            action = "release" if isinstance(error, DATABASE_ERRORS) else "fail"
            unfinished.append(_Unfinished(action, job.id, worker, job, message, isinstance(error, Permanent)))
            raise
        # Recorded: now logged with its traceback (and so sent to Sentry when it is set up).
        log.error("job %s %s failed on attempt %d", job.id, job.kind, job.attempts, exc_info=error)
    else:
        try:
            db.session.rollback()  # end whatever the handler left open; complete() is a no-op if it completed
            with write_transaction():
                complete(job)
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
                if not complete(item.job):
                    log.info("job %s: already done, or taken over by another worker during the outage", item.job_id)
                    return
            metrics.job_run(item.job.kind, "done")
        elif item.action == "fail":
            fail(item.job, item.error, item.permanent)
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
    outage, unfinished = _Outage(), []
    while not stopping and (max_jobs is None or done < max_jobs):
        try:
            while unfinished:
                _finish(unfinished[0])
                done += unfinished.pop(0).job is not None
            if last_beat is None or time.monotonic() - last_beat >= status.HEARTBEAT_S:
                heartbeat(me)
                last_beat = time.monotonic()
            if tick and time.monotonic() - last_tick > 30:
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


@click.group("jobs")
def jobs_group():
    """List background jobs and retry dead ones."""


@jobs_group.command("list")
@click.option("--state", type=click.Choice(JobState.ALL))
@click.option("--limit", default=50, show_default=True)
@with_appcontext
def jobs_list(state, limit):
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if state:
        query = query.where(Job.state == state)
    for job in db.session.execute(query).scalars():
        error = (job.last_error or "").splitlines()[0][:80] if job.last_error else ""
        click.echo(
            f"{job.id:>6} {job.kind:12} {job.state:8} attempts={job.attempts}/{job.max_attempts} {job.key} {error}"
        )


@jobs_group.command("retry")
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Retry every dead job.")
@with_appcontext
def jobs_retry(job_ids, all_dead):
    """Queue dead jobs again, with a fresh set of attempts."""
    if not job_ids and not all_dead:
        raise click.UsageError("name job ids or use --all-dead")
    count = retry_dead(None if all_dead else job_ids)
    click.echo(f"queued again: {len(count)} job(s)")


def retry_dead(job_ids=None):
    """Queue dead jobs again, due now, with a fresh set of attempts: ``job_ids``, or every dead
    job when None. A job that is not dead (done, queued, given up) is left as it is. Returns the
    ids queued. `isvapp jobs retry` and the jobs page both come here."""
    where = [Job.state == JobState.DEAD] + ([] if job_ids is None else [Job.id.in_(list(job_ids))])
    with write_transaction():
        return (
            db.session.execute(
                update(Job)
                .where(*where)
                .values(state=JobState.QUEUED, attempts=0, run_after=utcnow(), updated_at=utcnow())
                .returning(Job.id)
            )
            .scalars()
            .all()
        )


GIVE_UP_REASON_MAX = 500
# Kinds that are one job for all of their work (the usage push: one job pushes every pending
# record, and recording usage queues it again): giving one up would stop all later work of that
# kind, so the jobs page refuses it. Registered by the module that owns the kind.
NOT_GIVEN_UP = set()


class Refused(Exception):
    """What the jobs page asked cannot be done to a job; ``problem`` says why: "reason" (none, or
    too long), "missing", "state" (the job is not dead: ``state`` holds its state) or "kind"."""

    def __init__(self, problem, state=None):
        super().__init__(problem)
        self.problem, self.state = problem, state


def give_up(job_id, reason, by, now=None):
    """Give up a dead job for good: its state becomes "given_up" (no worker claims it, and
    `jobs retry --all-dead` leaves it), with who did it, when and why. Only a dead job: one that is
    queued or running is still being tried. Raises Refused and changes nothing otherwise."""
    reason = (reason or "").strip()
    if not reason or len(reason) > GIVE_UP_REASON_MAX:
        raise Refused("reason")
    now = now or utcnow()
    with write_transaction():
        row = db.session.get(Job, job_id)
        if row is None:
            raise Refused("missing")
        if row.state != JobState.DEAD:
            raise Refused("state", row.state)
        if row.kind in NOT_GIVEN_UP:
            raise Refused("kind")
        row.state, row.given_up_by, row.given_up_at = JobState.GIVEN_UP, str(by)[:64], now
        row.given_up_reason, row.updated_at = reason, now


def init_app(app):
    app.cli.add_command(worker_command)
    app.cli.add_command(jobs_group)
