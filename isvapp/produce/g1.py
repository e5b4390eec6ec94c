"""G1 SaaS: ``GET /produce`` with authToken, answered with Body-Sign (docs/protocol.md, "G1").

Only the reading differs from G2: parameters come URL-decoded from the query and the order
arrives whole, so details are stored inline. Each activity is a small adapter onto the same
lifecycle functions G2 uses: one state machine, one idempotency mechanism.
"""

from flask import request

from ..domain import callbacklog, lifecycle
from ..koo import schemas
from ..koo.codes import KooError
from ..koo.envelope import envelope
from ..koo.fieldcrypto import decrypt_field
from ..koo.generations import Generation, ReplayScope
from ..koo.signing import g1_string_to_sign, replay_token, request_fingerprint, verify_g1_request
from ..storage.models import DetailsState
from .g2 import instance_info, query_answer
from .pipeline import Activity, current_settings, g1_sent_ms, now_ms, require_keys, serve, signed_by

ONE_TIME_MODES = {"3", "ONE_TIME"}

# Order fields kept in Instance.extra (the rest have columns of their own).
EXTRA_FIELDS = ("provisionType", "amount", "diskSize", "bandWidth", "orderAmount")


def is_pay_per_use(settings, data):
    mode = data.get("chargingMode")
    return mode in settings.g1_pay_per_use_modes or (
        data.get("expireTime") is None and mode is not None and mode not in ONE_TIME_MODES
    )


def buyer_contact(settings, value):
    """``mobilePhone``/``email`` may arrive AES-encrypted with the Key (§3.7); else they are plain."""
    if not value:
        return None
    try:
        return decrypt_field(settings.access_key, value, settings.encrypt_type)
    except (ValueError, KooError):
        return value


def order_attrs(settings, data, generation):
    """Instance columns from a G1-style order (G1 newInstance, License-G1 getLicense)."""
    extra = {k: data[k] for k in EXTRA_FIELDS if data.get(k) is not None}
    if data.get("saasExtendParams") is not None:
        extra["saasExtendParams"] = data["saasExtendParams"]
    for name in ("mobilePhone", "email"):
        if data.get(name):
            extra[name] = buyer_contact(settings, data[name])
    return dict(
        generation=generation,
        order_id=data["orderId"],
        order_line_id=data.get("orderLineId"),
        product_id=data.get("productId"),
        sku_code=data.get("skuCode"),
        customer_id=data.get("customerId"),
        customer_name=data.get("customerName"),
        user_id=data.get("userId"),
        user_name=data.get("userName"),
        charging_mode=data.get("chargingMode"),
        period_type=data.get("periodType"),
        period_number=data.get("periodNumber"),
        expire_time=data["expireTime"].replace(tzinfo=None) if data.get("expireTime") else None,
        trial=data["trialFlag"],
        test_flag=data["testFlag"],
        details_state=DetailsState.INLINE,
        product_type=generation.product_type,
        extra=extra or None,
        key_fingerprint=lifecycle.owner(settings).fingerprint,
    )


def g1_order_key(settings, data):
    return lifecycle.order_key(
        data["orderId"], data.get("orderLineId"), data.get("productId"), pay_per_use=is_pay_per_use(settings, data)
    )


def g1_digest(data):
    """Every order field but businessId (it differs on each retry) and the request's signature."""
    return lifecycle.request_digest({k: v for k, v in data.items() if k not in ("businessId", "activity")})


def g1_new_instance(settings, data, generation=Generation.G1, render=None):
    """``render``: a License's answer, which issues the document (so it runs after the claim)."""
    return lifecycle.new_instance(
        settings,
        key=g1_order_key(settings, data),
        digest=g1_digest(data),
        business_id=data["businessId"],
        attrs=order_attrs(settings, data, generation),
        render_writes=render is not None,
        render=render or (lambda instance: envelope(**instance_info(settings, instance, encrypted=True))),
    )


def g1_refresh_instance(settings, data, render=None):
    expire = data.get("expireTime")
    return lifecycle.refresh_instance(
        instance_id=data["instanceId"],
        order_id=data["orderId"],
        order_line_id=None,
        scene="TRIAL_TO_FORMAL" if data["trialToFormal"] else "RENEWAL",
        expire_time=expire,
        product_id=data.get("productId"),
        digest=lifecycle.request_digest({"expireTime": expire, "productId": data.get("productId")}),
        render=render,
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def g1_expire_instance(settings, data):
    return lifecycle.expire_instance(
        instance_id=data["instanceId"],
        order_id=data.get("orderId"),
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def g1_release_instance(settings, data):
    return lifecycle.release_instance(
        instance_id=data["instanceId"],
        order_id=data.get("orderId"),
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def g1_upgrade(settings, data):
    attrs = {"product_id": data.get("productId"), "sku_code": data.get("skuCode")}
    return lifecycle.upgrade_instance(
        instance_id=data["instanceId"],
        order_id=data["orderId"],
        order_line_id=None,
        digest=lifecycle.request_digest(
            {k: data.get(k) for k in ("productId", "skuCode", "amount", "diskSize", "bandWidth")}
        ),
        attrs={k: v for k, v in attrs.items() if v is not None},
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def g1_instance_status(settings, data):
    return lifecycle.set_frozen(
        instance_id=data["instanceId"],
        frozen=data["instanceStatus"] == "FREEZE",
        debug=data["testFlag"],
        asking=lifecycle.owner(settings),
    )


def g1_query_instance(settings, data):
    """G1 puts encryptType at the top of the answer, beside resultCode (zh-cn topic_0070649185)."""
    return envelope(
        encryptType=settings.encrypt_type, info=query_answer(settings, data, encrypted=True, type_inside=False)
    )


G1_ACTIVITIES = {
    "newInstance": Activity(schemas.G1Order, g1_new_instance),
    "refreshInstance": Activity(schemas.G1RefreshInstance, g1_refresh_instance),
    "expireInstance": Activity(schemas.G1ExpireInstance, g1_expire_instance),
    "releaseInstance": Activity(schemas.G1ReleaseInstance, g1_release_instance),
    "upgrade": Activity(schemas.G1Upgrade, g1_upgrade),
    "instanceStatus": Activity(schemas.G1InstanceStatus, g1_instance_status),
    "queryInstance": Activity(schemas.G1QueryInstance, g1_query_instance, writes=False),
}


def verified():
    """The query parameters, URL-decoded once, after checking authToken and timeStamp (§3.2); (Signed, params)."""
    callbacklog.note(generation=Generation.G1)
    settings = current_settings()
    params = request.args.to_dict(flat=True)
    key = verify_g1_request(
        require_keys(settings.access_keys, "KOO_ACCESS_KEY"), params, now_ms(), settings.g1_window_s
    )
    token = params["authToken"].replace(" ", "+")
    signed = signed_by(
        key,
        g1_sent_ms(params.get("timeStamp")),
        scope=ReplayScope.G1,
        token=replay_token(ReplayScope.G1, token),
        nonce=token[:128],
        fingerprint=request_fingerprint(request.path, g1_string_to_sign(params), token),
    )
    return signed, params


def produce():
    signed, params = verified()
    return serve(G1_ACTIVITIES, params, signed)
