"""How each database's connections are set up.

SQLite is shared by processes, so: WAL (readers never block the writer), every write transaction
begun IMMEDIATE (a deferred one that upgrades to a write fails at once under contention instead of
waiting), a busy timeout well inside the marketplace's 5 s budget, and files only their owner can
read. PostgreSQL needs none of this; it gets a lock timeout of the same length instead, so a
blocked write also fails in time to answer 000005.
"""

import logging
import os
import random
import sqlite3
import stat
import time

from sqlalchemy import event

from ..privatefiles import create_private

# Execution options a write transaction sets on its connection (transactions.write_transaction);
# the "begin" event below reads them.
IMMEDIATE = "isvapp_immediate"
NOT_DURABLE = "isvapp_not_durable"
SQLITE_RECONNECT_ERRORS = ("readonly database", "unable to open database file", "disk i/o error")
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
        os.close(create_private(path))
    except OSError:
        return False
    return True


def _tighten_side_files(path, warned):
    """Give -wal/-shm/-journal files left from before no permission the database file lacks."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077 and not warned:
        warned.append(True)
        log.warning("%s is readable by other users (mode %o): it holds buyers' personal data; chmod 600 it", path, mode)
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


def install_sqlite_settings(engine, busy_timeout_s, checkpoint_pages, cache_mib=0):
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
        # Every order adds a row to indexes on keys the marketplace makes at random (businessId,
        # nonce, the token's digest, the instance id in the events, jobs and log), so each insert
        # walks to a page of its own: with SQLite's 2 MiB cache, at a million orders even the
        # indexes' inner pages no longer stay in memory and are read again for every row. A cache
        # grows only as pages are read, so a small database never uses it all (measured at
        # 1,000,000 orders: 64 MiB gave 702 requests/s against 623, bench/NOTES.md; a memory map
        # of the file gave nothing).
        if cache_mib:
            cursor.execute(f"PRAGMA cache_size={-int(cache_mib) * 1024}")  # negative: KiB
        cursor.close()

    @event.listens_for(engine, "handle_error")
    def _drop_broken_connections(context):
        # A connection opened while the file was read-only (or missing, or on a failing disk)
        # stays that way: treat these like a lost server so the pool opens a fresh one next time,
        # and the service recovers by itself once the file is fixed.
        message = str(context.original_exception).lower()
        if any(sign in message for sign in SQLITE_RECONNECT_ERRORS):
            context.is_disconnect = True

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Commits wait for the disk (FULL: SQLite fsyncs the log inside COMMIT) unless the writer said
        # the data may be lost on a power cut (the callback log): WAL + NORMAL skips that fsync. Set
        # per transaction, on change.
        options = conn.get_execution_options()
        level = "NORMAL" if options.get(NOT_DURABLE) else "FULL"
        if conn.info.get("isvapp_sync") != level:
            conn.connection.driver_connection.execute(f"PRAGMA synchronous={level}")
            conn.info["isvapp_sync"] = level
        if options.get(IMMEDIATE):
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
    retry_begin_immediate(
        conn.connection.driver_connection, busy_timeout_s, lambda: conn.exec_driver_sql("BEGIN IMMEDIATE")
    )


def retry_begin_immediate(raw, busy_timeout_s, last_try, handler_off=False):
    """The retries of :func:`_begin_immediate` on a driver connection. When the busy timeout runs
    out (or the error is not a lock), ``last_try()``, still without SQLite's own waiting, makes
    the final attempt and reports its error the way its caller reports errors. ``handler_off``:
    the connection's busy handler is always off (a lean connection), so it is not switched off
    and on again around the tries (two statements fewer per write transaction)."""
    deadline = time.monotonic() + busy_timeout_s
    if not handler_off:
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
        if not handler_off:
            raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")


def install_postgresql_settings(engine, lock_timeout_s):
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # A write blocked by another session's lock fails (-> 000005) instead of outliving the
        # marketplace's 5 s; SET applies to the session, and the driver commits it at once.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(lock_timeout_s * 1000)}")
        dbapi_connection.commit()
