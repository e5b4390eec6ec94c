"""Fixtures: an app on a temporary database, a client, and a marketplace that signs requests.

The database is a temporary SQLite file, or, when ISVAPP_SQLALCHEMY_DATABASE_URI names a
PostgreSQL server (scripts/with-postgres.sh sets it), a fresh database on it for every test: the
fixture points ISVAPP_SQLALCHEMY_DATABASE_URI at that database, so create_app() in a test and
gunicorn started by tests/live.py use it too (the server's user must be allowed to create
databases, as with-postgres.sh's is). Tests marked ``sqlite_only`` are skipped there, and those
marked ``any_database`` (they test nothing that depends on the database) are left out: they ran
in the SQLite run. So are those marked ``image`` (tests/test_image.py: minutes long, run
once per test command).

Migrations run once per session, into a template: each test's database is a copy of it (a copied
SQLite file; on PostgreSQL, CREATE DATABASE ... TEMPLATE, made ahead in a thread). A copy takes a
third (SQLite) to a half (PostgreSQL) of the migrations' time, and the schema a test runs on is
still the one the migrations made.

A test that starts a server, a process or a browser is marked ``live`` (tests/tiers.py); the
others run under a guard that fails them if they listen on a socket or start a process.
"""

import os
import sqlite3
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from isvapp import create_app
from isvapp.config import DB_FILENAME
from isvapp.dashboard import security
from isvapp.extensions import db
from isvapp.standins.serving import Running
from isvapp.storage.schema import init_db
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from .helpers import KEY, KIT_KEY, ON_POSTGRES, PASSWORD, SERVER_URI, Mailbox, Marketplace, Robots, log_in
from .live import free_port
from .tiers import live_fixture, mark_live, pytest_runtest_call, pytest_runtest_setup  # noqa: F401  the guard (hook wrappers)

# Property-based tests are reproducible by default: derandomised (the same examples every run, on
# any machine, whatever ran before) and with no example database carried between runs. The
# "random" profile explores on purpose, with more examples and a fresh seed each time:
#   ISVAPP_HYPOTHESIS_PROFILE=random ./scripts/test.sh tests/test_fuzz.py
_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
hypothesis_settings.register_profile(
    "reproducible",
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
hypothesis_settings.register_profile(
    "random",
    max_examples=1000,
    derandomize=False,
    database=None,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
hypothesis_settings.load_profile(os.environ.get("ISVAPP_HYPOTHESIS_PROFILE", "reproducible"))


@pytest.hookimpl(tryfirst=True)  # before -m deselects by mark
def pytest_collection_modifyitems(config, items):
    mark_live(items)
    beside = os.environ.get("ISVAPP_TEST_POSTGRES_BESIDE") == "1"
    if not ON_POSTGRES and beside:
        # scripts/test.sh runs the PostgreSQL run beside this one: what is marked once_beside runs there.
        there = [item for item in items if item.get_closest_marker("once_beside")]
        if there:
            config.hook.pytest_deselected(items=there)
            items[:] = [item for item in items if not item.get_closest_marker("once_beside")]
    if ON_POSTGRES:
        skip = pytest.mark.skip(reason="reads or breaks the SQLite file directly")
        once = pytest.mark.skip(reason="the image test runs once per test command, in the SQLite run")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)
            if item.get_closest_marker("image"):
                item.add_marker(once)
        # What tests nothing that depends on the database has run in the SQLite run, unless it is
        # also once_beside and the runs are side by side: then it runs here (the shorter run) only.
        elsewhere = [
            item
            for item in items
            if item.get_closest_marker("any_database") and not (beside and item.get_closest_marker("once_beside"))
        ]
        if elsewhere:
            config.hook.pytest_deselected(items=elsewhere)
            items[:] = [item for item in items if item not in elsewhere]


@pytest.fixture(scope="session")
def server_engine():
    engine = create_engine(SERVER_URI, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def migrate(instance_path, database_uri):
    """Run init_db, as the `app` fixture's app would, on ``database_uri`` (None: the instance
    folder's SQLite file)."""
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance_path),
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": database_uri,
        }
    )
    with app.app_context():
        init_db()
        db.engine.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """The bytes of an SQLite database file init_db migrated to the newest revision."""
    folder = tmp_path_factory.mktemp("migrated")
    migrate(folder, None)
    path = folder / DB_FILENAME
    with closing(sqlite3.connect(path)) as conn:  # everything in the file itself, none in a -wal
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not os.path.exists(f"{path}-wal") or os.path.getsize(f"{path}-wal") == 0
    return path.read_bytes()


