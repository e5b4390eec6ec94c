"""The one marketplace blueprint, a module per generation (docs/protocol.md):

    views.py    the routes: each path and method to the view of its generation
    g2.py       POST /produce                      G2 SaaS (signature/timestamp/nonce)
    g1.py       GET  /produce                      G1 SaaS (authToken)
    license.py  GET and POST /license              License-G1, License-2.0
    kit.py      <either URL>/produceAPI[/v2]/<n>   Kit sync (x-sign, or an authToken header)
    pipeline.py what every route shares once verified: replay store, schema, one transaction
    answers.py  the envelope's bytes, Body-Sign, and the one place errors become envelopes

Every path also answers with a trailing slash: the Seller Console keeps what the merchant typed.
Bodies are limited in isvapp/inbound.py: KOO_MAX_BODY_BYTES, and KOO_KIT_MAX_BODY_BYTES for Kit.
"""

from flask import Blueprint

from .answers import register_error_answers  # noqa: F401  (used by create_app)

bp = Blueprint("produce", __name__)

from . import views  # noqa: E402, F401  the routes, on bp: imported once bp exists
