"""The one marketplace blueprint: verify -> validate -> lifecycle -> envelope.

Every generation's request goes the same way; they differ only in how the request is verified
and read. Each activity maps, in one table per generation, to a schema and a small adapter that
calls one lifecycle function. Errors become an envelope in exactly one place (:func:`error_answer`),
which the app also uses for routing errors (404/405/413) and unexpected exceptions.
"""
import json
import logging
import time
from typing import Callable, NamedTuple

from flask import Blueprint, Response, current_app, request
from marshmallow import Schema, ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import callbacklog, lifecycle
from .db import write_transaction
from .koo import codes, schemas
from .koo.codes import KooError
from .koo.envelope import envelope
from .koo.signing import body_sign, verify_g2_request
from .models import DetailsState

log = logging.getLogger("isvapp.produce")

bp = Blueprint("produce", __name__)


class Activity(NamedTuple):
    schema: type[Schema]
    handler: Callable  # (settings, data) -> answer bytes


def settings():
    return current_app.extensions["isvapp"]


def now_ms():
    return int(time.time() * 1000)


# --- answers ---------------------------------------------------------------------------------

KIT_PREFIX = "/produce/produceAPI/"


def answer(body):
    """HTTP 200 with the envelope's exact bytes and a Body-Sign over them (harmless for G2).

    Kit interfaces are signed with the Kit key, everything else with the basic key (§3.6).
    """
    response = Response(body, 200, content_type="application/json;charset=UTF-8")
    cfg = settings()
    key = cfg.kit_access_key if request.path.startswith(KIT_PREFIX) else cfg.access_key
    if key:
        response.headers["Body-Sign"] = body_sign(key, body)
    return response


def error_answer(error):
    """The one place a refusal or failure becomes an envelope."""
    if isinstance(error, KooError):
        return answer(envelope(error.code, error.message))
    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return answer(envelope(codes.INVALID_PARAM, f"request body is larger than {limit} bytes"))
    if isinstance(error, HTTPException):
        what = {404: f"no marketplace interface at {request.path}",
                405: f"method {request.method} is not supported at {request.path}"}
        return answer(envelope(codes.INVALID_PARAM, what.get(error.code, error.description)))
    if isinstance(error, OperationalError):
        log.error("database unavailable while answering %s %s: %s", request.method, request.path,
                  error.orig)
        return answer(envelope(codes.INTERNAL_ERROR, "database busy or unavailable, please retry"))
    log.exception("unexpected error while answering %s %s", request.method, request.path)
    return answer(envelope(codes.INTERNAL_ERROR))


def register_error_answers(app):
    """App-level, because a 405 raised by routing never reaches a blueprint's handlers."""

    @app.errorhandler(Exception)
    def _any_error(error):
        if callbacklog.is_marketplace_path(request.path):
            return error_answer(error)
        if isinstance(error, HTTPException):
            return error
        log.exception("unexpected error on %s %s", request.method, request.path)
        return Response("internal error", 500, content_type="text/plain")


# --- reading a request -------------------------------------------------------------------------

def require_key(key, name):
    if not key:
        log.error("%s is not configured: refusing marketplace requests", name)
        raise KooError(codes.INTERNAL_ERROR, f"{name} is not configured on this server")
    return key


def require_json_body():
    """The raw body, after checking it is declared JSON (the marketplace always says so)."""
    if request.mimetype != "application/json":
        raise KooError(codes.INVALID_PARAM, f"Content-Type must be application/json, not {request.mimetype or 'missing'}")
    return request.get_data(cache=True)


