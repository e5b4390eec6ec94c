"""GET /produce (G1): authToken, Body-Sign on every answer, inline order details, shared lifecycle."""

import json

import pytest
from isvapp.koo import codes
from isvapp.koo.fieldcrypto import decrypt_field, encrypt_field
from isvapp.storage.models import Answer, Callback, Conflict, Event, Instance, InstanceState

from .helpers import KEY, g1_order, new_order, signed_result

EXTEND = "W3sibmFtZSI6Im1hY2hpbmVDb2RlIiwidmFsdWUiOiJBQkNERUZHSElKS0xNTk9QUVJTVFVWV1gifV0="


@pytest.fixture
def g1_created(market):
    answer = signed_result(market.g1(g1_order(business="g1-biz")))
    assert answer["resultCode"] == codes.SUCCESS
    return answer["instanceId"]


@pytest.mark.parametrize("app_config", [{"KOO_G1_WINDOW_S": 20 * 365 * 86400}])  # signed in 2023
def test_reference_wire_example_is_accepted_byte_for_byte(market, app):
    # §3.2's getLicense example as it appears on the wire (Java URLEncoder), sent to GET /produce
    # as an unknown activity: the token must verify (000002 for the activity, not 000001).
    wire = (
        "activity=getLicense&businessId=b-0001&customerId=c-0001&customerName=Zhang+San+%E5%BC%A0%E4%B8%89"
        "&orderId=CS2301010000ABCDE&productId=00301-666666-0--0&saasExtendParams=W3sibmFtZSI6Im1hY2hpbmVD"
        "b2RlIiwidmFsdWUiOiJBQkNERUZHSElKS0xNTk9QUVJTVFVWV1gifV0%3D&testFlag=1&timeStamp=20230101080000123"
        "&authToken=NZNyzj44TLp4eqPZnvN6%2B5BRn2LVjoODyRZk2ToKozk%3D"
    )
    answer = signed_result(market.send("GET", "/produce?" + wire))
    assert answer["resultCode"] == codes.INVALID_PARAM and "getLicense" in answer["resultMsg"]
    # The '+' turned into a space by a double-decoding proxy is mended (Huawei's FAQ).
    mangled = wire.replace("%2B", "+")
    assert signed_result(market.send("GET", "/produce?" + mangled))["resultCode"] == codes.INVALID_PARAM


def test_new_instance_answers_encrypted_app_info_and_stores_the_order(market, g1_created):
    [instance] = market.rows(Instance)
    assert instance.instance_id == g1_created == "g1-biz"
    assert (
        instance.generation,
        instance.details_state,
        instance.customer_name,
        instance.product_id,
        instance.sku_code,
        instance.period_number,
        instance.test_flag,
    ) == ("G1", "inline", "Zhang San 张三", "00301-666666-0--0", "sku-1", 1, True)
    assert instance.expire_time.isoformat() == "2030-07-27T15:31:56"


@pytest.mark.parametrize("app_config", [{"KOO_ENCRYPT_TYPE": "1"}, {"KOO_ENCRYPT_TYPE": "2"}])
def test_app_info_decrypts_with_the_key_for_both_encrypt_types(market, app_config):
    encrypt_type = app_config["KOO_ENCRYPT_TYPE"]
    answer = signed_result(market.g1(g1_order()))
    assert answer["encryptType"] == encrypt_type
    info = answer["appInfo"]
    assert decrypt_field(KEY, info["userName"], encrypt_type) == "admin"
    assert len(decrypt_field(KEY, info["password"], encrypt_type)) >= 12
    assert info["frontEndUrl"].startswith("https://")
    assert list(answer)[:4] == ["resultCode", "resultMsg", "instanceId", "encryptType"]


def test_repeat_replays_first_answer_and_conflict_is_recorded(market):
    first = market.g1(g1_order(business="one"))
    again = market.g1(g1_order(business="two"))
    assert again.data == first.data and market.count(Instance) == 1 and market.count(Conflict) == 0
    changed = market.g1(g1_order(business="three", expireTime="20310101000000"))
    assert changed.data == first.data and market.count(Conflict) == 1


