"""Requests the server must refuse (--probes) and oddly shaped, correctly signed requests it must
accept (--tolerance).
"""

import time
import uuid

from ...koo.generations import Generation
from ...koo.signing import canonical_payload, g2_signed_request, string_map_payload
from .client import expire_time
from .g1 import g1_new


def probes(sim):
    """Requests the server must refuse, each with the code the marketplace's rules give."""
    order = sim.order("probe")
    new = {
        "activity": "newInstance",
        "orderId": order,
        "orderLineId": f"{order}-000001",
        "businessId": str(uuid.uuid4()),
    }
    sim.check("wrong signature", _wrong_key(sim, new), code="000001")
    stale = int(time.time() * 1000) - 10 * 60 * 1000
    sim.check("stale timestamp (10 min old)", sim.g2(new, timestamp=stale), code="000002")
    raw, query = g2_signed_request(sim.key, {"testFlag": sim.test_flag, **new})
    first = sim._send("POST", "/produce", query, raw, {"Content-Type": "application/json"})
    sim.check(
        "identical resend (same URL and body)",
        sim._send("POST", "/produce", query, raw, {"Content-Type": "application/json"}),
        code="000000",
        same_bytes=first,
    )
    other = {**new, "businessId": str(uuid.uuid4())}
    raw2, query2 = g2_signed_request(sim.key, {"testFlag": sim.test_flag, **other}, nonce=query["nonce"])
    sim.check(
        "replayed nonce (another request)",
        sim._send("POST", "/produce", query2, raw2, {"Content-Type": "application/json"}),
        code="000001",
    )
    broken = b'{"activity": "newInstance", '
    _, query = g2_signed_request(sim.key, broken)
    sim.check(
        "malformed JSON body",
        sim._send("POST", "/produce", query, broken, {"Content-Type": "application/json"}),
        code="000002",
    )
    sim.check(
        "G1 wrong authToken",
        sim.g1({"activity": "queryInstance", "instanceId": "x"}, key=sim.key + "x"),
        code="000001",
        signed=True,
    )
    sim.check(
        "kit wrong x-sign", sim.kit("tenantSync", {"tenantId": "t", "flag": 0}, key=sim.kit_key + "x"), code="000001"
    )


