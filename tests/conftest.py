"""Fixtures: an app on a temporary database, a client, and a marketplace that signs requests.

The database is a temporary SQLite file, or, when ISVAPP_SQLALCHEMY_DATABASE_URI names a
PostgreSQL server (scripts/with-postgres.sh sets it), a fresh schema on it for every test: the
fixture points ISVAPP_SQLALCHEMY_DATABASE_URI at that schema, so create_app() in a test and
gunicorn started by tests/live.py use it too. Tests marked ``sqlite_only`` are skipped there, and
so are those marked ``image`` (tests/test_image.py: minutes long, run once per test command).
"""

import os
import threading
import uuid
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from isvapp import create_app
from isvapp.extensions import db
from isvapp.koo.signing import g1_kit_signed_request, g1_signed_params, g2_signed_request, kit_signed_request
from isvapp.storage.schema import init_db
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.pool import NullPool

KEY = "a1b2c3d4-0000-1111-2222-333344445555"  # the reference's made-up key
KIT_KEY = "kit-0000-1111-2222-333344445555"

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

SERVER_URI = os.environ.get("ISVAPP_SQLALCHEMY_DATABASE_URI")
ON_POSTGRES = bool(SERVER_URI) and SERVER_URI.startswith("postgresql")


def pytest_collection_modifyitems(config, items):
    if ON_POSTGRES:
        skip = pytest.mark.skip(reason="reads or breaks the SQLite file directly")
        once = pytest.mark.skip(reason="the image test runs once per test command, in the SQLite run")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)
            if item.get_closest_marker("image"):
                item.add_marker(once)


@pytest.fixture(scope="session")
def server_engine():
    engine = create_engine(SERVER_URI, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def database_uri(request, monkeypatch):
    """None on SQLite (the instance folder's file); on PostgreSQL, a new schema's URI, dropped after."""
    if not ON_POSTGRES:
        monkeypatch.delenv("ISVAPP_SQLALCHEMY_DATABASE_URI", raising=False)
        yield None
        return
    engine = request.getfixturevalue("server_engine")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    uri = make_url(SERVER_URI).update_query_dict({"options": f"-csearch_path={schema}"})
    uri = uri.render_as_string(hide_password=False)
    monkeypatch.setenv("ISVAPP_SQLALCHEMY_DATABASE_URI", uri)
    yield uri
    with engine.connect() as conn:
        conn.execute(text("SET lock_timeout = '10s'"))
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def app_config():
    """Extra config for the `app` fixture: a test changes it with parametrize("app_config", [...])."""
    return {}


@pytest.fixture
def app(tmp_path, database_uri, app_config):
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test-secret",
            "KOO_ACCESS_KEY": KEY,
            "KOO_KIT_ACCESS_KEY": KIT_KEY,
            "SQLALCHEMY_DATABASE_URI": database_uri,
            **app_config,
        }
    )
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


class Marketplace:
    """Plays the marketplace against the test client: signs, sends, and closes each answer.

    Closing matters: the callback log row is written when the answer is closed, as gunicorn does
    after sending it.
    """

    def __init__(self, app, client):
        self.app, self.client = app, client

    def send(self, method, url, **kwargs):
        response = self.client.open(url, method=method, **kwargs)
        response.close()
        return response

    def g2(self, body, key=KEY, path="/produce", **sign):
        raw, query = g2_signed_request(key, body, **sign)
        return self.send("POST", path, query_string=query, data=raw, content_type="application/json")

    def g1(self, params, key=KEY, path="/produce", **sign):
        """A G1 GET: parameters signed, then URL-encoded on the wire the way Java's URLEncoder does."""
        signed = g1_signed_params(key, params, **sign)
        return self.send("GET", path + "?" + urlencode(signed))

    def kit(self, name, body, key=KIT_KEY, **sign):
        """A G2 Kit POST to /produce/produceAPI/v2/<name>, x-sign headers and all."""
        raw, headers = kit_signed_request(key, body, **sign)
        return self.send("POST", f"/produce/produceAPI/v2/{name}", data=raw, headers=headers)

    def kit_g1(self, name, body, key=KIT_KEY, formula="body-hmac"):
        raw, headers = g1_kit_signed_request(key, body, formula)
        return self.send("POST", f"/produce/produceAPI/{name}", data=raw, headers=headers)

    def count(self, model, *where):
        with self.app.app_context():
            return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()

    def rows(self, model, *where):
        with self.app.app_context():
            rows = db.session.execute(select(model).where(*where)).scalars().all()
            db.session.expunge_all()
            return rows


@pytest.fixture
def market(app, client):
    return Marketplace(app, client)


def parse_metrics(text):
    """A /metrics page read by prometheus-client's own parser: {(sample name, labels): value},
    the labels as a sorted tuple of pairs."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(samples, name, **labels):
    """One sample's value in parse_metrics' result, 0 when it is not there (nothing counted yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client):
    """GET /metrics through the test client (from this host, so without a token), parsed."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.data
    return parse_metrics(response.get_data(as_text=True))


def new_order(tag):
    """A G2 newInstance body for a new order (test data: testFlag 1), its ids made from ``tag``."""
    order = f"{tag}{uuid.uuid4().hex[:10]}"
    return {
        "activity": "newInstance",
        "orderId": order,
        "orderLineId": f"{order}-1",
        "businessId": uuid.uuid4().hex,
        "testFlag": "1",
    }


@contextmanager
def serving(wsgi_app):
    """A WSGI app (a robot, a stand-in for Sentry) served on loopback while the block runs: its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
