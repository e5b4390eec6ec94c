"""A fake marketplace open API for development and tests: order query, usage push, and the
License-code APIs (activation, query v1/v2, usage statistics, license upload).

    .venv/bin/isvapp fake-market --port 8900
    # then, in isvapp's config: KOO_API_BASE_URL = "http://127.0.0.1:8900"

It verifies the AK/SK signature of every call and the usage-push signature, answers the
documented MOCK* order ids (and any other order id with a plausible monthly order), and keeps
what was pushed. ``FAKE_MARKET_FAIL_NEXT`` / ``FAKE_MARKET_DELAY_S`` in its config let tests make
it fail or be slow; ``FAKE_MARKET_ANSWER_NEXT`` (a list of (status, raw body)) makes it answer
anything at all; a usage push of more than ``FAKE_USAGE_MAX_RECORDS`` (100) records is refused
with MKT.9003, as the order query's error page says. License codes it knows are
``FAKE_LICENSES`` ({code: {"status", "expireTime"}}). It is not the marketplace: it never runs in
production.

A small app from three parts: orders (what the order query answers, pure), state (what it keeps
between calls) and views (the routes, thin: they check a call and hand it to the state).
"""

import click
from flask import Blueprint, Flask, current_app
from flask.cli import with_appcontext

from ..serving import serve_forever
from .state import MarketState

bp = Blueprint("fake_market", __name__)
FAKE_LICENSES = {
    "PLXXXXXX": {"status": "NORMAL", "expireTime": "20991231235959"},
    "PLEXPIRED": {"status": "EXPIRED", "expireTime": "20200101000000"},
}


def create_fake_market(ak, sk, usage_key, **config):
    """The fake marketplace for the AK/SK ``ak``/``sk`` and the usage-push key ``usage_key``;
    ``config`` sets any of its FAKE_* settings."""
    app = Flask(__name__)
    app.config.update(
        FAKE_AK=ak,
        FAKE_SK=sk,
        FAKE_USAGE_KEY=usage_key,
        FAKE_MARKET_FAIL_NEXT=0,
        FAKE_MARKET_DELAY_S=0,
        FAKE_MARKET_ANSWER_NEXT=[],
        # The order query's error page: MKT.9003 "计量记录数超出限制(100条)" (the push page says 1,000).
        FAKE_USAGE_MAX_RECORDS=100,
        FAKE_UPLOAD_FIELD="file",
        FAKE_LICENSE_QUERY_V2_FIELD="licenses",
        **config,
    )
    app.config.setdefault("FAKE_LICENSES", {code: dict(v) for code, v in FAKE_LICENSES.items()})
    app.extensions["fake_market"] = MarketState()
    app.register_blueprint(bp)
    return app


@click.command("fake-market")
@click.option("--port", default=8900, show_default=True)
@with_appcontext
def fake_market_command(port):
    """Serve a fake marketplace open API on 127.0.0.1 (order query, usage push) for development."""
    settings = current_app.extensions["isvapp"]
    if not (settings.api_ak and settings.api_sk):
        raise click.ClickException("set KOO_AK and KOO_SK (any values) so calls can be signed and checked")
    market = create_fake_market(settings.api_ak, settings.api_sk, settings.usage_key or "")
    click.echo(f"fake marketplace on http://127.0.0.1:{port}; set KOO_API_BASE_URL to it (Ctrl-C stops)")
    serve_forever(market, port)


from . import views  # noqa: E402, F401  the routes, decorated on bp: imported once bp exists
