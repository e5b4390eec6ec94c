"""A real gunicorn on loopback, for concurrency and failure tests: started, waited for, stopped.
A test that uses it is marked live (tests/tiers.py)."""

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from alembic.script import ScriptDirectory
from isvapp.koo.signing import g2_signed_request
from isvapp.storage.schema import MIGRATIONS
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from .helpers import KEY

ROOT = Path(__file__).resolve().parent.parent
LIVE_SECRET_KEY = "live-test-secret-0123456789abcdefghijklmnop"  # wsgi.py refuses short ones
LIVE_ENV = {"ISVAPP_KOO_ACCESS_KEY": KEY}
WAIT_S = 60  # bounded waits for the worker (a loaded 2-core machine)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@functools.cache
def head_revision():
    return ScriptDirectory(MIGRATIONS).get_current_head()


def revision_of(uri):
    """The database's schema revision (alembic_version), or None where it has none or is unreachable."""
    engine = create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


_template_lock = threading.Lock()


@functools.cache
def migrated_sqlite_template():
    """A SQLite database made by one real ``flask init-db`` in this process (bench's or pytest's),
    for every live server on a new SQLite file to start from a copy of (see LiveServer.initialise).
    Checkpointed, so the copy is the whole database."""
    with _template_lock:
        folder = Path(tempfile.mkdtemp(prefix="isvapp-live-template-"))
        atexit.register(shutil.rmtree, folder, True)
        maker = LiveServer(folder)
        maker.env.pop("ISVAPP_SQLALCHEMY_DATABASE_URI", None)  # the PostgreSQL run's: not this one's
        maker.flask("init-db")
        path = folder / "isvapp.sqlite"
        with create_engine(f"sqlite:///{path}", poolclass=NullPool).connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert revision_of(f"sqlite:///{path}") == head_revision()
        return path


def post_g2(session, url, body, timeout=10):
    raw, query = g2_signed_request(KEY, body)
    return session.post(
        url + "/produce", params=query, data=raw, timeout=timeout, headers={"Content-Type": "application/json"}
    )


def wait_for(condition, what):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {WAIT_S} s")


def stop_process(proc):
    """SIGTERM, then SIGKILL if it has not exited within 15 s; a process already gone is left alone."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class LiveServer:
    """gunicorn serving wsgi:app from an instance folder, configured only through ISVAPP_* env."""

    def __init__(self, instance_path, workers=2, env=None, app="wsgi:app"):
        self.instance_path = Path(instance_path)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ISVAPP_SECRET_KEY": LIVE_SECRET_KEY,
            "ISVAPP_INSTANCE_PATH": str(instance_path),
            "PYTHONPATH": str(ROOT),
            "ISVAPP_BIND": f"127.0.0.1:{self.port}",
            "ISVAPP_WORKERS": str(workers),
            "ISVAPP_ACCESS_LOG": "/dev/null",
            "ISVAPP_ALERT_DISK_FREE_PCT": "0",  # the test machine's disk decides nothing (conftest.py)
            **(env or {}),
        }
        self.proc, self.app = None, app
        self.initialised = False  # init-db has run for this server (start runs it, unless a test did)

    @property
    def database_uri(self):
        """The database the server uses: the environment's (PostgreSQL runs), else its SQLite file."""
        return self.env.get("ISVAPP_SQLALCHEMY_DATABASE_URI") or "sqlite:///" + str(
            self.instance_path / "isvapp.sqlite"
        )

    def engine(self):
        """An engine on the server's database, for checking what it stored (dispose it after)."""
        return create_engine(self.database_uri, poolclass=NullPool)

    def flask(self, *args):
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "isvapp", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.initialised = self.initialised or args[:1] == ("init-db",)
        return result

    def flask_popen(self, *args):
        """A long-running ``flask`` command (a worker) with this server's settings; stop it after."""
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "isvapp", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def initialise(self):
        """Leave the database as ``flask init-db`` would, without its two seconds (a process, the
        app's imports, 25 migrations; about 100 of the suite's servers start) where the outcome is
        known: a new SQLite file is a copy of one made by a real init-db, and a database already at
        the newest revision is left as it is. Anything else (an older database, a schema of its
        own) gets the real command. init-db itself is tested by the tests that run it by name
        (test_migrations, the run script's, the image's and the deployment's)."""
        uri = self.database_uri
        self.instance_path.mkdir(parents=True, exist_ok=True)  # as create_app does
        path = Path(make_url(uri).database or "") if uri.startswith("sqlite:") else None
        if path and path.is_absolute() and not path.exists() and not Path(f"{path}-wal").exists():
            shutil.copy(migrated_sqlite_template(), path)  # mode too: 0600, as the app makes it
            self.initialised = True
        elif (path and not path.exists()) or revision_of(uri) != head_revision():
            self.flask("init-db")
        else:
            self.initialised = True

    def start(self, timeout=90):  # generous: a loaded 2-core machine starts slowly
        if not self.initialised:
            self.initialise()
        self.log = open(self.instance_path / "gunicorn.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), self.app],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {(self.instance_path / 'gunicorn.log').read_text()}")
            try:
                if (
                    requests.get(
                        self.url + ("/healthz" if self.app == "wsgi:app" else "/produce"), timeout=1
                    ).status_code
                    == 200
                ):
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not become healthy in time")

    def stop(self):
        if self.proc:
            stop_process(self.proc)
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
