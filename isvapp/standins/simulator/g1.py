"""The G1 SaaS suites (period, onetime, payperuse, trial), sent as signed GET requests."""

import uuid

from .client import expire_time


def g1_new(sim, kind, path="/produce", activity="newInstance", **extra):
    order = sim.order(kind)
    params = {
        "activity": activity,
        "customerId": "sim0customer0000000000000000000",
        "customerName": "Simulator",
        "orderId": order,
        "productId": "00301-666666-0--0",
        "skuCode": "sim-sku",
        **extra,
    }
    return order, params


def g1_lifecycle(sim, kind, extra, steps):
    order, params = g1_new(sim, kind, **extra)
    first = sim.check(
        "newInstance",
        sim.g1({**params, "businessId": str(uuid.uuid4())}),
        fields=["instanceId"],
        signed=True,
        appinfo=True,
    )
    iid = first.get("instanceId")
    if not iid:
        return
    sim.check(
        "newInstance retried",
        sim.g1({**params, "businessId": str(uuid.uuid4())}),
        signed=True,
        same=("instanceId", iid),
    )
    for name, query, code in steps(order, iid):
        sim.check(name, sim.g1(query), code=code, signed=True, appinfo=query["activity"] == "queryInstance")


def _g1_release(iid, order):
    body = {"activity": "releaseInstance", "instanceId": iid, "orderId": order}
    yield "releaseInstance", body, "000000"
    yield "releaseInstance again (idempotent)", body, "000000"


def g1_period(sim):
    def steps(order, iid):
        yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}, "000000"
        yield (
            "refreshInstance",
            {"activity": "refreshInstance", "instanceId": iid, "orderId": order + "R", "expireTime": expire_time(60)},
            "000000",
        )
        yield "expireInstance", {"activity": "expireInstance", "instanceId": iid, "orderId": order}, "000000"
        yield (
            "refreshInstance after expiry",
            {"activity": "refreshInstance", "instanceId": iid, "orderId": order + "R2", "expireTime": expire_time(90)},
            "000000",
        )
        yield (
            "upgrade",
            {"activity": "upgrade", "instanceId": iid, "orderId": order + "U", "productId": "00301-666666-0--1"},
            "000000",
        )
        yield from _g1_release(iid, order)

    g1_lifecycle(sim, "period", {"expireTime": expire_time(30), "periodType": "month", "periodNumber": "1"}, steps)


def g1_onetime(sim):
    g1_lifecycle(sim, "onetime", {"chargingMode": "3"}, lambda order, iid: _g1_release(iid, order))


def g1_payperuse(sim):
    def steps(order, iid):
        yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}, "000000"
        yield (
            "instanceStatus FREEZE",
            {"activity": "instanceStatus", "instanceId": iid, "instanceStatus": "FREEZE"},
            "000000",
        )
        yield (
            "instanceStatus NORMAL",
            {"activity": "instanceStatus", "instanceId": iid, "instanceStatus": "NORMAL"},
            "000000",
        )
        yield from _g1_release(iid, order)

    g1_lifecycle(sim, "payperuse", {"chargingMode": "ON_DEMAND"}, steps)


def g1_trial(sim):
    def steps(order, iid):
        yield (
            "refreshInstance trialToFormal",
            {
                "activity": "refreshInstance",
                "instanceId": iid,
                "orderId": order + "R",
                "expireTime": expire_time(30),
                "trialToFormal": "1",
            },
            "000000",
        )
        yield from _g1_release(iid, order)

    g1_lifecycle(sim, "trial", {"trialFlag": "1", "expireTime": expire_time(7)}, steps)
