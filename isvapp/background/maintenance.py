"""Housekeeping a merchant schedules: pruning what expires, and backing up the database.

Pruning touches only the two tables that grow without bound and lose their use with age: the
nonce store (a nonce older than the signature window can no longer be replayed: the timestamp
check refuses the request first; twice the window is kept for clock differences) and the
callback log (kept CALLBACK_LOG_RETENTION_DAYS). Instances, answers (idempotency), events,
conflicts, licenses and tenants are never pruned. Rows go in small batches, each its own short
write transaction, so callbacks arriving meanwhile never wait past the busy timeout.
"""

import os
import sqlite3
import stat
from datetime import timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, select

from ..extensions import db
from ..koo.generations import Generation, ReplayScope
from ..privatefiles import create_private
from ..settings import settings_of
from ..storage.models import Callback, RelayBudget, SignedRequest, utcnow
from ..storage.transactions import write_transaction
from . import jobs

PRUNE_BATCH = 2000


def _delete_older(model, column, cutoff, batch=PRUNE_BATCH, where=()):
    """Delete rows with ``column < cutoff`` (and ``where``) in batches; returns how many went.

    Each batch's ids are read first, outside the write lock, then deleted by id: the replay store
    has no index on its time (an index is one more page written by every callback, issue 17), so
    its lookup walks the table in id order (oldest first, and the walk stops at the batch size),
    and no walk may hold the lock the callbacks wait for.
    """
    total = 0
    while True:
        ids = (
            db.session.execute(select(model.id).where(column < cutoff, *where).order_by(model.id).limit(batch))
            .scalars()
            .all()
        )
        db.session.remove()
        if not ids:
            return total
        with write_transaction() as session:
            total += session.execute(delete(model).where(model.id.in_(ids), column < cutoff)).rowcount
        db.session.remove()
        if len(ids) < batch:
            return total


G1_SCOPES = tuple(s for s in ReplayScope if s.signing is Generation.G1)  # authTokens: the (longer) G1 window
# How far two hosts' clocks may disagree (NTP keeps them within milliseconds; this is for a host
# whose time sync broke): a replay entry outlives its window by this much too.
HOST_CLOCK_MARGIN_S = 600


def replay_keep_s(window_s):
    """How long a replay entry must live: as long as its request could still pass the window.

    Accepted at time t (this host's clock, ``seen_at``), a request's timestamp T is within
    window_s of t, so it passes the window until T + window_s <= t + 2 * window_s. Another host
    judging by a clock HOST_CLOCK_MARGIN_S ahead accepts it that much longer. Pruned earlier, the
    untouched request would be obeyed again.
    """
    return 2 * window_s + HOST_CLOCK_MARGIN_S


def prune(settings, callback_days, now=None):
    """Delete signed requests that can no longer pass their window (replay_keep_s) and callback
    log rows older than ``callback_days`` (0: keep them). A signed request outside its window is
    refused anyway, so its entry is no longer needed to recognise a resend or a replay; G1's
    window is the longer one."""
    now = now or utcnow()
    g1 = SignedRequest.scope.in_(G1_SCOPES)
    counts = {
        "nonces": _delete_older(
            SignedRequest,
            SignedRequest.seen_at,
            now - timedelta(seconds=replay_keep_s(settings.signature_window_s)),
            where=[~g1],
        )
        + _delete_older(
            SignedRequest,
            SignedRequest.seen_at,
            now - timedelta(seconds=replay_keep_s(settings.g1_window_s)),
            where=[g1],
        )
    }
    counts["callbacks"] = (
        _delete_older(Callback, Callback.received_at, now - timedelta(days=callback_days)) if callback_days > 0 else 0
    )
    with write_transaction() as session:  # the relay's per-minute budgets: only the current minute counts
        counts["relay_budgets"] = session.execute(
            delete(RelayBudget).where(RelayBudget.minute < now - timedelta(hours=1))
        ).rowcount
    db.session.remove()
    return counts


def prune_job(job):
    settings = settings_of(current_app)
    prune(settings, settings.callbacks.retention_days)


def schedule_prune(now=None):
    """One prune job per PRUNE_EVERY_H period, whichever worker (or host) sees the period first."""
    hours = settings_of(current_app).callbacks.prune_every_h
    if hours <= 0:
        return
    period = int((now or utcnow()).timestamp() // (hours * 3600))
    with write_transaction():
        jobs.enqueue("prune", f"prune:{hours:g}h:{period}")


@click.command("prune")
@with_appcontext
def prune_command():
    """Delete expired nonces and old callback log rows (run it daily from cron or a systemd timer)."""
    settings = settings_of(current_app)
    days = settings.callbacks.retention_days
    counts = prune(settings, days)
    click.echo(
        f"Pruned {counts['nonces']} nonces and {counts['callbacks']} callback log rows "
        f"(callback log kept {days or 'forever'}{' days' if days else ''})."
    )


# --- backup ----------------------------------------------------------------------------------


def backup_sqlite(path):
    """Copy the live SQLite database to ``path`` with SQLite's online backup API, then check it.

    One backup step reads a consistent snapshot inside a read transaction; in WAL mode that never
    blocks the workers' writes. The copy is written beside ``path`` and renamed into place only
    after ``PRAGMA integrity_check`` says ok. Returns the copy's row count per table.

    The copy holds buyers' personal data: the partial file is created by us, mode 0600, with
    O_EXCL|O_NOFOLLOW (a file or symlink planted there is removed as an entry, never written
    through), checked to be the very file SQLite wrote, and renamed over ``path``, which replaces
    a symlink at ``path`` instead of following it.
    """
    path = os.path.abspath(path)
    partial = path + ".partial"
    if os.path.lexists(partial):
        os.remove(partial)  # removes a symlink itself, never its target
    try:
        fd = create_private(partial)
    except FileExistsError:
        raise click.ClickException(
            f"{partial} appeared while the backup started (another backup running?); try again"
        ) from None
    try:
        created = os.fstat(fd)
    finally:
        os.close(fd)
    source = db.engine.raw_connection()
    try:
        target = sqlite3.connect(partial)
        try:
            source.driver_connection.backup(target)  # type: ignore[union-attr]  # a live connection
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            check = target.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise click.ClickException(f"the copy failed PRAGMA integrity_check: {check[:5]}")
            tables = [
                r[0]
                for r in target.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            counts = {t: target.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        finally:
            target.close()
        written = os.lstat(partial)
        if (written.st_dev, written.st_ino) != (created.st_dev, created.st_ino) or not stat.S_ISREG(written.st_mode):
            raise click.ClickException(f"{partial} was replaced while the backup was written; not used")
    except BaseException:
        if os.path.lexists(partial):
            os.remove(partial)
        raise
    finally:
        source.close()
    os.replace(partial, path)
    return counts


def register_jobs(registry):
    """The prune job and its schedule (isvapp/__init__.py, register_jobs)."""
    registry.handler("prune", prune_job)
    registry.periodic(schedule_prune)


def init_app(app):
    app.cli.add_command(prune_command)
