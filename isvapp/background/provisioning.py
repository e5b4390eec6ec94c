"""Provisioning hooks: how the merchant's own product learns about orders.

A provisioner is a class configured by dotted path (``PROVISIONER = "mycompany.koo:Provisioner"``)
with one method per event. Methods run in background jobs, never inside the marketplace's request,
and may run more than once for one event (a worker can die after the hook but before the job is
marked done): use ``event.event_id`` to make them idempotent. Raising makes the job retry.

    class Provisioner(isvapp.provisioning.Provisioner):
        def created(self, event):          # event.instance has the login created for the buyer
            mysaas.create_tenant(event.instance_id, event.instance["admin_user"], ...)
        def released(self, event):
            mysaas.delete_tenant(event.instance_id)
"""

import base64
import hashlib
import hmac
import importlib
import json
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field

from flask import current_app
from sqlalchemy import select

from .. import outbound
from ..extensions import db
from ..settings import SettingError, settings_of
from ..settings.registry import read
from ..settings.sections import ProvisioningSettings
from ..storage import vault
from ..storage.models import Event, Instance
from . import jobs

# Event kinds and the provisioner method each one calls.
METHODS = {
    "created": "created",
    "details_fetched": "details_fetched",
    "details_failed": "details_failed",
    "renewed": "renewed",
    "trial_converted": "renewed",
    "renewal_cancelled": "renewed",
    "renewal_changed": "renewed",
    "order_notified": "order_notified",
    "order_fetched": "order_fetched",
    "frozen": "frozen",
    "unfrozen": "unfrozen",
    "expired": "expired",
    "upgraded": "upgraded",
    "released": "released",
    "license_issued": "license_issued",
    "tenant_synced": "tenant_synced",
    "tenant_deleted": "tenant_deleted",
    "app_synced": "app_synced",
    "app_deleted": "app_deleted",
    "users_synced": "users_synced",
    "department_synced": "departments_synced",
    "departments_replaced": "departments_synced",
}
INSTANCE_FIELDS = (
    "instance_id",
    "generation",
    "product_type",
    "state",
    "test_flag",
    "trial",
    "order_id",
    "order_line_id",
    "product_id",
    "sku_code",
    "customer_id",
    "customer_name",
    "charging_mode",
    "period_type",
    "period_number",
    "front_end_url",
    "admin_url",
    "admin_user",
    "details_state",
)


@dataclass
class HookEvent:
    event_id: str
    kind: str
    instance_id: str | None
    order_id: str | None
    created_at: str
    payload: dict = field(default_factory=dict)
    instance: dict | None = None  # the instance now; on "created" it includes admin_password


class Provisioner:
    """Base class: every method does nothing; override the ones your product needs."""

    def __init__(self, config):
        self.config = config

    def handle(self, event):
        getattr(self, METHODS.get(event.kind, "other"))(event)

    def change_allowed(self, instance, product_info):
        """changeInstanceCheck, answered while the marketplace waits (keep it well under 5 s).

        ``instance`` is a dict of the instance's fields, ``product_info`` the target product as
        the marketplace sent it. Return True (or None) to allow; False or a reason (text) to
        refuse, answered 000100. The default allows every change.
        """
        return True

    def created(self, event):
        pass

    def details_fetched(self, event):
        pass

    def details_failed(self, event):
        pass

    def renewed(self, event):
        pass

    def frozen(self, event):
        pass

    def unfrozen(self, event):
        pass

    def expired(self, event):
        pass

    def upgraded(self, event):
        pass

    def released(self, event):
        pass

    def license_issued(self, event):
        pass

    def order_notified(self, event):
        pass

    def order_fetched(self, event):
        pass

    def tenant_synced(self, event):
        pass

    def tenant_deleted(self, event):
        pass

    def app_synced(self, event):
        pass

    def app_deleted(self, event):
        pass

    def users_synced(self, event):
        pass

    def departments_synced(self, event):
        pass

    def other(self, event):
        pass


class TemplateProvisioner(Provisioner):
    """The default, for a merchant without code: the buyer's login is made from the APP_*
    templates when the instance is created (isvapp.domain.credentials), which is all the product needs;
    the events are kept in the database and shown on the pages."""


def webhook_signature(secret, webhook_id, timestamp, body):
    """Standard Webhooks: "v1," + Base64(HMAC-SHA256(secret, id.timestamp.body)).

    A ``whsec_`` secret is Base64 (the Standard Webhooks convention); any other text is used as is.
    """
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode("utf-8")
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def verify_webhook(secret, headers, body, tolerance_s=300, now=None):
    """What the receiving app runs (copy it): True for a genuine, fresh delivery."""
    webhook_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > tolerance_s:
        return False
    expected = webhook_signature(secret, webhook_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in headers.get("webhook-signature", "").split())