def tolerance(sim):
    """Correctly signed but oddly shaped requests the server must accept (000000), one step each."""
    order = sim.order("tol")
    made = []  # instances to release at the end

    def new_g2(step, body=None, **send):
        name = f"{order}N{len(made)}"
        body = body or {
            "activity": "newInstance",
            "orderId": name,
            "orderLineId": f"{name}-000001",
            "businessId": str(uuid.uuid4()),
            "testFlag": sim.test_flag,
        }
        iid = sim.check(step, sim.g2_as(body, **send), fields=["instanceId"]).get("instanceId")
        if iid:
            made.append((Generation.G2, iid))
        return iid

    iid = new_g2("newInstance (the instance the probes use)")
    if not iid:
        return
    query = {"activity": "queryInstance", "instanceId": iid, "testFlag": sim.test_flag}
    sim.check(
        "G2 testFlag as a JSON number, signed over the string-map form",
        sim.g2_as(
            {**query, "testFlag": int(sim.test_flag)},
            raw=canonical_payload({**query, "testFlag": int(sim.test_flag)}).encode(),
            signed_form=string_map_payload,
        ),
        appinfo=True,
        listed=iid,
    )
    name = f"{order}Z"
    new_g2(
        'null and "" optional fields (productId null, customerName "")',
        {
            "activity": "newInstance",
            "orderId": name,
            "orderLineId": f"{name}-000001",
            "businessId": str(uuid.uuid4()),
            "productId": None,
            "customerName": "",
            "testFlag": sim.test_flag,  # an empty testFlag reads as 0: real data, so only a query sends one
        },
    )
    sim.check('queryInstance with testFlag ""', sim.g2_as({**query, "testFlag": ""}), appinfo=True, listed=iid)
    refresh = {"activity": "refreshInstance", "instanceId": iid, "orderLineId": f"{order}R-000001"}
    sim.check(
        "refreshInstance expireTime yyyyMMddHHmmssSSS (17 digits)",
        sim.g2({**refresh, "orderId": order + "R", "scene": "RENEWAL", "expireTime": expire_time(60) + "123"}),
    )
    sim.check(
        "refreshInstance with an unknown scene",
        sim.g2({**refresh, "orderId": order + "S", "scene": "SOME_NEW_SCENE", "expireTime": expire_time(90)}),
    )
    for label, content_type in (("Content-Type text/plain", "text/plain"), ("no Content-Type", None)):
        sim.check(f"body sent with {label}", sim.g2(query, content_type=content_type), appinfo=True, listed=iid)
    sim.check("path with a trailing slash (/produce/)", sim.g2(query, path="/produce/"), appinfo=True, listed=iid)
    many = ",".join([f"sim-absent-{i}" for i in range(120)] + [iid])
    sim.check(
        "queryInstance with 121 ids, the real one among them",
        sim.g2({**query, "instanceId": many}),
        appinfo=True,
        listed=iid,
    )
    for label, extra in (
        ("an empty optional parameter (skuCode=)", {"skuCode": ""}),
        ("unreadable saasExtendParams", {"saasExtendParams": "not%base64{json"}),
    ):
        _, params = g1_new(sim, f"tol{len(made)}", **extra)
        got = sim.check(
            f"G1 newInstance with {label}",
            sim.g1({**params, "businessId": str(uuid.uuid4())}),
            fields=["instanceId"],
            signed=True,
            appinfo=True,
        ).get("instanceId")
        if got:
            made.append((Generation.G1, got))
    scope = {"instanceId": order, "tenantId": f"tenant-tol-{sim.run_id}"}
    users = [{"userName": "sim-tol-admin", "name": "Admin", "role": "ADMIN", "enable": "TRUE"}]
    sim.check(
        'kit authSync role "ADMIN", enable "TRUE"',
        sim.kit("authSync", {**scope, "appId": "sim-app", "userList": users, "flag": 1}),
        signed=True,
    )
    tree = [
        {"orgCode": "sim-x", "name": "X", "parentCode": "sim-y"},
        {"orgCode": "sim-y", "name": "Y", "parentCode": "sim-x"},
        {"orgCode": "sim-x", "name": "X again", "parentCode": "sim-y"},
    ]
    sim.check(
        "kit allOrgSync with a cycle and a repeated orgCode",
        sim.kit("allOrgSync", {**scope, "orgInfo": tree}),
        signed=True,
    )
    sim.check(
        "kit tenantSync under /license/produceAPI/v2/",
        sim.kit(
            "tenantSync",
            {
                **scope,
                "orderId": order,
                "tenantCode": "sim",
                "name": "Simulator Tenant",
                "domainName": "https://sim.example.com",
                "flag": 1,
            },
            base="/license",
        ),
        signed=True,
    )
    sim.check(
        "kit tenantSync flag 2 with only name",
        sim.kit("tenantSync", {"tenantId": scope["tenantId"], "name": "Renamed", "flag": 2}),
        signed=True,
    )
    for generation, instance in made:
        release = {"activity": "releaseInstance", "instanceId": instance}
        reply = sim.g2(release) if generation is Generation.G2 else sim.g1({**release, "orderId": order})
        sim.check(f"releaseInstance {instance} (clean-up)", reply, signed=generation is Generation.G1)
    sim.check("kit tenantSync delete (clean-up)", sim.kit("tenantSync", {**scope, "flag": 0}), signed=True)


def _wrong_key(sim, body):
    raw, query = g2_signed_request(sim.key + "-wrong", {"testFlag": sim.test_flag, **body})
    return sim._send("POST", "/produce", query, raw, {"Content-Type": "application/json"})
