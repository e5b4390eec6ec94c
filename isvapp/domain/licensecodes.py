"""License codes (授权码) through the relay: what the merchant's installed software may do without
the merchant's AK/SK (docs/license-relay.md).

The software activates a code once per installation and gets an installation secret (only its
SHA-256 is kept); verifying and reporting usage then need the code and that secret. Every call
counts against its address's budget (LICENSE_RELAY_PER_ADDRESS_MINUTE), then, once its token is
checked, against the code's (LICENSE_RELAY_PER_MINUTE), across workers and hosts. A
verification asks the marketplace; when the marketplace cannot be reached, the last state it
confirmed is served for LICENSE_RELAY_GRACE_H, marked as such. Usage is a durable job: once the
relay said "accepted", the report reaches the marketplace even if it is down for a while.
"""

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select, update

from ..background import jobs
from ..extensions import db
from ..koo import licensecodes
from ..koo.signing import secret_digest
from ..koo.times import iso_utc, naive_utc
from ..market import openapi
from ..settings import settings_of
from ..storage.models import LicenseCode, LicenseInstallation, RelayBudget, utcnow
from ..storage.statements import insert_ignore
from ..storage.transactions import write_transaction
from . import callbacklog, simulation

USAGE_JOB = "license_usage"
# A refusal of the code itself: the marketplace does not know it, or its shape is wrong.
UNKNOWN_CODES = {"92020002", "MKT.0100", "MKT.0101", "MKT.9001"}


class RelayError(Exception):
    """A refusal the software sees: ``status`` (HTTP), ``error`` (a word), and a message naming it."""

    def __init__(self, status, error, message):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


# Statuses that end a license, whatever its expiry (upper-cased). The pages do not list the
# query's statuses: these are the lifecycle words the marketplace uses elsewhere.
ENDED = {
    "EXPIRED",
    "FROZEN",
    "FREEZE",
    "RELEASED",
    "RELEASE",
    "DELETED",
    "INVALID",
    "REVOKED",
    "DISABLED",
    "CANCELLED",
    "CANCELED",
}


@dataclass
class Verdict:
    license: str
    status: str | None
    expire_time: object
    verified_at: object
    source: str  # "marketplace", or "cache" while the marketplace cannot be reached
    grace_until: object = None

    @property
    def valid(self):
        """What the software acts on: not ended by its status, and not past its expiry."""
        ended = (self.status or "").strip().upper() in ENDED
        return not ended and (self.expire_time is None or self.expire_time > utcnow())


def claim_budget(name, per_minute):
    """One call of ``name``'s minute (a code's, an address's); False when its calls are spent."""
    minute = utcnow().replace(second=0, microsecond=0)
    key = hashlib.sha256(name.encode("utf-8")).hexdigest()[:64]
    with write_transaction():
        insert_ignore(RelayBudget, key=key, minute=minute, count=0)
        row = db.session.execute(select(RelayBudget).where(RelayBudget.key == key).with_for_update()).scalar_one()
        if row.minute != minute:
            row.minute, row.count = minute, 0
        if row.count >= per_minute:
            return False
        row.count += 1
        return True


def _checked(code):
    try:
        return licensecodes.code(code)
    except licensecodes.Invalid as error:
        raise RelayError(400, "invalid_request", str(error)) from None


def _limit_address(settings, address):
    """The address's budget first (a stranger trying codes at random is stopped there, before each
    try costs a marketplace call, a budget row or a token check)."""
    if not claim_budget("address:" + callbacklog.address_key(address or ""), settings.relay_per_address_minute):
        raise RelayError(
            429,
            "rate_limited",
            f"more than {settings.relay_per_address_minute} relay calls this "
            "minute from this address: try again in a minute",
        )


def _limit_code(settings, code):
    """The code's budget: counted only for calls that may act on the code (an activation, or a
    call with its installation's token), so that a stranger who knows only the code cannot
    spend the installation's minute."""
    if not claim_budget("code:" + code, settings.relay_per_minute):
        raise RelayError(
            429,
            "rate_limited",
            f"more than {settings.relay_per_minute} calls this minute for this license code: try again in a minute",
        )


