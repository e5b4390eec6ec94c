"""License products: issuing, renewing and marking license documents.

A license product's order is an ordinary instance (product_type "license"), so it shares the
instance state machine and idempotency; this module adds the documents. What a document is
comes from a generator: by default an Ed25519-signed payload the merchant's software verifies
offline; a merchant with a format of their own sets LICENSE_GENERATOR = "module:function", a
function that takes the payload dict and returns the license text.
"""

import importlib
import json
import uuid

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select, update

from ..background import uploads
from ..extensions import db
from ..koo import jose, licensedoc
from ..koo.signing import key_fingerprint
from ..koo.times import iso_utc
from ..settings import settings_of
from ..storage.keys import signing_key
from ..storage.models import Instance, License, LicenseState, UploadState, utcnow
from . import simulation


def generator(settings):
    """payload -> license text: the merchant's function, or the built-in signed document."""
    if settings.license_generator:
        module, _, name = settings.license_generator.partition(":")
        return getattr(importlib.import_module(module), name)
    key = signing_key(settings.license_signing_key)
    return lambda payload: licensedoc.sign_document(key, payload)


def issue(settings, instance, *, fingerprint=None, event_id=None, effective_time=None, expire_time=None):
    """Issue a document for ``instance`` (inside the caller's transaction) and return its text.

    An earlier active document for the same device is superseded: a renewal replaces it. A
    document for a getLicenseAsync event (``event_id``) is uploaded to the marketplace by a job
    enqueued here, in the same transaction.
    """
    license_id = uuid.uuid4().hex
    expire_time = expire_time or instance.expire_time
    payload = {
        "license": license_id,
        "instance": instance.instance_id,
        "order": instance.order_id,
        "product": instance.product_id,
        "sku": instance.sku_code,
        "customer": instance.customer_id,
        "customerName": instance.customer_name,
        "fingerprint": fingerprint,
        "issued": iso_utc(utcnow()),
        "effective": iso_utc(effective_time),
        "expires": iso_utc(expire_time),
        "test": bool(instance.test_flag),
    }
    document = generator(settings)({k: v for k, v in payload.items() if v is not None})
    db.session.execute(
        update(License)
        .where(
            License.instance_id == instance.instance_id,
            License.state == LicenseState.ACTIVE,
            License.fingerprint.is_(None) if fingerprint is None else License.fingerprint == fingerprint,
        )
        .values(state=LicenseState.SUPERSEDED, updated_at=utcnow())
    )
    db.session.add(
        License(
            license_id=license_id,
            instance_id=instance.instance_id,
            order_id=instance.order_id,
            event_id=event_id,
            fingerprint=fingerprint,
            test_flag=instance.test_flag,
            document=document,
            effective_time=effective_time,
            expire_time=expire_time,
            key_fingerprint=key_fingerprint(settings.access_key),
            upload_state=UploadState.PENDING if event_id else None,
        )
    )
    if event_id:
        uploads.enqueue(license_id, instance.instance_id, simulated=simulation.current())
    return document


def renew(settings, instance):
    """Reissue each device's latest live document with the instance's new expiry.

    Returns the new texts, newest device first; an instance with no document yet gets one.
    """
    rows = (
        db.session.execute(
            select(License)
            .where(
                License.instance_id == instance.instance_id,
                License.state.in_((LicenseState.ACTIVE, LicenseState.EXPIRED)),
            )
            .order_by(License.issued_at.desc(), License.id.desc())
        )
        .scalars()
        .all()
    )
    latest = {}
    for row in rows:
        latest.setdefault(row.fingerprint, row)
    for row in latest.values():
        row.state = LicenseState.SUPERSEDED
    db.session.flush()
    if not latest:
        return [issue(settings, instance)]
    return [
        issue(settings, instance, fingerprint=row.fingerprint, event_id=row.event_id, effective_time=row.effective_time)
        for row in latest.values()
    ]


def mark(instance_id, state, asking=None):
    """Expiry and release mark every live document of the instance (rows are kept); ``asking``
    (a lifecycle.Owner): only the documents it may use, never another key's."""
    live = (LicenseState.ACTIVE,) if state == LicenseState.EXPIRED else (LicenseState.ACTIVE, LicenseState.EXPIRED)
    owned = []
    if asking is not None and not asking.shared:
        owned = [
            License.key_fingerprint.is_(None) | (License.key_fingerprint == asking.fingerprint),
            ~select(Instance.id)
            .where(
                Instance.instance_id == instance_id,
                Instance.key_fingerprint.is_not(None),
                Instance.key_fingerprint != asking.fingerprint,
            )
            .exists(),
        ]
    db.session.execute(
        update(License)
        .where(License.instance_id == instance_id, License.state.in_(live), *owned)
        .values(state=state, updated_at=utcnow())
    )


def instance_of(instance_id):
    return db.session.execute(select(Instance).where(Instance.instance_id == instance_id)).scalar_one()


@click.command("license-key")
@click.option("--jwks", "as_jwks", is_flag=True, help="Print it as a JWK Set (for Java's nimbus-jose-jwt).")
@with_appcontext
def license_key_command(as_jwks):
    """Print the public key that verifies this server's license documents (PEM, or a JWK Set)."""
    settings = settings_of(current_app)
    if settings.license_generator:
        click.echo(
            f"LICENSE_GENERATOR is {settings.license_generator}: licenses are made by that "
            "function, not signed with the built-in key.",
            err=True,
        )
    key = signing_key(settings.license_signing_key)
    click.echo(json.dumps(jose.jwks(key), indent=1) if as_jwks else licensedoc.public_key_pem(key), nl=as_jwks)


def init_app(app):
    app.cli.add_command(license_key_command)
