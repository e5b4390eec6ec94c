"""Statements built once and run on the write transaction's own connection: INSERT ... ON
CONFLICT DO NOTHING (idempotency rests on it and a UNIQUE constraint), statements bound before
the write lock (:class:`Bound`), and the bulk upserts of a Kit sync.

The write path's statements are plain SQL text, written here once per dialect from the tables'
own description (their columns, types and defaults), and run on the driver's cursor:
SQLAlchemy's per-execution machinery (compile-cache lookups, parameter processing, result setup)
cost more than the statements themselves (profiled, issue 17). Only what SQLAlchemy documents
is used: a table's columns, each type's bind processor (``dialect_impl`` and ``bind_processor``)
and each column's Python default. The same statement as SQLAlchemy Core, for the one case that
goes back through SQLAlchemy (:func:`run_bound`), is built from the same description.
"""

import re
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from .transactions import Lean, transaction_connection, wrapped


def _quote(name):
    """An identifier as both SQLite and PostgreSQL read it exactly (``key`` and ``window`` are
    words of the language)."""
    return '"' + name.replace('"', '""') + '"'


def _placeholder(dialect):
    """The drivers' positional parameter marker: sqlite3's ``?``, psycopg's ``%s``."""
    return "?" if dialect.name == "sqlite" else "%s"


class Prepared(NamedTuple):
    """One statement's SQL text for one dialect, and how a row of parameters becomes the driver's
    list: ``names`` in order, the Python defaults ``made`` for names not given, the types'
    processors ``processed`` by position."""

    sql: str
    names: tuple
    made: tuple  # (position, default function)
    processed: tuple  # (position, processor)
    core: object  # the same statement in SQLAlchemy Core, for run_bound's fallback


class Bound(NamedTuple):
    """A statement and its parameters, bound: what is left to do is the driver's.

    Made before the write lock is taken where the values are known then (newInstance's rows), so
    the lock is held for the statements alone (issue 17).
    """

    statement: object  # the Core statement, for run_bound's fallback
    params: object  # as given: a dict, or a list of dicts (executemany)
    sql: str
    values: list  # in the driver's form and order, one list per row
    many: bool
    returning: bool


_prepared: dict = {}


