"""The License suites: License-G1 (GET) and License-2.0 (POST)."""

import time
import uuid

from .client import expire_time
from .g1 import g1_new


def license_g1(sim):
    """getLicense twice (same license), then renew, expire and release (the last twice)."""
    order, params = g1_new(sim, "licg1", activity="getLicense", expireTime=expire_time(365))
    iid = str(uuid.uuid4())  # instanceId = the first request's businessId (reference, project rule)
    first = sim.check(
        "getLicense", sim.g1({**params, "businessId": iid}, path="/license"), fields=["license"], signed=True
    )
    if not first.get("license"):
        return
    sim.check(
        "getLicense retried",
        sim.g1({**params, "businessId": str(uuid.uuid4())}, path="/license"),
        signed=True,
        same=("license", first["license"]),
    )
    for name, activity, extra in (
        ("refreshLicense", "refreshLicense", {"expireTime": expire_time(730)}),
        ("expireLicense", "expireLicense", {}),
        ("releaseLicense", "releaseLicense", {}),
        ("releaseLicense again (idempotent)", "releaseLicense", {}),
    ):
        sim.check(
            name,
            sim.g1({"activity": activity, "instanceId": iid, "orderId": order, **extra}, path="/license"),
            signed=True,
            fields=["license"] if activity == "refreshLicense" else (),
        )


def license_2(sim):
    order = sim.order("lic2")
    created = sim.check(
        "newInstance",
        sim.g2(
            {
                "activity": "newInstance",
                "orderId": order,
                "orderLineId": f"{order}-000001",
                "businessId": str(uuid.uuid4()),
            },
            path="/license",
        ),
        fields=["instanceId"],
    )
    iid = created.get("instanceId")
    if not iid:
        return
    ask = {
        "activity": "getLicenseAsync",
        "instanceId": iid,
        "effectiveTime": time.strftime("%Y-%m-%d %H:%M:%S z"),
        "eventId": f"evt-{order}",
        "deviceFingerprint": f"sim-device-{order}",
    }
    first = sim.check("getLicenseAsync", sim.g2(ask, path="/license"))
    sim.check("getLicenseAsync retried", sim.g2(ask, path="/license"), same=("license", first.get("license")))
    for name, body in (
        ("releaseInstance", {"activity": "releaseInstance", "instanceId": iid}),
        ("releaseInstance again (idempotent)", {"activity": "releaseInstance", "instanceId": iid}),
    ):
        sim.check(name, sim.g2(body, path="/license"))
