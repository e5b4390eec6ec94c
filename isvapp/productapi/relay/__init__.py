"""The License relay: the API the merchant's installed software calls (docs/license-relay.md).

    POST /relay/v1/activate   {"license": "PL..."}                        -> an installation token
    POST /relay/v1/verify     {"license": "PL...", "account"?, "ip"?}      Authorization: Bearer <token>
    POST /relay/v1/usage      {"license": "PL...", "id" | "active_num"}    Authorization: Bearer <token>

Software at a buyer's site can be taken apart, so it never carries the merchant's AK/SK: it
carries a license code and the installation token activation gave it, and isvapp makes the
signed marketplace calls. Answers are JSON; a refusal has ``error`` and a ``message`` naming it.
"""

from flask import Blueprint

bp = Blueprint("relay", __name__, url_prefix="/relay/v1")

from . import views  # noqa: E402, F401  the routes, decorated on bp: imported once bp exists