def parse_json_object(raw):
    if not raw:
        raise KooError(codes.INVALID_PARAM, "request body is empty")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise KooError(codes.INVALID_PARAM, "request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise KooError(codes.INVALID_PARAM, "request body must be a JSON object")
    return payload


def load(schema, payload):
    try:
        return schema().load(payload)
    except ValidationError as error:
        raise KooError(codes.INVALID_PARAM, schemas.validation_message(error)) from None


def select_activity(table, payload):
    name = payload.get("activity")
    if not name or not isinstance(name, str):
        raise KooError(codes.INVALID_PARAM, "activity: Missing data for required field.")
    spec = table.get(name)
    if spec is None:
        raise KooError(codes.INVALID_PARAM, f"activity: {name[:40]} is not supported here")
    callbacklog.note(activity=name)
    return spec


def note_ids(data):
    """Put what identifies the request into the callback log row."""
    instance_id = data.get("instanceId")
    callbacklog.note(order_id=data.get("orderId"), order_line_id=data.get("orderLineId"),
                     business_id=data.get("businessId"), test_flag=data.get("testFlag"),
                     tenant_id=data.get("tenantId"),
                     instance_id=",".join(instance_id) if isinstance(instance_id, list) else instance_id)


def perform(spec, data, nonce_scope=None, nonce=None):
    """One write transaction: claim the nonce, run the activity, store its answer."""
    with write_transaction():
        if nonce_scope:
            lifecycle.claim_nonce(nonce_scope, nonce)
        return spec.handler(settings(), data)


def serve(table, payload, nonce_scope=None, nonce=None):
    """The part every route shares once the request is verified: activity, schema, one transaction."""
    spec = select_activity(table, payload)
    data = load(spec.schema, payload)
    note_ids(data)
    return answer(perform(spec, data, nonce_scope, nonce))


# --- G2 SaaS: POST /produce -------------------------------------------------------------------

def _compact(mapping):
    return {k: v for k, v in mapping.items() if v is not None}


def instance_info(cfg, instance, encrypted):
    """The reference example's order: instanceId, encryptType, appInfo."""
    return _compact({"instanceId": instance.instance_id,
                     "encryptType": cfg.encrypt_type if encrypted else None,
                     "appInfo": _compact(lifecycle.app_info(cfg, instance, encrypted))})


def g2_new_instance(cfg, d, generation="G2", product_type="saas"):
    return lifecycle.new_instance(
        cfg, key=lifecycle.order_key(d["orderId"], d["orderLineId"]),
        digest=lifecycle.request_digest({k: d[k] for k in ("orderId", "orderLineId", "testFlag")}),
        business_id=d["businessId"],
        attrs=dict(generation=generation, product_type=product_type, order_id=d["orderId"],
                   order_line_id=d["orderLineId"], test_flag=d["testFlag"],
                   details_state=DetailsState.PENDING),
        render=lambda instance: envelope(instanceId=instance.instance_id))


def g2_refresh_instance(cfg, d, render=None):
    return lifecycle.refresh_instance(
        instance_id=d["instanceId"], order_id=d["orderId"], order_line_id=d["orderLineId"],
        scene=d["scene"], expire_time=d["expireTime"], product_id=d.get("productId"),
        digest=lifecycle.request_digest({"expireTime": d["expireTime"], "productId": d.get("productId")}),
        render=render)


def g2_update_instance_status(cfg, d):
    return lifecycle.set_frozen(instance_id=d["instanceId"], frozen=d["status"] == "FREEZE")


def g2_upgrade_instance(cfg, d):
    return lifecycle.upgrade_instance(instance_id=d["instanceId"], order_id=d["orderId"],
                                      order_line_id=d["orderLineId"],
                                      digest=lifecycle.request_digest({"testFlag": d["testFlag"]}))


def g2_release_instance(cfg, d):
    return lifecycle.release_instance(instance_id=d["instanceId"], order_id=d.get("orderId"))


def query_answer(cfg, instance_ids, encrypted):
    """queryInstance for every generation: the known instances' info; none known -> 000003."""
    found = lifecycle.find_instances(instance_ids)
    if not found:
        raise KooError(codes.INSTANCE_NOT_FOUND, "none of the instances exist")
    return envelope(info=[instance_info(cfg, instance, encrypted) for instance in found])


def g2_query_instance(cfg, d):
    return query_answer(cfg, d["instanceId"], encrypted=not cfg.v2_plaintext_appinfo)


G2_ACTIVITIES = {
    "newInstance": Activity(schemas.G2NewInstance, g2_new_instance),
    "refreshInstance": Activity(schemas.G2RefreshInstance, g2_refresh_instance),
    "updateInstanceStatus": Activity(schemas.G2UpdateInstanceStatus, g2_update_instance_status),
    "upgradeInstance": Activity(schemas.G2UpgradeInstance, g2_upgrade_instance),
    "releaseInstance": Activity(schemas.G2ReleaseInstance, g2_release_instance),
    "queryInstance": Activity(schemas.G2QueryInstance, g2_query_instance),
}


def verified_g2_payload(key):
    """Verify a G2-signed POST (signature/timestamp/nonce in the query) and return its JSON object."""
    callbacklog.note(generation="G2")
    cfg = settings()
    raw = request.get_data(cache=True)
    verify_g2_request(require_key(key, "KOO_ACCESS_KEY"), raw, request.args.get("signature"),
                      request.args.get("timestamp"), request.args.get("nonce"), now_ms(),
                      cfg.signature_window_s)
    return parse_json_object(require_json_body())


@bp.post("/produce")
def g2_produce():
    return serve(G2_ACTIVITIES, verified_g2_payload(settings().access_key), "g2", request.args["nonce"])


@bp.errorhandler(KooError)
def _koo_error(error):
    if error.code == codes.INVALID_PARAM and "window" in error.message:
        log.warning("refused %s %s: %s; check this server's clock (NTP)", request.method, request.path,
                    error.message)
    return error_answer(error)


from . import produce_g1, produce_kit, produce_license  # noqa: E402,F401  (register their routes on this blueprint)
