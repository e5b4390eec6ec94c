"""The write transactions: one on the request's ORM session (:func:`write_transaction`), and,
for the hot path (a new order), a lean one without the session (:func:`lean_write_transaction`)
that runs statements bound before the lock (statements.Bound). :func:`serialise` makes a
count-then-insert wait its turn on PostgreSQL too.
"""

import hashlib
import os
import sqlite3
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import exc, text

from ..extensions import db
from .connections import IMMEDIATE, NOT_DURABLE, SQLITE_RECONNECT_ERRORS, retry_begin_immediate

# The connection of the write transaction in progress (statements.run_bound runs on it): the
# session's connection, or a Lean for a lean transaction.
transaction_connection: ContextVar[Any] = ContextVar("isvapp_transaction_connection", default=None)


def is_sqlite():
    return db.engine.dialect.name == "sqlite"


@contextmanager
def write_transaction(durable=True):
    """One short write transaction on the request's session: commit on success, roll back on error.

    On SQLite it begins IMMEDIATE, taking the write lock up front (waiting at most the busy
    timeout); anything read inside is therefore current. It must start a fresh transaction:
    reads done earlier on the same session would have begun a deferred one. ``durable``: the
    commit waits for the disk (synchronous=FULL), so an acknowledged order survives a power cut;
    False for what may be lost (a login time, a read-only request's claim).
    """
    session = db.session()
    if session.in_transaction():
        raise RuntimeError("write_transaction() must start its own transaction")
    token = transaction_connection.set(
        session.connection(execution_options={IMMEDIATE: True, NOT_DURABLE: not durable})
    )
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        transaction_connection.reset(token)


class SessionRequired(Exception):
    """Raised inside a :func:`lean_write_transaction` where the ORM session is needed: the caller
    runs the whole transaction again in :func:`write_transaction` (it was rolled back)."""


class Lean(NamedTuple):
    raw: sqlite3.Connection


def session_required():
    """Called before the ORM session is used by code a lean transaction may run (the unusual
    branches of a newInstance: a repeated order, a reused businessId)."""
    if isinstance(transaction_connection.get(), Lean):
        raise SessionRequired()


_lean_connections = threading.local()


def lean_available():
    """Lean write transactions are for SQLite (PostgreSQL's writers run at once; they use the session)."""
    return "isvapp_lean" in current_app.extensions


@contextmanager
def lean_write_transaction():
    """A write transaction without the ORM session, for statements bound before the lock
    (:class:`Bound`, run with :func:`run_bound`): BEGIN IMMEDIATE, the statements, COMMIT, durable
    as :func:`write_transaction`'s (synchronous=FULL).

    Why: SQLAlchemy's session and connection plumbing cost a tenth of a worker's CPU per
    newInstance (py-spy, issue 17), more than the statements. Each worker thread keeps one driver
    connection of its own for this, made by the pool (so it has every connect-time setting) and
    detached from it. An error rolls back and is reported as SQLAlchemy reports it (000005); a
    connection a broken file made unusable is closed, and the next transaction opens a fresh one.
    """
    lean = current_app.extensions["isvapp_lean"]
    raw = _lean_connection(lean)
    token = transaction_connection.set(Lean(raw))
    try:
        try:
            retry_begin_immediate(raw, lean["busy_timeout_s"], lambda: raw.execute("BEGIN IMMEDIATE"), handler_off=True)
            yield
            raw.execute("COMMIT")
        except sqlite3.Error as error:
            raise wrapped("lean write transaction", error, db.engine.dialect) from error
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
        transaction_connection.reset(token)


def _lean_connection(lean):
    """This thread's driver connection for lean transactions (per app: tests make several; per
    process: a connection never crosses a fork). Disposing of the engine's pool (a connection's
    settings changed, a file replaced) retires it too."""
    connections: dict = _lean_connections.__dict__
    key = (lean["key"], os.getpid())
    raw, generation, _ = connections.get(key, (None, None, None))
    if raw is not None and generation != lean["generation"]:
        _drop_lean_connection(raw)
        raw = None
    if raw is None:
        try:
            fairy = db.engine.raw_connection()  # the pool's connect-time settings, errors unwrapped
            raw = fairy.driver_connection
            fairy.detach()  # ours from now on: the pool neither resets nor reuses it
            raw.execute("PRAGMA synchronous=FULL")  # type: ignore[union-attr]  # live: just taken from the pool
            # Its BEGIN IMMEDIATE is retried in short steps (retry_begin_immediate), and once that
            # holds the write lock nothing else in a lean transaction waits for a lock (WAL).
            raw.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
        except sqlite3.Error as error:
            raise wrapped("connect", error, db.engine.dialect) from error
        # The pool's handle is kept with it, so nothing finalises the connection.
        connections[key] = (raw, lean["generation"], fairy)
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


def wrapped(sql, error, dialect):
    """A driver error as SQLAlchemy reports it (an OperationalError is answered 000005)."""
    return exc.DBAPIError.instance(sql, None, error, dialect.loaded_dbapi.Error, dialect=dialect)


def _is_broken(error):
    original = getattr(error, "orig", error)
    return isinstance(original, sqlite3.Error) and any(
        sign in str(original).lower() for sign in SQLITE_RECONNECT_ERRORS
    )


def serialise(name):
    """Inside a write transaction: the rest of it runs one at a time for ``name``, on every host.

    SQLite's write transactions (BEGIN IMMEDIATE) already run one at a time; PostgreSQL's do not,
    so there a transaction-scoped advisory lock on a key derived from ``name`` makes them wait
    for each other (and goes with the transaction, however it ends). For a count-then-insert that
    must not be overtaken, such as login attempts against their limit.
    """
    if db.engine.dialect.name == "postgresql":
        digest = hashlib.sha256(f"isvapp serialise {name}".encode()).digest()  # apart from init-db's keys
        key = int.from_bytes(digest[:8], "big", signed=True)
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
