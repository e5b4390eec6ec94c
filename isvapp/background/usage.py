"""Pay-per-use usage (§5.2): recorded here, pushed to the marketplace by the worker.

Each record has a unique ``metering_sn`` (here and at the marketplace). Records are pushed in
batches of at most KOO_USAGE_PUSH_BATCH (100: the push pages allow 1,000, the order query's error
page refuses more than 100 with MKT.9003): a batch is first marked ``sending`` and committed, then pushed, then
marked ``pushed`` (or ``rejected`` with the marketplace's per-record code). A worker that dies
mid-push resends the same batch with the same metering_sn values, which the marketplace
recognises as duplicates, so a record is never counted twice.
"""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import Float, case, cast, exists, func, select, update

from .. import metrics
from ..extensions import db
from ..koo.times import ISO_UTC, naive_utc
from ..market import openapi
from ..settings import settings_of
from ..storage.models import Instance, Job, JobState, TokenScope, UsageRecord, UsageState, utcnow
from ..storage.statements import insert_ignore
from ..storage.transactions import write_transaction
from ..texts import N_
from . import alerts, jobs

SDR_TIME = "%Y%m%dT%H%M%SZ"
JOB_KEY = "usage"
jobs.NOT_GIVEN_UP.add("usage_push")  # one job pushes every record: giving it up would stop them all
# sp_topic_0000120 (2024-11-22): hourly SDRs, "reported within the first 15 minutes of the next
# hour after a customer uses the resources" (used at 13:25: reported between 14:00 and 14:15).
DUE_AFTER_HOUR = timedelta(minutes=15)


