"""The buyer's login for joint-operation (联营) products: from the login URL the merchant
registers, through the tenant's identity provider, to the merchant's product (docs/handoff.md).

    GET      /login/<tenant>          leave for the tenant's IdP (its tenantCode, or its tenantId)
    GET      /login?tenant=<tenant>   the same; /login alone asks for the enterprise's code
    GET      /login/callback          back from the IdP: tokens, user info, who may come in, hand-off
    GET      /login/refresh           a new hand-off from the kept refresh token, without the IdP's form
    GET|POST /logout                  end isvapp's short session, then the IdP's logout
    GET      /.well-known/jwks.json   the key set that verifies the hand-off assertions

A route of its own, beside the marketplace's blueprint and the merchant's pages: it calls the
domain (logins, handoff) and the IdP client (market.idp), and nothing calls it.
"""

from flask import Blueprint

bp = Blueprint("login", __name__, template_folder="templates", static_folder="static", static_url_path="/login/static")

from . import views  # noqa: E402, F401  the routes, decorated on bp: imported once bp exists
