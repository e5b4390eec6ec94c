"""POST /produce (G2): every activity's success and failure paths, bad input, replay, the log."""

import json
import time

import pytest
from isvapp.koo import codes
from isvapp.koo.fieldcrypto import decrypt_field
from isvapp.koo.signing import g2_signed_request
from isvapp.storage.models import Answer, Callback, Conflict, Event, Instance, InstanceState, SignedRequest

from .helpers import KEY, new_order, result


@pytest.fixture
def created(market):
    body = new_order()
    answer = result(market.g2(body))
    assert answer["resultCode"] == codes.SUCCESS
    return answer["instanceId"]


# --- newInstance -------------------------------------------------------------------------------


def test_new_instance_answers_business_id_and_stores_pending_instance(market):
    body = new_order(business="biz-1")
    response = market.g2(body)
    assert response.data == b'{"resultCode":"000000","resultMsg":"success.","instanceId":"biz-1"}'
    [instance] = market.rows(Instance)
    assert (instance.instance_id, instance.order_id, instance.state, instance.details_state, instance.generation) == (
        "biz-1",
        body["orderId"],
        InstanceState.ACTIVE,
        "pending",
        "G2",
    )
    assert [e.kind for e in market.rows(Event)] == ["created"]


def test_repeat_with_new_business_id_replays_first_answer_byte_for_byte(market):
    first = market.g2(new_order(business="first"))
    again = [market.g2(new_order(business=f"retry-{i}")) for i in range(3)]
    assert all(r.data == first.data for r in again)
    assert market.count(Instance) == 1 and market.count(Event) == 1 and market.count(Conflict) == 0


def test_same_key_different_payload_replays_and_records_conflict(market):
    first = market.g2(new_order(business="first", test_flag="0"))
    second = market.g2(new_order(business="second", test_flag="1"))
    assert second.data == first.data
    [conflict] = market.rows(Conflict)
    assert conflict.key.startswith("newInstance|") and conflict.instance_id == "first"
    assert market.count(Instance) == 1


def test_test_flag_marks_instance(market):
    market.g2(new_order(test_flag="1"))
    assert market.rows(Instance)[0].test_flag is True


# --- refreshInstance ----------------------------------------------------------------------------


@pytest.mark.parametrize("scene", ["RENEWAL", "TRIAL_TO_FORMAL", "UNSUBSCRIBE_RENEWAL_PERIOD"])
def test_refresh_sets_expiry(market, created, scene):
    body = {
        "activity": "refreshInstance",
        "instanceId": created,
        "orderId": "R1",
        "orderLineId": "R1-1",
        "scene": scene,
        "expireTime": "20301231235959",
        "productId": "p-new",
    }
    assert result(market.g2(body))["resultCode"] == codes.SUCCESS
    [instance] = market.rows(Instance)
    assert instance.expire_time.isoformat() == "2030-12-31T23:59:59" and instance.product_id == "p-new"
    assert market.g2(body).data == b'{"resultCode":"000000","resultMsg":"success."}'
    assert [e.kind for e in market.rows(Event)].count("created") == 1 and market.count(Event) == 2


def test_refresh_unknown_instance_is_000003_and_stores_nothing(market):
    body = {
        "activity": "refreshInstance",
        "instanceId": "nope",
        "orderId": "R1",
        "orderLineId": "R1-1",
        "scene": "RENEWAL",
        "expireTime": "20301231235959",
    }
    assert result(market.g2(body))["resultCode"] == codes.INSTANCE_NOT_FOUND
    assert market.count(Answer) == 0


@pytest.mark.parametrize("change, field", [({"orderId": None}, "orderId"), ({"instanceId": ""}, "instanceId")])
def test_refresh_bad_fields_are_named(market, created, change, field):
    body = {
        "activity": "refreshInstance",
        "instanceId": created,
        "orderId": "R1",
        "orderLineId": "R1-1",
        "scene": "RENEWAL",
        "expireTime": "20301231235959",
        **change,
    }
    answer = result(market.g2({k: v for k, v in body.items() if v is not None}))
    assert answer["resultCode"] == codes.INVALID_PARAM and answer["resultMsg"].startswith(field)
    assert market.rows(Instance)[0].expire_time is None