def test_pay_per_use_gets_one_instance_per_order_and_product(market):
    a = signed_result(market.g1(g1_order(order="OD1", chargingMode="ON_DEMAND", productId="p-a")))
    b = signed_result(market.g1(g1_order(order="OD1", chargingMode="ON_DEMAND", productId="p-b")))
    assert a["instanceId"] != b["instanceId"] and market.count(Instance) == 2
    # No expireTime and not one-time: pay-per-use too, whatever the integer chargingMode means.
    params = g1_order(order="OD2", chargingMode="1", productId="p-a")
    del params["expireTime"]
    c = signed_result(market.g1(params))
    params["productId"] = "p-b"
    d = signed_result(market.g1(params))
    assert c["instanceId"] != d["instanceId"]
    # A period order is one instance whatever else changes on a retry.
    p1 = signed_result(market.g1(g1_order(order="PER", productId="p-a")))
    p2 = signed_result(market.g1(g1_order(order="PER", productId="p-b")))
    assert p1["instanceId"] == p2["instanceId"]


def test_extension_params_and_encrypted_contacts_are_decoded_and_stored(market):
    phone = encrypt_field(KEY, "13800000000", "1")
    market.g1(g1_order(business="ext", saasExtendParams=EXTEND, mobilePhone=phone, email="a@example.com"))
    [instance] = market.rows(Instance)
    assert instance.extra["saasExtendParams"] == {"machineCode": "ABCDEFGHIJKLMNOPQRSTUVWX"}
    assert instance.extra["mobilePhone"] == "13800000000" and instance.extra["email"] == "a@example.com"


def test_lifecycle_renew_expire_freeze_upgrade_query_release(market, g1_created):
    iid = g1_created
    ok = lambda params: signed_result(market.g1(params))["resultCode"] == codes.SUCCESS  # noqa: E731
    assert ok({"activity": "expireInstance", "instanceId": iid, "orderId": "CS1906666666ABCDE"})
    assert market.rows(Instance)[0].state == InstanceState.EXPIRED
    renew = {
        "activity": "refreshInstance",
        "instanceId": iid,
        "orderId": "RENEW-1",
        "expireTime": "20310727153156",
        "trialToFormal": "1",
    }
    assert ok(renew) and ok(renew)
    [instance] = market.rows(Instance)
    assert instance.state == InstanceState.ACTIVE and instance.expire_time.year == 2031
    assert ok({"activity": "instanceStatus", "instanceId": iid, "instanceStatus": "FREEZE"})
    assert market.rows(Instance)[0].state == InstanceState.FROZEN
    assert ok({"activity": "instanceStatus", "instanceId": iid, "instanceStatus": "NORMAL"})
    assert ok({"activity": "upgrade", "instanceId": iid, "orderId": "UP-1", "productId": "p-big", "skuCode": "sku-big"})
    assert market.rows(Instance)[0].sku_code == "sku-big"
    query = signed_result(market.g1({"activity": "queryInstance", "instanceId": f"{iid},unknown"}))
    assert [i["instanceId"] for i in query["info"]] == [iid]
    assert decrypt_field(KEY, query["info"][0]["appInfo"]["userName"]) == "admin"
    release = {"activity": "releaseInstance", "instanceId": iid, "orderId": "CS1906666666ABCDE"}
    assert ok(release) and ok(release)
    assert market.rows(Instance)[0].state == InstanceState.RELEASED
    kinds = [e.kind for e in market.rows(Event)]
    assert kinds == ["created", "expired", "trial_converted", "frozen", "unfrozen", "upgraded", "released"]


def test_g1_and_g2_share_one_instance_table_and_state_machine(market):
    g2 = json.loads(market.g2(new_order(business="from-g2")).data)["instanceId"]
    assert (
        signed_result(market.g1({"activity": "instanceStatus", "instanceId": g2, "instanceStatus": "FREEZE"}))[
            "resultCode"
        ]
        == codes.SUCCESS
    )
    assert market.rows(Instance)[0].state == InstanceState.FROZEN


