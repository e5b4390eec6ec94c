"""How often one G2 newInstance passes between the domain's state machine and storage.

Traced with sys.setprofile on a signed newInstance sent through the Flask test client (a fresh
SQLite file): every call whose caller and callee sit on different sides of the line between
``isvapp.domain.lifecycle`` and ``isvapp.storage.*`` counts once, down (lifecycle calls storage)
or up (storage calls back into lifecycle); and the distinct isvapp modules whose code ran.

    python -m bench.crossings
"""

import json
import sys
import tempfile
import uuid
from collections import Counter

LIFECYCLE = "isvapp.domain.lifecycle"


def _side(module):
    if module == LIFECYCLE:
        return "lifecycle"
    if module.startswith("isvapp.storage"):
        return "storage"
    return None


def trace_new_instance():
    from isvapp import create_app
    from isvapp.koo.signing import g2_signed_request
    from isvapp.storage.schema import init_db

    key = "crossings-key-0123456789"
    folder = tempfile.mkdtemp(prefix="isvapp-crossings-")
    app = create_app({"TESTING": True, "INSTANCE_PATH": folder, "SECRET_KEY": "x" * 40, "KOO_ACCESS_KEY": key})
    with app.app_context():
        init_db()
    client = app.test_client()

    def send(n):
        body = {
            "activity": "newInstance",
            "orderId": f"CROSS{n}",
            "orderLineId": f"CROSS{n}-1",
            "businessId": str(uuid.uuid4()),
            "customerId": "c",
            "productId": "p",
            "skuCode": "s",
            "testFlag": "0",
        }
        raw, query = g2_signed_request(key, body)
        return client.post("/produce", query_string=query, data=raw, content_type="application/json")

    send(0).close()  # the first request loads and warms everything; the second is the one counted
    moves, modules = Counter(), set()

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        if callee.startswith("isvapp"):
            modules.add(callee)
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        a, b = _side(caller), _side(callee)
        if b == "lifecycle" and a != "lifecycle":
            moves[f"into lifecycle from {caller}"] += 1
            moves["into lifecycle"] += 1
        if b == "storage" and a != "storage" and caller.startswith("isvapp"):
            moves[f"into storage from {caller}"] += 1
            moves["into storage"] += 1
        if a and b and a != b:
            moves["down" if a == "lifecycle" else "up"] += 1

    sys.setprofile(profile)
    try:
        reply = send(1)
    finally:
        sys.setprofile(None)
    reply.close()
    assert json.loads(reply.data)["resultCode"] == "000000", reply.data
    return {
        "lifecycle to storage": moves["down"],
        "storage to lifecycle": moves["up"],
        "into lifecycle": moves["into lifecycle"],
        "into storage": moves["into storage"],
        "modules": len(modules),
        "detail": {k: v for k, v in sorted(moves.items()) if " from " in k},
    }


if __name__ == "__main__":
    print(json.dumps(trace_new_instance(), indent=1))
