"""The schema is owned by Alembic migrations (isvapp/storage/migrations, via Flask-Migrate):
``init-db`` applies the pending ones, so upgrading isvapp never needs a hand-made ALTER, and it
takes its turn on the database, so several hosts may run it as they start.
"""

import fcntl
import hashlib
import logging
import os
from contextlib import contextmanager

import click
from alembic.migration import MigrationContext
from flask.cli import with_appcontext
from flask_migrate import stamp, upgrade
from sqlalchemy import inspect

from ..extensions import db
from .connections import sqlite_file

log = logging.getLogger("isvapp.db")

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
# The first migration: the schema `init-db` made with create_all before migrations existed.
BASELINE = "0001"


@contextmanager
def _migration_lock():
    """init-db's turn on this database: every host runs init-db as it starts (systemd
    ExecStartPre), and hosts start together. Unserialised, both runners see a table missing and
    both create it: PostgreSQL refuses the second CREATE TABLE (UniqueViolation on
    pg_type_typname_nsp_index, transaction or not), SQLite the second writer ("database is
    locked": a deferred transaction cannot wait for the write lock). In turn, each runner after
    the first finds the schema current and does nothing.

    PostgreSQL: a session advisory lock, on a connection detached from the pool (it may wait
    without the app's lock timeout, and closing it ends the session, which releases the lock
    even when this process dies mid-migration). Advisory locks are per database; the key adds
    the schema the tables go in (current_schema(): the search_path's first existing schema), so
    schemas of one database, like the tests' schema per test, do not wait for each other.
    SQLite: flock on a file beside the database, which the kernel releases when the process
    dies. The file stays (removing it would let a waiter lock the removed file while a newcomer
    locks a new one). An in-memory database or a ``file:`` URI has no path to lock beside; it
    is not locked.
    """
    engine = db.engine
    path = sqlite_file(engine.url) if engine.dialect.name == "sqlite" else None
    if engine.dialect.name == "postgresql":
        fairy = engine.raw_connection()  # the pool's connect-time settings
        try:
            raw = fairy.driver_connection
            assert raw is not None  # a connection just taken from the pool is live
            fairy.detach()  # ours: never handed to a request with the lock or these settings
            raw.rollback()
            raw.autocommit = True  # no transaction (and no snapshot) held for the whole upgrade
            schema = raw.execute("SELECT current_schema()").fetchone()[0] or ""
            digest = hashlib.sha256(f"isvapp init-db {schema}".encode()).digest()
            key = int.from_bytes(digest[:8], "big", signed=True)
            raw.execute("SET lock_timeout = 0")
            if not raw.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                log.info("init-db: waiting for another init-db on schema %s to finish", schema)
                raw.execute("SELECT pg_advisory_lock(%s)", (key,))
            yield
            raw.execute("SELECT pg_advisory_unlock(%s)", (key,))
        finally:
            fairy.close()  # ends the session: the lock goes with it, whatever happened
    elif path:
        fd = os.open(path + "-init-db.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("init-db: waiting for another init-db on %s to finish", path)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock
    else:
        yield


def init_db():
    """Apply every pending migration; never drops data. Returns the revision now current.

    A database made before migrations existed (tables, no alembic_version) is adopted: stamped
    at the baseline it matches, then upgraded like any other. Everything, the look at what is
    there included, happens in :func:`_migration_lock`, so several hosts may run it at once.
    """
    with _migration_lock():
        tables = inspect(db.engine).get_table_names()
        if "alembic_version" not in tables and "instances" in tables:
            stamp(directory=MIGRATIONS, revision=BASELINE)
        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the database schema to the newest migration (safe to run again)."""
    revision = init_db()
    click.echo(
        f"Initialised the database at {db.engine.url.render_as_string(hide_password=True)} "
        f"(schema revision {revision})."
    )
