"""The product API's routes (the package's docstring says what they answer): each reads the
request, asks the token (``g.api_token``) and calls the domain. The answer helpers here serve the
License relay's routes too (relay/views.py)."""

from flask import g, jsonify, request
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge

from .. import inbound
from ..background import usage
from ..domain import apitokens, entitlements
from ..koo import strictjson
from ..koo.times import iso_utc, naive_utc, read_time
from ..storage.models import TokenScope
from . import bp


def no_store_json(body, status=200):
    """A JSON answer no cache may keep: it is one product's or one installation's state, now."""
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def body_refused(error):
    """A body over the route's limit (413), that cannot be read to its end (400), or that is not a
    JSON object (400): the message names which (isvapp/inbound.py)."""
    if isinstance(error, HTTPException):
        return no_store_json({"error": "invalid_request", "message": error.description}, error.code or 400)
    return no_store_json({"error": "invalid_request", "message": f"the body {error}"}, 400)


BODY_REFUSALS = (RequestEntityTooLarge, ClientDisconnected, strictjson.Malformed)
for refusal in BODY_REFUSALS:
    bp.register_error_handler(refusal, body_refused)


@bp.before_request
def _bearer():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    g.api_token = apitokens.find(token.strip()) if scheme.lower() == "bearer" else None
    if g.api_token is None:
        response = no_store_json(
            {
                "error": "unauthorized",
                "message": "send Authorization: Bearer <token>, a token "
                "made on the merchant's pages (API tokens) and not revoked",
            },
            401,
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="isvapp"'
        return response
    scope = SCOPES.get(request.endpoint or "")
    if scope and not g.api_token.has_scope(scope):
        return no_store_json(
            {
                "error": "forbidden",
                "message": f'this token is not for {apitokens.SCOPE_WORDS[scope]} (scope "{scope}"); it is for '
                + ", ".join(apitokens.SCOPE_WORDS[s] for s in g.api_token.scope_list)
                + ". Make a token for it on the merchant's pages (API tokens)",
            },
            403,
        )
    return None


@bp.get("/entitlements/instances/<instance_id>")
def instance(instance_id):
    """An instance of the product (or key) the token is for; to it, any other does not exist."""
    token = g.api_token
    found = entitlements.of_instance(
        instance_id, allowed=lambda product, key: token.allows(TokenScope.ENTITLEMENTS, product, key)
    )
    if not found:
        return no_store_json({"error": "not_found", "message": f"no instance {instance_id}"}, 404)
    return no_store_json(found)


@bp.get("/entitlements/tenants/<tenant_id>")
def tenant(tenant_id):
    """Answered per product: ``?productId=`` names it (a tenant of one product needs none), or the
    token's own product does; a token for one product asks about no other."""
    token = g.api_token
    asked = request.args.get("productId") or None
    if token.product_id and asked and asked != token.product_id:
        return no_store_json(
            {"error": "forbidden", "message": f"this token is for product {token.product_id}, not {asked}"}, 403
        )
    try:
        found = entitlements.of_tenant(tenant_id, asked or token.product_id, key_fingerprint=token.key_fingerprint)
    except entitlements.Ambiguous as error:
        return no_store_json({"error": "invalid_request", "message": str(error)}, 400)
    if not found:
        return no_store_json({"error": "not_found", "message": f"no tenant {tenant_id}"}, 404)
    return no_store_json(found)


@bp.post("/usage")
def record_usage():
    """Pay-per-use usage from the merchant's product: recorded, then pushed by the worker within
    the marketplace's hour (isvapp/background/usage.py). The same meteringSn is recorded once."""
    body = inbound.json_object()
    times = {name: read_time(body.get(name))[0] for name in ("beginTime", "endTime")}
    unreadable = [name for name, moment in times.items() if moment is None]
    if unreadable:
        return no_store_json(
            {
                "error": "invalid_request",
                "message": f"{unreadable[0]} is missing or not a time (e.g. 2026-12-02T08:00:00Z, UTC)",
            },
            400,
        )
    sn = body.get("meteringSn")
    if sn is not None and (not isinstance(sn, str) or not 0 < len(sn) <= 64):
        return no_store_json({"error": "invalid_request", "message": "meteringSn is text of 1 to 64 characters"}, 400)
    try:
        sn = usage.add(
            str(body.get("instanceId") or ""),
            body.get("usageValue"),
            times["beginTime"],
            times["endTime"],
            sn,
            body.get("relatePkgInstance") or None,
            token=g.api_token,
        )
    except usage.Refused as error:
        return no_store_json({"error": error.error, "message": str(error)}, error.status)
    except ValueError as error:
        return no_store_json({"error": "invalid_request", "message": str(error)}, 400)
    return no_store_json({"meteringSn": sn, "dueAt": iso_utc(usage.due_at(naive_utc(times["endTime"])))}, 201)


# Each route's scope: what a token must be for to be answered here (the domain checks the product).
SCOPES = {
    "productapi.instance": TokenScope.ENTITLEMENTS,
    "productapi.tenant": TokenScope.ENTITLEMENTS,
    "productapi.record_usage": TokenScope.USAGE,
}