def _refusal(error):
    """What the software is told (the marketplace's resultMsg with it, never its extra_info: that
    is for the merchant, on the job's error and the pages)."""
    if error.code in UNKNOWN_CODES:
        return RelayError(404, "unknown_license", f"the marketplace refused the license code: {error.words}")
    if error.code == "invalid":
        return RelayError(400, "invalid_request", error.message)
    if error.code == "config":
        return RelayError(
            503, "relay_not_configured", f"the merchant's server cannot call the marketplace: {error.message}"
        )
    if error.later:
        return RelayError(
            503, "marketplace_unreachable", f"the marketplace could not answer now ({error.code}): {error.words}"
        )
    return RelayError(502, "marketplace_error", f"the marketplace answered {error.code}: {error.words}")


def activate(settings, code, address):
    """激活授权码 at the marketplace, then a new installation: (Verdict, installation token)."""
    code = _checked(code)
    _limit_address(settings, address)
    _limit_code(settings, code)
    try:
        status, expiry = openapi.activate_license(settings, code)
    except openapi.MarketError as error:
        raise _refusal(error) from None
    installation_id, secret = uuid.uuid4().hex, secrets.token_urlsafe(32)
    now = utcnow()
    with write_transaction():
        insert_ignore(LicenseCode, code=code, usage_reports=0, created_at=now)
        db.session.execute(
            update(LicenseCode)
            .where(LicenseCode.code == code)
            .values(
                state=status,
                expire_time=naive_utc(expiry),
                activated_at=now,
                activated_from=address[:64],
                verified_at=now,
                verified_from=address[:64],
                simulated=simulation.current(),
            )
        )
        db.session.add(
            LicenseInstallation(
                installation_id=installation_id,
                code=code,
                secret_digest=secret_digest(secret),
                created_at=now,
                created_from=address[:64],
                last_seen_at=now,
            )
        )
    return Verdict(code, status, naive_utc(expiry), now, "marketplace"), f"{installation_id}.{secret}"


def installation(code, token):
    """The installation ``token`` names, if it belongs to ``code`` and its secret matches."""
    installation_id, _, secret = (token or "").partition(".")
    row = db.session.execute(
        select(LicenseInstallation).where(LicenseInstallation.installation_id == installation_id[:32])
    ).scalar_one_or_none()
    matches = row is not None and hmac.compare_digest(row.secret_digest, secret_digest(secret)) and row.code == code
    db.session.rollback()
    if not matches:
        raise RelayError(
            401,
            "unauthorized",
            "the installation token does not match this license code: send "
            "Authorization: Bearer <installationId>.<installationSecret>, as activation returned it",
        )
    return installation_id


def verify(settings, code, token, address, account=None, ip=None):
    """查询授权码 (v1) for an installation; the last confirmed state during an outage."""
    code = _checked(code)
    _limit_address(settings, address)
    installation_id = installation(code, token)
    _limit_code(settings, code)
    try:
        status, expiry = openapi.query_license(settings, code, account, ip)
    except licensecodes.Invalid as error:
        raise RelayError(400, "invalid_request", str(error)) from None
    except openapi.MarketError as error:
        refusal = _refusal(error)
        if refusal.status == 503:
            cached = _cached(settings, code)
            if cached is not None:
                return cached
        raise refusal from None
    now = utcnow()
    with write_transaction():
        db.session.execute(
            update(LicenseCode)
            .where(LicenseCode.code == code)
            .values(state=status, expire_time=naive_utc(expiry), verified_at=now, verified_from=address[:64])
        )
        db.session.execute(
            update(LicenseInstallation)
            .where(LicenseInstallation.installation_id == installation_id)
            .values(last_seen_at=now)
        )
    return Verdict(code, status, naive_utc(expiry), now, "marketplace")


