"""Several products' keys on one server: an instance, license or Kit tenant belongs to the key that
created it, and another key is answered as if it did not exist (docs/protocol.md, "Key ownership").

The review's finding: product B's key read product A's buyer's password with queryInstance, and
released A's instance through /license.
"""

import json
import uuid

import pytest
import requests
from isvapp.dashboard import golive
from isvapp.extensions import db
from isvapp.koo import codes
from isvapp.koo.fieldcrypto import decrypt_field
from isvapp.koo.signing import g1_signed_params, g2_signed_request, key_fingerprint, verify_body_sign
from isvapp.storage.models import Instance, InstanceState, KitApp, License, LicenseState, Tenant
from sqlalchemy import update

from .helpers import KEY, KIT_KEY, SCOPE, TENANT, auth, g1_order, new_order, users
from .live import LiveServer

KEY_B = "b9b8b7b6-0000-1111-2222-bbbbbbbbbbbb"
KIT_KEY_B = "kit-b-0000-1111-2222-bbbbbbbbbbbb"
TWO_KEYS = {"KOO_ACCESS_KEY": [KEY, KEY_B], "KOO_KIT_ACCESS_KEY": [KIT_KEY, KIT_KEY_B]}
SHARED = {**TWO_KEYS, "KOO_SHARE_INSTANCES_ACROSS_KEYS": True}


@pytest.fixture
def app_config():
    """Two products on one server: A's keys (the conftest's KEY, KIT_KEY) and B's."""
    return dict(TWO_KEYS)


def answer(response, key):
    body = response.content if isinstance(response, requests.Response) else response.data
    assert response.status_code == 200
    assert verify_body_sign(key, body, response.headers["Body-Sign"])
    return json.loads(body)


def code(response, key):
    return answer(response, key)["resultCode"]


def g2_created(market, key=KEY, path="/produce", **order):
    reply = answer(market.g2(new_order(**order), key=key, path=path), key)
    assert reply["resultCode"] == codes.SUCCESS, reply
    return reply["instanceId"]


def g2_activities(iid, test_flag="0"):
    """Every G2 activity on an instance, by name."""
    return {
        "queryInstance": {"activity": "queryInstance", "instanceId": iid, "testFlag": test_flag},
        "refreshInstance": {
            "activity": "refreshInstance",
            "instanceId": iid,
            "orderId": "RENEW-1",
            "orderLineId": "RENEW-1-1",
            "scene": "RENEWAL",
            "expireTime": "20400101000000",
            "testFlag": test_flag,
        },
        "updateInstanceStatus": {
            "activity": "updateInstanceStatus",
            "instanceId": iid,
            "status": "FREEZE",
            "testFlag": test_flag,
        },
        "upgradeInstance": {
            "activity": "upgradeInstance",
            "instanceId": iid,
            "orderId": "UP-1",
            "orderLineId": "UP-1-1",
            "testFlag": test_flag,
        },
        "changeInstanceCheck": {
            "activity": "changeInstanceCheck",
            "instanceId": iid,
            "testFlag": test_flag,
            "productInfo": {"productId": "p", "skuCode": "big"},
        },
        "releaseInstance": {"activity": "releaseInstance", "instanceId": iid, "orderId": "o", "testFlag": test_flag},
    }


def instance(market, iid):
    [row] = market.rows(Instance, Instance.instance_id == iid)
    return row


# --- G2 /produce ----------------------------------------------------------------------------------


def test_an_instance_records_the_fingerprint_of_the_key_that_created_it(market):
    a, b = g2_created(market, order="ORDER-A"), g2_created(market, key=KEY_B, order="ORDER-B")
    assert instance(market, a).key_fingerprint == key_fingerprint(KEY)
    assert instance(market, b).key_fingerprint == key_fingerprint(KEY_B)
    assert KEY not in instance(market, a).key_fingerprint


@pytest.mark.parametrize("activity", list(g2_activities("x")))
def test_another_key_gets_000003_for_every_g2_activity_and_changes_nothing(market, activity):
    iid = g2_created(market)
    before = instance(market, iid)
    reply = answer(market.g2(g2_activities(iid)[activity], key=KEY_B), KEY_B)
    assert reply["resultCode"] == codes.INSTANCE_NOT_FOUND, reply
    assert "info" not in reply and "password" not in json.dumps(reply)
    after = instance(market, iid)
    assert (after.state, after.expire_time, after.details_state) == (
        before.state,
        before.expire_time,
        before.details_state,
    )


