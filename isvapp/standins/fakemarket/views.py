"""The fake marketplace's routes: the open API's order query and usage push, and the License-code
APIs. Each reads the request, checks it as the marketplace would, and keeps what it took in the
market's state (state.MarketState). Before any route, every call is recorded, the faults a test
asked for are played (:func:`injected_fault`), and the AK/SK signature is checked."""

import json
import time

from flask import Response, current_app, request

from ...koo import apig, licensecodes
from ...market.openapi import ORDER_QUERY, USAGE_PUSH
from . import bp
from .orders import order_info

UPLOAD_MAX_BYTES = 10 * 2**20


def answer(status, code, message, **fields):
    """The open API's answer: resultCode and resultMsg, with the HTTP status the page gives."""
    return Response(
        json.dumps({"resultCode": code, "resultMsg": message, **fields}),
        status,
        content_type="application/json;charset=UTF-8",
    )


def license_answer(code="92020000", message="Success", **fields):
    """The License APIs answer in the open-API guide's 公共错误码 shape: error_code, HTTP 200."""
    return Response(
        json.dumps({"error_code": code, "error_msg": message, **fields}),
        200,
        content_type="application/json;charset=UTF-8",
    )


def injected_fault(config):
    """The answer a test asked for in the market's config instead of the real one, or None:
    ``FAKE_MARKET_FAIL_NEXT`` (a count: HTTP 500 with MKT.0999, as the marketplace answers a fault)
    first, then ``FAKE_MARKET_ANSWER_NEXT`` (a list of (status, raw body), one per call). Each
    one taken is used up. ``FAKE_MARKET_DELAY_S`` slows every call first."""
    if config["FAKE_MARKET_DELAY_S"]:
        time.sleep(config["FAKE_MARKET_DELAY_S"])
    if config["FAKE_MARKET_FAIL_NEXT"] > 0:
        config["FAKE_MARKET_FAIL_NEXT"] -= 1
        return answer(500, "MKT.0999", "System internal error.")
    if config["FAKE_MARKET_ANSWER_NEXT"]:
        status, raw = config["FAKE_MARKET_ANSWER_NEXT"].pop(0)
        return Response(raw, status, content_type="text/html")
    return None


def _state():
    return current_app.extensions["fake_market"]


@bp.before_app_request
def _verify():
    """Every call, a route's or not: recorded, then a fault if one is due, then the AK/SK check."""
    _state().record_call(request.method, request.path)
    config = current_app.config
    fault = injected_fault(config)
    if fault is not None:
        return fault
    body = request.get_data()
    if not apig.verify(config["FAKE_AK"], config["FAKE_SK"], request.method, request.url, dict(request.headers), body):
        return answer(401, "MKT.0154", "Illegal token")
    return None


@bp.get(ORDER_QUERY)
def query_order():
    order_id = request.args.get("orderId")
    if not order_id or len(order_id) > 64:
        return answer(400, "MKT.0101", "Invalid parameter")
    return answer(200, "MKT.0000", "Success", orderInfo=order_info(order_id, request.args.get("orderLineId")))


@bp.post(USAGE_PUSH)
def usage_push():
    body = request.get_data()
    ts, nonce = request.headers.get("ts", ""), request.headers.get("nonce", "")
    if request.headers.get("signature") != apig.usage_signature(current_app.config["FAKE_USAGE_KEY"], ts, nonce, body):
        return answer(401, "MKT.0154", "Illegal token")
    records = json.loads(body).get("usage_records") or []
    if len(records) > current_app.config["FAKE_USAGE_MAX_RECORDS"]:  # the error page's row, verbatim
        return answer(500, "MKT.9003", "Usage records extends size limit.")
    return answer(200, "MKT.0000", "Success", error_records=_state().take_usage(records))


def known(code):
    """The license code's {"status", "expireTime"} in FAKE_LICENSES, or None."""
    return current_app.config["FAKE_LICENSES"].get(code) if isinstance(code, str) else None


def license_body():
    """The License API's JSON object, or None when the body is not one."""
    try:
        body = json.loads(request.get_data())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@bp.post(licensecodes.ACTIVATE)
def activate():
    body = license_body()
    found = known((body or {}).get("license"))
    if found is None:
        return license_answer("92020002", "invalid param: license not found")
    _state().count_activation(body["license"])
    return license_answer(license=body["license"], **found)


@bp.post(licensecodes.QUERY_V1)
def query_v1():
    body = license_body() or {}
    info = body.get("heartbeatInfo")
    if info is not None and not (isinstance(info, dict) and info.get("thirdPartyAccount")):
        return license_answer("92020002", "invalid param: heartbeatInfo.thirdPartyAccount is required")
    found = known(body.get("license"))
    if found is None:
        return license_answer("92020002", "invalid param: license not found")
    _state().record_query(body)
    return license_answer(license=body["license"], **found)


@bp.post(licensecodes.QUERY_V2)
def query_v2():
    codes = (license_body() or {}).get(current_app.config["FAKE_LICENSE_QUERY_V2_FIELD"])
    if not isinstance(codes, list) or not 0 < len(codes) <= licensecodes.BATCH_MAX:
        return license_answer("92020002", "invalid param")
    _state().record_query({"licenses": codes})
    return license_answer(licenses=[{"license": c, **known(c)} for c in codes if known(c)])


@bp.post(licensecodes.USAGE_INFO)
def usage_info():
    body = license_body() or {}
    try:
        licensecodes.usage_body(
            (u.get("license"), u.get("software_usage_Info") or []) for u in body.get("usage_info") or []
        )
    except (licensecodes.Invalid, AttributeError) as error:
        return license_answer("92020002", f"invalid param: {error}")
    unknown = [u["license"] for u in body["usage_info"] if known(u["license"]) is None]
    if unknown:
        return license_answer("92020002", f"invalid param: license not found: {unknown[0]}")
    _state().record_software_usage(body)
    return license_answer()


@bp.post(licensecodes.UPLOAD.format(event_id="<event_id>"))
def upload(event_id):
    if request.content_length and request.content_length > UPLOAD_MAX_BYTES:
        return license_answer("92020002", "invalid param: file too large")
    field = current_app.config["FAKE_UPLOAD_FIELD"]
    part = request.files.get(field)
    raw = part.read() if part is not None else request.form.get(field, "").encode("utf-8")
    if not raw:
        return license_answer("92020002", f"invalid param: no {field} part")
    _state().record_upload(event_id, raw)
    return license_answer()
