"""The G2 SaaS suites (period, onetime, payperuse, trial, cancel, change) and the Seller
Console's two debugging rounds with its MOCK order ids.
"""

import uuid

from .client import expire_time


def _g2_lifecycle(sim, kind, steps):
    """New purchase, a retry of it, then ``steps``: (name, body) pairs sent as G2 activities."""
    order = sim.order(kind)
    new = {"activity": "newInstance", "orderId": order, "orderLineId": f"{order}-000001"}
    first = sim.check("newInstance", sim.g2({**new, "businessId": str(uuid.uuid4())}), fields=["instanceId"])
    instance = first.get("instanceId")
    if not instance:
        return
    sim.check("newInstance retried", sim.g2({**new, "businessId": str(uuid.uuid4())}), same=("instanceId", instance))
    for name, body, code in steps(order, instance):
        sim.check(name, sim.g2(body), code=code, appinfo=body["activity"] == "queryInstance")


def g2_period(sim):
    def steps(order, iid):
        yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}, "000000"
        yield (
            "refreshInstance RENEWAL",
            {
                "activity": "refreshInstance",
                "instanceId": iid,
                "orderId": order + "R",
                "orderLineId": order + "R-000001",
                "scene": "RENEWAL",
                "expireTime": expire_time(60),
            },
            "000000",
        )
        yield (
            "updateInstanceStatus FREEZE",
            {"activity": "updateInstanceStatus", "instanceId": iid, "status": "FREEZE"},
            "000000",
        )
        yield (
            "updateInstanceStatus UNFREEZE",
            {"activity": "updateInstanceStatus", "instanceId": iid, "status": "UNFREEZE"},
            "000000",
        )
        yield (
            "upgradeInstance",
            {
                "activity": "upgradeInstance",
                "instanceId": iid,
                "orderId": order + "U",
                "orderLineId": order + "U-000001",
            },
            "000000",
        )
        yield from _release(iid)

    _g2_lifecycle(sim, "period", steps)


def _release(iid):
    body = {"activity": "releaseInstance", "instanceId": iid}
    yield "releaseInstance", body, "000000"
    yield "releaseInstance again (idempotent)", body, "000000"


def g2_onetime(sim):
    _g2_lifecycle(sim, "onetime", lambda order, iid: _release(iid))


def g2_payperuse(sim):
    def steps(order, iid):
        yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}, "000000"
        yield (
            "updateInstanceStatus FREEZE",
            {"activity": "updateInstanceStatus", "instanceId": iid, "status": "FREEZE"},
            "000000",
        )
        yield from _release(iid)

    _g2_lifecycle(sim, "payperuse", steps)


def _refresh(scene):
    def steps(order, iid):
        yield (
            f"refreshInstance {scene}",
            {
                "activity": "refreshInstance",
                "instanceId": iid,
                "orderId": order + "R",
                "orderLineId": order + "R-000001",
                "scene": scene,
                "expireTime": expire_time(30),
            },
            "000000",
        )
        yield from _release(iid)

    return steps


def g2_trial(sim):
    _g2_lifecycle(sim, "trial", _refresh("TRIAL_TO_FORMAL"))


def g2_cancel(sim):
    _g2_lifecycle(sim, "cancel", _refresh("UNSUBSCRIBE_RENEWAL_PERIOD"))


def g2_change(sim):
    """A renewal that changes the specification: the check, the renewal itself, the order notice."""

    def steps(order, iid):
        yield (
            "changeInstanceCheck",
            {
                "activity": "changeInstanceCheck",
                "instanceId": iid,
                "productInfo": {"productId": "00301-666666-0--0", "skuCode": "sku-2"},
            },
            "000000",
        )
        yield (
            "orderNotify",
            {"activity": "orderNotify", "orderId": order + "R", "orderLineId": order + "R-000001"},
            "000000",
        )
        yield from _refresh("RENEWAL_CHANGE")(order, iid)

    _g2_lifecycle(sim, "change", steps)


# The Seller Console's debugging cases: fixed MOCK order ids, testFlag 1, repeated round after round.
CONSOLE_RENEW, CONSOLE_CHANGE = "MOCKMONTYRENEW", "MOCKMONTYCHANGE"


def _console_period(iid):
    yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}
    yield (
        "refreshInstance RENEWAL",
        {
            "activity": "refreshInstance",
            "instanceId": iid,
            "orderId": CONSOLE_RENEW,
            "orderLineId": f"{CONSOLE_RENEW}-000001",
            "scene": "RENEWAL",
            "expireTime": expire_time(60),
        },
    )
    for status in ("FREEZE", "UNFREEZE"):
        yield (
            f"updateInstanceStatus {status}",
            {"activity": "updateInstanceStatus", "instanceId": iid, "status": status},
        )
    yield (
        "upgradeInstance",
        {
            "activity": "upgradeInstance",
            "instanceId": iid,
            "orderId": CONSOLE_CHANGE,
            "orderLineId": f"{CONSOLE_CHANGE}-000001",
        },
    )
    yield "releaseInstance", {"activity": "releaseInstance", "instanceId": iid}


def _console_onetime(iid):
    yield "queryInstance", {"activity": "queryInstance", "instanceId": iid}
    yield "releaseInstance", {"activity": "releaseInstance", "instanceId": iid}


CONSOLE_CASES = (
    ("yearly/monthly", "MOCKPERIODYEARNEW", _console_period),
    ("one-time", "MOCKONETIMENEW", _console_onetime),
)


def seller_console(sim):
    """Two debugging rounds as the Seller Console repeats them: the same MOCK orders, new
    businessIds. Round 2 must get a live instance (not round 1's released one) and succeed."""
    earlier = {}
    for round_no in (1, 2):
        for kind, order, steps in CONSOLE_CASES:
            label = f"round {round_no} {kind}"
            new = {
                "activity": "newInstance",
                "orderId": order,
                "orderLineId": f"{order}-000001",
                "businessId": str(uuid.uuid4()),
                "testFlag": "1",
            }
            iid = sim.check(
                f"{label} newInstance",
                sim.g2(new),
                fields=["instanceId"],
                differs=("instanceId", earlier[kind]) if kind in earlier else None,
            ).get("instanceId")
            if not iid:
                continue
            earlier.setdefault(kind, iid)
            for name, body in steps(iid):
                query = body["activity"] == "queryInstance"
                sim.check(
                    f"{label} {name}", sim.g2({**body, "testFlag": "1"}), appinfo=query, listed=iid if query else None
                )