def test_a_debugging_call_by_another_key_gets_the_leniency_and_changes_nothing(market):
    iid = g2_created(market)
    for name, body in g2_activities(iid, test_flag="1").items():
        reply = answer(market.g2(body, key=KEY_B), KEY_B)
        assert reply["resultCode"] == codes.SUCCESS, (name, reply)
        assert reply.get("info", []) == []
    assert instance(market, iid).state == InstanceState.ACTIVE
    # ...and A's own renewal afterwards is not answered from anything B's calls stored.
    body = g2_activities(iid)["refreshInstance"]
    assert code(market.g2(body), KEY) == codes.SUCCESS
    assert instance(market, iid).expire_time.year == 2040


def test_the_creating_key_still_can_do_everything(market):
    iid = g2_created(market)
    for name, body in g2_activities(iid).items():
        reply = answer(market.g2(body), KEY)
        assert reply["resultCode"] == codes.SUCCESS, (name, reply)
        if name == "queryInstance":
            assert reply["info"][0]["appInfo"]["password"]
    assert instance(market, iid).state == InstanceState.RELEASED


def test_query_of_several_ids_answers_only_the_asking_keys_instances(market):
    a, b = g2_created(market, order="ORDER-A"), g2_created(market, key=KEY_B, order="ORDER-B")
    reply = answer(
        market.g2({"activity": "queryInstance", "instanceId": f"{a},{b}", "testFlag": "0"}, key=KEY_B), KEY_B
    )
    assert [i["instanceId"] for i in reply["info"]] == [b]


def test_a_repeat_of_an_order_by_another_key_gets_an_instance_of_its_own(market):
    a = g2_created(market, order="SAME", line="SAME-1", business="biz-a")
    b = g2_created(market, key=KEY_B, order="SAME", line="SAME-1", business="biz-a")
    assert b != a
    assert instance(market, b).key_fingerprint == key_fingerprint(KEY_B)
    # Each key's retries keep getting its own instance.
    assert g2_created(market, order="SAME", line="SAME-1") == a
    assert g2_created(market, key=KEY_B, order="SAME", line="SAME-1") == b
    assert market.count(Instance) == 2


# --- rows from before, and the sharing setting --------------------------------------------------------


def test_rows_without_an_owner_are_usable_by_every_key_with_a_go_live_warning(app, market):
    a = g2_created(market, order="OLD-A")
    market.kit("tenantSync", TENANT)
    with app.app_context():
        db.session.execute(update(Instance).values(key_fingerprint=None))
        db.session.execute(update(Tenant).values(key_fingerprint=None))
        db.session.commit()
        [item] = [h for h in golive.health(app, app.extensions["isvapp"]) if h.key == "unowned"]
    assert item.state == "warn" and item.params == {"instances": 1, "tenants": 1}
    assert item.detail == "%(instances)s instances, %(tenants)s Kit tenants: usable by every key"
    reply = answer(market.g2(g2_activities(a)["queryInstance"], key=KEY_B), KEY_B)
    assert reply["info"][0]["instanceId"] == a
    assert code(market.kit("authSync", auth(1, users("alice")), key=KIT_KEY_B), KIT_KEY_B) == codes.SUCCESS
    assert code(market.g2(g2_activities(a)["releaseInstance"], key=KEY_B), KEY_B) == codes.SUCCESS
    assert code(market.g2(g2_activities(a)["releaseInstance"]), KEY) == codes.SUCCESS  # releasing again


def test_go_live_shows_no_unowned_rows_on_a_fresh_server(app, market):
    g2_created(market)
    with app.app_context():
        [item] = [h for h in golive.health(app, app.extensions["isvapp"]) if h.key == "unowned"]
        assert not [h for h in golive.health(app, app.extensions["isvapp"]) if h.key == "shared"]
    assert (item.state, item.detail) == ("ok", "none")


@pytest.mark.parametrize("app_config", [SHARED])
def test_the_sharing_setting_lets_another_key_act(app, market):
    iid = g2_created(market)
    for name, body in g2_activities(iid).items():
        reply = answer(market.g2(body, key=KEY_B), KEY_B)
        assert reply["resultCode"] == codes.SUCCESS, (name, reply)
    assert instance(market, iid).state == InstanceState.RELEASED
    # A repeat of the order by the other key (a retry after a rotation) finds the first instance.
    assert g2_created(market, key=KEY_B) == iid
    with app.app_context():
        [item] = [h for h in golive.health(app, app.extensions["isvapp"]) if h.key == "shared"]
    assert item.state == "warn"


# --- G1 GET /produce ---------------------------------------------------------------------------------


