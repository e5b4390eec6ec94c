"""Statements built once and run on the write transaction's own connection: INSERT ... ON
CONFLICT DO NOTHING (idempotency rests on it and a UNIQUE constraint), statements bound before
the write lock (:class:`Bound`), and the bulk upserts of a Kit sync.
"""

from datetime import datetime
from typing import NamedTuple

from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from .transactions import Lean, transaction_connection, wrapped

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
        processors = {
            name: _faster(process)
            for name, bind in compiled.binds.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        defaults = {
            col.key: col.default.arg if col.default.is_callable else (lambda _, value=col.default.arg: value)
            for col in compiled.insert_prefetch
            if col.default is not None
        }
        names = compiled.positiontup or list(compiled.binds)
        # In the driver's order: the names, then which need a Python default or a type's processor.
        made = [(i, defaults[name]) for i, name in enumerate(names) if name not in columns and name in defaults]
        processed = [(i, processors[name]) for i, name in enumerate(names) if name in processors]
        entry = _prepared[key] = (compiled.string, names, made, processed, compiled.positiontup is not None)
    sql, names, made, processed, positional = entry
    return Bound(
        statement,
        params,
        sql,
        [_bind(row, names, made, processed, positional) for row in rows],
        isinstance(params, list),
        returning,
    )


def _bind(row, names, made, processed, positional):
    """One row's values in the driver's form and order (a module function: no closure per call)."""
    values = [row.get(name) for name in names]
    for i, make in made:
        values[i] = make(None)
    for i, process in processed:
        values[i] = process(values[i])
    return values if positional else dict(zip(names, values, strict=True))


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


def execute_prepared(statement, params, returning=False):
    """Run a Core INSERT on the session's own connection and transaction, compiled once."""
    return run_bound(bind_prepared(statement, params, returning))


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
