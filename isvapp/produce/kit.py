"""Kit sync routes: ``<production URL>/produceAPI/v2/<name>`` (G2, x-sign) and ``.../produceAPI/<name>`` (G1).

The interface is named by the path, not the body; after verification both generations go
through the same pipeline and the same isvapp.domain.kit functions. G1 sends lists as JSON strings,
which the schemas accept as well. The routes answer under /produce and /license alike: the
marketplace appends the fixed sub-path to whichever URL the product registered.
"""

from functools import partial

from flask import request

from ..domain import callbacklog, kit
from ..koo import schemas
from ..koo.generations import Generation, ReplayScope
from ..koo.signing import replay_token, request_fingerprint, verify_g1_kit_request, verify_kit_request
from .pipeline import Activity, current_settings, g1_sent_ms, now_ms, parse_json_object, require_keys, serve, signed_by

G2_KIT = {
    "tenantSync": Activity(schemas.TenantSync, kit.tenant_sync),
    "applicationSync": Activity(schemas.ApplicationSync, kit.application_sync),
    "authSync": Activity(schemas.AuthSync, kit.auth_sync),
    "singleOrgSync": Activity(schemas.SingleOrgSync, kit.single_org_sync),
    "allOrgSync": Activity(schemas.AllOrgSync, kit.all_org_sync),
}
# G1 clientSecret: the reference documents RSA only for G2, so G1's is stored as sent (sealed).
G1_KIT = {
    **G2_KIT,
    "applicationSync": Activity(schemas.ApplicationSync, partial(kit.application_sync, encrypted_secret=False)),
}


def sync_g2(name):
    callbacklog.note(generation=Generation.G2)
    settings = current_settings()
    raw = request.get_data(cache=True)
    headers = request.headers
    sign, timestamp, nonce = headers.get("x-sign"), headers.get("x-timestamp"), headers.get("x-nonce")
    key, form = verify_kit_request(
        require_keys(settings.kit_access_keys, "KOO_KIT_ACCESS_KEY"),
        raw,
        sign,
        timestamp,
        nonce,
        now_ms(),
        settings.signature_window_s,
    )
    # verify_kit_request refused a missing header, as verify_g1_kit_request a missing authToken.
    signed = signed_by(
        key,
        int(timestamp),  # type: ignore[arg-type]
        scope=ReplayScope.KIT,
        token=replay_token(f"{ReplayScope.KIT}:{name}", nonce, timestamp),
        nonce=nonce,
        fingerprint=request_fingerprint(request.path, sign, timestamp, nonce, raw),
    )
    payload = parse_json_object(raw)
    if form != "raw":
        callbacklog.note(note=callbacklog.NOTES["x_sign_form"] % {"form": form})
    return serve(G2_KIT, {**payload, "activity": name}, signed)


def sync_g1(name):
    """G1 Kit: the authToken header's formula is undocumented; either candidate is accepted (§3.3)."""
    callbacklog.note(generation=Generation.G1)
    settings = current_settings()
    raw = request.get_data(cache=True)
    token = request.headers.get("authToken")
    key, formula = verify_g1_kit_request(
        require_keys(settings.kit_access_keys, "KOO_KIT_ACCESS_KEY"), raw, token, now_ms(), settings.g1_window_s
    )
    payload = parse_json_object(raw)
    token = token.strip().replace(" ", "+")  # type: ignore[union-attr]  # verified: present
    signed = signed_by(
        key,
        g1_sent_ms(payload.get("timeStamp")),
        scope=ReplayScope.G1_KIT,
        token=replay_token(f"{ReplayScope.G1_KIT}:{name}", token),
        nonce=token[:128],
        fingerprint=request_fingerprint(request.path, token, raw),
    )
    callbacklog.note(note=callbacklog.NOTES["g1_formula"] % {"formula": formula})
    return serve(G1_KIT, {**payload, "activity": name}, signed)
