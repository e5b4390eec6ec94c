"""What the live marketplace sends today (docs/protocol.md), each point's success path and its warning.

Strict about who sent it, lenient about its shape: every request here is correctly signed, so it is
answered 000000 unless the activity truly cannot be performed, and what was odd is on the callback
log row for the merchant to see.
"""

import base64
import json
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from isvapp.background import provisioning
from isvapp.domain.orderdetails import apply_order
from isvapp.koo import codes
from isvapp.koo.signing import (
    g1_signed_params,
    g2_signature,
    g2_signed_request,
    key_fingerprint,
    string_map_payload,
    verify_body_sign,
)
from isvapp.storage.models import (
    Callback,
    DetailsState,
    Event,
    Instance,
    InstanceState,
    Job,
    KitApp,
    KitUser,
    SignedRequest,
    Tenant,
)

from .helpers import KEY, KIT_KEY, SCOPE, TENANT, answer_of, created, debug_round, last_log, new_order, refresh

# --- 1. changeInstanceCheck --------------------------------------------------------------------


class RefusesDowngrades(provisioning.Provisioner):
    def change_allowed(self, instance, product_info):
        if product_info.get("skuCode") == "small":
            return "usage exceeds the smaller quota"
        return instance["state"] == "ACTIVE"


def change_check(instance_id, test_flag="0", **product):
    return {
        "activity": "changeInstanceCheck",
        "instanceId": instance_id,
        "testFlag": test_flag,
        "productInfo": {"productId": "00301-666666-0--0", "skuCode": "big", **product},
    }


def test_change_check_is_allowed_by_default(market):
    iid = created(market)
    answer = answer_of(market.g2(change_check(iid)))
    assert answer == {"resultCode": "000000", "resultMsg": "success."}
    # A check changes nothing, but claims its nonce (tests/test_nonces.py): the newInstance and the check
    assert market.count(SignedRequest) == 2


@pytest.mark.parametrize("app_config", [{"PROVISIONER": "tests.test_live_marketplace:RefusesDowngrades"}])
def test_change_check_asks_the_provisioner(market):
    iid = created(market)
    assert answer_of(market.g2(change_check(iid)))["resultCode"] == codes.SUCCESS
    refused = answer_of(market.g2(change_check(iid, skuCode="small")))
    assert refused == {"resultCode": codes.NO_RESOURCES, "resultMsg": "usage exceeds the smaller quota"}


def test_change_check_unknown_instance_real_is_000003_debug_is_success_with_warning(market):
    assert answer_of(market.g2(change_check("nope")))["resultCode"] == codes.INSTANCE_NOT_FOUND
    assert answer_of(market.g2(change_check("nope", test_flag="1")))["resultCode"] == codes.SUCCESS
    assert "instance nope does not exist" in last_log(market, "changeInstanceCheck").warnings


def test_change_check_page_example_body_verbatim(market):
    """The page's own example (en-us_topic_0000002464934193) carries an upgradeInstance body: it is answered as one."""
    iid = created(market)
    body = (
        '{"activity":"upgradeInstance","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e",'
        '"orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}'
    )
    assert (
        answer_of(market.g2(body.replace("10e758d0-31ad-4c4b-8f1b-81d03469a10e", iid).encode()))["resultCode"]
        == codes.SUCCESS
    )


# --- 2. orderNotify ----------------------------------------------------------------------------------


def test_order_notify_is_acknowledged_and_the_order_fetched_later(market):
    body = {
        "activity": "orderNotify",
        "orderId": "CS2211181819B4LVS",
        "orderLineId": "CS2211181819B4LVS-000001",
        "testFlag": "1",
    }
    first = market.g2(body)
    assert answer_of(first)["resultCode"] == codes.SUCCESS
    assert answer_of(market.g2(body)).get("resultCode") == codes.SUCCESS  # a retry adds nothing
    [job] = market.rows(Job, Job.kind == "fetch_order")
    assert job.payload == {"order_id": "CS2211181819B4LVS", "order_line_id": "CS2211181819B4LVS-000001"}
    assert [e.kind for e in market.rows(Event)] == ["order_notified"]


