"""The database: SQLite settings for several gunicorn workers, write transactions, init-db.

SQLite is shared by processes, so: WAL (readers never block the writer), every write transaction
begun IMMEDIATE (a deferred one that upgrades to a write fails at once under contention instead of
waiting), a busy timeout well inside the marketplace's 5 s budget, and synchronous=FULL so an
acknowledged order survives power loss. PostgreSQL needs none of this and gets none of it.
"""
from contextlib import contextmanager

import click
from flask.cli import with_appcontext
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db

_IMMEDIATE = "isvapp_immediate"


def _install_sqlite_settings(engine, busy_timeout_s):
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event, not the driver, decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get(_IMMEDIATE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite():
    return db.engine.dialect.name == "sqlite"


@contextmanager
def write_transaction():
    """One short write transaction on the request's session: commit on success, roll back on error.

    On SQLite it begins IMMEDIATE, taking the write lock up front (waiting at most the busy
    timeout); anything read inside is therefore current. It must start a fresh transaction:
    reads done earlier on the same session would have begun a deferred one.
    """
    session = db.session()
    if session.in_transaction():
        raise RuntimeError("write_transaction() must start its own transaction")
    session.connection(execution_options={_IMMEDIATE: True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def insert_ignore(table, **values):
    """INSERT ... ON CONFLICT DO NOTHING on either database; returns True when a row was inserted.

    Idempotency rests on this and a UNIQUE constraint, never on check-then-insert.
    """
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    table = getattr(table, "__table__", table)
    result = db.session.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())
    return result.rowcount == 1


def init_db():
    """Create what is missing; never drops or alters existing data."""
    from . import models  # noqa: F401  (registers the tables)

    db.create_all()


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database schema (safe to run again)."""
    init_db()
    click.echo(f"Initialised the database at {db.engine.url.render_as_string(hide_password=True)}.")


def init_app(app):
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _install_sqlite_settings(db.engine, float(app.config["SQLITE_BUSY_TIMEOUT_S"]))
    app.cli.add_command(init_db_command)
