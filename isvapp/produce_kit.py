"""Kit sync routes: ``POST /produce/produceAPI/v2/<name>`` (G2, x-sign) and ``.../produceAPI/<name>`` (G1).

The interface is named by the path, not the body; after verification both generations go
through the same serve() pipeline and the same isvapp.kit functions. G1 sends lists as JSON
strings, which the schemas accept as well.
"""
from functools import partial

from flask import request

from . import callbacklog, kit
from .koo import schemas
from .koo.signing import verify_g1_kit_request, verify_kit_request
from .produce import (Activity, bp, now_ms, parse_json_object, require_json_body, require_key, serve,
                      settings)

G2_KIT = {
    "tenantSync": Activity(schemas.TenantSync, kit.tenant_sync),
    "applicationSync": Activity(schemas.ApplicationSync, kit.application_sync),
    "authSync": Activity(schemas.AuthSync, kit.auth_sync),
    "singleOrgSync": Activity(schemas.SingleOrgSync, kit.single_org_sync),
    "allOrgSync": Activity(schemas.AllOrgSync, kit.all_org_sync),
}
# G1 clientSecret: the reference documents RSA only for G2, so G1's is stored as sent (sealed).
G1_KIT = {**G2_KIT, "applicationSync": Activity(schemas.ApplicationSync,
                                                partial(kit.application_sync, encrypted_secret=False))}


@bp.post("/produce/produceAPI/v2/<name>")
def kit_g2(name):
    callbacklog.note(generation="G2")
    cfg = settings()
    raw = request.get_data(cache=True)
    nonce = request.headers.get("x-nonce")
    verify_kit_request(require_key(cfg.kit_access_key, "KOO_KIT_ACCESS_KEY"), raw,
                       request.headers.get("x-sign"), request.headers.get("x-timestamp"), nonce,
                       now_ms(), cfg.signature_window_s)
    payload = parse_json_object(require_json_body())
    return serve(G2_KIT, {**payload, "activity": name}, "kit", nonce)


@bp.post("/produce/produceAPI/<name>")
def kit_g1(name):
    """G1 Kit: the authToken header's formula is undocumented; either candidate is accepted (§3.3)."""
    callbacklog.note(generation="G1")
    cfg = settings()
    raw = require_json_body()
    payload = parse_json_object(raw)
    formula = verify_g1_kit_request(require_key(cfg.kit_access_key, "KOO_KIT_ACCESS_KEY"), raw, payload,
                                    request.headers.get("authToken"))
    callbacklog.note(note=f"authToken formula: {formula}")
    return serve(G1_KIT, {**payload, "activity": name})
