"""The durable job queue in the app's own database: adding jobs, claiming, completing and failing them.

Jobs are rows written in the same transaction as the event that needs them, so nothing
acknowledged to the marketplace can lose its follow-up work. A worker claims one job at a time
with a lease (``locked_until``): on PostgreSQL the claim uses SELECT ... FOR UPDATE SKIP LOCKED,
on SQLite the claim runs in a BEGIN IMMEDIATE transaction, which serialises claimers. A worker
that dies mid-job lets its lease run out and the job runs again, with the same key (the event id
hooks receive). Failures retry with exponential backoff and jitter, and after the last attempt
the job is kept as dead with its error until `isvapp jobs retry` revives it.

The worker that runs the jobs, and rides out a database outage, is worker.py.
"""

import logging
import random
from datetime import timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import and_, or_, select, update

from .. import metrics
from ..extensions import db
from ..settings import settings_of
from ..storage.models import Job, JobState, utcnow
from ..storage.statements import bind_insert_ignore_many, insert_ignore
from ..storage.transactions import write_transaction
from . import registry

log = logging.getLogger("isvapp.jobs")


class Permanent(Exception):
    """A failure retrying cannot fix: the job goes dead at once."""


class Expected(Exception):
    """A failure the merchant's side causes and its message explains (a receiver that refused or
    could not be reached): the worker logs it in one line, since a traceback would only point at
    isvapp's own code, which did its part. The job's stored error keeps the traceback."""


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
    attempt spent on a handler that never ran. With the id, worker.work() gives it back.
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
    app.cli.add_command(jobs_group)
