"""Pay-per-use usage (§5.2): recorded here, pushed to the marketplace by the worker.

Each record has a unique ``metering_sn`` (here and at the marketplace). Records are pushed in
batches of at most 1000: a batch is first marked ``sending`` and committed, then pushed, then
marked ``pushed`` (or ``rejected`` with the marketplace's per-record code). A worker that dies
mid-push resends the same batch with the same metering_sn values, which the marketplace
recognises as duplicates, so a record is never counted twice.
"""
import uuid
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import exists, select, update

from . import jobs
from ..market import openapi
from ..storage.statements import insert_ignore
from ..storage.transactions import write_transaction
from ..extensions import db
from ..storage.models import Instance, Job, JobState, UsageRecord, UsageState, utcnow

BATCH = 1000
SDR_TIME = "%Y%m%dT%H%M%SZ"
JOB_KEY = "usage"


def _naive_utc(moment):
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _value(usage_value):
    try:
        value = Decimal(str(usage_value))
    except InvalidOperation:
        raise ValueError(f"usage value {usage_value!r} is not a number") from None
    exponent = value.as_tuple().exponent  # 'n', 'N' or 'F' for NaN, sNaN and Infinity
    if not isinstance(exponent, int) or exponent < -4 or value <= 0 or value >= Decimal(10) ** 8:
        raise ValueError("usage value must be > 0 with at most 4 decimals and 8 integer digits")
    return format(value, "f")


def add(instance_id, usage_value, begin_time, end_time, metering_sn=None, relate_pkg_instance=None):
    """Record usage (in the caller's app context) and make sure the worker will push it.

    Returns the metering_sn. A metering_sn given twice is recorded once (returns the same sn).
    """
    value = _value(usage_value)
    begin, end = _naive_utc(begin_time), _naive_utc(end_time)
    if end <= begin:
        raise ValueError("end time must be after begin time")
    sn = metering_sn or uuid.uuid4().hex
    with write_transaction():
        if not db.session.execute(select(exists().where(Instance.instance_id == instance_id))).scalar():
            raise ValueError(f"instance {instance_id} does not exist")
        insert_ignore(UsageRecord, metering_sn=sn, instance_id=instance_id, usage_value=value,
                      begin_time=begin, end_time=end, record_time=utcnow(),
                      relate_pkg_instance=relate_pkg_instance, state=UsageState.PENDING, created_at=utcnow())
        _wake()
    return sn


def _wake():
    """Queue the one usage-push job (again), unless it is queued or running already."""
    if not jobs.enqueue("usage_push", JOB_KEY):
        db.session.execute(update(Job).where(Job.kind == "usage_push", Job.key == JOB_KEY,
                                             Job.state.in_((JobState.DONE, JobState.DEAD)))
                           .values(state=JobState.QUEUED, attempts=0, run_after=utcnow(), updated_at=utcnow()))


@jobs.periodic
def schedule():
    """Called by the worker now and then: usage left pending (say, added while a push ran) gets pushed."""
    pending = db.session.execute(select(exists().where(UsageRecord.state.in_(
        (UsageState.PENDING, UsageState.SENDING))))).scalar()
    db.session.rollback()
    if pending:
        with write_transaction():
            _wake()


def _sdr(record):
    row = {"instance_id": record.instance_id, "metering_sn": record.metering_sn,
           "usage_value": record.usage_value, "record_time": record.record_time.strftime(SDR_TIME),
           "begin_time": record.begin_time.strftime(SDR_TIME), "end_time": record.end_time.strftime(SDR_TIME)}
    if record.relate_pkg_instance:
        row["relate_pkg_instance"] = record.relate_pkg_instance
    return row


def _next_batch():
    """A batch left 'sending' by a dead worker first (resent as is), else up to 1000 pending records."""
    with write_transaction():
        batch = db.session.execute(select(UsageRecord.batch).where(
            UsageRecord.state == UsageState.SENDING).limit(1)).scalar()
        if batch is None:
            ids = db.session.execute(select(UsageRecord.id).where(UsageRecord.state == UsageState.PENDING)
                                     .order_by(UsageRecord.id).limit(BATCH)).scalars().all()
            if not ids:
                return None, []
            batch = uuid.uuid4().hex
            db.session.execute(update(UsageRecord).where(UsageRecord.id.in_(ids))
                               .values(state=UsageState.SENDING, batch=batch))
        records = db.session.execute(select(UsageRecord).where(UsageRecord.batch == batch,
                                                               UsageRecord.state == UsageState.SENDING)).scalars().all()
        return batch, [_sdr(r) for r in records]


def _record_errors(answer):
    """Per-record refusals, if the answer lists them (the real marketplace reports most later)."""
    listed = answer.get("error_records") or answer.get("failed_records") or []
    return {str(item.get("metering_sn")): (str(item.get("error_code", "")), str(item.get("error_msg", ""))[:255])
            for item in listed if isinstance(item, dict)}


@jobs.handler("usage_push")
def push(job):
    settings = current_app.extensions["isvapp"]
    while True:
        batch, rows = _next_batch()
        if not rows:
            return
        answer = openapi.push_usage(settings, rows)
        errors = _record_errors(answer)
        with write_transaction():
            now = utcnow()
            for sn, (code, message) in errors.items():
                db.session.execute(update(UsageRecord).where(UsageRecord.batch == batch, UsageRecord.metering_sn == sn)
                                   .values(state=UsageState.REJECTED, error_code=code, error_msg=message,
                                           pushed_at=now))
            db.session.execute(update(UsageRecord).where(UsageRecord.batch == batch,
                                                         UsageRecord.state == UsageState.SENDING)
                               .values(state=UsageState.PUSHED, pushed_at=now))


@click.group("usage")
def usage_group():
    """Record pay-per-use usage and see what was pushed."""


def _parse_time(text):
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S", SDR_TIME):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise click.BadParameter(f"{text!r}: use 2026-11-24T08:00:00Z (UTC)")


@usage_group.command("add")
@click.argument("instance_id")
@click.argument("value")
@click.option("--begin", required=True, help="UTC, e.g. 2026-11-24T08:00:00Z")
@click.option("--end", required=True, help="UTC, e.g. 2026-11-24T09:00:00Z")
@click.option("--sn", "metering_sn", help="metering_sn (default: a random one)")
@click.option("--package", "relate_pkg_instance", help="the package instance drawn down")
@with_appcontext
def usage_add(instance_id, value, begin, end, metering_sn, relate_pkg_instance):
    """Record VALUE units of usage for INSTANCE_ID between --begin and --end."""
    try:
        sn = add(instance_id, value, _parse_time(begin), _parse_time(end), metering_sn, relate_pkg_instance)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"recorded {sn}; the worker pushes it")


@usage_group.command("list")
@click.option("--limit", default=50, show_default=True)
@with_appcontext
def usage_list(limit):
    for r in db.session.execute(select(UsageRecord).order_by(UsageRecord.id.desc()).limit(limit)).scalars():
        click.echo(f"{r.metering_sn} {r.instance_id} {r.usage_value} {r.state} {r.error_code or ''}")


def init_app(app):
    app.cli.add_command(usage_group)
