"""NUL (U+0000) in a correctly signed request: free text is stored without it, with a warning;
an identifier carrying it is refused (000002, naming the field); never 000005 (PostgreSQL text
cannot hold NUL, so this matters most there, and both databases must answer alike)."""

import base64
import json

import pytest
from isvapp.extensions import db
from isvapp.koo import codes
from isvapp.storage.models import Callback, Event, Instance, KitUser, License, Tenant
from sqlalchemy import select

from .helpers import TENANT, auth, g1_order, new_order, users

NUL = "\x00"


def answer_of(response):
    assert response.status_code == 200
    return json.loads(response.data)


def last_row(market):
    with market.app.app_context():
        row = db.session.execute(select(Callback).order_by(Callback.id.desc()).limit(1)).scalar_one()
        db.session.expunge_all()
        return row


def no_nul_anywhere(row):
    for column in Callback.__table__.columns:
        value = getattr(row, column.name)
        assert not (isinstance(value, str) and NUL in value), column.name


def lic2_instance(market):
    order = {**new_order("LICNUL0001"), "businessId": "lic-nul"}
    assert answer_of(market.g2(order, path="/license"))["resultCode"] == codes.SUCCESS
    return "lic-nul"


def lic2_async(instance_id="lic-nul", **change):
    return {
        "activity": "getLicenseAsync",
        "instanceId": instance_id,
        "effectiveTime": "2023-10-27 10:30:15 z",
        "eventId": "ev-1",
        "deviceFingerprint": "FP-AAAA",
        "testFlag": "0",
        **change,
    }


# (how to send, what stored value to read, what it must be, the field a warning names)
FREE_TEXT = {
    "g1-get": (
        lambda m: m.g1(g1_order(customerName=f"Zhang{NUL} San")),
        lambda m: m.rows(Instance)[0].customer_name,
        "Zhang San",
        "customerName",
    ),
    "g2-post": (
        lambda m: m.g2({"activity": "orderNotify", "orderId": "CSNUL1", "notifyType": f"PAID{NUL}", "testFlag": "0"}),
        lambda m: m.rows(Event, Event.kind == "order_notified")[0].payload["notifyType"],
        "PAID",
        "notifyType",
    ),
    "license-2.0": (
        lambda m: (lic2_instance(m), m.g2(lic2_async(deviceFingerprint=f"FP-{NUL}AAAA"), path="/license"))[1],
        lambda m: m.rows(License)[0].fingerprint,
        "FP-AAAA",
        "deviceFingerprint",
    ),
    "kit-g2": (
        lambda m: m.kit("tenantSync", {**TENANT, "name": f"huawei{NUL}test"}),
        lambda m: m.rows(Tenant)[0].name,
        "huaweitest",
        "name",
    ),
    "kit-g1": (
        lambda m: m.kit_g1("authSync", auth(1, json.dumps(users("dave", name=f"Da{NUL}ve")))),
        lambda m: m.rows(KitUser)[0].name,
        "Dave",
        "userList[0].name",
    ),
}


@pytest.mark.parametrize("case", list(FREE_TEXT))
def test_free_text_is_stored_without_nul_and_warned(market, case):
    send, stored, expected, field = FREE_TEXT[case]
    answer = answer_of(send(market))
    assert answer["resultCode"] == codes.SUCCESS, answer
    assert stored(market) == expected
    row = last_row(market)
    assert row.result_code == codes.SUCCESS
    assert field in (row.warnings or "") and "NUL" in row.warnings
    no_nul_anywhere(row)


# (how to send, the field the answer must name, (model, how many rows of it may exist))
IDENTIFIER = {
    "g1-get": (lambda m: m.g1(g1_order(orderId=f"CS19{NUL}66")), "orderId", (Instance, 0)),
    "g2-post": (lambda m: m.g2({**new_order(), "businessId": f"biz{NUL}1"}), "businessId", (Instance, 0)),
    "license-2.0": (
        lambda m: (lic2_instance(m), m.g2(lic2_async(eventId=f"ev{NUL}1"), path="/license"))[1],
        "eventId",
        (License, 0),
    ),
    "kit-g2": (lambda m: m.kit("tenantSync", {**TENANT, "tenantId": f"t{NUL}1"}), "tenantId", (Tenant, 0)),
    "kit-g1": (
        lambda m: m.kit_g1("authSync", auth(1, json.dumps(users(f"da{NUL}ve")))),
        "userList[0].userName",
        (KitUser, 0),
    ),
}


@pytest.mark.parametrize("case", list(IDENTIFIER))
def test_identifier_with_nul_is_refused_and_nothing_stored(market, case):
    send, field, (model, count) = IDENTIFIER[case]
    answer = answer_of(send(market))
    assert answer["resultCode"] == codes.INVALID_PARAM, answer
    assert field in answer["resultMsg"] and "NUL" in answer["resultMsg"]
    assert market.count(model) == count
    row = last_row(market)
    assert row.result_code == codes.INVALID_PARAM and field in row.result_msg
    no_nul_anywhere(row)


def extend(pairs):
    return base64.b64encode(json.dumps([{"name": k, "value": v} for k, v in pairs.items()]).encode()).decode()


def test_saas_extend_params_lose_their_nul_with_a_warning(market):
    params = g1_order(saasExtendParams=extend({f"machine{NUL}Code": f"AB{NUL}CD", "nested": [f"x{NUL}"]}))
    assert answer_of(market.g1(params))["resultCode"] == codes.SUCCESS
    [instance] = market.rows(Instance)
    assert instance.extra["saasExtendParams"] == {"machineCode": "ABCD", "nested": ["x"]}
    assert "saasExtendParams" in last_row(market).warnings


def test_license_g1_fingerprint_from_extend_params_loses_its_nul(market):
    params = {**g1_order(saasExtendParams=extend({"machineCode": f"AB{NUL}CD"})), "activity": "getLicense"}
    assert answer_of(market.g1(params, path="/license"))["resultCode"] == codes.SUCCESS
    assert market.rows(License)[0].fingerprint == "ABCD"


def test_unknown_fields_activity_and_times_with_nul_are_logged_safely(market):
    body = {**new_order(), f"odd{NUL}name": f"odd{NUL}value", "activity": f"newInstance{NUL}"}
    answer = answer_of(market.g2(body))
    assert answer["resultCode"] == codes.INVALID_PARAM and "activity" in answer["resultMsg"]
    no_nul_anywhere(last_row(market))
    params = g1_order(expireTime=f"20300727153156{NUL}", periodNumber=f"1{NUL}", **{f"x{NUL}": f"y{NUL}"})
    assert answer_of(market.g1(params))["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].expire_time.isoformat() == "2030-07-27T15:31:56"
    no_nul_anywhere(last_row(market))


def test_unverified_body_with_nul_bytes_still_gets_its_log_row(market):
    answer = answer_of(market.send("POST", "/produce", data=b"\x00\x01binary\x00", content_type="text/plain"))
    assert answer["resultCode"] == codes.AUTH_FAILED
    row = last_row(market)
    assert row.result_code == codes.AUTH_FAILED and "binary" in row.request
    no_nul_anywhere(row)


def test_nonce_with_nul_is_refused_by_name(market):
    answer = answer_of(market.g2(new_order(), nonce=f"nonce{NUL}1"))
    assert answer["resultCode"] == codes.INVALID_PARAM and "nonce" in answer["resultMsg"]
    assert market.count(Instance) == 0
    no_nul_anywhere(last_row(market))
