"""Durable background jobs in the app's own database, and the worker that runs them.

Jobs are rows written in the same transaction as the event that needs them, so nothing
acknowledged to the marketplace can lose its follow-up work. A worker claims one job at a time
with a lease (``locked_until``): on PostgreSQL the claim uses SELECT ... FOR UPDATE SKIP LOCKED,
on SQLite the claim runs in a BEGIN IMMEDIATE transaction, which serialises claimers. A worker
that dies mid-job lets its lease run out and the job runs again, with the same key (the event id
hooks receive). Failures retry with exponential backoff and jitter, and after the last attempt
the job is kept as dead with its error until `flask jobs retry` revives it.
"""
import logging
import os
import random
import signal
import socket
import time
import traceback
from datetime import timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import and_, or_, select, update

from . import status
from .db import bind_insert_ignore_many, insert_ignore, write_transaction
from .extensions import db
from .models import Job, JobState, utcnow

log = logging.getLogger("isvapp.jobs")

HANDLERS = {}  # kind -> function(job) ; registered by the modules that own the work
TICKS = []  # functions the worker calls about every 30 s to schedule periodic work


class Permanent(Exception):
    """A failure retrying cannot fix: the job goes dead at once."""


def handler(kind):
    def register(function):
        HANDLERS[kind] = function
        return function
    return register


def periodic(function):
    """Register a function the worker calls about every 30 s (to schedule periodic jobs)."""
    TICKS.append(function)
    return function


def job_row(kind, key, payload=None, instance_id=None, delay_s=0):
    now = utcnow()
    return dict(kind=kind, key=str(key)[:100], payload=payload, instance_id=instance_id, state=JobState.QUEUED,
                attempts=0, max_attempts=int(current_app.config["JOB_MAX_ATTEMPTS"]),
                run_after=now + timedelta(seconds=delay_s), created_at=now, updated_at=now)


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


def claim(worker, lease_s):
    """Take the next due job (or one whose worker's lease ran out); None when there is none."""
    now = utcnow()
    with write_transaction():
        row = db.session.execute(
            select(Job).where(or_(and_(Job.state == JobState.QUEUED, Job.run_after <= now),
                                  and_(Job.state == JobState.RUNNING, Job.locked_until < now)))
            .order_by(Job.run_after, Job.id).limit(1).with_for_update(skip_locked=True)).scalar_one_or_none()
        if row is None:
            return None
        row.state, row.locked_by, row.attempts = JobState.RUNNING, worker, row.attempts + 1
        row.locked_until, row.updated_at = now + timedelta(seconds=lease_s), now
        return ClaimedJob(row, worker)


def complete(job):
    """Mark the job done, inside the caller's transaction (so its effects and 'done' commit together).

    Returns False when the lease was lost (another worker took the job over): the caller's
    transaction should then be rolled back.
    """
    result = db.session.execute(
        update(Job).where(Job.id == job.id, Job.locked_by == job.worker, Job.state == JobState.RUNNING)
        .values(state=JobState.DONE, finished_at=utcnow(), updated_at=utcnow(), locked_until=None,
                last_error=None).returning(Job.id))
    return result.first() is not None


def _fail(job, error, permanent):
    config = current_app.config
    with write_transaction():
        row = db.session.get(Job, job.id)
        if row is None or row.locked_by != job.worker or row.state != JobState.RUNNING:
            return
        row.last_error, row.updated_at, row.locked_until = error[-4000:], utcnow(), None
        if permanent or row.attempts >= row.max_attempts:
            row.state = JobState.DEAD
            log.error("job %s %s %s is dead after %d attempts: %s", row.id, row.kind, row.key,
                      row.attempts, error.splitlines()[-1] if error else "")
            on_dead = DEAD_HANDLERS.get(row.kind)
            if on_dead:
                on_dead(job)
            if row.kind != "alert":  # an alert job that dies must not raise another alert (a loop)
                _alert_dead(row, error)
        else:
            row.state = JobState.QUEUED
            row.run_after = utcnow() + timedelta(seconds=backoff_s(
                row.attempts, float(config["JOB_RETRY_BASE_S"]), float(config["JOB_RETRY_MAX_S"])))


DEAD_HANDLERS = {}  # kind -> function(job), run in the transaction that makes the job dead


