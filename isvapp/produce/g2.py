"""G2 SaaS: ``POST /produce`` with signature/timestamp/nonce in the query (docs/protocol.md, "G2").

Each activity maps, in one table, to a schema and a small adapter onto one lifecycle function.
License-2.0 (isvapp.produce.license) reuses these adapters.
"""

from flask import current_app, request

from ..background.provisioning import instance_fields, load_provisioner
from ..background.usage import usage_info
from ..domain import callbacklog, lifecycle
from ..koo import codes, oddities, schemas
from ..koo.codes import KooError
from ..koo.envelope import envelope
from ..koo.generations import Generation, ReplayScope
from ..koo.signing import replay_token, request_fingerprint, verify_g2_request
from ..storage.models import DetailsState
from .pipeline import PREPARED, Activity, current_settings, now_ms, parse_json_object, require_keys, serve, signed_by


def _compact(mapping):
    return {k: v for k, v in mapping.items() if v is not None}


def instance_info(settings, instance, encrypted, type_inside=True, usage=None):
    """One ``info`` element: instanceId, appInfo, and encryptType when the credentials are encrypted
    (inside the element in G2; G1's queryInstance puts it at the top of the answer instead), and
    a pay-per-use or package instance's usage (``usage``: its UsageInfo list) under
    KOO_QUERY_USAGE_FIELD."""
    info = _compact(
        {
            "instanceId": instance.instance_id,
            "encryptType": settings.encrypt_type if encrypted and type_inside else None,
            "appInfo": _compact(lifecycle.app_info(settings, instance, encrypted)),
        }
    )
    if usage is not None and settings.query_usage_field:
        info[settings.query_usage_field] = usage
    return info


def _new_instance_args(settings, data, generation):
    """What identifies a G2 (or License-2.0) newInstance: its order line's key and payload digest,
    the businessId, and the instance's columns from the request (the key that verified it owns it)."""
    return dict(
        key=lifecycle.order_key(data["orderId"], data["orderLineId"]),
        digest=lifecycle.request_digest({k: data[k] for k in ("orderId", "orderLineId", "testFlag")}),
        business_id=data["businessId"],
        attrs=dict(
            generation=generation,
            product_type=generation.product_type,
            order_id=data["orderId"],
            order_line_id=data["orderLineId"],
            test_flag=data["testFlag"],
            details_state=DetailsState.PENDING,
            key_fingerprint=lifecycle.owner(settings).fingerprint,
        ),
    )


def _render_new(instance):
    return envelope(instanceId=instance.instance_id)


def prepare_new_instance(settings, data, generation=Generation.G2):
    return lifecycle.prepare_new_instance(
        settings, render=_render_new, **_new_instance_args(settings, data, generation)
    )


def new_instance(settings, data, generation=Generation.G2):
    return lifecycle.new_instance(
        settings,
        render=_render_new,
        prepared=data.get(PREPARED) or prepare_new_instance(settings, data, generation),
    )


