"""A fake marketplace open API for development and tests: order query, usage push, and the
License-code APIs (activation, query v1/v2, usage statistics, license upload).

    .venv/bin/isvapp fake-market --port 8900
    # then, in isvapp's config: KOO_API_BASE_URL = "http://127.0.0.1:8900"

It verifies the AK/SK signature of every call and the usage-push signature, answers the
documented MOCK* order ids (and any other order id with a plausible monthly order), and keeps
what was pushed. ``FAKE_MARKET_FAIL_NEXT`` / ``FAKE_MARKET_DELAY_S`` in its config let tests make
it fail or be slow; ``FAKE_MARKET_ANSWER_NEXT`` (a list of (status, raw body)) makes it answer
anything at all; a usage push of more than ``FAKE_USAGE_MAX_RECORDS`` (100) records is refused
with MKT.9003, as the order query's error page says. License codes it knows are ``FAKE_LICENSES`` ({code: {"status", "expireTime"}}). It is not the marketplace: it never runs in production.
"""

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import click
from flask import Flask, Response, current_app, request
from flask.cli import with_appcontext
from werkzeug.serving import make_server

from ...koo import apig, licensecodes
from ...market.openapi import ORDER_QUERY, USAGE_PUSH

MOCK_ORDERS = {
    "MOCKPERIODYEARNEW": ("NEW", "PERIOD", "year", 1),
    "MOCKONETIMENEW": ("NEW", "ONE_TIME", None, None),
    "MOCKONDEMAND": ("NEW", "ON_DEMAND", None, None),
    "MOCKONDEMANDPKG": ("NEW", "ON_DEMAND_PKG", "month", 1),
    "MOCKPERIODDAYTRIAL": ("NEW", "PERIOD", "day", 7),
    "MOCKMONTYTRIALTOFORMAL": ("TRIAL_TO_FORMAL", "PERIOD", "month", 1),
    "MOCKMONTYUNSUBSCRIBE": ("UNSUBSCRIBE", "PERIOD", "month", 1),
    "MOCKMONTYRENEW": ("RENEW", "PERIOD", "month", 1),
    "MOCKMONTYCHANGE": ("CHANGE", "PERIOD", "month", 1),
}
PERIOD_DAYS = {"year": 366, "month": 31, "day": 1}
FAKE_LICENSES = {
    "PLXXXXXX": {"status": "NORMAL", "expireTime": "20991231235959"},
    "PLEXPIRED": {"status": "EXPIRED", "expireTime": "20200101000000"},
}
UPLOAD_MAX_BYTES = 10 * 2**20


def _answer(status, code, message, **fields):
    return Response(
        json.dumps({"resultCode": code, "resultMsg": message, **fields}),
        status,
        content_type="application/json;charset=UTF-8",
    )


def _license_answer(code="92020000", message="Success", **fields):
    """The License APIs answer in the open-API guide's 公共错误码 shape: error_code, HTTP 200."""
    return Response(
        json.dumps({"error_code": code, "error_msg": message, **fields}),
        200,
        content_type="application/json;charset=UTF-8",
    )


def order_info(order_id, order_line_id=None, now=None):
    order_type, mode, period, count = MOCK_ORDERS.get(order_id, ("NEW", "PERIOD", "month", 1))
    now = now or datetime.now(UTC)
    line = {
        "orderLineId": order_line_id or f"{order_id}-000001",
        "chargingMode": mode,
        "productInfo": [{"productId": "00301-666666-0--0", "skuCode": "fake-sku", "linearValue": 1}],
    }
    if period:
        expires = now + timedelta(days=PERIOD_DAYS[period] * count)  # type: ignore[operator]  # set with a period
        line.update(periodType=period, periodNumber=count, expireTime=expires.strftime("%Y%m%d%H%M%S"))
    if order_id == "MOCKPERIODDAYTRIAL":
        line["trialFlag"] = "1"
    return {
        "orderId": order_id,
        "orderType": order_type,
        "createTime": now.strftime("%Y%m%d%H%M%S"),
        "buyerInfo": {
            "customerId": "fake0000customer0000000000000000",
            "customerName": "Fake Customer",
            "userId": "fake0000user00000000000000000000",
            "userName": "fake-iam-user",
        },
        "orderLine": [line],
    }


