"""Delivering getLicenseAsync's licenses: the upload (字符串/文件流上传) of each document to the
marketplace, as a durable job enqueued in the transaction that stored the document.

The job carries only the document's id: every attempt reads the stored text and sends the same
bytes, so the marketplace never sees two documents for one attempt at an event. A renewal is a
new document (a new id, a job of its own) for the same eventId. Failures retry with the queue's
backoff; a dead upload marks the document "failed" and raises the dead_job alert.

A simulated order's document (the simulator's getLicenseAsync) is tried once, and only when the
open API is configured: the marketplace never sent its eventId, so a refusal is expected and is no
problem of the merchant's; the document is marked "simulated" and nothing retries or alerts.
"""

from flask import current_app
from sqlalchemy import select, update

from ..extensions import db
from ..market import openapi
from ..settings import settings_of
from ..storage.models import License, UploadState, utcnow
from ..storage.transactions import write_transaction
from . import jobs

KIND = "license_upload"
# Codes retrying cannot change: the call was refused as it stands (its size, the marketplace's
# verdict on the event or the keys); the merchant fixes the cause, then `isvapp jobs retry`.
PERMANENT_CODES = {"invalid", "config", "92020002", "MKT.0100", "MKT.0101", "MKT.0151", "MKT.0154"}


def enqueue(license_id, instance_id, simulated=False):
    """In the caller's transaction, with the document: nothing acknowledged goes unsent.
    ``simulated``: the document answers the merchant's own simulation (see above)."""
    jobs.enqueue(KIND, license_id, {"simulated": True} if simulated else None, instance_id=instance_id)


def _set(license_id, **values):
    db.session.execute(update(License).where(License.license_id == license_id).values(updated_at=utcnow(), **values))


def upload(job):
    settings = settings_of(current_app)
    row = db.session.execute(
        select(License.event_id, License.document).where(License.license_id == job.key)
    ).one_or_none()
    db.session.rollback()
    if row is None or not row.event_id:
        raise jobs.Permanent(f"license {job.key} is gone or has no eventId to upload to")
    try:
        openapi.upload_license(settings, row.event_id, row.document)
    except openapi.MarketError as error:
        if job.payload.get("simulated"):
            with write_transaction():
                _set(job.key, upload_state=UploadState.SIMULATED, upload_error=str(error)[:255])
                if not jobs.complete(job):
                    raise RuntimeError("lost the job's lease; another worker finishes it") from None
            return
        with write_transaction():
            _set(job.key, upload_error=str(error)[:2000])  # the marketplace's words as sent, beside ours
        if error.code in PERMANENT_CODES:
            raise jobs.Permanent(str(error)) from None
        raise
    with write_transaction():
        _set(job.key, upload_state=UploadState.UPLOADED, uploaded_at=utcnow(), upload_error=None)
        if not jobs.complete(job):
            raise RuntimeError("lost the job's lease; another worker finishes it")


def _dead(job):
    _set(job.key, upload_state=UploadState.FAILED)


def register_jobs(registry):
    """The license upload; a dead one marks the license failed (isvapp/__init__.py, register_jobs)."""
    registry.handler(KIND, upload, on_dead=_dead)
