"""Idempotency keys tell their parts apart: a | inside an id no longer merges two orders, and keys
stored before the escaping still match their retries (migration 0010; docs/protocol.md)."""

import json

from flask_migrate import downgrade, upgrade
from isvapp.domain.lifecycle import idempotency_key, order_key
from isvapp.extensions import db
from isvapp.storage.models import Answer, Event, Instance
from isvapp.storage.schema import MIGRATIONS

from .helpers import current_revision, head_revision, new_order, schema_differences


def test_parts_are_escaped_and_plain_keys_are_what_they_were():
    assert idempotency_key("newInstance", "A|B", "C") != idempotency_key("newInstance", "A", "B|C")
    assert idempotency_key("x", "a\\", "|b") != idempotency_key("x", "a\\|", "b")
    assert (
        order_key("CS2211181819B4LVS", "CS2211181819B4LVS-000001")
        == "newInstance|CS2211181819B4LVS|CS2211181819B4LVS-000001"
    )  # as stored before the escaping


def test_two_orders_that_differ_only_where_a_bar_falls_get_two_instances(market):
    first = json.loads(market.g2(new_order(order="A|B", line="C", business="one")).data)
    second = json.loads(market.g2(new_order(order="A", line="B|C", business="two")).data)
    assert (first["instanceId"], second["instanceId"]) == ("one", "two")
    assert market.count(Instance) == 2


OLD_BODY = b'{"resultCode":"000000","resultMsg":"success.","instanceId":"old-1"}'


def test_a_key_stored_before_the_escaping_is_rewritten_and_still_matches_its_retry(app, market):
    with app.app_context():
        downgrade(directory=MIGRATIONS, revision="0009")
        # Core, not the ORM: the model has columns (simulated) a schema at 0009 does not
        db.session.execute(
            Instance.__table__.insert().values(
                instance_id="old-1", generation="G2", order_id="ORD|1", order_line_id="L"
            )
        )
        db.session.add(
            Event(
                event_id="e-1",
                kind="renewed",
                instance_id="old-1",
                order_id="R|1",
                payload={"order_id": "R|1", "order_line_id": "RL", "scene": "RENEWAL"},
            )
        )
        for key, activity, instance_id in (
            ("newInstance|ORD|1|L", "newInstance", "old-1"),
            ("refreshInstance|old-1|R|1|RL|RENEWAL", "refreshInstance", "old-1"),
            ("getLicenseAsync|old-1|ev|1|" + "a" * 64, "getLicenseAsync", "old-1"),
            ("newInstance|PLAIN|PLAIN-1", "newInstance", "plain"),
            # no event to tell its order from its line: left as it was
            ("orderNotify|N|1||0123456789abcdef", "orderNotify", None),
        ):
            db.session.add(
                Answer(key=key, activity=activity, instance_id=instance_id, request_digest="d", body=OLD_BODY)
            )
        db.session.commit()
        upgrade(directory=MIGRATIONS)
        assert current_revision() == head_revision(app) and schema_differences() == []
        keys = set(db.session.execute(db.select(Answer.key)).scalars())
    assert keys == {
        order_key("ORD|1", "L"),
        idempotency_key("refreshInstance", "old-1", "R|1", "RL", "RENEWAL"),
        idempotency_key("getLicenseAsync", "old-1", "ev|1", "a" * 64),
        "newInstance|PLAIN|PLAIN-1",
        "orderNotify|N|1||0123456789abcdef",
    }
    retry = market.g2(new_order(order="ORD|1", line="L", business="retry"))
    assert retry.data == OLD_BODY and market.count(Instance) == 1
    other = json.loads(market.g2(new_order(order="ORD", line="1|L", business="other")).data)
    assert other["instanceId"] == "other" and market.count(Instance) == 2
    with app.app_context():  # and back down: the keys as they were stored
        downgrade(directory=MIGRATIONS, revision="0009")
        assert "newInstance|ORD|1|L" in set(db.session.execute(db.select(Answer.key)).scalars())
        upgrade(directory=MIGRATIONS)
