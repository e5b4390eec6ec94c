"""The newInstance write path (issue 17): the usual case runs its pre-bound statements in a lean
transaction, without the ORM session; anything unusual is done again on the session, and either
way a transaction is all or nothing."""

import json

import pytest
from isvapp.domain import callbacklog
from isvapp.extensions import db
from isvapp.produce import pipeline
from isvapp.storage.models import Answer, Callback, Conflict, Event, Instance, Job, SignedRequest

from .helpers import new_order, result

pytestmark = pytest.mark.sqlite_only  # PostgreSQL always takes the session path


@pytest.fixture
def session_transactions(monkeypatch):
    """How many times a request fell back to (or started with) a transaction on the session."""
    calls = []
    real = pipeline.write_transaction

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "write_transaction", counted)
    return calls


def test_a_new_order_is_written_without_the_session(market, session_transactions):
    order = new_order("CSLEAN1")
    answer = result(market.g2(order))
    assert answer["resultCode"] == "000000" and answer["instanceId"] == order["businessId"]
    assert session_transactions == []
    instance_id = order["businessId"]
    assert market.count(Instance, Instance.instance_id == instance_id) == 1
    assert market.count(Answer, Answer.instance_id == instance_id) == 1
    assert market.count(Event, Event.instance_id == instance_id, Event.kind == "created") == 1
    assert {job.kind for job in market.rows(Job, Job.instance_id == instance_id)} == {"provision", "fetch_order"}
    assert market.count(SignedRequest) == 1
    logged = market.rows(Callback, Callback.order_id == "CSLEAN1")
    assert [(row.activity, row.result_code, row.instance_id) for row in logged] == [
        ("newInstance", "000000", instance_id)
    ]
    assert logged[0].duration_ms > 0


def test_a_repeated_order_is_answered_from_the_lean_transaction_too(market, session_transactions):
    """The marketplace retries in storms: a repeat reads the first answer (and records a conflict)
    on the lean transaction's own connection, without the session."""
    first = result(market.g2(new_order("CSLEAN2")))
    again = result(market.g2(new_order("CSLEAN2")))  # a retry: a new businessId, a new nonce
    assert again == first and session_transactions == []
    assert market.count(Instance, Instance.order_id == "CSLEAN2") == 1
    assert market.count(Conflict) == 0
    changed = result(market.g2(new_order("CSLEAN2", test_flag="1")))  # same order line, other payload
    assert changed == first and market.count(Conflict) == 1 and session_transactions == []
    conflict = market.rows(Conflict)[0]
    assert conflict.key == "newInstance|CSLEAN2|CSLEAN2-000001" and conflict.first_digest != conflict.request_digest


def test_a_repeated_debugging_order_whose_instance_was_released_gets_a_new_one_on_the_session(
    market, session_transactions
):
    order = new_order("CSLEAN8", test_flag="1")
    first = result(market.g2(order))
    released = result(market.g2({"activity": "releaseInstance", "instanceId": first["instanceId"], "testFlag": "1"}))
    assert released["resultCode"] == "000000"
    session_transactions.clear()
    again = result(market.g2(new_order("CSLEAN8", test_flag="1")))
    assert again["instanceId"] != first["instanceId"] and session_transactions == [1]


def test_a_reused_business_id_gets_a_new_instance_on_the_session(market, session_transactions):
    first = result(market.g2(new_order("CSLEAN3", business="reused-business-id")))
    other = result(market.g2(new_order("CSLEAN4", business="reused-business-id")))
    assert first["instanceId"] == "reused-business-id" and other["instanceId"] != "reused-business-id"
    assert session_transactions == [1]
    assert market.count(Instance, Instance.order_id == "CSLEAN4", Instance.instance_id == other["instanceId"]) == 1
    assert market.count(Event, Event.instance_id == other["instanceId"], Event.kind == "created") == 1


def test_a_failure_inside_the_lean_transaction_leaves_nothing(market, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the log row could not be written")

    monkeypatch.setattr(callbacklog, "_now_done", broken)  # the plan's last write, under the lock
    order = new_order("CSLEAN5")
    assert result(market.g2(order))["resultCode"] == "000005"
    for model in (Instance, Answer, SignedRequest):
        assert market.count(model) == 0, model
    assert market.count(Event) == market.count(Job, Job.kind.in_(("provision", "fetch_order"))) == 0
    monkeypatch.undo()
    answer = result(market.g2(order))  # the marketplace's resend: now it is served
    assert answer["resultCode"] == "000000" and market.count(Instance) == 1


def test_a_disposed_pool_retires_the_lean_connection(app, market):
    market.g2(new_order("CSLEAN6"))
    with app.app_context():
        lean = app.extensions["isvapp_lean"]
        before = lean["generation"]
        db.engine.dispose()
        assert lean["generation"] == before + 1
    assert json.loads(market.g2(new_order("CSLEAN7")).data)["resultCode"] == "000000"
