"""The one marketplace blueprint, a module per generation (docs/protocol.md):

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

from . import g1, g2, kit, license
from .answers import register_error_answers  # noqa: F401  (used by create_app)

bp = Blueprint("produce", __name__)

ROUTES = [  # (path, endpoint, view, method)
    ("/produce", "g2", g2.produce, "POST"),
    ("/produce", "g1", g1.produce, "GET"),
    ("/license", "license_2", license.license_2, "POST"),
    ("/license", "license_g1", license.license_g1, "GET"),
]
for path, endpoint, view, method in ROUTES:
    bp.add_url_rule(path, endpoint, view, methods=[method])
    bp.add_url_rule(path + "/", endpoint + "_slash", view, methods=[method])
for base in ("/produce", "/license"):
    for slash in ("", "/"):
        bp.add_url_rule(
            base + "/produceAPI/v2/<name>" + slash,
            f"kit_g2{base}{slash}".replace("/", "_"),
            kit.sync_g2,
            methods=["POST"],
        )
        bp.add_url_rule(
            base + "/produceAPI/<name>" + slash, f"kit_g1{base}{slash}".replace("/", "_"), kit.sync_g1, methods=["POST"]
        )
