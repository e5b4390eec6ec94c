"""License products: ``GET /license`` (License-G1) and ``POST /license`` (License-2.0) (docs/protocol.md, "License").

License orders are instances with documents attached (isvapp.domain.licenses): the adapters here reuse
the G1 and G2 adapters and add the document to the answer, so licenses share the state machine,
the idempotency and the callback log with SaaS instances.
"""

import hashlib
from datetime import UTC, datetime

from ..domain import licenses, lifecycle
from ..koo import schemas
from ..koo.envelope import envelope
from ..koo.generations import Generation
from ..storage.models import LicenseState
from . import g1, g2
from .g1 import g1_expire_instance, g1_new_instance, g1_refresh_instance, g1_release_instance
from .pipeline import Activity, serve

FINGERPRINT_PARAMS = ("deviceFingerprint", "machineCode", "fingerprint")


def license_answer(texts):
    return envelope(license=texts[0])


# --- License-G1: GET /license -------------------------------------------------------------------


def get_license(settings, data):
    """getLicense: the order's license; the same order always gets the same text back (replayed)."""
    extend = data.get("saasExtendParams") or {}
    fingerprint = next((str(extend[k]) for k in FINGERPRINT_PARAMS if extend.get(k)), None)
    return g1_new_instance(
        settings,
        data,
        generation=Generation.LIC1,
        render=lambda instance: license_answer([licenses.issue(settings, instance, fingerprint=fingerprint)]),
    )


def refresh_license(settings, data):
    return g1_refresh_instance(
        settings, data, render=lambda instance: license_answer(licenses.renew(settings, instance))
    )


def expire_license(settings, data):
    body = g1_expire_instance(settings, data)
    licenses.mark(data["instanceId"], LicenseState.EXPIRED, lifecycle.owner(settings))
    return body


def release_license(settings, data):
    body = g1_release_instance(settings, data)
    licenses.mark(data["instanceId"], LicenseState.RELEASED, lifecycle.owner(settings))
    return body


LICENSE_G1_ACTIVITIES = {
    "getLicense": Activity(schemas.G1Order, get_license),
    "refreshLicense": Activity(schemas.G1RefreshInstance, refresh_license),
    "expireLicense": Activity(schemas.G1ExpireInstance, expire_license),
    "releaseLicense": Activity(schemas.G1ReleaseInstance, release_license),
}


def license_g1():
    signed, params = g1.verified()
    return serve(LICENSE_G1_ACTIVITIES, params, signed)


# --- License-2.0: POST /license (G2 signing) ----------------------------------------------------


def lic2_new_instance(settings, data):
    return g2.new_instance(settings, data, generation=Generation.LIC2)


def lic2_refresh_instance(settings, data):
    def renew(instance):
        licenses.renew(settings, instance)  # renewed documents are stored for upload; the answer is G2's
        return envelope()

    return g2.refresh_instance(settings, data, render=renew)


def lic2_release_instance(settings, data):
    body = g2.release_instance(settings, data)
    licenses.mark(data["instanceId"], LicenseState.RELEASED, lifecycle.owner(settings))
    return body


def get_license_async(settings, data):
    """The same (eventId, deviceFingerprint) always gets the same license (reference §2.E)."""
    fingerprint = data.get("deviceFingerprint") or None
    instance = lifecycle.live_instance(data["instanceId"], debug=data["testFlag"], asking=lifecycle.owner(settings))
    if instance is None:
        return envelope()
    effective = data.get("effectiveTime") or datetime.now(UTC)  # unreadable: noted, issued from now
    device = hashlib.sha256((fingerprint or "").encode("utf-8")).hexdigest()

    def make():
        text = licenses.issue(
            settings,
            instance,
            fingerprint=fingerprint,
            event_id=data["eventId"],
            effective_time=effective.replace(tzinfo=None),
            expire_time=data["expireTime"].replace(tzinfo=None) if data.get("expireTime") else None,
        )
        lifecycle.emit("license_issued", instance, event_id=data["eventId"], fingerprint=fingerprint)
        return envelope(license=text)

    return lifecycle.once(
        key=lifecycle.idempotency_key("getLicenseAsync", instance.instance_id, data["eventId"], device),
        activity="getLicenseAsync",
        digest=lifecycle.request_digest({k: data.get(k) for k in ("effectiveTime", "expireTime")}),
        instance_id=instance.instance_id,
        make=make,
    )


LICENSE_2_ACTIVITIES = {
    "newInstance": Activity(schemas.G2NewInstance, lic2_new_instance),
    "refreshInstance": Activity(schemas.G2RefreshInstance, lic2_refresh_instance),
    "updateInstanceStatus": g2.ACTIVITIES["updateInstanceStatus"],
    "releaseInstance": Activity(schemas.G2ReleaseInstance, lic2_release_instance),
    "getLicenseAsync": Activity(schemas.GetLicenseAsync, get_license_async),
    # The License-2.0 pages use the G2 activity names: query and upgrade are answered as for SaaS.
    "queryInstance": g2.ACTIVITIES["queryInstance"],
    "upgradeInstance": g2.ACTIVITIES["upgradeInstance"],
    # The order-notification feed covers every delivery type (zh-cn_topic_0000002091799149), so
    # a License product's production URL gets it too.
    "orderNotify": g2.ACTIVITIES["orderNotify"],
}


def license_2():
    signed, payload = g2.verified()
    return serve(LICENSE_2_ACTIVITIES, payload, signed)
