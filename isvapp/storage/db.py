"""The database: SQLite settings for several gunicorn workers, write transactions, migrations.

SQLite is shared by processes, so: WAL (readers never block the writer), every write transaction
begun IMMEDIATE (a deferred one that upgrades to a write fails at once under contention instead of
waiting), a busy timeout well inside the marketplace's 5 s budget, and an acknowledged order that
survives power loss: each callback's write-ahead log is on disk before it is answered (see
:func:`write_transaction` for where that fsync happens). The hot path (a new order) binds its
statements before the lock and runs them in a :func:`lean_write_transaction`, without the ORM
session; everything else uses the session. PostgreSQL needs none of this; it gets a lock timeout
of the same length instead, so a blocked write also fails in time to answer 000005.

The schema is owned by Alembic migrations (isvapp/storage/migrations, via Flask-Migrate): ``init-db``
applies the pending ones, so upgrading isvapp never needs a hand-made ALTER.
"""
import fcntl
import hashlib
import logging
import os
import random
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

import click
from flask import current_app
from alembic.migration import MigrationContext
from flask.cli import with_appcontext
from flask_migrate import stamp, upgrade
from sqlalchemy import event, exc, inspect, text
from sqlalchemy.dialects import postgresql, sqlite

from ..config import is_true
from ..extensions import db, migrate

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
# The first migration: the schema `init-db` made with create_all before migrations existed.
BASELINE = "0001"

_IMMEDIATE = "isvapp_immediate"
_NOT_DURABLE = "isvapp_not_durable"
_SYNC_AFTER = "isvapp_sync_after_commit"
_SQLITE_RECONNECT_ERRORS = ("readonly database", "unable to open database file", "disk i/o error")
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

log = logging.getLogger("isvapp.db")


def sqlite_file(url):
    """The SQLite database's path, or None for an in-memory database or a ``file:`` URI."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)


def create_private_file(path):
    """Create ``path`` empty with mode 0600 if nothing is there (SQLite takes an empty file as a
    new database). Never follows or replaces a symlink, never touches an existing file; any
    other failure (a missing folder...) is left for SQLite to report as it always did."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    os.close(fd)
    return True