def due_at(end_time):
    """The end of the 15 minutes after the hour the usage ends in (usage up to 14:00 is 13:xx's)."""
    hour = (end_time - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
    return hour + timedelta(hours=1) + DUE_AFTER_HOUR


def _value(usage_value):
    try:
        value = Decimal(str(usage_value))
    except InvalidOperation:
        raise ValueError(f"usage value {usage_value!r} is not a number") from None
    exponent = value.as_tuple().exponent  # 'n', 'N' or 'F' for NaN, sNaN and Infinity
    if not isinstance(exponent, int) or exponent < -4 or value <= 0 or value >= Decimal(10) ** 8:
        raise ValueError("usage value must be > 0 with at most 4 decimals and 8 integer digits")
    return format(value, "f")


class Refused(ValueError):
    """Usage that is not recorded: ``status`` and ``error`` are what the API answers, and the
    message names the problem. Nothing is stored."""

    def __init__(self, message, status=400, error="invalid_request"):
        super().__init__(message)
        self.status, self.error = status, error


AHEAD = timedelta(days=1)  # usage may end this far past now (a clock ahead), never further


def check_times(begin, end, now, max_age_days):
    """The usage's times as a marketplace takes them (docs/protocol.md §5.2): a begin no older
    than ``max_age_days`` (MKT.9004 past 21), an end at most a day ahead of now, the end after
    the begin. Bad times are named by the API's field names."""
    if begin < now - timedelta(days=max_age_days):
        raise Refused(
            f"beginTime {begin:%Y-%m-%dT%H:%M:%SZ} is more than {max_age_days} days ago (USAGE_MAX_AGE_DAYS): "
            "the marketplace refuses usage that old"
        )
    if end > now + AHEAD:
        raise Refused(f"endTime {end:%Y-%m-%dT%H:%M:%SZ} is more than a day from now: usage is recorded once used")
    if end <= begin:
        raise Refused("end time must be after begin time")


def is_metered(settings, instance):
    """Pay-per-use or package: the charging modes KOO_G1_PAY_PER_USE_MODES names."""
    return (instance.charging_mode or "") in settings.g1_pay_per_use_modes


def _hour(moment, up=False):
    start = moment.replace(minute=0, second=0, microsecond=0)
    return start + timedelta(hours=1) if up and start != moment else start


def check_instance(settings, instance, begin, end, token=None):
    """Whether ``instance`` takes this usage: it is metered, the usage lies inside its life (from
    the hour it was made to the hour it was released or expired: the marketplace's records are
    hourly), and ``token``, if given, covers it."""
    if token is not None and not token.allows(TokenScope.USAGE, instance.product_id, instance.key_fingerprint):
        bound = " and ".join(
            f"{what} {value}"
            for what, value in (("product", token.product_id), ("key", token.key_fingerprint))
            if value
        )
        raise Refused(f"this token records usage only for the instances of {bound}", 403, "forbidden")
    if not instance.charging_mode:
        raise Refused(
            f"instance {instance.instance_id}'s charging mode is not known yet (its order details are being "
            "fetched): retry in a minute",
            409,
            "charging_mode_unknown",
        )
    if not is_metered(settings, instance):
        raise Refused(
            f"instance {instance.instance_id} is not pay-per-use (chargingMode {instance.charging_mode}): usage is "
            "recorded only for pay-per-use or package instances",
            409,
            "not_pay_per_use",
        )
    if instance.released_at is not None and end > _hour(instance.released_at, up=True):
        raise Refused(
            f"instance {instance.instance_id} was released at {instance.released_at:%Y-%m-%dT%H:%M:%SZ}: usage "
            "after its release is not billed",
            409,
            "instance_released",
        )
    if instance.expire_time is not None and end > _hour(instance.expire_time, up=True):
        raise Refused(
            f"endTime is after instance {instance.instance_id} expired ({instance.expire_time:%Y-%m-%dT%H:%M:%SZ})",
            409,
            "outside_instance_life",
        )
    if begin < _hour(instance.created_at):
        raise Refused(
            f"beginTime is before instance {instance.instance_id} was made ({instance.created_at:%Y-%m-%dT%H:%M:%SZ})",
            409,
            "outside_instance_life",
        )


def add(instance_id, usage_value, begin_time, end_time, metering_sn=None, relate_pkg_instance=None, token=None):
    """Record usage (in the caller's app context) and make sure the worker will push it.

    Returns the metering_sn. A metering_sn given twice is recorded once (returns the same sn, as
    the first time, whatever became of the instance since). Refused (a ValueError) names what is
    wrong and stores nothing; ``token``, the API token that sent it, must cover the instance.
    """
    settings = settings_of(current_app)
    value = _value(usage_value)
    if relate_pkg_instance is not None and (not isinstance(relate_pkg_instance, str) or len(relate_pkg_instance) > 64):
        raise ValueError("the package instance id is text of at most 64 characters")
    begin, end = naive_utc(begin_time), naive_utc(end_time)
    check_times(begin, end, utcnow(), settings.usage_max_age_days)
    sn = metering_sn or uuid.uuid4().hex
    with write_transaction():
        instance = db.session.execute(select(Instance).where(Instance.instance_id == instance_id)).scalar_one_or_none()
        if instance is None:
            raise ValueError(f"instance {instance_id} does not exist")
        if (
            metering_sn
            and db.session.execute(
                select(exists().where(UsageRecord.metering_sn == metering_sn, UsageRecord.instance_id == instance_id))
            ).scalar()
        ):
            return sn
        check_instance(settings, instance, begin, end, token)
        insert_ignore(
            UsageRecord,
            metering_sn=sn,
            instance_id=instance_id,
            usage_value=value,
            begin_time=begin,
            end_time=end,
            record_time=utcnow(),
            relate_pkg_instance=relate_pkg_instance,
            state=UsageState.PENDING,
            created_at=utcnow(),
            due_at=due_at(end),
            late=False,
        )
        _wake()
    return sn


def _wake():
    """Queue the one usage-push job (again), unless it is queued or running already."""
    if not jobs.enqueue("usage_push", JOB_KEY):
        db.session.execute(
            update(Job)
            .where(Job.kind == "usage_push", Job.key == JOB_KEY, Job.state.in_((JobState.DONE, JobState.DEAD)))
            .values(state=JobState.QUEUED, attempts=0, run_after=utcnow(), updated_at=utcnow())
        )


def schedule():
    """Called by the worker now and then: usage left pending (say, added while a push ran) gets
    pushed, and usage that missed its hour's deadline raises one "usage_late" alert."""
    pending = db.session.execute(
        select(exists().where(UsageRecord.state.in_((UsageState.PENDING, UsageState.SENDING))))
    ).scalar()
    db.session.rollback()
    if pending:
        with write_transaction():
            _wake()
    check_late()


def check_late(now=None):
    """Mark (once) each record not pushed by its due time, and alert when there are new ones.
    Returns how many were found late now."""
    now = now or utcnow()
    missed = (
        UsageRecord.late.is_(False),
        UsageRecord.due_at.is_not(None),
        UsageRecord.due_at < now,
        (UsageRecord.pushed_at.is_(None)) | (UsageRecord.pushed_at > UsageRecord.due_at),
    )
    # A look first, with no write lock: this runs every tick, and nearly always finds nothing.
    found = db.session.execute(select(UsageRecord.id).where(*missed).limit(1)).first()
    db.session.rollback()
    if found is None:
        return 0
    with write_transaction():
        ids = db.session.execute(select(UsageRecord.id).where(*missed).limit(10_000)).scalars().all()
        if not ids:
            return 0
        first = db.session.execute(select(UsageRecord).where(UsageRecord.id == ids[0])).scalar_one()
        db.session.execute(update(UsageRecord).where(UsageRecord.id.in_(ids)).values(late=True))
        alerts.raise_alert(
            "usage_late",
            N_("%(count)s usage record(s) missed their hour's deadline"),
            N_(
                "%(count)s pay-per-use usage record(s) were not pushed to the marketplace within 15 minutes of "
                "the hour after their usage (the first: %(sn)s, instance %(instance)s, usage up to %(end_at)s, "
                "due %(due_at)s %(zone)s, state %(state)s). The buyer's charge is delayed. Check that the worker "
                "runs and reaches the marketplace (`.venv/bin/isvapp usage list`)."
            ),
            params={
                "count": len(ids),
                "sn": first.metering_sn,
                "instance": first.instance_id,
                "end_at": first.end_time,
                "due_at": first.due_at,
                "state": first.state,
            },
            now=now,
        )
        return len(ids)


def last_push():
    """(when the last record was pushed, whether it was on time, records late in the last 24 h)."""
    row = db.session.execute(
        select(UsageRecord.pushed_at, UsageRecord.due_at)
        .where(UsageRecord.state == UsageState.PUSHED)
        .order_by(UsageRecord.pushed_at.desc())
        .limit(1)
    ).first()
    late = db.session.execute(
        select(func.count())
        .select_from(UsageRecord)
        .where(UsageRecord.late.is_(True), UsageRecord.due_at > utcnow() - timedelta(days=1))
    ).scalar_one()
    if row is None:
        return None, None, late
    return row.pushed_at, row.due_at is None or row.pushed_at <= row.due_at, late


def last_day(now=None):
    """(records pushed, records late) in the 24 hours before ``now``: the overview's and the daily
    digest's figures. A record is one hour's usage, so the late ones are the hours that missed
    their deadline (counted by the hour's deadline, as check_late marks them)."""
    since = (now or utcnow()) - timedelta(days=1)
    pushed = db.session.execute(
        select(func.count())
        .select_from(UsageRecord)
        .where(UsageRecord.pushed_at > since, UsageRecord.state == UsageState.PUSHED)
    ).scalar_one()
    late = db.session.execute(
        select(func.count()).select_from(UsageRecord).where(UsageRecord.late.is_(True), UsageRecord.due_at > since)
    ).scalar_one()
    return pushed, late


ON_TIME, LATE, NOT_DUE = "on time", "late", "not due yet"


def timing(record, now=None):
    """Whether a record met its hour's deadline: ON_TIME, LATE, NOT_DUE (not pushed, not due yet), or
    None for one the marketplace refused (its state and code say more)."""
    if record.state == UsageState.REJECTED:
        return None
    if record.late:
        return LATE
    if record.pushed_at is not None:
        return ON_TIME if record.due_at is None or record.pushed_at <= record.due_at else LATE
    return LATE if record.due_at is not None and record.due_at < (now or utcnow()) else NOT_DUE


def records_of(instance_id, limit=200):
    """An instance's usage records, newest hour first: its own, and those drawn from it as a package."""
    return (
        db.session.execute(
            select(UsageRecord)
            .where((UsageRecord.instance_id == instance_id) | (UsageRecord.relate_pkg_instance == instance_id))
            .order_by(UsageRecord.begin_time.desc(), UsageRecord.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )


def usage_info(settings, instances):
    """queryInstance's UsageInfo per instance (topic_0070649081: mandatory for pay-per-use and
    package instances, "the usage in real time"): {instance_id: [UsageInfo]}.

    A pay-per-use instance gets its usage recorded so far (every record the marketplace did not
    refuse); a package gets one entry per pay-per-use instance drawn from it (relatedInstanceId),
    as the page's SMS-and-MMS example does. Other instances are left out."""
    ids = [i.instance_id for i in instances]
    if not ids:
        return {}
    amount = func.sum(cast(UsageRecord.usage_value, Float))
    counted = UsageRecord.state != UsageState.REJECTED
    own = dict(
        db.session.execute(
            select(UsageRecord.instance_id, amount)
            .where(UsageRecord.instance_id.in_(ids), counted)
            .group_by(UsageRecord.instance_id)
        ).all()
    )
    found = {}
    for package, related, total in db.session.execute(
        select(UsageRecord.relate_pkg_instance, UsageRecord.instance_id, amount)
        .where(UsageRecord.relate_pkg_instance.in_(ids), counted)
        .group_by(UsageRecord.relate_pkg_instance, UsageRecord.instance_id)
        .order_by(UsageRecord.relate_pkg_instance, UsageRecord.instance_id)
    ).all():
        found.setdefault(package, []).append({"relatedInstanceId": related, "usageValue": round(total or 0, 4)})
    for instance in instances:
        metered = is_metered(settings, instance)
        if instance.instance_id not in found and (metered or instance.instance_id in own):
            package = (instance.charging_mode or "").endswith("_PKG")
            found[instance.instance_id] = (
                []
                if package and instance.instance_id not in own
                else [{"usageValue": round(own.get(instance.instance_id) or 0, 4)}]
            )
    return found


def _sdr(record):
    row = {
        "instance_id": record.instance_id,
        "metering_sn": record.metering_sn,
        "usage_value": record.usage_value,
        "record_time": record.record_time.strftime(SDR_TIME),
        "begin_time": record.begin_time.strftime(SDR_TIME),
        "end_time": record.end_time.strftime(SDR_TIME),
    }
    if record.relate_pkg_instance:
        row["relate_pkg_instance"] = record.relate_pkg_instance
    return row


def _next_batch(size):
    """A batch left 'sending' by a dead worker first (resent as is), else up to ``size`` pending records."""
    with write_transaction():
        batch = db.session.execute(
            select(UsageRecord.batch).where(UsageRecord.state == UsageState.SENDING).limit(1)
        ).scalar()
        if batch is None:
            ids = (
                db.session.execute(
                    select(UsageRecord.id)
                    .where(UsageRecord.state == UsageState.PENDING)
                    .order_by(UsageRecord.id)
                    .limit(size)
                )
                .scalars()
                .all()
            )
            if not ids:
                return None, []
            batch = uuid.uuid4().hex
            db.session.execute(
                update(UsageRecord).where(UsageRecord.id.in_(ids)).values(state=UsageState.SENDING, batch=batch)
            )
        records = (
            db.session.execute(
                select(UsageRecord).where(UsageRecord.batch == batch, UsageRecord.state == UsageState.SENDING)
            )
            .scalars()
            .all()
        )
        return batch, [_sdr(r) for r in records]


def _record_errors(answer):
    """Per-record refusals, if the answer lists them (the real marketplace reports most later)."""
    listed = answer.get("error_records") or answer.get("failed_records") or []
    return {
        str(item.get("metering_sn")): (str(item.get("error_code", "")), str(item.get("error_msg", ""))[:255])
        for item in listed
        if isinstance(item, dict)
    }


def push(job):
    settings = settings_of(current_app)
    while True:
        batch, rows = _next_batch(settings.usage_push_batch)
        if not rows:
            return
        answer = openapi.push_usage(settings, rows)
        errors = _record_errors(answer)
        with write_transaction():
            now = utcnow()
            for sn, (code, message) in errors.items():
                db.session.execute(
                    update(UsageRecord)
                    .where(UsageRecord.batch == batch, UsageRecord.metering_sn == sn)
                    .values(state=UsageState.REJECTED, error_code=code, error_msg=message, pushed_at=now)
                )
            sending = (UsageRecord.batch == batch, UsageRecord.state == UsageState.SENDING)
            pushed, late = db.session.execute(
                select(func.count(), func.count(case((UsageRecord.due_at < now, 1))))
                .select_from(UsageRecord)
                .where(*sending)
            ).one()
            db.session.execute(update(UsageRecord).where(*sending).values(state=UsageState.PUSHED, pushed_at=now))
        metrics.usage_pushed(on_time=pushed - late, late=late, rejected=len(rows) - pushed)


@click.group("usage")
def usage_group():
    """Record pay-per-use usage and see what was pushed."""


def _parse_time(text):
    for fmt in (ISO_UTC, "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S", SDR_TIME):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
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
        refused = f" {r.error_code}: {r.error_msg or ''}" if r.error_code else ""
        click.echo(f"{r.metering_sn} {r.instance_id} {r.usage_value} {r.state}{refused}")


def register_jobs(registry):
    """The usage push and its schedule (isvapp/__init__.py, register_jobs)."""
    registry.periodic(schedule)
    registry.handler("usage_push", push)


def init_app(app):
    app.cli.add_command(usage_group)
