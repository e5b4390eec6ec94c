"""A real gunicorn on loopback, for concurrency and failure tests: started, waited for, stopped.
A test that uses it is marked live (tests/tiers.py)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from isvapp.koo.signing import g2_signed_request
from sqlalchemy import create_engine
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

    def start(self, timeout=90):  # generous: a loaded 2-core machine starts slowly
        if not self.initialised:
            self.flask("init-db")
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
