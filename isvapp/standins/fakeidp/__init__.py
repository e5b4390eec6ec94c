"""A fake tenant identity provider (Huawei OneAccess-style) for the joint-operation (联营) buyer login.

A 联营 buyer logs in to the SaaS product through the tenant's IdP: authorize (a login page that
redirects back with a code), token (code or refresh token for an access token), userinfo, logout.
The real IdP is only reachable with a tenant's test account, so this plays it on loopback for
development and tests, the way ``fakemarket`` plays the marketplace:

    .venv/bin/isvapp fake-idp --port 8901 [--password fake-password]
    # then point the tenant's domainName (the IdP host) at http://127.0.0.1:8901

The command registers every KitApp with a client id (its unsealed secret, one redirect URI:
``LOGIN_REDIRECT_URI`` or http://127.0.0.1:8000/login/callback) and every active KitUser (all
with the one password). Paths, parameters, answers and error bodies follow
docs/research/issue-24-login-pages.md; PKCE (S256) is accepted although the pages never mention
it. ``FAKE_IDP_TOKEN_FAIL_NEXT`` / ``FAKE_IDP_TOKEN_GARBAGE`` / ``FAKE_IDP_DELAY_S`` /
``FAKE_IDP_USERINFO_TENANT`` in its config let tests make it fail, answer nonsense, be slow or
name another tenant. It is not an IdP: it never runs in production.

A small app from three parts: directory (who it knows and its rules, pure), state (the codes,
tokens and sessions it hands out) and views (the routes, thin).
"""

import click
from flask import Blueprint, Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from ...extensions import db
from ...storage import vault
from ...storage.models import KitApp, KitState, KitUser
from ..serving import serve_forever
from .directory import Directory
from .state import IdpState

bp = Blueprint("fake_idp", __name__)
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/login/callback"


def create_fake_idp(clients, users, password="fake-password", **config):
    """A Flask app playing the tenant's IdP for ``clients`` and ``users`` (directory.Directory says
    what they hold); ``config`` sets any of its FAKE_IDP_* settings."""
    app = Flask(__name__)
    app.config.update(
        FAKE_IDP_CODE_TTL_S=60,
        FAKE_IDP_TOKEN_TTL_S=7200,
        FAKE_IDP_REFRESH_TTL_S=30 * 86400,
        FAKE_IDP_TOKEN_FAIL_NEXT=None,
        FAKE_IDP_TOKEN_GARBAGE=False,
        FAKE_IDP_DELAY_S=0,
        FAKE_IDP_USERINFO_TENANT=None,
        **config,
    )
    app.extensions["fake_idp_directory"] = Directory(clients, users, password)
    app.extensions["fake_idp"] = IdpState()
    app.register_blueprint(bp)
    return app


def clients_and_users():
    """What ``isvapp fake-idp`` registers, read from the database (in an app context).

    Clients: every KitApp with a client id and a sealed secret (later rows win on a shared client
    id). Users: every ACTIVE KitUser (later rows win on a shared userName).
    """
    settings = current_app.extensions["isvapp"]
    redirect_uris = [settings.login.redirect_uri or DEFAULT_REDIRECT_URI]
    clients = {}
    for row in db.session.execute(select(KitApp).where(KitApp.client_id.is_not(None)).order_by(KitApp.id)).scalars():
        if row.client_id and row.client_secret_sealed:
            clients[row.client_id] = {
                "secret": vault.unseal(settings.secret_key, row.client_secret_sealed),
                "redirect_uris": list(redirect_uris),
            }
    users = {}
    for user in db.session.execute(
        select(KitUser).where(KitUser.state == KitState.ACTIVE).order_by(KitUser.id)
    ).scalars():
        users[user.user_name] = {
            "name": user.name,
            "tenant": user.tenant_id,
            "organizationCode": user.org_code,
            "role": user.role or "user",
        }
    return clients, users


@click.command("fake-idp")
@click.option("--port", default=8901, show_default=True)
@click.option("--password", default="fake-password", show_default=True, help="every user's password")
@with_appcontext
def fake_idp_command(port, password):
    """Serve a fake tenant IdP on 127.0.0.1 (authorize, token, userinfo, logout) for development."""
    clients, users = clients_and_users()
    idp = create_fake_idp(clients, users, password=password)
    click.echo(
        f"fake IdP on http://127.0.0.1:{port}: {len(clients)} client(s), {len(users)} user(s), "
        f"redirect URI {next(iter(clients.values()))['redirect_uris'][0] if clients else '-'} (Ctrl-C stops)"
    )
    serve_forever(idp, port)


from . import views  # noqa: E402, F401  the routes, decorated on bp: imported once bp exists