def _alert_dead(row, error):
    """Raise a "dead_job" alert in the transaction that makes the job dead (a savepoint: a failure
    here is logged and never keeps the job from being marked dead)."""
    from . import alerts
    last = (error or "").strip().splitlines()
    reason = next((line for line in last if line and not line.startswith((" ", "Traceback"))), "")
    try:
        with db.session.begin_nested():
            alerts.raise_alert("dead_job", f"A background job failed for good: {row.kind}",
                               f"Job {row.id} ({row.kind}, key {row.key}"
                               f"{', instance ' + row.instance_id if row.instance_id else ''}) is dead after "
                               f"{row.attempts} attempts: {reason[:500]}\n\nSee `flask --app isvapp jobs list "
                               f"--state dead`; `flask --app isvapp jobs retry {row.id}` runs it again.")
    except Exception:  # noqa: BLE001
        log.exception("could not raise the dead_job alert for job %s", row.id)


def run_one(worker, lease_s=None):
    """Claim and run one job; returns the job, or None when nothing was due."""
    job = claim(worker, lease_s or float(current_app.config["JOB_LEASE_S"]))
    if job is None:
        return None
    try:
        function = HANDLERS.get(job.kind)
        if function is None:
            raise Permanent(f"no handler for job kind {job.kind}")
        function(job)
    except Exception as error:  # noqa: BLE001  every failure is recorded on the job
        db.session.rollback()
        _fail(job, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}",
              isinstance(error, Permanent))
    else:
        db.session.rollback()  # end whatever the handler left open; complete() is a no-op if it completed
        with write_transaction():
            complete(job)
    finally:
        db.session.remove()
    return job


def worker_id():
    return f"{socket.gethostname()}:{os.getpid()}"


def work(poll_s=1.0, max_jobs=None, until_idle=False, tick=None):
    """Run jobs until stopped (SIGTERM/SIGINT), ``max_jobs`` ran, or, with ``until_idle``, none is due."""
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, lambda *_: stopping.append(True))
        except ValueError:  # not the main thread (tests)
            pass
    me, done, last_tick, last_beat = worker_id(), 0, 0.0, None
    while not stopping and (max_jobs is None or done < max_jobs):
        if last_beat is None or time.monotonic() - last_beat >= status.HEARTBEAT_S:
            heartbeat(me)
            last_beat = time.monotonic()
        if tick and time.monotonic() - last_tick > 30:
            tick()
            last_tick = time.monotonic()
        if run_one(me) is not None:
            done += 1
            continue
        if until_idle:
            break
        time.sleep(poll_s)
    return done


def heartbeat(me):
    """Report this worker alive (StatusItem "worker_heartbeat"); a failure is logged, never raised."""
    try:
        status.report("worker_heartbeat", {"worker": me, "pid": os.getpid()})
    except Exception:  # noqa: BLE001  a database hiccup must not stop the worker
        log.warning("could not report the worker heartbeat", exc_info=True)
    finally:
        db.session.remove()


DISK_CHECK_EVERY_S = 300
_last_disk_check = []


@periodic
def check_disk(force=False):
    """Raise "disk_low" when the instance folder's disk is nearly full; at most every 5 minutes per worker."""
    if not force and _last_disk_check and time.monotonic() - _last_disk_check[0] < DISK_CHECK_EVERY_S:
        return None
    _last_disk_check[:] = [time.monotonic()]
    from . import alerts
    return alerts.check_disk()


def tick():
    for function in TICKS:
        try:
            function()
        except Exception:  # noqa: BLE001  a failing schedule must not stop the worker
            db.session.rollback()
            log.exception("periodic %s failed", function.__name__)


@click.command("worker")
@click.option("--poll", "poll_s", default=1.0, show_default=True, help="Seconds between looks when idle.")
@click.option("--until-idle", is_flag=True, help="Stop when no job is due (for cron or tests).")
@with_appcontext
def worker_command(poll_s, until_idle):
    """Run background jobs: order details, provisioning hooks, usage push."""
    log.info("worker %s started", worker_id())
    ran = work(poll_s=poll_s, until_idle=until_idle, tick=tick)
    click.echo(f"worker stopped after {ran} jobs")


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
        click.echo(f"{job.id:>6} {job.kind:12} {job.state:8} attempts={job.attempts}/{job.max_attempts} "
                   f"{job.key} {error}")


@jobs_group.command("retry")
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Retry every dead job.")
@with_appcontext
def jobs_retry(job_ids, all_dead):
    """Queue dead jobs again, with a fresh set of attempts."""
    if not job_ids and not all_dead:
        raise click.UsageError("name job ids or use --all-dead")
    where = [Job.state == JobState.DEAD] + ([] if all_dead else [Job.id.in_(job_ids)])
    with write_transaction():
        count = db.session.execute(update(Job).where(*where).values(
            state=JobState.QUEUED, attempts=0, run_after=utcnow(), updated_at=utcnow())
            .returning(Job.id)).all()
    click.echo(f"queued again: {len(count)} job(s)")


def init_app(app):
    app.cli.add_command(worker_command)
    app.cli.add_command(jobs_group)
