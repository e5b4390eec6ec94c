"""The API the merchant's own product calls: what a tenant or an instance is entitled to now.

    GET /api/v1/entitlements/instances/<instanceId>   Authorization: Bearer <token>
    GET /api/v1/entitlements/tenants/<tenantId>
    POST /api/v1/usage                                pay-per-use usage, pushed to the marketplace

A product checks a subscription whenever it likes (not only at login), in any language. The
tokens are made and revoked on the merchant's pages (API tokens), each for its scopes (reading
entitlements, recording usage) and its product or key (domain/apitokens.py): the token is on
``g.api_token``, and a route asks it (``g.api_token.allows(scope, product_id, key)``) before it
answers. A route of its own: it calls the domain (entitlements) and nothing calls it.

The package also holds the License relay (relay/), what the merchant's installed software calls,
with its own tokens: a blueprint of its own, in the same shape (bp in relay/__init__.py, its routes
in relay/views.py).
"""

from flask import Blueprint

bp = Blueprint("productapi", __name__, url_prefix="/api/v1")

from . import views  # noqa: E402, F401  the routes, decorated on bp: imported once bp exists