class WebhookFailed(jobs.Expected):
    """The merchant's webhook did not take the event: unreachable, too slow, a redirect, or a
    status other than 2xx. The message says which; the hook job retries."""


_ANSWER_READ_LIMIT = 64 * 1024  # the answer's body is not used: read this much at most, then hang up


def check_webhook_url(url):
    """Refuse a WEBHOOK_URL that is not https, except to this host (127.0.0.0/8, ::1, localhost).

    The body carries the buyer's first password: over plain http it could be read on the way.
    Raises jobs.Permanent (a setting, not a retry, fixes it); returns the URL otherwise.
    """
    if outbound.is_https_or_loopback(url):
        return url
    parts = urllib.parse.urlsplit(url)
    raise jobs.Permanent(
        f"WEBHOOK_URL must be an https:// URL (plain http:// only to a loopback host: "
        f"127.0.0.1, ::1, localhost); refusing {parts.scheme or '(no scheme)'}://"
        f"{parts.hostname or ''}"
    )


class WebhookProvisioner(Provisioner):
    """POSTs every event as JSON to WEBHOOK_URL, signed with WEBHOOK_SECRET; non-2xx retries.

    A delivery fails (and the job retries) on any answer but 2xx, redirects included: they are
    never followed. WEBHOOK_URL must be https (plain http only to a loopback host), and one
    delivery, answer included, takes at most WEBHOOK_TIMEOUT_S seconds (default 10).
    """

    def webhook_settings(self):
        """WEBHOOK_* of the configuration this hook was given, typed (isvapp.settings); a value that
        cannot be read fails the delivery for good, naming the setting."""
        try:
            return read(ProvisioningSettings, self.config)
        except SettingError as error:
            raise jobs.Permanent(str(error)) from None

    def timeout_s(self):
        return self.webhook_settings().webhook_timeout_s

    def handle(self, event):
        webhook = self.webhook_settings()
        url, secret = webhook.webhook_url, webhook.webhook_secret
        if not url or not secret:
            raise jobs.Permanent("WEBHOOK_URL and WEBHOOK_SECRET must both be set")
        check_webhook_url(url)
        timeout = webhook.webhook_timeout_s
        body = json.dumps(
            {"type": event.kind, "id": event.event_id, "timestamp": event.created_at, "data": asdict(event)},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "webhook-id": event.event_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": webhook_signature(secret, event.event_id, timestamp, body),
            },
        )
        try:
            status, _answer = outbound.exchange(request, timeout, _ANSWER_READ_LIMIT, "webhook")
        except outbound.Unanswered as error:
            if error.kind == "redirect":
                raise WebhookFailed(
                    f"webhook answered HTTP {error.status} (a redirect, to {error.location!r}): "
                    "redirects are not followed; set WEBHOOK_URL to the final address"
                ) from None
            if error.timed_out:
                raise WebhookFailed(
                    f"webhook delivery took longer than WEBHOOK_TIMEOUT_S ({timeout:g} s); gave up"
                ) from None
            raise WebhookFailed(str(error)) from None
        if not 200 <= status < 300:
            raise WebhookFailed(f"webhook answered HTTP {status}")


def instance_fields(row):
    """The instance as hooks see it: its fields, never its sealed password."""
    fields = {name: getattr(row, name) for name in INSTANCE_FIELDS}
    fields["expire_time"] = row.expire_time.isoformat() if row.expire_time else None
    return fields


def load_provisioner(config):
    """The PROVISIONER class, given ``config`` (the app's, or any mapping of settings): a merchant's
    hook reads its own keys from it."""
    module, _, name = read(ProvisioningSettings, config).provisioner.partition(":")
    return getattr(importlib.import_module(module), name)(config)


def hook_event(event_id):
    event = db.session.execute(select(Event).where(Event.event_id == event_id)).scalar_one()
    instance = None
    if event.instance_id:
        row = db.session.execute(select(Instance).where(Instance.instance_id == event.instance_id)).scalar_one_or_none()
        if row is not None:
            instance = instance_fields(row)
            if event.kind == "created" and row.admin_password_sealed:
                instance["admin_password"] = vault.unseal(
                    settings_of(current_app).secret_key, row.admin_password_sealed
                )
    return HookEvent(
        event_id=event.event_id,
        kind=event.kind,
        instance_id=event.instance_id,
        order_id=event.order_id,
        created_at=event.created_at.isoformat() + "Z",
        payload=event.payload or {},
        instance=instance,
    )


def provision(job):
    event = hook_event(job.key)
    db.session.rollback()  # no transaction held open while the merchant's code runs
    load_provisioner(current_app.config).handle(event)


def register_jobs(registry):
    """The provisioning hook's job (isvapp/__init__.py, register_jobs)."""
    registry.handler("provision", provision)