def _cached(settings, code):
    row = db.session.execute(select(LicenseCode).where(LicenseCode.code == code)).scalar_one_or_none()
    db.session.rollback()
    if row is None or row.verified_at is None:
        return None
    until = row.verified_at + timedelta(seconds=settings.relay_grace_s)
    if utcnow() >= until:
        return None
    return Verdict(code, row.state, row.expire_time, row.verified_at, "cache", until)


def report_usage(settings, code, token, entry, address=""):
    """Queue one 授权码软件使用统计 entry; the same entry for a code on one UTC day is queued once.
    Returns True when it was queued now, False when it had been already."""
    code = _checked(code)
    _limit_address(settings, address)
    try:
        entry = licensecodes.usage_entry(entry)
    except licensecodes.Invalid as error:
        raise RelayError(400, "invalid_request", str(error)) from None
    installation(code, token)
    _limit_code(settings, code)
    day = utcnow().strftime("%Y%m%d")
    key = hashlib.sha256(json.dumps([code, day, entry], sort_keys=True).encode()).hexdigest()
    with write_transaction():
        return bool(jobs.enqueue(USAGE_JOB, key, payload={"license": code, "entries": [entry]}))


def push_usage(job):
    settings = settings_of(current_app)
    try:
        openapi.report_software_usage(settings, [(job.payload["license"], job.payload["entries"])])
    except (licensecodes.Invalid, openapi.MarketError) as error:
        if isinstance(error, licensecodes.Invalid) or error.code in UNKNOWN_CODES | {"invalid", "config"}:
            raise jobs.Permanent(str(error)) from None
        raise
    with write_transaction():
        db.session.execute(
            update(LicenseCode)
            .where(LicenseCode.code == job.payload["license"])
            .values(usage_reported_at=utcnow(), usage_reports=LicenseCode.usage_reports + 1)
        )
        if not jobs.complete(job):
            raise RuntimeError("lost the job's lease; another worker finishes it")


def refresh(settings, codes):
    """查询授权码 v2 for ``codes`` (batches of 100): the stored state of each code the answer lists
    is brought up to date. Returns {code: (status, expiry)}."""
    found = {}
    codes = list(dict.fromkeys(codes))
    for start in range(0, len(codes), licensecodes.BATCH_MAX):
        found.update(openapi.query_licenses(settings, codes[start : start + licensecodes.BATCH_MAX]))
    now = utcnow()
    with write_transaction():
        for code, (status, expiry) in found.items():
            db.session.execute(
                update(LicenseCode)
                .where(LicenseCode.code == code)
                .values(state=status, expire_time=naive_utc(expiry), verified_at=now, verified_from="isvapp (v2 query)")
            )
    return found


@click.group("license-codes")
def license_codes_group():
    """License codes (授权码) the relay has seen, and the marketplace's word on them."""


@license_codes_group.command("list")
@with_appcontext
def list_command():
    for row in db.session.execute(select(LicenseCode).order_by(LicenseCode.id)).scalars():
        click.echo(
            f"{row.code} {row.state or '-'} expires {row.expire_time or '-'} activated {row.activated_at or '-'} "
            f"verified {row.verified_at or '-'} usage reports {row.usage_reports}"
        )


@license_codes_group.command("query")
@click.argument("codes", nargs=-1)
@with_appcontext
def query_command(codes):
    """Ask the marketplace (v2 batch query) about CODES, or every code seen so far."""
    settings = settings_of(current_app)
    codes = codes or db.session.execute(select(LicenseCode.code).order_by(LicenseCode.id)).scalars().all()
    db.session.rollback()
    if not codes:
        raise click.ClickException("no license code given and none seen yet")
    try:
        found = refresh(settings, codes)
    except (licensecodes.Invalid, openapi.MarketError) as error:
        raise click.ClickException(str(error)) from None
    for code in codes:
        status, expiry = found.get(code, (None, None))
        click.echo(f"{code} {status or 'not in the answer'} {iso_utc(expiry) or ''}")


def register_jobs(registry):
    """The relay's usage report to the marketplace (isvapp/__init__.py, register_jobs)."""
    registry.handler(USAGE_JOB, push_usage)


def init_app(app):
    app.cli.add_command(license_codes_group)