def _tighten_side_files(path, warned):
    """Give -wal/-shm/-journal files left from before no permission the database file lacks."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077 and not warned:
        warned.append(True)
        log.warning("%s is readable by other users (mode %o): it holds buyers' personal data; "
                    "chmod 600 it", path, mode)
    for suffix in _SQLITE_SIDE_FILES:
        side = path + suffix
        try:
            info = os.lstat(side)
            if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~mode:
                os.chmod(side, stat.S_IMODE(info.st_mode) & mode)
        except OSError:  # not there (the usual case), or not ours
            pass


def _install_private_files(engine):
    """The database file, its -wal and -shm hold buyers' personal data: they are made mode 0600.

    Before every new connection the file is created 0600 (O_CREAT|O_EXCL, so whoever creates it
    creates it private, and an existing file or symlink is never touched); SQLite itself then gives
    the -wal, -shm and -journal files it makes the database file's permission bits (os_unix.c,
    findCreateFileMode and unixOpenSharedMemory), so they follow. Side files left from before are
    narrowed to the database file's mode on each new connection. An existing database file with
    wider permissions is kept as the operator made it, with a warning.

    Not umask: it is one per process, not per thread, so changing it around the first connect
    races with every other thread creating files (the merchant's provisioner, request threads),
    and SQLite makes -wal/-shm again on later connections after the last one closed, so the umask
    would have to stay changed for the whole process. PostgreSQL is not affected.
    """
    path = sqlite_file(engine.url)
    if path is None:
        return
    warned = []

    @event.listens_for(engine, "do_connect")
    def _create_private(_dialect, _record, _cargs, _cparams):
        create_private_file(path)  # returning None lets SQLAlchemy connect as usual

    @event.listens_for(engine, "connect")
    def _narrow_side_files(_dbapi_connection, _record):
        _tighten_side_files(path, warned)


def _install_sqlite_settings(engine, busy_timeout_s, checkpoint_pages):
    _install_private_files(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event, not the driver, decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # SQLite copies the log back into the database file (a checkpoint, with two fsyncs) inside the
        # commit that fills it past this many pages. Each newInstance writes about 32 pages, mostly
        # the same few last leaves again: a larger log copies each page once for many commits and
        # syncs the database file less often (measured, issue 17: 1,000 -> 10,000 pages, about 12%
        # more requests a second; the log file then stays up to about 40 MB).
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
        cursor.close()

    @event.listens_for(engine, "handle_error")
    def _drop_broken_connections(context):
        # A connection opened while the file was read-only (or missing, or on a failing disk)
        # stays that way: treat these like a lost server so the pool opens a fresh one next time,
        # and the service recovers by itself once the file is fixed.
        message = str(context.original_exception).lower()
        if any(sign in message for sign in _SQLITE_RECONNECT_ERRORS):
            context.is_disconnect = True

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Commits wait for the disk (FULL) unless the writer said the data may be lost on a power
        # cut (the callback log): WAL + NORMAL skips that fsync. Set per transaction, on change.
        # SQLITE_SYNC_AFTER_COMMIT: the callback's own fsync follows the commit (write_transaction).
        options = conn.get_execution_options()
        level = "NORMAL" if options.get(_NOT_DURABLE) or options.get(_SYNC_AFTER) else "FULL"
        if conn.info.get("isvapp_sync") != level:
            conn.connection.driver_connection.execute(f"PRAGMA synchronous={level}")
            conn.info["isvapp_sync"] = level
        if options.get(_IMMEDIATE):
            _begin_immediate(conn, busy_timeout_s)
        else:
            conn.exec_driver_sql("BEGIN")


def _begin_immediate(conn, busy_timeout_s):
    """BEGIN IMMEDIATE, retried every fraction of a millisecond until the busy timeout runs out.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries; with several
    gunicorn workers taking turns at a lock each holds for a millisecond or two, most of those
    sleeps overshoot and the queue grows (measured: p50 72 ms at 184 requests/s). Short jittered
    retries hand the lock on as soon as it is free.

    The statements go straight to the driver (this runs on every write, holding nothing yet, and
    SQLAlchemy's execution machinery cost more than the statements); the last try goes through
    SQLAlchemy, so a lock that never frees surfaces as its OperationalError, answered 000005.
    """
    _retry_begin_immediate(conn.connection.driver_connection, busy_timeout_s,
                           lambda: conn.exec_driver_sql("BEGIN IMMEDIATE"))


def _retry_begin_immediate(raw, busy_timeout_s, last_try):
    """The retries of :func:`_begin_immediate` on a driver connection. When the busy timeout runs
    out (or the error is not a lock), ``last_try()``, still without SQLite's own waiting, makes
    the final attempt and reports its error the way its caller reports errors."""
    deadline = time.monotonic() + busy_timeout_s
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error):
                    break
                time.sleep(random.uniform(0.0001, 0.0006))
        last_try()
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")


def _install_postgresql_settings(engine, lock_timeout_s):
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # A write blocked by another session's lock fails (-> 000005) instead of outliving the
        # marketplace's 5 s; SET applies to the session, and the driver commits it at once.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(lock_timeout_s * 1000)}")
        dbapi_connection.commit()


def is_sqlite():
    return db.engine.dialect.name == "sqlite"


@contextmanager
def write_transaction(durable=True):
    """One short write transaction on the request's session: commit on success, roll back on error.

    On SQLite it begins IMMEDIATE, taking the write lock up front (waiting at most the busy
    timeout); anything read inside is therefore current. It must start a fresh transaction:
    reads done earlier on the same session would have begun a deferred one.
    """
    session = db.session()
    if session.in_transaction():
        raise RuntimeError("write_transaction() must start its own transaction")
    wal = durable and _wal_to_sync()
    token = _transaction_connection.set(session.connection(
        execution_options={_IMMEDIATE: True, _NOT_DURABLE: not durable, _SYNC_AFTER: bool(wal)}))
    try:
        yield session
        session.commit()
        if wal:
            sync_file(wal)
    except BaseException:
        session.rollback()
        raise
    finally:
        _transaction_connection.reset(token)


class SessionRequired(Exception):
    """Raised inside a :func:`lean_write_transaction` where the ORM session is needed: the caller
    runs the whole transaction again in :func:`write_transaction` (it was rolled back)."""


class _Lean(NamedTuple):
    raw: sqlite3.Connection


def session_required():
    """Called before the ORM session is used by code a lean transaction may run (the unusual
    branches of a newInstance: a repeated order, a reused businessId)."""
    if isinstance(_transaction_connection.get(), _Lean):
        raise SessionRequired()


_lean_connections = threading.local()


def lean_available():
    """Lean write transactions are for SQLite (PostgreSQL's writers run at once; they use the session)."""
    return "isvapp_lean" in current_app.extensions


@contextmanager
def lean_write_transaction():
    """A write transaction without the ORM session, for statements bound before the lock
    (:class:`Bound`, run with :func:`run_bound`): BEGIN IMMEDIATE, the statements, COMMIT, and the
    log synced as :func:`write_transaction` syncs it.

    Why: SQLAlchemy's session and connection plumbing cost a tenth of a worker's CPU per
    newInstance (py-spy, issue 17), more than the statements. Each worker thread keeps one driver
    connection of its own for this, made by the pool (so it has every connect-time setting) and
    detached from it. An error rolls back and is reported as SQLAlchemy reports it (000005); a
    connection a broken file made unusable is closed, and the next transaction opens a fresh one.
    """
    config = current_app.extensions["isvapp_lean"]
    raw = _lean_connection(config)
    token = _transaction_connection.set(_Lean(raw))
    try:
        try:
            _retry_begin_immediate(raw, config["busy_timeout_s"], lambda: raw.execute("BEGIN IMMEDIATE"))
            yield
            raw.execute("COMMIT")
        except sqlite3.Error as error:
            raise _wrapped("lean write transaction", error, db.engine.dialect) from error
    except BaseException as error:
        if raw.in_transaction:
            try:
                raw.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if _is_broken(error):
            _drop_lean_connection(raw)
        raise
    finally:
        _transaction_connection.reset(token)
    if config["wal"]:
        sync_file(config["wal"])


def _lean_connection(config):
    """This thread's driver connection for lean transactions (per app: tests make several; per
    process: a connection never crosses a fork). Disposing of the engine's pool (a connection's
    settings changed, a file replaced) retires it too."""
    connections: dict = _lean_connections.__dict__
    key = (config["key"], os.getpid())
    raw, generation, _ = connections.get(key, (None, None, None))
    if raw is not None and generation != config["generation"]:
        _drop_lean_connection(raw)
        raw = None
    if raw is None:
        try:
            fairy = db.engine.raw_connection()  # the pool's connect-time settings, errors unwrapped
            raw = fairy.driver_connection
            fairy.detach()  # ours from now on: the pool neither resets nor reuses it
            raw.execute(f"PRAGMA synchronous={'NORMAL' if config['wal'] else 'FULL'}")  # type: ignore[union-attr]
        except sqlite3.Error as error:
            raise _wrapped("connect", error, db.engine.dialect) from error
        # The pool's handle is kept with it, so nothing finalises the connection.
        connections[key] = (raw, config["generation"], fairy)
    return raw


def _drop_lean_connection(raw):
    connections = _lean_connections.__dict__
    for key, (held, _, _) in list(connections.items()):
        if held is raw:
            del connections[key]
    try:
        raw.close()
    except sqlite3.Error:
        pass


def _wrapped(sql, error, dialect):
    """A driver error as SQLAlchemy reports it (an OperationalError is answered 000005)."""
    return exc.DBAPIError.instance(sql, None, error, dialect.loaded_dbapi.Error, dialect=dialect)


def _is_broken(error):
    original = getattr(error, "orig", error)
    return isinstance(original, sqlite3.Error) and any(
        sign in str(original).lower() for sign in _SQLITE_RECONNECT_ERRORS)


def _wal_to_sync():
    """The -wal file a durable write transaction syncs itself after its commit, or None when
    SQLite's own synchronous=FULL commit does it (PostgreSQL; SQLITE_SYNC_AFTER_COMMIT off).

    Why after: with FULL, the fsync runs inside COMMIT, while the write lock is held, and every
    other worker waits for this one's disk (measured, issue 17: a quarter of a worker's time). WAL
    frames are appended in order, so syncing the file once COMMIT has returned (and the lock is
    free) puts these frames, and every earlier transaction's, on disk before the caller answers.
    Nothing acts on the transaction before then: a later write transaction that reads it syncs
    the same file before it answers too, and only the moments between this commit and its fsync
    could show its rows to a read-only page. Recovery reads the log up to the last whole commit,
    so a later transaction cut short by a power cut cannot take this one with it.
    """
    lean = current_app.extensions.get("isvapp_lean")
    return lean and lean["wal"]


_synced_wal_inode = {}


def sync_file(path):
    """Sync ``path`` (a -wal file) to disk: its frames, and, the first time this process sees this
    file, its folder, so a log made since the last checkpoint is found after a power cut.

    fdatasync, as SQLite's own commit syncs the log on Linux: the data and what is needed to read
    it back (the size, when the log grew), without a journal commit for its modification time.

    A log that is not there has been checkpointed into the database (SQLite syncs that) and
    removed: there is nothing left to sync. An fsync that fails raises: the transaction is
    committed but may not be on disk, so it must not be acknowledged (the marketplace's retry
    then finds the stored answer, and syncs again).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
        inode = os.fstat(fd).st_ino
    finally:
        os.close(fd)
    if _synced_wal_inode.get(path) != inode:
        folder = os.open(os.path.dirname(path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        _synced_wal_inode[path] = inode


_insert_ignore_statements = {}


def _insert_ignore_statement(table, columns, many=False):
    """INSERT ... ON CONFLICT DO NOTHING for ``table`` and these columns, built once per dialect.

    One row: with RETURNING, not rowcount, to tell an inserted row: with SQLAlchemy 2.1 and psycopg,
    rowcount came back -1 for this INSERT (every nonce looked replayed on PostgreSQL). Several rows
    (executemany): no RETURNING, the caller does not need to know which were new. Built with
    .values() on every call, the statement cost more than the INSERT itself (profiled).
    """
    table = getattr(table, "__table__", table)
    key = (db.engine.dialect.name, table.name, many, tuple(sorted(columns)))
    statement = _insert_ignore_statements.get(key)
    if statement is None:
        dialect = postgresql if key[0] == "postgresql" else sqlite
        statement = dialect.insert(table).on_conflict_do_nothing()
        if not many:
            statement = statement.returning(*table.primary_key.columns)
        _insert_ignore_statements[key] = statement
    return statement


def bind_insert_ignore(table, **values):
    """:func:`insert_ignore`'s statement with its values bound, to be run later by :func:`run_bound`."""
    return bind_prepared(_insert_ignore_statement(table, values), values, returning=True)


def insert_ignore(table, **values):
    """INSERT ... ON CONFLICT DO NOTHING on either database; returns True when a row was inserted.

    Idempotency rests on this and a UNIQUE constraint, never on check-then-insert.
    """
    return run_bound(bind_insert_ignore(table, **values)) is not None


def bind_insert_ignore_many(table, rows):
    """Several rows of INSERT ... ON CONFLICT DO NOTHING in one executemany. Rows share their columns."""
    return bind_prepared(_insert_ignore_statement(table, rows[0], many=True), list(rows))


_prepared = {}
# The connection of the write transaction in progress (run_bound runs on it).
_transaction_connection: ContextVar[Any] = ContextVar("isvapp_transaction_connection", default=None)


class Bound(NamedTuple):
    """A Core INSERT compiled once and its parameters bound: what is left to do is the driver's.

    Made before the write lock is taken where the values are known then (newInstance's rows), so
    the lock is held for the statements alone (issue 17).
    """

    statement: object
    params: object  # as given: a dict, or a list of dicts (executemany)
    sql: str
    values: list  # in the driver's form and order, one list (or dict) per row
    many: bool
    returning: bool


def bind_prepared(statement, params, returning=False):
    """Compile ``statement`` once per dialect and column set, and bind ``params`` to it exactly as
    SQLAlchemy would: the column types' bind processors and the columns' Python defaults applied.

    SQLAlchemy's per-execution machinery (compile-cache lookups, parameter processing, result
    setup) cost more than the statements on the write path (profiled, issue 17). ``params`` is a
    dict, or a list of dicts (executemany); ``returning``: :func:`run_bound` returns the first row.
    """
    rows = params if isinstance(params, list) else [params]
    dialect = db.engine.dialect
    columns = tuple(sorted(rows[0]))
    key = (id(statement), dialect.name, columns)
    entry = _prepared.get(key)
    if entry is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        # Each parameter's type's own bind processor, through the types' public API.
        processors = {name: process for name, bind in compiled.binds.items()
                      if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        defaults = {col.key: col.default.arg if col.default.is_callable else (lambda _, value=col.default.arg: value)
                    for col in compiled.insert_prefetch if col.default is not None}
        names = compiled.positiontup or list(compiled.binds)
        # In the driver's order: the names, then which need a Python default or a type's processor.
        made = [(i, defaults[name]) for i, name in enumerate(names) if name not in columns and name in defaults]
        processed = [(i, processors[name]) for i, name in enumerate(names) if name in processors]
        entry = _prepared[key] = (statement, compiled.string, names, made, processed,
                                  compiled.positiontup is not None)
    _, sql, names, made, processed, positional = entry

    def bind(row):
        values = [row.get(name) for name in names]
        for i, make in made:
            values[i] = make(None)
        for i, process in processed:
            values[i] = process(values[i])
        return values if positional else dict(zip(names, values, strict=True))

    return Bound(statement, params, sql, [bind(row) for row in rows], isinstance(params, list), returning)


def run_bound(bound):
    """Run a :class:`Bound` on the write transaction's own connection: its first row when it
    returns rows, else None.

    Errors arrive wrapped as everywhere else (OperationalError -> 000005). On the session's SQLite
    connection a failed statement is run again through SQLAlchemy, so its connection events (a
    read-only or vanished file invalidates the connection) fire; PostgreSQL has aborted the
    transaction by then, and a lean transaction has no session, so there the driver's error is
    wrapped the way SQLAlchemy would have wrapped it (a lean connection is dropped by its
    transaction instead).
    """
    current = _transaction_connection.get()
    lean = isinstance(current, _Lean)
    connection = None if lean else current or db.session.connection()
    # When not lean, connection is set and its driver connection is live (mypy sees Optionals).
    cursor = current.raw.cursor() if lean else connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if bound.many:
            cursor.executemany(bound.sql, bound.values)
            return None
        cursor.execute(bound.sql, bound.values[0])
        return cursor.fetchone() if bound.returning else None
    except Exception as error:  # noqa: BLE001  reported as SQLAlchemy reports it, below
        dialect = db.engine.dialect if lean else connection.dialect  # type: ignore[union-attr]
        dbapi_error = dialect.loaded_dbapi.Error
        if (lean or dialect.name != "sqlite") and isinstance(error, dbapi_error):
            raise _wrapped(bound.sql, error, dialect) from error
        if lean:
            raise
        result = db.session.execute(bound.statement, bound.params)
        return result.first() if bound.returning else None
    finally:
        cursor.close()


def execute_prepared(statement, params, returning=False):
    """Run a Core INSERT on the session's own connection and transaction, compiled once."""
    return run_bound(bind_prepared(statement, params, returning))


BATCH = 1000


def batches(items, size=BATCH):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def upsert_rows(table, rows, keys, update):
    """INSERT ... ON CONFLICT (keys) DO UPDATE for many rows, in batches (executemany).

    The bulk path for Kit syncs: tens of thousands of rows, no ORM object per row. ``update``
    names the columns a repeat overwrites; the key columns and created times stay.
    """
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    table = getattr(table, "__table__", table)
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={name: statement.excluded[name] for name in update})
    for batch in batches(rows):
        db.session.execute(statement, batch)


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
            digest = hashlib.sha256(f"isvapp init-db {schema}".encode("utf-8")).digest()
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
    click.echo(f"Initialised the database at {db.engine.url.render_as_string(hide_password=True)} "
               f"(schema revision {revision}).")


def serialise(name):
    """Inside a write transaction: the rest of it runs one at a time for ``name``, on every host.

    SQLite's write transactions (BEGIN IMMEDIATE) already run one at a time; PostgreSQL's do not,
    so there a transaction-scoped advisory lock on a key derived from ``name`` makes them wait
    for each other (and goes with the transaction, however it ends). For a count-then-insert that
    must not be overtaken, such as login attempts against their limit.
    """
    if db.engine.dialect.name == "postgresql":
        digest = hashlib.sha256(f"isvapp serialise {name}".encode("utf-8")).digest()  # apart from init-db's keys
        key = int.from_bytes(digest[:8], "big", signed=True)
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def init_app(app):
    db.init_app(app)
    # render_as_batch: SQLite cannot ALTER most things, so autogenerated changes copy the table.
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True, compare_type=True)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _install_sqlite_settings(db.engine, float(app.config["SQLITE_BUSY_TIMEOUT_S"]),
                                     int(app.config["SQLITE_WAL_AUTOCHECKPOINT"]))
            path = sqlite_file(db.engine.url)
            lean = app.extensions["isvapp_lean"] = {
                "key": object(),  # this app's own lean connections
                "generation": 0,  # bumped when the engine's pool is disposed of: they are retired
                # the -wal file durable transactions sync themselves (_wal_to_sync), or None
                "wal": path + "-wal" if path and is_true(app.config.get("SQLITE_SYNC_AFTER_COMMIT")) else None,
                "busy_timeout_s": float(app.config["SQLITE_BUSY_TIMEOUT_S"])}
            event.listen(db.engine, "engine_disposed", lambda _engine: lean.update(generation=lean["generation"] + 1))  # type: ignore[operator]  # an int
        elif db.engine.dialect.name == "postgresql":
            _install_postgresql_settings(db.engine, float(app.config["SQLITE_BUSY_TIMEOUT_S"]))
    app.cli.add_command(init_db_command)