def create_fake_market(ak, sk, usage_key, **config):
    app = Flask("isvapp.standins.fakemarket")
    app.config.update(
        FAKE_AK=ak,
        FAKE_SK=sk,
        FAKE_USAGE_KEY=usage_key,
        FAKE_MARKET_FAIL_NEXT=0,
        FAKE_MARKET_DELAY_S=0,
        FAKE_MARKET_ANSWER_NEXT=[],
        # The order query's error page: MKT.9003 "计量记录数超出限制(100条)" (the push page says 1,000).
        FAKE_USAGE_MAX_RECORDS=100,
        FAKE_UPLOAD_FIELD="file",
        FAKE_LICENSE_QUERY_V2_FIELD="licenses",
        **config,
    )
    app.config.setdefault("FAKE_LICENSES", {code: dict(v) for code, v in FAKE_LICENSES.items()})
    app.extensions["fake_market"] = {
        "calls": [],
        "usage": {},
        "lock": threading.Lock(),
        "activated": {},
        "queries": [],
        "software_usage": [],
        "uploads": {},
    }
    state = app.extensions["fake_market"]

    @app.before_request
    def _verify():
        with state["lock"]:
            state["calls"].append((request.method, request.path))
        if current_app.config["FAKE_MARKET_DELAY_S"]:
            time.sleep(current_app.config["FAKE_MARKET_DELAY_S"])
        if current_app.config["FAKE_MARKET_FAIL_NEXT"] > 0:
            current_app.config["FAKE_MARKET_FAIL_NEXT"] -= 1
            return _answer(500, "MKT.0999", "System internal error.")
        if current_app.config["FAKE_MARKET_ANSWER_NEXT"]:
            status, raw = current_app.config["FAKE_MARKET_ANSWER_NEXT"].pop(0)
            return Response(raw, status, content_type="text/html")
        body = request.get_data()
        if not apig.verify(ak, sk, request.method, request.url, dict(request.headers), body):
            return _answer(401, "MKT.0154", "Illegal token")
        return None

    @app.get(ORDER_QUERY)
    def query_order():
        order_id = request.args.get("orderId")
        if not order_id or len(order_id) > 64:
            return _answer(400, "MKT.0101", "Invalid parameter")
        return _answer(200, "MKT.0000", "Success", orderInfo=order_info(order_id, request.args.get("orderLineId")))

    @app.post(USAGE_PUSH)
    def usage_push():
        body = request.get_data()
        ts, nonce = request.headers.get("ts", ""), request.headers.get("nonce", "")
        if request.headers.get("signature") != apig.usage_signature(usage_key, ts, nonce, body):
            return _answer(401, "MKT.0154", "Illegal token")
        records = json.loads(body).get("usage_records") or []
        if len(records) > current_app.config["FAKE_USAGE_MAX_RECORDS"]:  # the error page's row, verbatim
            return _answer(500, "MKT.9003", "Usage records extends size limit.")
        errors = []
        with state["lock"]:
            for record in records:
                sn = record.get("metering_sn")
                if sn in state["usage"]:
                    errors.append({"metering_sn": sn, "error_code": "005", "error_msg": "duplicate SDR id"})
                else:
                    state["usage"][sn] = record
        return _answer(200, "MKT.0000", "Success", error_records=errors)

    def known(code):
        return current_app.config["FAKE_LICENSES"].get(code) if isinstance(code, str) else None

    def license_body():
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @app.post(licensecodes.ACTIVATE)
    def activate():
        body = license_body()
        found = known((body or {}).get("license"))
        if found is None:
            return _license_answer("92020002", "invalid param: license not found")
        with state["lock"]:
            state["activated"][body["license"]] = state["activated"].get(body["license"], 0) + 1
        return _license_answer(license=body["license"], **found)

    @app.post(licensecodes.QUERY_V1)
    def query_v1():
        body = license_body() or {}
        info = body.get("heartbeatInfo")
        if info is not None and not (isinstance(info, dict) and info.get("thirdPartyAccount")):
            return _license_answer("92020002", "invalid param: heartbeatInfo.thirdPartyAccount is required")
        found = known(body.get("license"))
        if found is None:
            return _license_answer("92020002", "invalid param: license not found")
        with state["lock"]:
            state["queries"].append(body)
        return _license_answer(license=body["license"], **found)

    @app.post(licensecodes.QUERY_V2)
    def query_v2():
        codes = (license_body() or {}).get(current_app.config["FAKE_LICENSE_QUERY_V2_FIELD"])
        if not isinstance(codes, list) or not 0 < len(codes) <= licensecodes.BATCH_MAX:
            return _license_answer("92020002", "invalid param")
        with state["lock"]:
            state["queries"].append({"licenses": codes})
        return _license_answer(licenses=[{"license": c, **known(c)} for c in codes if known(c)])

    @app.post(licensecodes.USAGE_INFO)
    def usage_info():
        body = license_body() or {}
        try:
            licensecodes.usage_body(
                (u.get("license"), u.get("software_usage_Info") or []) for u in body.get("usage_info") or []
            )
        except (licensecodes.Invalid, AttributeError) as error:
            return _license_answer("92020002", f"invalid param: {error}")
        unknown = [u["license"] for u in body["usage_info"] if known(u["license"]) is None]
        if unknown:
            return _license_answer("92020002", f"invalid param: license not found: {unknown[0]}")
        with state["lock"]:
            state["software_usage"].append(body)
        return _license_answer()

    @app.post(licensecodes.UPLOAD.format(event_id="<event_id>"))
    def upload(event_id):
        if request.content_length and request.content_length > UPLOAD_MAX_BYTES:
            return _license_answer("92020002", "invalid param: file too large")
        field = current_app.config["FAKE_UPLOAD_FIELD"]
        part = request.files.get(field)
        raw = part.read() if part is not None else request.form.get(field, "").encode("utf-8")
        if not raw:
            return _license_answer("92020002", f"invalid param: no {field} part")
        with state["lock"]:
            state["uploads"].setdefault(event_id, []).append(raw)
        return _license_answer()

    return app


class Running:
    """A fake market served on 127.0.0.1 in a thread (for tests and the simulator)."""

    def __init__(self, app, port=0):
        self.app = app
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)


@click.command("fake-market")
@click.option("--port", default=8900, show_default=True)
@with_appcontext
def fake_market_command(port):
    """Serve a fake marketplace open API on 127.0.0.1 (order query, usage push) for development."""
    settings = current_app.extensions["isvapp"]
    if not (settings.api_ak and settings.api_sk):
        raise click.ClickException("set KOO_AK and KOO_SK (any values) so calls can be signed and checked")
    market = create_fake_market(settings.api_ak, settings.api_sk, settings.usage_key or "")
    click.echo(f"fake marketplace on http://127.0.0.1:{port}; set KOO_API_BASE_URL to it (Ctrl-C stops)")
    make_server("127.0.0.1", port, market, threaded=True).serve_forever()


def init_app(app):
    app.cli.add_command(fake_market_command)