@pytest.mark.parametrize(
    "params, code, words",
    [
        (
            {"activity": "refreshInstance", "instanceId": "nope", "orderId": "o", "expireTime": "20310101000000"},
            codes.INSTANCE_NOT_FOUND,
            "nope",
        ),
        ({"activity": "expireInstance", "instanceId": "nope", "orderId": "o"}, codes.INSTANCE_NOT_FOUND, "nope"),
        ({"activity": "releaseInstance", "instanceId": "nope"}, codes.INSTANCE_NOT_FOUND, "nope"),
        ({"activity": "queryInstance", "instanceId": "nope"}, codes.INSTANCE_NOT_FOUND, "none"),
        (
            {"activity": "instanceStatus", "instanceId": "x", "instanceStatus": "PAUSE"},
            codes.INVALID_PARAM,
            "instanceStatus",
        ),
        ({"activity": "launchRocket"}, codes.INVALID_PARAM, "launchRocket"),
        ({}, codes.INVALID_PARAM, "activity"),
    ],
)
def test_refusals_name_the_problem_and_store_nothing(market, params, code, words):
    answer = signed_result(market.g1(params))
    assert answer["resultCode"] == code and words in answer["resultMsg"]
    assert market.count(Instance) == 0 and market.count(Answer) == 0


def g1_order_with(field, value):
    """The reference order with one field changed (None: left out)."""
    params = g1_order()
    if value is None:
        del params[field]
    else:
        params[field] = value
    return params


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("orderId", "x" * 65, "orderId"),
        ("businessId", None, "businessId"),
        ("orderId", None, "orderId"),
    ],
)
def test_bad_new_instance_fields(market, field, value, words):
    answer = signed_result(market.g1(g1_order_with(field, value)))
    assert answer["resultCode"] == codes.INVALID_PARAM and words in answer["resultMsg"]
    assert market.count(Instance) == 0


def test_wrong_or_missing_token_is_refused_with_a_signed_answer(market):
    assert signed_result(market.g1(g1_order(), key="wrong-key"))["resultCode"] == codes.AUTH_FAILED
    answer = signed_result(market.send("GET", "/produce?activity=newInstance&timeStamp=20200727073711903"))
    assert answer["resultCode"] == codes.AUTH_FAILED and "authToken" in answer["resultMsg"]
    assert market.count(Instance) == 0


@pytest.mark.parametrize(
    "field, value, stored, warning",
    [
        ("customerId", None, ("customer_id", None), None),
        (
            "saasExtendParams",
            "not base64!",
            ("extra", {"saasExtendParams": {"_unreadable": "not base64!"}}),
            "saasExtendParams: not Base64 JSON",
        ),
        ("periodNumber", "two", ("period_number", None), "periodNumber: two is not a storable integer"),
        ("periodNumber", "9" * 20, ("period_number", None), "not a storable integer"),
        ("trialFlag", "yes", ("trial", True), None),
        ("customerName", "名" * 300, ("customer_name", "名" * 255), "customerName: 300 characters, cut to 255"),
        ("chargingMode", "X" * 40, ("charging_mode", "X" * 32), "chargingMode: 40 characters"),
        ("skuCode", "", ("sku_code", None), None),
        ("expireTime", "20300727153156123", ("expire_time", "2030-07-27T15:31:56.123000"), None),
    ],
)
def test_odd_but_signed_orders_are_created_with_a_warning(market, field, value, stored, warning):
    """Lenient about shape: a signed order is created; what was odd is noted on the callback log row."""
    answer = signed_result(market.g1(g1_order_with(field, value)))
    assert answer["resultCode"] == codes.SUCCESS, answer
    [instance] = market.rows(Instance)
    column, expected = stored
    got = getattr(instance, column)
    if column == "extra":
        got = {k: got[k] for k in expected}
    if column == "expire_time":
        got = got.isoformat()
    assert got == expected
    [row] = market.rows(Callback)
    assert (warning in (row.warnings or "")) if warning else not row.warnings
