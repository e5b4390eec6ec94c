"""Duplicate storms against a real gunicorn with several workers on loopback.

The marketplace retries a callback it has no answer for, and its retries can overlap: here 32
identical newInstance callbacks (each freshly signed, as a retry would be) arrive at once for
each of 50 orders, half of them G2 (POST) and half G1 (GET, whole order in the query). One
instance per order, byte-identical answers, no errors.
"""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from isvapp.koo.signing import g1_signed_params
from sqlalchemy import text

from .helpers import KEY
from .live import LIVE_ENV, LiveServer, post_g2

pytestmark = pytest.mark.live  # every test here starts gunicorn

ORDERS, COPIES = 50, 32


def get_g1(session, url, params, timeout=10):
    return session.get(url + "/produce", params=g1_signed_params(KEY, params), timeout=timeout)


def storm_order(o):
    if o % 2:
        return {
            "activity": "newInstance",
            "orderId": f"STORM{o:03d}",
            "customerId": "c" * 32,
            "productId": "00301-666666-0--0",
            "expireTime": "20300101000000",
            "testFlag": "1",
        }
    return {
        "activity": "newInstance",
        "orderId": f"STORM{o:03d}",
        "orderLineId": f"STORM{o:03d}-000001",
        "testFlag": "1",
    }


def test_storms_of_identical_new_instances_create_one_instance_per_order(tmp_path):
    bodies = [storm_order(o) for o in range(ORDERS)]
    local = threading.local()
    with LiveServer(tmp_path, workers=4, env=LIVE_ENV) as server, ThreadPoolExecutor(COPIES) as pool:

        def fire(body, start):
            local.session = getattr(local, "session", None) or requests.Session()
            body = {**body, "businessId": str(uuid.uuid4())}  # every retry carries a new one
            start.wait(timeout=10)
            if "orderLineId" in body:
                return post_g2(local.session, server.url, body)
            return get_g1(local.session, server.url, body)

        t0 = time.monotonic()
        answers = {}
        for body in bodies:
            start = threading.Barrier(COPIES)  # all 32 copies leave together
            responses = list(pool.map(fire, [body] * COPIES, [start] * COPIES))
            assert all(r.status_code == 200 for r in responses)
            answers[body["orderId"]] = {r.content for r in responses}
        elapsed = time.monotonic() - t0
        engine = server.engine()
        with engine.connect() as db:
            rows = db.execute(
                text("SELECT order_id, count(*), min(instance_id) FROM instances GROUP BY order_id")
            ).all()
            claimed = db.execute(text("SELECT count(*) FROM answers WHERE body IS NOT NULL")).scalar_one()
            events = db.execute(text("SELECT count(*) FROM events WHERE kind = 'created'")).scalar_one()
        engine.dispose()

    print(f"storm: {ORDERS * COPIES} callbacks in {elapsed:.1f} s ({ORDERS * COPIES / elapsed:.0f}/s)")
    assert all(len(bodies_seen) == 1 for bodies_seen in answers.values())  # byte-identical per order
    firsts = {order: json.loads(next(iter(seen))) for order, seen in answers.items()}
    assert all(answer["resultCode"] == "000000" for answer in firsts.values()), firsts
    assert len(rows) == ORDERS and all(count == 1 for _, count, _ in rows)
    assert {order: iid for order, _, iid in rows} == {o: a["instanceId"] for o, a in firsts.items()}
    assert claimed == events == ORDERS