class PostgresCopies:
    """Copies of the migrated template database, made and dropped in a thread of their own: the
    copy the next test will take is made while this one runs, so no test waits for its CREATE
    DATABASE. Each test still gets a copy no other test touched."""

    AHEAD = 2

    def __init__(self, engine, template):
        self.engine, self.template = engine, template
        self.thread = ThreadPoolExecutor(self.AHEAD, thread_name_prefix="postgres-copies")
        self.ahead = deque(self.thread.submit(self._create) for _ in range(self.AHEAD))

    def _create(self):
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        return name

    def _drop(self, name):
        with self.engine.connect() as conn:  # FORCE: a connection a test left open cannot hold it up
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))

    def take(self):
        """A fresh copy's name; the one made ahead, unless making it failed (a test restarted the
        server meanwhile): then one made now."""
        made = self.ahead.popleft()
        self.ahead.append(self.thread.submit(self._create))
        try:
            return made.result()
        except SQLAlchemyError:
            return self._create()

    def give_back(self, name):
        self.thread.submit(self._drop, name)

    @contextmanager
    def copy(self):
        """A fresh copy's URI, given back (dropped) after."""
        name = self.take()
        try:
            yield make_url(SERVER_URI).set(database=name).render_as_string(hide_password=False)
        finally:
            self.give_back(name)

    def close(self):
        for made in self.ahead:
            try:
                self._drop(made.result())
            except SQLAlchemyError:
                pass
        self.thread.shutdown(wait=True)


@pytest.fixture(scope="session")
def postgres_copies(server_engine, tmp_path_factory):
    """Copies of a database init_db migrated to the newest revision, on the PostgreSQL server."""
    template = f"t_template_{uuid.uuid4().hex[:12]}"
    with server_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{template}"'))
    migrate(
        tmp_path_factory.mktemp("migrated"),
        make_url(SERVER_URI).set(database=template).render_as_string(hide_password=False),
    )
    copies = PostgresCopies(server_engine, template)
    yield copies
    copies.close()
    with server_engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{template}" WITH (FORCE)'))


@pytest.fixture(scope="module", autouse=True)
def module_database_uri(request):
    """On PostgreSQL, the database of a module's own servers (a module-scoped fixture starts them
    before any test's database_uri below): a copy of the migrated template for this module alone,
    so that what one module's servers stored is never seen by the next (on SQLite each server has
    its own instance folder)."""
    if not ON_POSTGRES:
        yield None
        return
    with request.getfixturevalue("postgres_copies").copy() as uri, pytest.MonkeyPatch.context() as patch:
        patch.setenv("ISVAPP_SQLALCHEMY_DATABASE_URI", uri)
        yield uri


@pytest.fixture(autouse=True)
def database_uri(request, monkeypatch):
    """None on SQLite (the instance folder's file); on PostgreSQL, a new database's URI, a copy of
    the migrated template, dropped after."""
    if not ON_POSTGRES:
        monkeypatch.delenv("ISVAPP_SQLALCHEMY_DATABASE_URI", raising=False)
        yield None
        return
    with request.getfixturevalue("postgres_copies").copy() as uri:
        monkeypatch.setenv("ISVAPP_SQLALCHEMY_DATABASE_URI", uri)
        yield uri


# What the test machine's own state must not decide: its disk may be nearly full (a shared CI
# host), which would raise disk_low in tests about something else. The tests of the disk check
# set a limit of their own.
MACHINE_INDEPENDENT = {"ALERT_DISK_FREE_PCT": 0}


@pytest.fixture
def app_config():
    """Extra config for the `app` fixture: a test changes it with parametrize("app_config", [...])."""
    return {}


@pytest.fixture
def app(request, tmp_path, database_uri, app_config):
    """The app on this test's database, migrated: on PostgreSQL database_uri's copy of the template;
    on SQLite a copy of the migrated file, made private as the app makes its own."""
    instance = tmp_path / "instance"
    own_database = app_config.get("SQLALCHEMY_DATABASE_URI")  # none today: migrated in place
    if database_uri is None and not own_database:
        instance.mkdir(exist_ok=True)
        with open(os.open(instance / DB_FILENAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as copy:
            copy.write(request.getfixturevalue("migrated_sqlite"))
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "SECRET_KEY": "test-secret",
            "KOO_ACCESS_KEY": KEY,
            "KOO_KIT_ACCESS_KEY": KIT_KEY,
            "SQLALCHEMY_DATABASE_URI": database_uri,
            **MACHINE_INDEPENDENT,
            **app_config,
        }
    )
    if own_database:
        with app.app_context():
            init_db()
    yield app
    with app.app_context():
        db.engine.dispose()  # each test's pool would otherwise keep its connections open


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def market(app, client):
    return Marketplace(app, client)


# --- fixtures several modules use --------------------------------------------------------------------


@pytest.fixture
def public_key(runner, app):
    result = runner.invoke(args=["kit-keygen"])
    assert result.exit_code == 0
    return serialization.load_pem_public_key(result.stdout.encode())


@pytest.fixture
def admin(app):
    with app.app_context():
        security.set_password("boss", PASSWORD)
    return "boss"


@pytest.fixture
def browser(client, admin):
    assert log_in(client).status_code == 302
    return client


@pytest.fixture
def admin_client(app, client):
    with app.app_context():
        security.set_password("boss", PASSWORD)
    assert log_in(client).status_code == 302
    return client


@live_fixture
def robots():
    robots = Robots()
    with Running(robots) as running:
        robots.base = running.url
        yield robots


@live_fixture
def mailbox():
    from aiosmtpd.controller import Controller  # only the tests that send mail need aiosmtpd

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()
