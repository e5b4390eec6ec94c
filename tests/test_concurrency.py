"""Identical newInstance storms against a real gunicorn with 2 workers on loopback."""
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import text

from isvapp.koo.signing import g2_signed_request

from .conftest import KEY
from .live import LiveServer

ORDERS, COPIES = 25, 8


def test_identical_new_instances_at_once_create_one_instance_per_order(tmp_path):
    env = {"ISVAPP_SECRET_KEY": "s", "ISVAPP_KOO_ACCESS_KEY": KEY}
    with LiveServer(tmp_path, workers=2, env=env) as server:
        session = requests.Session()
        bodies = [{"activity": "newInstance", "orderId": f"CONC{o:03d}", "orderLineId": f"CONC{o:03d}-000001",
                   "businessId": str(uuid.uuid4()), "testFlag": "1"} for o in range(ORDERS) for _ in range(COPIES)]
        signed = [g2_signed_request(KEY, body) for body in bodies]
        start = threading.Barrier(32)

        def fire(i):
            raw, query = signed[i]
            if i < 32:
                start.wait(timeout=10)
            return bodies[i]["orderId"], requests.post(server.url + "/produce", params=query, data=raw, timeout=10,
                                                        headers={"Content-Type": "application/json"})

        with ThreadPoolExecutor(max_workers=32) as pool:
            results = list(pool.map(fire, range(len(bodies))))

    by_order = {}
    for order_id, response in results:
        assert response.status_code == 200
        answer = json.loads(response.content)
        assert answer["resultCode"] == "000000", answer
        by_order.setdefault(order_id, set()).add(response.content)
    assert len(by_order) == ORDERS
    assert all(len(answers) == 1 for answers in by_order.values())  # byte-identical per order

    engine = server.engine()
    with engine.connect() as db:
        rows = db.execute(text("SELECT order_id, count(*), min(instance_id) FROM instances GROUP BY order_id")).all()
    engine.dispose()
    assert len(rows) == ORDERS and all(count == 1 for _, count, _ in rows)
    stored = {order: iid for order, _, iid in rows}
    assert all(json.loads(next(iter(by_order[o])))["instanceId"] == stored[o] for o in by_order)