def g1(market, params, key):
    return answer(market.g1(params, key=key), key)


def test_g1_another_key_cannot_touch_the_instance(market):
    iid = g1(market, g1_order(business="g1-a", testFlag="0"), KEY)["instanceId"]
    refused = [
        {"activity": "queryInstance", "instanceId": iid, "testFlag": "0"},
        {
            "activity": "refreshInstance",
            "instanceId": iid,
            "orderId": "R-1",
            "expireTime": "20400101000000",
            "testFlag": "0",
        },
        {"activity": "expireInstance", "instanceId": iid, "orderId": "o", "testFlag": "0"},
        {"activity": "instanceStatus", "instanceId": iid, "instanceStatus": "FREEZE", "testFlag": "0"},
        {
            "activity": "upgrade",
            "instanceId": iid,
            "orderId": "UP-1",
            "productId": "p-big",
            "skuCode": "big",
            "testFlag": "0",
        },
        {"activity": "releaseInstance", "instanceId": iid, "orderId": "o", "testFlag": "0"},
    ]
    for params in refused:
        reply = g1(market, params, KEY_B)
        assert reply["resultCode"] == codes.INSTANCE_NOT_FOUND, (params["activity"], reply)
        assert "info" not in reply
    row = instance(market, iid)
    assert (row.state, row.sku_code, row.expire_time.year) == (InstanceState.ACTIVE, "sku-1", 2030)
    query = g1(market, {"activity": "queryInstance", "instanceId": iid, "testFlag": "0"}, KEY)
    assert decrypt_field(KEY, query["info"][0]["appInfo"]["userName"]) == "admin"


def test_g1_new_instance_by_another_key_does_not_return_the_first_keys_credentials(market):
    first = g1(market, g1_order(order="G1-SAME", business="one", testFlag="0"), KEY)
    second = g1(market, g1_order(order="G1-SAME", business="two", testFlag="0"), KEY_B)
    assert second["instanceId"] != first["instanceId"]
    assert decrypt_field(KEY_B, second["appInfo"]["password"])  # B's own, encrypted with B's key


# --- License ------------------------------------------------------------------------------------------


def test_license_2_another_key_cannot_query_renew_or_release(market):
    iid = g2_created(market, path="/license")
    for name, body in g2_activities(iid).items():
        if name == "changeInstanceCheck":
            continue
        reply = answer(market.g2(body, key=KEY_B, path="/license"), KEY_B)
        assert reply["resultCode"] == codes.INSTANCE_NOT_FOUND, (name, reply)
    body = {
        "activity": "getLicenseAsync",
        "instanceId": iid,
        "eventId": "ev-1",
        "deviceFingerprint": "dev",
        "testFlag": "0",
    }
    assert code(market.g2(body, key=KEY_B, path="/license"), KEY_B) == codes.INSTANCE_NOT_FOUND
    assert market.count(License) == 0
    assert code(market.g2(body, path="/license"), KEY) == codes.SUCCESS
    [license_row] = market.rows(License)
    assert license_row.key_fingerprint == key_fingerprint(KEY)
    release = {**g2_activities(iid)["releaseInstance"], "testFlag": "1"}  # debugging: success, nothing done
    assert code(market.g2(release, key=KEY_B, path="/license"), KEY_B) == codes.SUCCESS
    assert market.rows(License)[0].state == LicenseState.ACTIVE
    assert instance(market, iid).state == InstanceState.ACTIVE


def test_license_g1_another_key_cannot_expire_or_release(market):
    reply = answer(
        market.g1({**g1_order(business="lic-a", testFlag="0"), "activity": "getLicense"}, path="/license"), KEY
    )
    assert reply["resultCode"] == codes.SUCCESS
    iid = market.rows(Instance)[0].instance_id
    for activity in ("expireLicense", "releaseLicense"):
        for test_flag in ("0", "1"):
            params = {"activity": activity, "instanceId": iid, "orderId": "o", "testFlag": test_flag}
            got = answer(market.g1(params, key=KEY_B, path="/license"), KEY_B)
            assert got["resultCode"] == (codes.INSTANCE_NOT_FOUND if test_flag == "0" else codes.SUCCESS)
    refresh = {
        "activity": "refreshLicense",
        "instanceId": iid,
        "orderId": "R",
        "expireTime": "20400101000000",
        "testFlag": "0",
    }
    got = answer(market.g1(refresh, key=KEY_B, path="/license"), KEY_B)
    assert got["resultCode"] == codes.INSTANCE_NOT_FOUND and "license" not in got
    assert [row.state for row in market.rows(License)] == [LicenseState.ACTIVE]
    assert instance(market, iid).state == InstanceState.ACTIVE