# --- 3. refreshInstance scenes ----------------------------------------------------------------------


def test_renewal_change_updates_expiry_and_fetches_the_order(market):
    iid = created(market)
    market.rows(Job)  # the creation's jobs
    before = market.count(Job, Job.kind == "fetch_order")
    assert answer_of(market.g2(refresh(iid, "RENEWAL_CHANGE")))["resultCode"] == codes.SUCCESS
    [instance] = market.rows(Instance)
    assert instance.expire_time.isoformat() == "2030-12-31T23:59:59"
    assert instance.details_state == DetailsState.PENDING
    assert market.count(Job, Job.kind == "fetch_order") == before + 1
    assert [e.kind for e in market.rows(Event)][-1] == "renewal_changed"
    assert not last_log(market, "refreshInstance").warnings


def test_unknown_scene_renews_with_a_warning(market):
    iid = created(market)
    assert answer_of(market.g2(refresh(iid, "SOMETHING_NEW")))["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].expire_time.isoformat() == "2030-12-31T23:59:59"
    assert "SOMETHING_NEW is not a documented refreshInstance scene" in last_log(market, "refreshInstance").warnings


# --- 4. times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expire, stored, warned",
    [
        ("20301231235959", "2030-12-31T23:59:59", False),
        ("20301231235959123", "2030-12-31T23:59:59.123000", False),  # the current refresh example's 17 digits
        ("2030-12-31 23:59:59", "2030-12-31T23:59:59", True),
        ("2030-12-31T23:59:59.5+08:00", "2030-12-31T15:59:59.500000", True),
        ("1924991999000", "2030-12-31T23:59:59", True),
    ],
)
def test_every_readable_time_is_taken(market, expire, stored, warned):
    iid = created(market)
    assert answer_of(market.g2(refresh(iid, "RENEWAL", expire)))["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].expire_time.isoformat() == stored
    assert bool(last_log(market, "refreshInstance").warnings) is warned


def test_an_unreadable_time_keeps_the_expiry_with_a_warning(market):
    iid = created(market)
    assert answer_of(market.g2(refresh(iid, "RENEWAL", "next tuesday")))["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].expire_time is None
    assert "left as it was" in last_log(market, "refreshInstance").warnings


# --- 5. null and "" mean absent ------------------------------------------------------------------------


def test_null_and_empty_optional_fields_are_absent(market):
    iid = created(market)
    body = {"activity": "releaseInstance", "instanceId": iid, "orderId": None, "orderLineId": "", "testFlag": ""}
    assert answer_of(market.g2(body))["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].state == InstanceState.RELEASED
    kit = {**TENANT, "testFlag": None, "orderId": ""}
    assert answer_of(market.kit("tenantSync", kit), KIT_KEY)["resultCode"] == codes.SUCCESS


# --- 7. Content-Type --------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_a_signed_json_body_is_read_whatever_its_content_type(market, content_type):
    raw, query = g2_signed_request(KEY, new_order())
    headers = {"Content-Type": content_type} if content_type else {}
    response = market.send("POST", "/produce", query_string=query, data=raw, headers=headers)
    assert answer_of(response)["resultCode"] == codes.SUCCESS
    assert "read as JSON" in last_log(market).warnings


# --- 8. signatures over the Map<String,String> form ---------------------------------------------------


def test_numbers_signed_as_strings_are_accepted(market):
    body = {**new_order(), "testFlag": 1}
    raw = json.dumps(body).encode()
    nonce, ts = uuid.uuid4().hex, str(int(datetime.now(UTC).timestamp() * 1000))
    query = {"signature": g2_signature(KEY, nonce, ts, string_map_payload(body)), "timestamp": ts, "nonce": nonce}
    response = market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    assert answer_of(response)["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].test_flag is True
    assert "string-map" in last_log(market).note


# --- several keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"KOO_ACCESS_KEY": f"rotated-old-key, {KEY}"}])
def test_any_configured_key_verifies_and_signs_its_own_answer(market):
    response = market.g2(new_order())
    assert answer_of(response, KEY)["resultCode"] == codes.SUCCESS
    assert not verify_body_sign("rotated-old-key", response.data, response.headers["Body-Sign"])
    row = last_log(market)
    assert row.key_fingerprint == key_fingerprint(KEY) and KEY not in (row.request or "")


# --- 9. identical resend, replay ------------------------------------------------------------------------


def test_identical_resend_gets_the_first_answer_byte_for_byte(market):
    raw, query = g2_signed_request(KEY, new_order(business="first"))
    first = market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    again = market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    assert answer_of(first)["resultCode"] == codes.SUCCESS
    assert again.data == first.data and again.headers["Body-Sign"] == first.headers["Body-Sign"]
    assert market.count(Instance) == 1 and market.count(Event) == 1
    assert "identical resend" in last_log(market).note


def test_freeze_replayed_after_unfreeze_changes_nothing(market):
    iid = created(market)
    raw, query = g2_signed_request(KEY, {"activity": "updateInstanceStatus", "instanceId": iid, "status": "FREEZE"})
    market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    answer_of(market.g2({"activity": "updateInstanceStatus", "instanceId": iid, "status": "UNFREEZE"}))
    replay = market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    assert answer_of(replay)["resultCode"] == codes.SUCCESS  # the first answer again...
    assert market.rows(Instance)[0].state == InstanceState.ACTIVE  # ...and nothing done


def test_a_recut_nonce_and_timestamp_is_refused(market):
    nonce = uuid.uuid4().hex[:-1] + "0"
    raw, query = g2_signed_request(KEY, new_order(), nonce=nonce)
    market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    recut = {**query, "nonce": nonce[:-1], "timestamp": "0" + query["timestamp"]}
    answer = answer_of(market.send("POST", "/produce", query_string=recut, data=raw, content_type="application/json"))
    assert answer["resultCode"] == codes.INVALID_PARAM and "leading zero" in answer["resultMsg"]
    assert market.count(Instance) == 1


# --- 10. Seller Console debugging, again and again ------------------------------------------------------


def test_seller_console_debugging_can_be_run_again_and_again(market):
    first, codes1 = debug_round(market)
    second, codes2 = debug_round(market)
    assert codes1 == codes2 == [codes.SUCCESS] * 6
    assert first != second
    assert [i.state for i in market.rows(Instance)] == [InstanceState.RELEASED] * 2
    assert "was released; a new one made" in market.rows(Callback, Callback.activity == "newInstance")[-1].warnings


def test_real_orders_keep_the_strict_rules(market):
    iid = created(market, order="REAL1")
    answer_of(market.g2({"activity": "releaseInstance", "instanceId": iid}))
    again = answer_of(market.g2(new_order(order="REAL1")))
    assert again["instanceId"] == iid and market.count(Instance) == 1
    assert answer_of(market.g2(refresh(iid, "RENEWAL")))["resultCode"] == codes.INSTANCE_NOT_FOUND


# --- 11. appInfo --------------------------------------------------------------------------------------


def test_g1_query_puts_encrypt_type_at_the_top(market):
    iid = created(market)
    answer = answer_of(market.g1({"activity": "queryInstance", "instanceId": iid}))
    assert list(answer)[:3] == ["resultCode", "resultMsg", "encryptType"]
    assert "encryptType" not in answer["info"][0] and answer["info"][0]["appInfo"]["userName"] != "admin"


# --- 12. Kit clientSecret -----------------------------------------------------------------------------


def java_oaep_sha256(key, text):
    """Java's OAEPWithSHA-256AndMGF1Padding: SHA-256, but MGF1 with SHA-1 by default."""
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA256(), label=None)
    return key.encrypt(text.encode(), oaep)


@pytest.mark.parametrize(
    "encode",
    [
        lambda c: base64.b64encode(c).decode(),
        lambda c: base64.encodebytes(c).decode(),  # MIME: line breaks every 76 characters
        lambda c: base64.urlsafe_b64encode(c).decode().rstrip("="),
    ],
)
def test_client_secret_from_java_defaults_and_any_base64(market, public_key, encode):
    secret = encode(java_oaep_sha256(public_key, "s3cret"))
    body = {**SCOPE, "appId": "app-1", "clientId": "client-1", "clientSecret": secret, "flag": 1, "testFlag": 0}
    assert answer_of(market.kit("applicationSync", body), KIT_KEY)["resultCode"] == codes.SUCCESS
    assert market.rows(KitApp)[0].client_secret_sealed


# --- 13. Kit shapes --------------------------------------------------------------------------------------


def test_role_and_enable_in_any_case_and_numbers_as_strings(market):
    users = [
        {"userName": "amy", "name": "Amy", "role": "ADMIN", "enable": "TRUE", "orgCode": 100},
        {"userName": "bo", "name": "Bo", "role": "User", "enable": "False"},
        {"userName": "cy", "name": "Cy", "role": "owner", "enable": "maybe"},
    ]
    body = {**SCOPE, "appId": "app-1", "userList": users, "flag": "1", "testFlag": 0}
    assert answer_of(market.kit("authSync", body), KIT_KEY)["resultCode"] == codes.SUCCESS
    got = {u.user_name: (u.role, u.enable, u.org_code) for u in market.rows(KitUser)}
    assert got == {"amy": ("admin", True, "100"), "bo": ("user", False, None), "cy": ("owner", True, None)}
    warnings = last_log(market, "authSync").warnings
    assert "role: owner is neither user nor admin" in warnings and "enable: maybe" in warnings


def test_tenant_modify_updates_only_what_it_carries(market):
    answer_of(market.kit("tenantSync", TENANT), KIT_KEY)
    body = {
        "instanceId": TENANT["instanceId"],
        "tenantId": TENANT["tenantId"],
        "name": "Renamed",
        "flag": 2,
        "testFlag": 0,
    }
    assert answer_of(market.kit("tenantSync", body), KIT_KEY)["resultCode"] == codes.SUCCESS
    [tenant] = market.rows(Tenant)
    assert (tenant.name, tenant.tenant_code, tenant.domain_name) == (
        "Renamed",
        TENANT["tenantCode"],
        TENANT["domainName"],
    )


# --- 14. URLs ------------------------------------------------------------------------------------------


def test_trailing_slashes_and_kit_under_license(market):
    assert answer_of(market.g2(new_order(order="S1"), path="/produce/"))["resultCode"] == codes.SUCCESS
    assert answer_of(market.g2(new_order(order="S2"), path="/license/"))["resultCode"] == codes.SUCCESS
    raw, headers = __import__("isvapp.koo.signing", fromlist=["x"]).kit_signed_request(KIT_KEY, TENANT)
    response = market.send("POST", "/license/produceAPI/v2/tenantSync", data=raw, headers=headers)
    assert answer_of(response, KIT_KEY)["resultCode"] == codes.SUCCESS and market.count(Tenant) == 1


def test_license_2_answers_query_and_upgrade(market):
    iid = answer_of(market.g2(new_order(order="L1"), path="/license"))["instanceId"]
    query = answer_of(market.g2({"activity": "queryInstance", "instanceId": iid}, path="/license"))
    assert query["info"][0]["instanceId"] == iid
    upgrade = {"activity": "upgradeInstance", "instanceId": iid, "orderId": "U1", "orderLineId": "U1-1"}
    assert answer_of(market.g2(upgrade, path="/license"))["resultCode"] == codes.SUCCESS


# --- 15. G1 empty optional parameters ------------------------------------------------------------------


def test_g1_empty_optional_parameters_are_accepted(market):
    params = {
        "activity": "newInstance",
        "businessId": "b-1",
        "orderId": "CS1",
        "customerId": "c-1",
        "productId": "p",
        "skuCode": "",
        "userId": "",
        "periodNumber": "",
        "expireTime": "20301231235959",
        "testFlag": "1",
    }
    assert answer_of(market.g1(params))["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].sku_code is None


def test_g1_page_example_instance_status_verbatim(market, app):
    """The G1 "Resource Status Change" example's parameters, signed now (its own token is for Huawei's key)."""
    iid = answer_of(
        market.g1(
            {
                "activity": "newInstance",
                "businessId": "huaweitest123456",
                "orderId": "CS1",
                "customerId": "c",
                "productId": "p",
                "testFlag": "1",
            }
        )
    )["instanceId"]
    assert iid == "huaweitest123456"
    for url in (
        "https://example.isv.com?activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=FREEZE"
        "&testFlag=1&timeStamp=20230327070251713&authToken=pqlrW7%2BPHC%2F1JE%2BMEjKxC94GGJreoS6PZHd982auw2o%3D",
        "https://example.isv.com?activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=NORMAL"
        "&testFlag=1&timeStamp=20230327070251713&authToken=pqlrW7%2BPHC%2F1JE%2BMEjKxC94GGJreoS6PZHd982auw2o%3D",
    ):
        from urllib.parse import parse_qsl, urlsplit

        params = dict(parse_qsl(urlsplit(url).query))
        del params["authToken"], params["timeStamp"]
        assert (
            answer_of(market.send("GET", "/produce?" + urlencode(g1_signed_params(KEY, params))))["resultCode"]
            == codes.SUCCESS
        )
    assert [e.kind for e in market.rows(Event)][-2:] == ["frozen", "unfrozen"]


# --- 16. order details: the buyer under orderInfo.buyerInfo -------------------------------------------


def test_order_details_read_the_buyer_from_buyer_info():
    from types import SimpleNamespace

    instance = SimpleNamespace(extra=None, trial=False)
    order = {
        "orderId": "O1",
        "buyerInfo": {"customerId": "cust-1", "customerName": "Buyer Ltd", "userId": "u-1", "userName": "iam-user"},
        "orderLine": [
            {
                "orderLineId": "O1-1",
                "chargingMode": "PERIOD",
                "periodType": "month",
                "periodNumber": 1,
                "expireTime": "20301231235959",
            }
        ],
    }
    apply_order(instance, order, "O1-1")
    assert (instance.customer_id, instance.customer_name, instance.user_name) == ("cust-1", "Buyer Ltd", "iam-user")
    assert instance.expire_time.isoformat() == "2030-12-31T23:59:59"


def test_tenant_modify_without_instance_changes_the_existing_tenant(market):
    answer_of(market.kit("tenantSync", TENANT), KIT_KEY)
    body = {"tenantId": TENANT["tenantId"], "name": "Renamed", "flag": 2, "testFlag": 0}
    assert answer_of(market.kit("tenantSync", body), KIT_KEY)["resultCode"] == codes.SUCCESS
    [tenant] = market.rows(Tenant)
    assert (tenant.instance_key, tenant.name) == (TENANT["instanceId"], "Renamed")
    assert "applied to every instance" in last_log(market, "tenantSync").warnings


def test_a_renewal_retried_after_release_gets_its_first_answer(market):
    iid = created(market)
    first = market.g2(refresh(iid, "RENEWAL"))
    answer_of(market.g2({"activity": "releaseInstance", "instanceId": iid}))
    retry = market.g2(refresh(iid, "RENEWAL"))  # a fresh signature and nonce: the marketplace's retry
    assert retry.data == first.data


def test_kit_paths_take_a_trailing_slash(market):
    from isvapp.koo.signing import kit_signed_request

    raw, headers = kit_signed_request(KIT_KEY, TENANT)
    response = market.send("POST", "/produce/produceAPI/v2/tenantSync/", data=raw, headers=headers)
    assert answer_of(response, KIT_KEY)["resultCode"] == codes.SUCCESS
