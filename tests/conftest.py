"""Fixtures: an app on a temporary SQLite file, a client, and a marketplace that signs requests."""
import pytest
from sqlalchemy import func, select

from isvapp import create_app
from isvapp.db import init_db
from isvapp.extensions import db
from isvapp.koo.signing import g2_signed_request

KEY = "a1b2c3d4-0000-1111-2222-333344445555"  # the reference's made-up key
KIT_KEY = "kit-0000-1111-2222-333344445555"


@pytest.fixture
def app(tmp_path):
    app = create_app({
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret",
        "KOO_ACCESS_KEY": KEY,
        "KOO_KIT_ACCESS_KEY": KIT_KEY,
    })
    with app.app_context():
        init_db()
    yield app


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