# --- Kit ------------------------------------------------------------------------------------------------


def test_kit_b_cannot_touch_tenant_a(market):
    def kit(name, body, key):
        return code(market.kit(name, body, key=key), key)

    assert kit("tenantSync", TENANT, KIT_KEY) == codes.SUCCESS
    assert market.rows(Tenant)[0].key_fingerprint == key_fingerprint(KIT_KEY)
    assert kit("authSync", auth(1, users("alice")), KIT_KEY) == codes.SUCCESS
    assert kit("tenantSync", {**TENANT, "name": "taken", "flag": 2}, KIT_KEY_B) == codes.INSTANCE_NOT_FOUND
    assert kit("tenantSync", {**TENANT, "name": "taken"}, KIT_KEY_B) == codes.INSTANCE_NOT_FOUND
    assert (
        kit("applicationSync", {**SCOPE, "appId": "app-b", "name": "b", "flag": 1, "testFlag": 0}, KIT_KEY_B)
        == codes.INSTANCE_NOT_FOUND
    )
    assert kit("authSync", auth(0, users("alice")), KIT_KEY_B) == codes.SUCCESS  # a delete: nothing changed
    assert kit("authSync", auth(2, users("alice", role="admin")), KIT_KEY_B) == codes.INSTANCE_NOT_FOUND
    assert (
        kit("singleOrgSync", {**SCOPE, "orgCode": "d1", "orgName": "x", "flag": 1, "testFlag": 0}, KIT_KEY_B)
        == codes.INSTANCE_NOT_FOUND
    )
    assert kit("tenantSync", {**SCOPE, "flag": 0, "testFlag": 0}, KIT_KEY_B) == codes.SUCCESS
    [tenant] = market.rows(Tenant)
    assert (tenant.name, tenant.state) == (TENANT["name"], "ACTIVE")
    assert market.count(KitApp) == 0
    # A modify that names no instance changes only the asking key's tenants.
    assert (
        kit("tenantSync", {"tenantId": TENANT["tenantId"], "name": "other", "flag": 2, "testFlag": 0}, KIT_KEY_B)
        == codes.SUCCESS
    )
    assert [t.name for t in market.rows(Tenant, Tenant.instance_key == SCOPE["instanceId"])] == [TENANT["name"]]
    # Kit A still can.
    assert kit("tenantSync", {**TENANT, "name": "renamed", "flag": 2}, KIT_KEY) == codes.SUCCESS
    assert market.rows(Tenant, Tenant.instance_key == SCOPE["instanceId"])[0].name == "renamed"


# --- the attack as the reviewer made it, through a real gunicorn -------------------------------------------


@pytest.mark.live
def test_live_product_b_key_cannot_read_product_a_password(tmp_path):
    env = {"ISVAPP_KOO_ACCESS_KEY": f"{KEY},{KEY_B}"}
    with LiveServer(tmp_path / "instance", workers=2, env=env) as live:

        def g2(body, key):
            raw, query = g2_signed_request(key, body)
            response = requests.post(
                live.url + "/produce", params=query, data=raw, headers={"Content-Type": "application/json"}, timeout=10
            )
            return answer(response, key)

        iid = g2(new_order(order=f"LIVE-{uuid.uuid4().hex[:8]}"), KEY)["instanceId"]
        query = {"activity": "queryInstance", "instanceId": iid, "testFlag": "0"}
        mine = g2(query, KEY)
        assert mine["info"][0]["appInfo"]["password"]
        stolen = g2(query, KEY_B)
        assert stolen["resultCode"] == codes.INSTANCE_NOT_FOUND
        assert "info" not in stolen and mine["info"][0]["appInfo"]["password"] not in json.dumps(stolen)
        g1_query = requests.get(live.url + "/produce", params=g1_signed_params(KEY_B, query), timeout=10)
        assert answer(g1_query, KEY_B)["resultCode"] == codes.INSTANCE_NOT_FOUND
        release = {"activity": "releaseInstance", "instanceId": iid, "orderId": "o", "testFlag": "0"}
        raw, signed = g2_signed_request(KEY_B, release)
        released = requests.post(live.url + "/license", params=signed, data=raw, timeout=10)
        assert answer(released, KEY_B)["resultCode"] == codes.INSTANCE_NOT_FOUND
        assert g2(query, KEY)["info"][0]["instanceId"] == iid  # still A's, still there