def refresh_instance(settings, data, render=None):
    expire = data.get("expireTime")
    return lifecycle.refresh_instance(
        instance_id=data["instanceId"],
        order_id=data["orderId"],
        order_line_id=data.get("orderLineId"),
        scene=data["scene"],
        expire_time=expire,
        product_id=data.get("productId"),
        digest=lifecycle.request_digest({"expireTime": expire, "productId": data.get("productId")}),
        render=render,
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def update_instance_status(settings, data):
    return lifecycle.set_frozen(
        instance_id=data["instanceId"],
        frozen=data["status"] == "FREEZE",
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def upgrade_instance(settings, data):
    return lifecycle.upgrade_instance(
        instance_id=data["instanceId"],
        order_id=data["orderId"],
        order_line_id=data.get("orderLineId"),
        digest=lifecycle.request_digest({"testFlag": data["testFlag"]}),
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def release_instance(settings, data):
    return lifecycle.release_instance(
        instance_id=data["instanceId"],
        order_id=data.get("orderId"),
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def query_answer(settings, data, encrypted, type_inside=True):
    """queryInstance for every generation: the known instances' info; none known -> 000003
    (a debugging call gets an empty list and a note). Another key's instances are not known here."""
    found = lifecycle.find_instances(data["instanceId"], asking=lifecycle.owner(settings))
    if not found:
        if not data["testFlag"]:
            raise KooError(codes.INSTANCE_NOT_FOUND, "none of the instances exist")
        oddities.note("debugging call: none of the instances exist; answered an empty list")
    usage = usage_info(settings, found) if settings.query_usage_field else {}
    return [
        instance_info(settings, instance, encrypted, type_inside, usage.get(instance.instance_id)) for instance in found
    ]


def query_instance(settings, data):
    return envelope(info=query_answer(settings, data, encrypted=not settings.v2_plaintext_appinfo))


def change_instance_check(settings, data):
    provisioner = load_provisioner(current_app.config)
    return lifecycle.check_change(
        instance_id=data["instanceId"],
        product_info=data.get("productInfo"),
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
        decide=lambda instance, product: provisioner.change_allowed(instance_fields(instance), product),
    )


def order_notify(settings, data):
    notice = {k: data[k] for k in ("notifyType", "orderStatus") if data.get(k)}
    return lifecycle.once(
        key=lifecycle.idempotency_key(
            "orderNotify", data["orderId"], data.get("orderLineId") or "", lifecycle.request_digest(notice)[:16]
        ),
        activity="orderNotify",
        digest=lifecycle.request_digest(notice),
        instance_id=None,
        make=lambda: lifecycle.order_notified(
            order_id=data["orderId"],
            order_line_id=data.get("orderLineId"),
            notice={**notice, **({"fields": data["extra"]} if data.get("extra") else {})},
        ),
    )


ACTIVITIES = {
    "newInstance": Activity(schemas.G2NewInstance, new_instance, prepare=prepare_new_instance),
    "refreshInstance": Activity(schemas.G2RefreshInstance, refresh_instance),
    "updateInstanceStatus": Activity(schemas.G2UpdateInstanceStatus, update_instance_status),
    "upgradeInstance": Activity(schemas.G2UpgradeInstance, upgrade_instance),
    "releaseInstance": Activity(schemas.G2ReleaseInstance, release_instance),
    "queryInstance": Activity(schemas.G2QueryInstance, query_instance, writes=False),
    "changeInstanceCheck": Activity(schemas.ChangeInstanceCheck, change_instance_check, writes=False),
    "orderNotify": Activity(schemas.OrderNotify, order_notify),
}


def verified():
    """Verify a G2-signed POST against every configured key; (Signed, its JSON object)."""
    callbacklog.note(generation=Generation.G2)
    settings = current_settings()
    # Read five times: each read through the proxy costs 1-2 us. (Typed as the Request it stands for.)
    req = request._get_current_object()  # type: ignore[attr-defined]
    raw = req.get_data(cache=True)
    args = req.args
    nonce, timestamp = args.get("nonce"), args.get("timestamp")
    key, form = verify_g2_request(
        require_keys(settings.access_keys, "KOO_ACCESS_KEY"),
        raw,
        args.get("signature"),
        timestamp,
        nonce,
        now_ms(),
        settings.signature_window_s,
    )
    signed = signed_by(
        key,
        int(timestamp),
        scope=ReplayScope.G2,
        token=replay_token(ReplayScope.G2, nonce, timestamp),  # verified: present
        nonce=nonce,
        fingerprint=request_fingerprint(req.method, req.path, req.query_string, raw),
    )
    payload = parse_json_object(raw)
    if form != "raw":
        callbacklog.note(note=callbacklog.NOTES["signature_form"] % {"form": form})
    return signed, payload


def produce():
    signed, payload = verified()
    return serve(ACTIVITIES, payload, signed)