# --- updateInstanceStatus, upgradeInstance, releaseInstance ---------------------------------------


def test_freeze_unfreeze_is_idempotent(market, created):
    def status(value):
        return result(market.g2({"activity": "updateInstanceStatus", "instanceId": created, "status": value}))

    assert status("FREEZE")["resultCode"] == codes.SUCCESS
    assert status("FREEZE")["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].state == InstanceState.FROZEN
    assert status("UNFREEZE")["resultCode"] == codes.SUCCESS
    assert market.rows(Instance)[0].state == InstanceState.ACTIVE
    assert [e.kind for e in market.rows(Event)] == ["created", "frozen", "unfrozen"]
    assert status("MELT")["resultCode"] == codes.INVALID_PARAM


def test_upgrade_keeps_instance_id_and_marks_details_pending(market, created):
    body = {"activity": "upgradeInstance", "instanceId": created, "orderId": "U1", "orderLineId": "U1-1"}
    assert result(market.g2(body))["resultCode"] == codes.SUCCESS
    assert result(market.g2(body))["resultCode"] == codes.SUCCESS
    assert [e.kind for e in market.rows(Event)] == ["created", "upgraded"]
    body["instanceId"] = "missing"
    assert result(market.g2(body))["resultCode"] == codes.INSTANCE_NOT_FOUND


def test_release_keeps_row_and_second_release_succeeds(market, created):
    body = {"activity": "releaseInstance", "instanceId": created}
    assert result(market.g2(body))["resultCode"] == codes.SUCCESS
    assert result(market.g2(body))["resultCode"] == codes.SUCCESS
    [instance] = market.rows(Instance)
    assert instance.state == InstanceState.RELEASED and instance.released_at is not None
    assert (
        result(market.g2({"activity": "releaseInstance", "instanceId": "never"}))["resultCode"]
        == codes.INSTANCE_NOT_FOUND
    )
    freeze = {"activity": "updateInstanceStatus", "instanceId": created, "status": "FREEZE"}
    assert result(market.g2(freeze))["resultCode"] == codes.INSTANCE_NOT_FOUND


# --- queryInstance ------------------------------------------------------------------------------


@pytest.mark.parametrize("app_config", [{"KOO_V2_PLAINTEXT_APPINFO": False}])
def test_query_returns_encrypted_app_info_when_configured(market, app):
    ids = [result(market.g2(new_order(order=f"Q{i}")))["instanceId"] for i in range(3)]
    answer = result(market.g2({"activity": "queryInstance", "instanceId": ",".join(ids + ["unknown"])}))
    assert answer["resultCode"] == codes.SUCCESS
    assert [i["instanceId"] for i in answer["info"]] == ids
    info = answer["info"][0]
    assert info["encryptType"] == "1"
    assert decrypt_field(KEY, info["appInfo"]["userName"], "1") == "admin"
    password = decrypt_field(KEY, info["appInfo"]["password"], "1")
    assert len(password) == 16 and info["appInfo"]["frontEndUrl"].endswith(ids[0])


def test_query_answers_plaintext_app_info_by_default(market):
    """The current V2 queryInstance page (intl topic_0070649093) has userName/password in plain text."""
    iid = result(market.g2(new_order()))["instanceId"]
    info = result(market.g2({"activity": "queryInstance", "instanceId": iid}))["info"][0]
    assert info["appInfo"]["userName"] == "admin" and "encryptType" not in info
    assert len(info["appInfo"]["password"]) == 16


def test_query_limits(market):
    assert (
        result(market.g2({"activity": "queryInstance", "instanceId": "a,b"}))["resultCode"] == codes.INSTANCE_NOT_FOUND
    )
    known = result(market.g2(new_order()))["instanceId"]
    many = ",".join([known] + [f"i{n}" for n in range(100)] + ["x" * 65])
    answer = result(market.g2({"activity": "queryInstance", "instanceId": many}))
    assert answer["resultCode"] == codes.SUCCESS and [i["instanceId"] for i in answer["info"]] == [known]
    [row] = market.rows(Callback, Callback.activity == "queryInstance", Callback.result_code == codes.SUCCESS)
    assert "more than the documented 100" in row.warnings and "longer than 64" in row.warnings


# --- verification through the endpoint ----------------------------------------------------------


def test_replayed_nonce_is_refused_and_changes_nothing(market):
    raw, query = g2_signed_request(KEY, new_order(business="n1"))
    first = market.send("POST", "/produce", query_string=query, data=raw, content_type="application/json")
    assert result(first)["resultCode"] == codes.SUCCESS
    body = new_order(business="n2", order="OTHER")
    raw2, query2 = g2_signed_request(KEY, body, nonce=query["nonce"])
    again = market.send("POST", "/produce", query_string=query2, data=raw2, content_type="application/json")
    answer = result(again)
    assert answer["resultCode"] == codes.AUTH_FAILED and "nonce" in answer["resultMsg"]
    assert market.count(Instance) == 1 and market.count(SignedRequest) == 1


def test_stale_and_future_timestamps_are_refused(market):
    now = int(time.time() * 1000)
    for ts in (now - 120_000, now + 120_000):
        answer = result(market.g2(new_order(), timestamp=ts))
        assert answer["resultCode"] == codes.INVALID_PARAM and "window" in answer["resultMsg"]
    assert market.count(Instance) == 0


# --- bad input: always HTTP 200 + envelope, nothing stored ---------------------------------------


def signed(raw, key=KEY):
    _, query = g2_signed_request(key, raw)
    return query


BAD_REQUESTS = [
    (
        "malformed JSON",
        "POST",
        lambda: dict(data=b'{"activity":', query_string=signed(b'{"activity":'), content_type="application/json"),
        codes.INVALID_PARAM,
        "not valid JSON",
    ),
    (
        "empty body",
        "POST",
        lambda: dict(data=b"", query_string=signed(b""), content_type="application/json"),
        codes.INVALID_PARAM,
        "empty",
    ),
    (
        "array body",
        "POST",
        lambda: dict(data=b"[1]", query_string=signed(b"[1]"), content_type="application/json"),
        codes.INVALID_PARAM,
        "JSON object",
    ),
    (
        "string body",
        "POST",
        lambda: dict(data=b'"x"', query_string=signed(b'"x"'), content_type="application/json"),
        codes.INVALID_PARAM,
        "JSON object",
    ),
    ("no signature", "POST", lambda: dict(data=b"{}", content_type="application/json"), codes.AUTH_FAILED, "signature"),
    (
        "wrong key",
        "POST",
        lambda: dict(data=b"{}", query_string=signed(b"{}", key="other"), content_type="application/json"),
        codes.AUTH_FAILED,
        "does not match",
    ),
    ("wrong method", "PUT", lambda: dict(data=b"{}"), codes.INVALID_PARAM, "PUT"),
    ("wrong method DELETE", "DELETE", lambda: dict(), codes.INVALID_PARAM, "DELETE"),
    (
        "unknown activity",
        "POST",
        lambda: dict(
            data=b'{"activity":"dance"}', query_string=signed(b'{"activity":"dance"}'), content_type="application/json"
        ),
        codes.INVALID_PARAM,
        "dance",
    ),
    (
        "missing activity",
        "POST",
        lambda: dict(data=b'{"orderId":"x"}', query_string=signed(b'{"orderId":"x"}'), content_type="application/json"),
        codes.INVALID_PARAM,
        "activity",
    ),
]


@pytest.mark.parametrize("name, method, request_kwargs, code, words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_answer_envelope_and_store_nothing(market, name, method, request_kwargs, code, words):
    answer = result(market.send(method, "/produce", **request_kwargs()))
    assert answer["resultCode"] == code and words in answer["resultMsg"]
    assert market.count(Instance) == 0 and market.count(Answer) == 0 and market.count(SignedRequest) == 0


@pytest.mark.parametrize("path", ["/produce/v2/unknown", "/produce/unknown", "/license/zzz"])
def test_unknown_paths_under_marketplace_prefixes(market, path):
    answer = result(market.send("POST", path, data=b"{}", content_type="application/json"))
    assert answer["resultCode"] == codes.INVALID_PARAM


@pytest.mark.parametrize(
    "change, field",
    [
        ({"orderId": None}, "orderId"),
        ({"orderLineId": ""}, "orderLineId"),
        ({"businessId": "x" * 65}, "businessId"),
        ({"orderId": ["a"]}, "orderId"),
        ({"businessId": {"a": 1}}, "businessId"),
    ],
)
def test_new_instance_field_errors_name_the_field(market, change, field):
    body = {**new_order(), **change}
    answer = result(market.g2({k: v for k, v in body.items() if v is not None}))
    assert answer["resultCode"] == codes.INVALID_PARAM and answer["resultMsg"].startswith(field + ":")
    assert market.count(Instance) == 0 and market.count(Answer) == 0


@pytest.mark.parametrize("app_config", [{"KOO_MAX_BODY_BYTES": 1024}])
def test_oversize_body(app, market):
    raw = json.dumps({**new_order(), "pad": "x" * 2000}).encode()
    answer = result(
        market.send("POST", "/produce", data=raw, query_string=signed(raw), content_type="application/json")
    )
    assert answer["resultCode"] == codes.INVALID_PARAM and "larger than 1024" in answer["resultMsg"]
    assert market.count(Instance) == 0


@pytest.mark.parametrize("where", ["prepare", "under the lock"])
def test_unexpected_exception_is_000005(market, monkeypatch, where):
    """Before the lock (the plan's making) or under it (the last write of the plan, after the
    instance's): 000005, and the transaction leaves nothing behind."""
    from isvapp.domain import callbacklog, lifecycle

    def boom(*a, **k):
        raise RuntimeError("boom")

    if where == "prepare":
        monkeypatch.setattr(lifecycle, "prepare_new_instance", boom)
    else:
        monkeypatch.setattr(callbacklog, "_now_done", boom)
    answer = result(market.g2(new_order()))
    assert answer == {"resultCode": codes.INTERNAL_ERROR, "resultMsg": "internal error"}
    assert market.count(Instance) == 0 and market.count(SignedRequest) == 0


def test_unconfigured_key_is_000005(tmp_path):
    from isvapp import create_app
    from isvapp.storage.schema import init_db

    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "s"})
    with app.app_context():
        init_db()
    response = app.test_client().post(
        "/produce",
        data=b"{}",
        query_string={"signature": "a", "timestamp": "1", "nonce": "n"},
        content_type="application/json",
    )
    assert response.status_code == 200 and json.loads(response.data)["resultCode"] == codes.INTERNAL_ERROR
    assert "Body-Sign" not in response.headers


# --- callback log --------------------------------------------------------------------------------


def test_callback_log_records_every_request_with_secrets_redacted(market):
    iid = result(market.g2(new_order(business="logged")))["instanceId"]
    market.g2({"activity": "queryInstance", "instanceId": iid})
    market.send("PUT", "/produce")
    rows = market.rows(Callback)
    assert [(r.activity, r.result_code) for r in rows] == [
        ("newInstance", "000000"),
        ("queryInstance", "000000"),
        (None, "000002"),
    ]
    new, query, bad = rows
    assert new.instance_id is None or new.instance_id == "logged"
    assert new.order_id == "CS2211181819B4LVS" and new.business_id == "logged" and new.generation == "G2"
    assert new.duration_ms is not None and new.test_flag is False
    assert '"signature": "***"' in new.request and "password" in query.response
    assert '"password": "***"' in query.response and '"userName": "***"' not in query.response
