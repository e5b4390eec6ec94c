"""The fake marketplace (isvapp.standins.fakemarket), part by part: the orders it answers, what it
keeps, the faults a test asks for, and the app in process (Flask's test client, no server)."""

import json
from datetime import UTC, datetime

import pytest
from isvapp.koo import apig, licensecodes
from isvapp.market.openapi import ORDER_QUERY, USAGE_PUSH
from isvapp.standins.fakemarket import create_fake_market
from isvapp.standins.fakemarket.orders import order_info
from isvapp.standins.fakemarket.state import MarketState
from isvapp.standins.fakemarket.views import injected_fault

AK, SK, USAGE_KEY = "fake-ak", "fake-sk", "fake-usage-key"
NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def test_a_mock_order_carries_its_documented_type_mode_and_period():
    trial = order_info("MOCKPERIODDAYTRIAL", now=NOW)
    (line,) = trial["orderLine"]
    assert (trial["orderType"], line["chargingMode"], line["periodType"], line["periodNumber"]) == (
        "NEW",
        "PERIOD",
        "day",
        7,
    )
    assert line["trialFlag"] == "1" and line["expireTime"] == "20261211080000"
    assert line["orderLineId"] == "MOCKPERIODDAYTRIAL-000001" and trial["createTime"] == "20261204080000"
    (once,) = order_info("MOCKONETIMENEW", "line-7", now=NOW)["orderLine"]
    assert once["chargingMode"] == "ONE_TIME" and once["orderLineId"] == "line-7"
    assert "expireTime" not in once and "trialFlag" not in once


def test_any_other_order_id_is_a_plausible_monthly_order():
    order = order_info("CS-ANY", now=NOW)
    (line,) = order["orderLine"]
    assert order["orderType"] == "NEW" and line["periodType"] == "month" and line["expireTime"] == "20270104080000"


def test_the_state_keeps_a_usage_record_once_and_refuses_its_repeat():
    state = MarketState()
    assert state.take_usage([{"metering_sn": "a", "v": 1}, {"metering_sn": "b", "v": 2}]) == []
    errors = state.take_usage([{"metering_sn": "a", "v": 9}, {"metering_sn": "c", "v": 3}])
    assert errors == [{"metering_sn": "a", "error_code": "005", "error_msg": "duplicate SDR id"}]
    assert state.usage == {
        "a": {"metering_sn": "a", "v": 1},
        "b": {"metering_sn": "b", "v": 2},
        "c": {"metering_sn": "c", "v": 3},
    }


def test_the_state_counts_activations_and_keeps_uploads_per_event():
    state = MarketState()
    state.count_activation("PL1")
    state.count_activation("PL1")
    state.record_upload("evt", b"one")
    state.record_upload("evt", b"two")
    assert state.activated == {"PL1": 2} and state.uploads == {"evt": [b"one", b"two"]}


def test_faults_are_used_up_failures_first_then_the_answers_in_order():
    config = {
        "FAKE_MARKET_DELAY_S": 0,
        "FAKE_MARKET_FAIL_NEXT": 1,
        "FAKE_MARKET_ANSWER_NEXT": [(502, b"<html>bad gateway</html>"), (200, b"odd")],
    }
    first, second, third = (injected_fault(config) for _ in range(3))
    assert first.status_code == 500 and json.loads(first.get_data())["resultCode"] == "MKT.0999"
    assert (second.status_code, second.get_data()) == (502, b"<html>bad gateway</html>")
    assert (third.status_code, third.get_data()) == (200, b"odd")
    assert injected_fault(config) is None and config["FAKE_MARKET_FAIL_NEXT"] == 0


@pytest.fixture
def market():
    return create_fake_market(AK, SK, USAGE_KEY)


def signed_get(client, path):
    url = f"http://localhost{path}"
    return client.get(path, headers=apig.sign(AK, SK, "GET", url))


def test_a_signed_order_query_is_answered_and_every_call_recorded(market):
    client = market.test_client()
    answer = signed_get(client, f"{ORDER_QUERY}?orderId=MOCKMONTYRENEW")
    body = answer.get_json()
    assert answer.status_code == 200 and body["resultCode"] == "MKT.0000"
    assert body["orderInfo"]["orderId"] == "MOCKMONTYRENEW" and body["orderInfo"]["orderType"] == "RENEW"
    unsigned = client.get(f"{ORDER_QUERY}?orderId=MOCKMONTYRENEW")
    assert unsigned.status_code == 401 and unsigned.get_json()["resultCode"] == "MKT.0154"
    nowhere = client.get("/nowhere")  # recorded and checked like any call, before routing
    assert nowhere.status_code == 401
    assert market.extensions["fake_market"].calls == [("GET", ORDER_QUERY)] * 2 + [("GET", "/nowhere")]


def test_a_usage_push_needs_its_own_signature_and_at_most_100_records(market):
    client = market.test_client()

    def push(records, key=USAGE_KEY):
        body = apig.usage_body(records)
        headers = apig.sign(AK, SK, "POST", f"http://localhost{USAGE_PUSH}", {"ts": "1", "nonce": "n"}, body)
        headers["signature"] = apig.usage_signature(key, "1", "n", body)
        return client.post(USAGE_PUSH, data=body, headers=headers).get_json()

    assert push([{"metering_sn": "x"}], key="another-key")["resultCode"] == "MKT.0154"
    assert push([{"metering_sn": f"r{i}"} for i in range(101)])["resultCode"] == "MKT.9003"
    assert push([{"metering_sn": "x"}]) == {"resultCode": "MKT.0000", "resultMsg": "Success", "error_records": []}
    assert push([{"metering_sn": "x"}])["error_records"][0]["error_code"] == "005"
    assert list(market.extensions["fake_market"].usage) == ["x"]


def test_license_activation_answers_the_codes_it_knows(market):
    client = market.test_client()

    def call(path, body):
        raw = json.dumps(body).encode()
        headers = apig.sign(AK, SK, "POST", f"http://localhost{path}", {"Content-Type": "application/json"}, raw)
        return client.post(path, data=raw, headers=headers).get_json()

    assert call(licensecodes.ACTIVATE, {"license": "PLXXXXXX"})["status"] == "NORMAL"
    assert call(licensecodes.ACTIVATE, {"license": "PLNOBODY"})["error_code"] == "92020002"
    market.config["FAKE_LICENSES"]["PLNEW"] = {"status": "FROZEN", "expireTime": "20300101000000"}
    assert call(licensecodes.ACTIVATE, {"license": "PLNEW"})["status"] == "FROZEN"
    assert market.extensions["fake_market"].activated == {"PLXXXXXX": 1, "PLNEW": 1}