def _prepare_insert(table, given, ignore_conflicts, returning):
    """INSERT INTO table (the ``given`` columns, and those with a Python default) VALUES (...),
    [ON CONFLICT DO NOTHING] [RETURNING its primary key], for this engine's dialect, made once."""
    dialect = db.engine.dialect
    key = ("insert", dialect.name, table.name, given, ignore_conflicts, returning)
    entry = _prepared.get(key)
    if entry is not None:
        return entry
    columns = [c for c in table.columns if c.key in given or (c.default is not None and c.default.is_scalar)]
    columns += [c for c in table.columns if c.key not in given and c.default is not None and c.default.is_callable]
    unknown = set(given) - {c.key for c in table.columns}
    if unknown:
        raise KeyError(f"{table.name} has no column {sorted(unknown)[0]}")
    mark = _placeholder(dialect)
    sql = (
        f"INSERT INTO {_quote(table.name)} ({', '.join(_quote(c.name) for c in columns)}) "
        f"VALUES ({', '.join(mark for _ in columns)})"
    )
    core = (postgresql if dialect.name == "postgresql" else sqlite).insert(table)
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
        core = core.on_conflict_do_nothing()
    if returning:
        sql += " RETURNING " + ", ".join(_quote(c.name) for c in table.primary_key.columns)
        core = core.returning(*table.primary_key.columns)
    made = tuple(
        (i, c.default.arg if c.default.is_callable else (lambda _, value=c.default.arg: value))
        for i, c in enumerate(columns)
        if c.key not in given
    )
    processed = tuple(
        (i, _faster(process))
        for i, c in enumerate(columns)
        if (process := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
    )
    entry = _prepared[key] = Prepared(sql, tuple(c.key for c in columns), made, processed, core)
    return entry


_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def _prepare_query(sql):
    """A query written with ``:name`` parameters (text values, as the callers' are), in the
    driver's positional form, made once per dialect."""
    dialect = db.engine.dialect
    key = ("query", dialect.name, sql)
    entry = _prepared.get(key)
    if entry is None:
        names = tuple(_NAMED.findall(sql))
        entry = _prepared[key] = Prepared(_NAMED.sub(_placeholder(dialect), sql), names, (), (), text(sql))
    return entry


def _bound(prepared, params, returning):
    rows = params if isinstance(params, list) else [params]
    return Bound(
        prepared.core,
        params,
        prepared.sql,
        [_bind(row, prepared.names, prepared.made, prepared.processed) for row in rows],
        isinstance(params, list),
        returning,
    )


def bind_insert(table, params, ignore_conflicts=False, returning=False):
    """An INSERT of ``params`` (a dict, or a list of dicts sharing their columns: executemany)
    into ``table`` (a model or a Table), bound: the column types' bind processors and the
    columns' Python defaults applied, as SQLAlchemy would. ``returning``: :func:`run_bound`
    returns the new row's primary key, None when a conflict was ignored."""
    table = getattr(table, "__table__", table)
    rows = params if isinstance(params, list) else [params]
    prepared = _prepare_insert(table, frozenset(rows[0]), ignore_conflicts, returning)
    return _bound(prepared, params, returning)


class Write(NamedTuple):
    """One INSERT a domain decision asks for, unbound: what the state machine decides, before
    storage binds and runs it (:func:`isvapp.storage.plans.run_plan`).

    ``claim``: the row claims something once (an order line, a nonce, a businessId): INSERT ...
    ON CONFLICT DO NOTHING, and a conflict stops the plan, named by this. ``ignore``: a conflict
    is no matter (the jobs of an event). ``late``: called with the row just before it is written,
    under the lock (the callback log's duration)."""

    table: object
    values: object  # a dict, or a list of dicts sharing their columns
    claim: str | None = None
    ignore: bool = False
    late: object = None


def bind_write(write):
    """A :class:`Write`, bound: an INSERT that returns its key when it claims, ignores conflicts
    when told to."""
    if write.late is not None:
        write.late(write.values)
    return bind_insert(
        write.table, write.values, ignore_conflicts=bool(write.claim) or write.ignore, returning=bool(write.claim)
    )


def bind_query(sql, **params):
    """A read (``sql`` with ``:name`` parameters) bound: :func:`run_bound` returns its first row."""
    return _bound(_prepare_query(sql), params, True)


def bind_insert_ignore(table, **values):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING its key, bound, to be run later by :func:`run_bound`.

    With RETURNING, not rowcount, to tell an inserted row: with SQLAlchemy 2.1 and psycopg,
    rowcount came back -1 for this INSERT (every nonce looked replayed on PostgreSQL)."""
    return bind_insert(table, values, ignore_conflicts=True, returning=True)


def insert_ignore(table, **values):
    """INSERT ... ON CONFLICT DO NOTHING on either database; returns True when a row was inserted.

    Idempotency rests on this and a UNIQUE constraint, never on check-then-insert.
    """
    return run_bound(bind_insert_ignore(table, **values)) is not None


def bind_insert_ignore_many(table, rows):
    """Several rows of INSERT ... ON CONFLICT DO NOTHING in one executemany (no RETURNING: the
    caller does not need to know which were new). Rows share their columns."""
    return bind_insert(table, list(rows), ignore_conflicts=True)


def _bind(row, names, made, processed):
    """One row's values in the driver's form and order (a module function: no closure per call)."""
    values = [row.get(name) for name in names]
    for i, make in made:
        values[i] = make(None)
    for i, process in processed:
        values[i] = process(values[i])
    return values


_PROBES = (datetime(2026, 12, 2, 18, 30, 5, 123456), datetime(2026, 1, 2, 3, 4, 5), datetime(999, 9, 9, 9, 9, 9, 9))


def _faster(process):
    """``process``, or the same text made faster for a naive datetime where that is what it makes.

    SQLite's DATETIME processor formats with a %-dict per value, 4 us each, and a newInstance binds
    twelve (profiled: the largest item in binding). ``isoformat(" ", "microseconds")`` gives the same
    text for its default storage format, which the probes check, so a custom format or another
    dialect's processor is kept as it is; anything but a plain naive datetime (an aware one, whose
    offset isoformat would add, a date, a string, None) still goes to the type's processor."""
    try:
        same = all(process(probe) == probe.isoformat(" ", "microseconds") for probe in _PROBES)
    except Exception:  # noqa: BLE001  not a datetime type: its processor refused the probe
        same = False
    if not same:
        return process

    def process_datetime(value):
        if value.__class__ is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return process(value)

    return process_datetime


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
    current = transaction_connection.get()
    lean = isinstance(current, Lean)
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
            raise wrapped(bound.sql, error, dialect) from error
        if lean:
            raise
        result = db.session.execute(bound.statement, bound.params)
        return result.first() if bound.returning else None
    finally:
        cursor.close()


BATCH = 1000


def batches(items, size=BATCH):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upsert_rows(table, rows, keys, update):
    """INSERT ... ON CONFLICT (keys) DO UPDATE for many rows, in batches (executemany).

    The bulk path for Kit syncs: tens of thousands of rows, no ORM object per row. ``update``
    names the columns a repeat overwrites; the key columns and created times stay.
    """
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    table = getattr(table, "__table__", table)
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={name: statement.excluded[name] for name in update}
    )
    for batch in batches(rows):
        db.session.execute(statement, batch)
