"""The API the merchant's own product calls: what a tenant or an instance is entitled to now.

    GET /api/v1/entitlements/instances/<instanceId>   Authorization: Bearer <token>
    GET /api/v1/entitlements/tenants/<tenantId>

A product checks a subscription whenever it likes (not only at login), in any language. The
tokens are made and revoked on the merchant's pages (API tokens); the answers are read-only
JSON. A route of its own: it calls the domain (entitlements) and nothing calls it.
"""
from flask import Blueprint, jsonify, request

from ..domain import entitlements

bp = Blueprint("productapi", __name__, url_prefix="/api/v1")


def _answer(body, status=200):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.before_request
def _bearer():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not entitlements.token_allowed(token.strip()):
        response = _answer({"error": "unauthorized", "message": "send Authorization: Bearer <token>, a token "
                            "made on the merchant's pages (API tokens) and not revoked"}, 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="isvapp"'
        return response
    return None


@bp.get("/entitlements/instances/<instance_id>")
def instance(instance_id):
    found = entitlements.of_instance(instance_id)
    return _answer(found) if found else _answer({"error": "not_found", "message": f"no instance {instance_id}"}, 404)


@bp.get("/entitlements/tenants/<tenant_id>")
def tenant(tenant_id):
    found = entitlements.of_tenant(tenant_id)
    return _answer(found) if found else _answer({"error": "not_found", "message": f"no tenant {tenant_id}"}, 404)
